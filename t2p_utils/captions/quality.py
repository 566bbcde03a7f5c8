"""Caption quality: BLEU-4, colour-word precision/recall, ``<unk>`` rate, length.

* :func:`corpus_bleu`: Papineni et al. (2002) corpus BLEU with up to 4-grams, clipped counts,
  uniform weights, brevity penalty against the closest reference length; no smoothing by default
  (a corpus with no matching 4-gram scores 0), optional add-one smoothing for n > 1.
* Colour words: :func:`t2p_utils.core.colors.color_words` of the caption vs the character's
  ground-truth colours: the synthetic ``parts`` colours, or for real sprites the basic terms
  covering at least ``gt_min_share`` of the character region (mask minus thin black outline,
  so the outline does not count as a black character).
* :func:`quality_table` scores every caption source on the captioner's own captions (the
  ``generated`` column): BLEU on ids with a reference caption the captioner was not trained on,
  colour precision/recall on all ids, ``ref_color_recall`` (share of the colours named by those
  held-out reference captions that the caption names too: a check that does not share the
  palette captioner's pixel pipeline), and the same colour scores for the final training
  captions (``final_*``: references where kept, captioner elsewhere).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from t2p_utils.config.params import Paths
from t2p_utils.core.colors import BASIC_COLORS, color_coverage, color_words
from t2p_utils.core.io import atomic_open, atomic_write_json

log = logging.getLogger(__name__)

_WORDS = re.compile(r"<unk>|[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case word tokens for BLEU and lengths (punctuation dropped, ``<unk>`` kept)."""
    return _WORDS.findall(str(text).lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4,
                smooth: bool = False) -> float:
    """Corpus BLEU-``max_n`` of hypothesis strings against lists of reference strings."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        return float("nan")
    match = [0] * max_n
    total = [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        h = words(hyp)
        rs = [words(r) for r in refs]
        if not rs:
            raise ValueError(f"no reference for hypothesis {hyp!r}")
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]  # closest length, shorter on ties
        for n in range(1, max_n + 1):
            hc = _ngrams(h, n)
            maxref: Counter = Counter()
            for r in rs:
                maxref |= _ngrams(r, n)
            match[n - 1] += sum(min(c, maxref[g]) for g, c in hc.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    logs = []
    for n in range(max_n):
        m, t = match[n], total[n]
        if smooth and n > 0:
            m, t = m + 1, t + 1
        if m == 0 or t == 0:
            return 0.0
        logs.append(math.log(m / t))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return bp * math.exp(sum(logs) / max_n)


def color_scores(captions: Sequence[str], truths: Sequence[set[str]]) -> dict[str, float]:
    """Micro colour-word precision/recall/F1 of captions against ground-truth colour sets."""
    tp = n_pred = n_true = 0
    for cap, truth in zip(captions, truths, strict=True):
        pred = set(color_words(cap))
        tp += len(pred & truth)
        n_pred += len(pred)
        n_true += len(truth)
    p = tp / n_pred if n_pred else float("nan")
    r = tp / n_true if n_true else float("nan")
    f1 = 2 * p * r / (p + r) if n_pred and n_true and (p + r) > 0 else float("nan")
    return {"color_precision": p, "color_recall": r, "color_f1": f1,
            "colors_per_caption": n_pred / len(captions) if captions else float("nan")}


def unk_rate(captions: Sequence[str]) -> tuple[float, float]:
    """(share of tokens that are ``<unk>``, share of captions with at least one ``<unk>``)."""
    toks = [words(c) for c in captions]
    n = sum(len(t) for t in toks)
    unk = sum(t.count("<unk>") for t in toks)
    return (unk / n if n else float("nan"), float(np.mean([("<unk>" in t) for t in toks])) if toks else float("nan"))


def ground_truth_colors(paths: Paths, manifest: pd.DataFrame, min_share: float = 0.1) -> dict[str, set[str]]:
    """Ground-truth basic colours per id: synthetic ``parts``, else coverage >= ``min_share`` of the
    character region (mask minus outline pixels, as the palette captioner sees it)."""
    from t2p_utils.core.palette import load_lineart, load_rgb_mask, outline_pixels

    out: dict[str, set[str]] = {}
    has_parts = "parts" in manifest.columns
    for r in manifest.itertuples(index=False):
        parts = getattr(r, "parts", "") if has_parts else ""
        if parts:
            out[r.id] = set(json.loads(parts).values())
            continue
        rgb, mask = load_rgb_mask(paths.root / r.color, paths.root / r.mask)
        region = mask & ~outline_pixels(rgb, mask, load_lineart(paths.root / r.lineart))
        cov = color_coverage(rgb, region if region.any() else mask)
        out[r.id] = {c for c in BASIC_COLORS if cov[c] >= min_share}
    return out


def score_captions(captions: Sequence[str], ids: Sequence[str], truth: dict[str, set[str]],
                   refs: dict[str, str], bleu_ids: set[str]) -> dict[str, float]:
    """All metrics of one list of captions (aligned with ``ids``)."""
    lens = [len(words(c)) for c in captions]
    tok_unk, cap_unk = unk_rate(captions)
    pairs = [(c, refs[i]) for c, i in zip(captions, ids, strict=True) if i in bleu_ids and i in refs]
    ref_truth = [set(color_words(p[1])) for p in pairs]
    named = [(p[0], t) for p, t in zip(pairs, ref_truth, strict=True) if t]
    out = {
        "n": len(captions),
        "bleu4": corpus_bleu([p[0] for p in pairs], [[p[1]] for p in pairs]) if pairs else float("nan"),
        "bleu_n": len(pairs),
        # recall of the colours that held-out reference captions name (independent of the pixel ground truth)
        "ref_color_recall": color_scores([c for c, _ in named], [t for _, t in named])["color_recall"] if named else float("nan"),
        **color_scores(captions, [truth[i] for i in ids]),
        "unk_rate": tok_unk,
        "captions_with_unk": cap_unk,
        "mean_length": float(np.mean(lens)) if lens else float("nan"),
    }
    return out


def quality_table(paths: Paths, cfg: Any, sources: Sequence[str] | None = None, save: bool = True) -> pd.DataFrame:
    """One row per caption source; saved as ``reports/<p>/caption_quality.{csv,json}``."""
    from t2p_utils.captions.sets import (
        load_manifest,
        load_references,
        read_caption_csv,
        training_references,
    )

    manifest = load_manifest(paths)
    refs_df = load_references(paths, manifest)
    refs = dict(zip(refs_df["id"], refs_df["caption"], strict=True))
    kept = set(training_references(refs_df, cfg)["id"])
    truth = ground_truth_colors(paths, manifest, cfg.gt_min_share)
    sources = list(sources) if sources is not None else ["reference"] + [s for s in cfg.sources if s != "reference"]
    rows = []
    for source in sources:
        csv = paths.captions(source)
        df = read_caption_csv(csv)
        meta_file = csv.with_suffix(".json")
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        if source == "reference":
            # the reference captions themselves, scored on every id that has one (no BLEU: they are the references)
            ids = list(refs)
            row = score_captions([refs[i] for i in ids], ids, truth, refs, set())
            final = row
        else:
            gen_ids = df["id"].tolist()
            bleu_ids = set(refs) - kept
            if source == "cnn_lstm":
                data_json = paths.model("cnn_lstm") / "data.json"
                if data_json.exists():
                    bleu_ids -= set(json.loads(data_json.read_text())["train_ids"])
            row = score_captions(df["generated"].tolist(), gen_ids, truth, refs, bleu_ids)
            train = df[df["split"] == "train"]
            final = score_captions(train["caption"].tolist(), train["id"].tolist(), truth, refs, set())
        rows.append({
            "source": source,
            "captioner": meta.get("captioner", source),
            "stand_in": bool(meta.get("stand_in", False)),
            **row,
            "final_color_precision": final["color_precision"],
            "final_color_recall": final["color_recall"],
            "final_unk_rate": final["unk_rate"],
        })
    table = pd.DataFrame(rows)
    if save:
        out = paths.reports / "caption_quality.csv"
        with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
            table.to_csv(fh, index=False, float_format="%.4f")
        atomic_write_json({"profile": paths.profile, "gt_min_share": cfg.gt_min_share,
                           "rows": json.loads(table.to_json(orient="records"))}, out.with_suffix(".json"))
        log.info("caption quality table -> %s", out)
    return table


def _fmt(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``, or "n/a" when it is missing (None / NaN)."""
    try:
        if value is None or (isinstance(value, float) and value != value):
            return "n/a"
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "n/a"


