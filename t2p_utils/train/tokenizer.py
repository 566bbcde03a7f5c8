"""An offline CLIP tokenizer: the real CLIP BPE vocabulary, no hub download.

``open_clip`` ships OpenAI's byte-pair-encoding file (``bpe_simple_vocab_16e6.txt.gz``).
:func:`offline_clip_tokenizer` rebuilds from it the exact vocabulary and merges of
``openai/clip-vit-large-patch14`` (the tokenizer of Stable Diffusion 1.x and of
``timbrooks/instruct-pix2pix``): 49,408 tokens, ``<|startoftext|>`` = 49406,
``<|endoftext|>`` = 49407 (also the padding token), 77 tokens per prompt.
The test ``tests/test_train_tokenizer.py`` checks the ids against open_clip's own tokenizer.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources
from pathlib import Path

from transformers import CLIPTokenizer

MODEL_MAX_LENGTH = 77
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def bpe_path() -> Path:
    """The BPE merges file bundled with open_clip."""
    path = Path(str(resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"))
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: install open-clip-torch (it ships the CLIP BPE vocabulary), "
            "e.g. `pip install open-clip-torch==3.3.0`"
        )
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary (token -> id) and BPE merges, built like OpenAI's ``SimpleTokenizer``."""
    with gzip.open(bpe_path()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return vocab, [(a, b) for a, b in merges]


def offline_clip_tokenizer(model_max_length: int = MODEL_MAX_LENGTH) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` equal to SD-1.x's, built offline (transformers 5 wants merges as tuples)."""
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=EOS,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        model_max_length=model_max_length,
    )
