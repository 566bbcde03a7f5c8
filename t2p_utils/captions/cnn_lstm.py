"""CNN-LSTM image captioner (the seed's first captioner), small enough to train on a CPU.

* :class:`Vocab`: words seen fewer than ``min_count`` times become ``<unk>``. This is the
  seed's point: with ~300 captions that rarely name colours, colour words fall below the
  threshold and the captioner writes "a drawing with a <unk> body".
* :class:`CaptionNet`: a 4-block CNN encoder (conv-BN-ReLU, stride 2, global average pool)
  whose feature initialises the LSTM state and is fed with every word embedding.
* :func:`train_captioner`: teacher forcing, Adam, early stopping on validation loss (the best
  state is kept), seeded (``torch.Generator`` per call; same CPU run twice = same numbers).
* :func:`greedy_decode` and :func:`beam_decode` (raw log-likelihood, no length penalty; the
  beam result is never less likely than the greedy one, because greedy's sequence competes
  in the final choice).
* :func:`save_captioner` / :func:`load_captioner`: ``safetensors`` weights plus JSON vocab,
  config and history in ``paths.model("cnn_lstm")``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from t2p_utils.config.captions import CnnLstmConfig
from t2p_utils.core.io import atomic_path, atomic_write_json, rgb_on_white
from t2p_utils.core.threads import torch_threads

log = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
_TOKEN = re.compile(r"<unk>|[a-z0-9]+(?:'[a-z]+)?|,")


def tokenize(caption: str) -> list[str]:
    """Lower-case word tokens; commas are kept as tokens, other punctuation dropped."""
    return _TOKEN.findall(str(caption).lower())


def detokenize(tokens: Sequence[str]) -> str:
    return " ".join(tokens).replace(" ,", ",").strip()


@dataclass
class Vocab:
    itos: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # training counts of every word (kept or not)
    min_count: int = 1

    @classmethod
    def build(cls, captions: Sequence[str], min_count: int) -> Vocab:
        counts = Counter(t for c in captions for t in tokenize(c))
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS), key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + kept, dict(sorted(counts.items())), min_count)

    def __post_init__(self) -> None:
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def unk_words(self) -> list[str]:
        """Training words that became ``<unk>`` (seen fewer than ``min_count`` times)."""
        return sorted(w for w in self.counts if w not in self.stoi)

    def encode(self, caption: str) -> list[int]:
        unk = self.stoi[UNK]
        return [self.stoi.get(t, unk) for t in tokenize(caption)]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            w = self.itos[int(i)]
            if w == EOS:
                break
            if w not in (PAD, BOS):
                words.append(w)
        return detokenize(words)


class CaptionNet(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, cnn_channels: int) -> None:
        super().__init__()
        ch = cnn_channels
        blocks: list[nn.Module] = []
        cin = 3
        for cout in (ch // 2, ch, ch * 2, ch * 2):
            blocks += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU(inplace=True)]  # no norm layer: per-image normalisation would wash out the absolute colours the captions name
            cin = cout
        self.encoder = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feat = nn.Linear(cin, emb_dim)
        self.init_h = nn.Linear(cin, hidden_dim)
        self.init_c = nn.Linear(cin, hidden_dim)
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.lstm = nn.LSTM(2 * emb_dim, hidden_dim, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        f = self.encoder(images)
        state = (torch.tanh(self.init_h(f)).unsqueeze(0), torch.tanh(self.init_c(f)).unsqueeze(0))
        return torch.relu(self.feat(f)), state

    def step(self, tokens: torch.Tensor, feat: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Log-probabilities of the next token given ``tokens`` [B, T] (and the carried state)."""
        x = torch.cat([self.embed(tokens), feat.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)
        h, state = self.lstm(self.drop(x), state)
        return F.log_softmax(self.out(self.drop(h)), dim=-1), state

    def forward(self, images: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        feat, state = self.encode(images)
        logp, _ = self.step(inputs, feat, state)
        return logp


@dataclass
class TrainedCaptioner:
    model: CaptionNet
    vocab: Vocab
    config: CnnLstmConfig
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, train_loss, val_loss
    best_epoch: int = 0


def load_images(files: Sequence[Path], size: int) -> torch.Tensor:
    """RGB images (transparent parts on white) resized to ``size``: float tensor [N, 3, size, size] in 0..1."""
    out = np.zeros((len(files), size, size, 3), dtype=np.float32)
    for i, f in enumerate(files):
        if not Path(f).exists():
            raise FileNotFoundError(f"{f} is missing: re-run notebooks/01_scrape.ipynb (force=True) to render it")
        with Image.open(f) as raw:
            img = rgb_on_white(raw).resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _pad_batch(seqs: Sequence[Sequence[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs ``<bos> w1..wn`` and targets ``w1..wn <eos>`` (padded with 0)."""
    bos, eos = SPECIALS.index(BOS), SPECIALS.index(EOS)
    seqs = [list(s)[: max_len - 1] for s in seqs]
    t = max(len(s) for s in seqs) + 1
    inp = torch.zeros(len(seqs), t, dtype=torch.long)
    tgt = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        inp[i, : len(s) + 1] = torch.tensor([bos] + s)
        tgt[i, : len(s) + 1] = torch.tensor(s + [eos])
    return inp, tgt


def _loss(model: CaptionNet, images: torch.Tensor, seqs: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    inp, tgt = _pad_batch(seqs, max_len)
    logp = model(images, inp)
    return F.nll_loss(logp.reshape(-1, logp.shape[-1]), tgt.reshape(-1), ignore_index=0)


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic hold-out of ``val_fraction`` of ``n`` items (at least 1 when n >= 4)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n >= 4:
        n_val = max(1, n_val)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_captioner(images: torch.Tensor, captions: Sequence[str], cfg: CnnLstmConfig,
                    val_images: torch.Tensor | None = None, val_captions: Sequence[str] | None = None,
                    progress: bool = True) -> TrainedCaptioner:
    """Train on (image, caption) pairs; early stopping on the validation loss.

    Without explicit validation data, ``cfg.val_fraction`` of the pairs are held out
    (seeded). With ``val_fraction`` 0 and no validation data, the training loss is monitored.
    """
    with torch_threads(cfg.torch_threads):
        return _train(images, captions, cfg, val_images, val_captions, progress)


def _train(images: torch.Tensor, captions: Sequence[str], cfg: CnnLstmConfig, val_images: torch.Tensor | None,
           val_captions: Sequence[str] | None, progress: bool) -> TrainedCaptioner:
    from t2p_utils.core.progress import tqdm

    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    if len(captions) == 0:
        raise ValueError("no captions to train on: check the reference captions file")
    if val_images is None:
        tr, va = split_train_val(len(captions), cfg.val_fraction, cfg.seed)
        val_images, val_captions = images[va], [captions[i] for i in va]
        images, captions = images[tr], [captions[i] for i in tr]
    vocab = Vocab.build(captions, cfg.min_count)
    seqs = [vocab.encode(c) for c in captions]
    val_seqs = [vocab.encode(c) for c in (val_captions or [])]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CaptionNet(len(vocab), cfg.emb_dim, cfg.hidden_dim, cfg.cnn_channels)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict[str, float]] = []
    best, best_state, best_epoch, bad = math.inf, None, 0, 0
    bar = tqdm(range(1, cfg.epochs + 1), desc="cnn-lstm", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(seqs), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            x = images[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # same augmentation as the IP2P recipe
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # dropout masks
                loss = _loss(model, x, [seqs[i] for i in idx.tolist()], cfg.max_len)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        train_loss = total / count
        val_loss = evaluate_loss(model, val_images, val_seqs, cfg.max_len) if val_seqs else train_loss
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
        if val_loss < best - 1e-4:
            best, best_epoch, bad = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                log.info("early stopping at epoch %d (best val loss %.4f at epoch %d)", epoch, best, best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainedCaptioner(model, vocab, cfg, history, best_epoch)


@torch.no_grad()
def evaluate_loss(model: CaptionNet, images: torch.Tensor, seqs: Sequence[Sequence[int]], max_len: int,
                  batch_size: int = 64) -> float:
    was = model.training
    model.eval()
    total, n = 0.0, 0
    for s in range(0, len(seqs), batch_size):
        total += float(_loss(model, images[s : s + batch_size], seqs[s : s + batch_size], max_len)) * len(seqs[s : s + batch_size])
        n += len(seqs[s : s + batch_size])
    model.train(was)
    return total / max(n, 1)


@torch.no_grad()
def sequence_log_likelihood(model: CaptionNet, image: torch.Tensor, ids: Sequence[int]) -> float:
    """log p(ids, then <eos> unless ``ids`` is already max-length-cut) under the model, for one image [3, H, W]."""
    model.eval()
    seq = list(ids)
    eos = SPECIALS.index(EOS)
    inp = torch.tensor([[SPECIALS.index(BOS)] + seq])
    tgt = torch.tensor(seq + [eos])
    logp = model(image.unsqueeze(0), inp)[0]
    return float(logp.gather(1, tgt[:, None]).sum())


@torch.no_grad()
def greedy_decode(model: CaptionNet, images: torch.Tensor, max_len: int) -> tuple[list[list[int]], list[float]]:
    """Most likely next word at every step, batched. Returns token ids (no <eos>) and log-likelihoods (with <eos>)."""
    model.eval()
    eos = SPECIALS.index(EOS)
    feat, state = model.encode(images)
    tok = torch.full((len(images), 1), SPECIALS.index(BOS), dtype=torch.long)
    done = torch.zeros(len(images), dtype=torch.bool)
    score = torch.zeros(len(images))
    out: list[list[int]] = [[] for _ in range(len(images))]
    for _ in range(max_len):
        logp, state = model.step(tok, feat, state)
        best_lp, best = logp[:, -1].max(-1)
        score += torch.where(done, torch.zeros_like(best_lp), best_lp)
        for i in torch.nonzero(~done & (best != eos)).flatten().tolist():
            out[i].append(int(best[i]))
        done |= best == eos
        if bool(done.all()):
            break
        tok = best[:, None]
    return out, score.tolist()


@torch.no_grad()
def beam_decode(model: CaptionNet, image: torch.Tensor, beam_size: int, max_len: int) -> tuple[list[int], float]:
    """Beam search for one image [3, H, W]: (token ids without <eos>, log-likelihood with <eos>).

    Scores are raw log-likelihoods. Hypotheses that reach ``max_len`` without <eos> are scored
    without it, exactly as :func:`greedy_decode` scores them; greedy's sequence is a candidate
    too, so the result is at least as likely as greedy's.
    """
    model.eval()
    eos = SPECIALS.index(EOS)
    feat, (h, c) = model.encode(image.unsqueeze(0))
    beams: list[tuple[float, list[int], tuple[torch.Tensor, torch.Tensor]]] = [(0.0, [SPECIALS.index(BOS)], (h, c))]
    finished: list[tuple[float, list[int]]] = []
    for step in range(max_len):
        toks = torch.tensor([[b[1][-1]] for b in beams])
        hs = torch.cat([b[2][0] for b in beams], dim=1)
        cs = torch.cat([b[2][1] for b in beams], dim=1)
        logp, (h2, c2) = model.step(toks, feat.expand(len(beams), -1), (hs, cs))
        logp = logp[:, -1]
        cand = (torch.tensor([b[0] for b in beams])[:, None] + logp).flatten()
        top = torch.topk(cand, min(len(cand), 2 * beam_size))
        new: list[tuple[float, list[int], tuple[torch.Tensor, torch.Tensor]]] = []
        for s, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            b, w = divmod(flat, logp.shape[1])
            if w == eos:
                finished.append((s, beams[b][1][1:]))
            elif len(new) < beam_size:
                new.append((s, beams[b][1] + [w], (h2[:, b : b + 1], c2[:, b : b + 1])))
        beams = new
        best_done = max((f[0] for f in finished), default=-math.inf)
        # log-probs only decrease, so no live beam can beat the best finished one
        if not beams or max(b[0] for b in beams) <= best_done:
            break
    else:
        finished.extend((b[0], b[1][1:]) for b in beams)  # cut at max_len, scored without <eos>
    g_ids, g_score = greedy_decode(model, image.unsqueeze(0), max_len)
    finished.append((g_score[0], g_ids[0]))
    score, ids = max(finished, key=lambda f: f[0])
    return ids, float(score)


def caption_images(trained: TrainedCaptioner, images: torch.Tensor, beam_size: int | None = None,
                   progress: bool = True) -> list[str]:
    """Captions for images [N, 3, S, S]: beam search when ``beam_size`` > 1, else greedy."""
    from t2p_utils.core.progress import tqdm

    beam = trained.config.beam_size if beam_size is None else beam_size
    with torch_threads(trained.config.torch_threads):
        if beam <= 1:
            ids, _ = greedy_decode(trained.model, images, trained.config.max_len)
            return [trained.vocab.decode(s) for s in ids]
        return [
            trained.vocab.decode(beam_decode(trained.model, img, beam, trained.config.max_len)[0])
            for img in tqdm(images, desc="beam search", disable=not progress or len(images) < 50)
        ]


def save_captioner(trained: TrainedCaptioner, folder: Path) -> None:
    """Weights as ``model.safetensors``; vocab, config and loss history as JSON."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in trained.model.state_dict().items()}, str(tmp))
    atomic_write_json({"itos": trained.vocab.itos, "counts": trained.vocab.counts, "min_count": trained.vocab.min_count},
                      folder / "vocab.json")
    atomic_write_json(asdict(trained.config), folder / "config.json")
    atomic_write_json({"best_epoch": trained.best_epoch, "history": trained.history}, folder / "history.json")


def load_captioner(folder: Path) -> TrainedCaptioner:
    from safetensors.torch import load_file

    folder = Path(folder)
    needed = [folder / n for n in ("model.safetensors", "vocab.json", "config.json", "history.json")]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(f"CNN-LSTM captioner incomplete, missing {missing}: run notebooks/02_cnn_lstm_captioning.ipynb with force=True")
    v = json.loads((folder / "vocab.json").read_text())
    vocab = Vocab(v["itos"], v["counts"], v["min_count"])
    cfg = CnnLstmConfig(**json.loads((folder / "config.json").read_text()))
    hist = json.loads((folder / "history.json").read_text())
    model = CaptionNet(len(vocab), cfg.emb_dim, cfg.hidden_dim, cfg.cnn_channels)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return TrainedCaptioner(model, vocab, cfg, hist["history"], hist["best_epoch"])