def caption_findings(table: pd.DataFrame, sources: Sequence[str]) -> str:
    """Markdown bullets of what each caption source's captions do, computed from :func:`quality_table`'s table.

    The notebooks print these instead of typing numbers into their text, so a re-run that
    changes the numbers changes the findings too.
    """
    lines = []
    for source in sources:
        hit = table[table["source"] == source]
        if hit.empty:
            lines.append(f"- **{source}**: no captions found (run its step first).")
            continue
        r = hit.iloc[0]
        who = str(r["captioner"]) + (" — an offline stand-in" if bool(r.get("stand_in")) else "")
        if source == "reference":
            lines.append(f"- **reference** ({int(r['n'])} hand-written captions): {_fmt(r['colors_per_caption'], '.1f')} "
                         f"colours named per caption, colour recall against the pixel ground truth "
                         f"{_fmt(r['color_recall'], '.2f')} (precision {_fmt(r['color_precision'], '.2f')}).")
            continue
        lines.append(
            f"- **{source}** ({who}; {int(r['n'])} ids): {_fmt(r['captions_with_unk'], '.0%')} of its captions hold "
            f"`<unk>` ({_fmt(r['unk_rate'], '.1%')} of tokens); {_fmt(r['colors_per_caption'], '.1f')} colours named per "
            f"caption; colour recall against the pixel ground truth {_fmt(r['color_recall'], '.2f')} (precision "
            f"{_fmt(r['color_precision'], '.2f')}); it names {_fmt(r['ref_color_recall'], '.0%')} of the colours that "
            f"held-out reference captions name, BLEU-4 against them {_fmt(r['bleu4'], '.2f')} ({int(r['bleu_n'])} ids). "
            f"The training captions the fine-tuning gets (references kept + these): colour recall "
            f"{_fmt(r['final_color_recall'], '.2f')}, `<unk>` {_fmt(r['final_unk_rate'], '.1%')} of tokens.")
    return "\n".join(lines)
