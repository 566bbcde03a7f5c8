"""The study's front page: ``reports/<profile>/index.html``.

:func:`build_report` writes one self-contained HTML file (inline CSS, no scripts, relative
links only) with the headline metrics table (means and 95 % bootstrap intervals per model
and variant), the findings computed from those numbers, every PNG under ``figures/``, links
to every executed notebook rendered to HTML, the profile, the offline stand-ins used, the
git commit, the date and the wall time of each step. :func:`check_links` lists the links and
images of a page that do not resolve on disk (the tests and the smoke end-to-end run use it).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from t2p_utils.config.params import Paths
from t2p_utils.core.io import atomic_write_text
from t2p_utils.core.standins import PALETTE_STAND_IN, SCRATCH_STAND_IN

log = logging.getLogger(__name__)

#: What the offline profiles replace, stated even when no step wrote it down.
PROFILE_STAND_INS: dict[str, tuple[str, ...]] = {
    "smoke": (
        "synthetic line-art creatures drawn in code instead of the dream-world sprites",
        "tiny " + SCRATCH_STAND_IN,
        PALETTE_STAND_IN,
    ),
    "cpu": ("small " + SCRATCH_STAND_IN, PALETTE_STAND_IN),
    "full": (),
}

#: The word that identifies each profile stand-in in what the steps write.
STAND_IN_KEYWORDS: tuple[str, ...] = ("synthetic", "scratch", "palette")

#: Figures first by exact name (what a user gets back, the flat drawings, leads), then by prefix.
FIGURE_ORDER = ("ladder_binding_flat", "ladder_binding", "ladder_body_flat", "grid_faithful_flat", "ladder_body", "ladder_part_flat", "ladder_part",
                "grid_counterfactual_flat", "grid_faithful", "grid_counterfactual", "sweep", "bars_faithful",
                "bars_counterfactual")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.meta td:first-child{font-weight:600;background:#fafafa}.ok{color:#176b1d}.fail{color:#b00020;font-weight:600}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.standin{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em}code{background:#f4f4f4;padding:0 .2em}
"""


# ---------------------------------------------------------------------------------------------
# facts gathered for the page
# ---------------------------------------------------------------------------------------------
def git_commit(root: Path) -> str:
    """``<short sha>`` (+ ``-dirty`` when tracked files changed) of ``root``, or "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _walk_stand_ins(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for key, val in obj.items():
            if key == "stand_in" or key.endswith("_stand_in"):
                if isinstance(val, str) and val:
                    yield val
                elif isinstance(val, list | tuple):
                    yield from (str(v) for v in val if v)
                elif isinstance(val, dict):
                    yield from (f"{k}: {v}" for k, v in val.items() if v)
                elif val is True:  # a flag: describe the thing it flags
                    what = obj.get("captioner") or obj.get("description") or obj.get("model")
                    yield str(what) if what else f"{obj.get('name') or obj.get('source') or 'an output'} (flagged as a stand-in)"
            else:
                yield from _walk_stand_ins(val)
    elif isinstance(obj, list):
        for val in obj:
            yield from _walk_stand_ins(val)


def stand_ins(paths: Paths, max_files: int = 500) -> list[tuple[str, str]]:
    """(stand-in, where it is stated) from the profile and the JSON outputs of the steps, one row per stand-in.

    JSON files under ``paths.models`` (folder + one level), ``paths.captions_dir`` and
    ``paths.reports`` that carry a ``stand_in`` field (at any depth) are read. A stand-in
    stated by several files (or worded differently but of the same kind: the same keyword of
    :data:`STAND_IN_KEYWORDS`) is listed once, with up to two of its sources; the profile's own
    list fills in only the kinds no step stated.
    """
    where: dict[str, list[str]] = {}
    files: list[Path] = []
    for base, pattern in ((paths.models, "*.json"), (paths.models, "*/*.json"), (paths.captions_dir, "**/*.json"),
                          (paths.reports, "**/*.json")):
        if base.exists():
            files.extend(p for p in sorted(base.glob(pattern))
                         if "notebooks" not in p.parts and ".ipynb_checkpoints" not in p.parts)
    for path in files[:max_files]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for s in _walk_stand_ins(data):
            words = [k for k in STAND_IN_KEYWORDS if k in s.lower()]
            same = next((k for k in where if any(w in k.lower() for w in words)), s)  # one line per kind of stand-in
            srcs = where.setdefault(same, [])
            rel = path.relative_to(paths.root).as_posix()
            if rel not in srcs:
                srcs.append(rel)
    for s in PROFILE_STAND_INS.get(paths.profile, ()):  # stated by the profile unless a step already said it
        keyword = next((k for k in STAND_IN_KEYWORDS if k in s), s)
        match = next((k for k in where if keyword in k), None)
        if match is None:
            where[s] = [f"profile {paths.profile}"]
        elif f"profile {paths.profile}" not in where[match]:
            where[match].insert(0, f"profile {paths.profile}")
    return [(s, ", ".join(src[:2]) + (" …" if len(src) > 2 else "")) for s, src in sorted(where.items())]


def _headline_html(paths: Paths) -> tuple[str, list[str], Any]:
    from t2p_utils.compare.findings import findings, headline_table
    from t2p_utils.compare.items import CompareError
    from t2p_utils.compare.run import load_result

    try:
        result = load_result(paths)
    except CompareError:
        return "<p>05_compare has not run for this profile: no metrics yet.</p>", [], None
    from t2p_utils.compare.findings import binding_findings, binding_table, control_table, flat_findings

    parts = []
    bind = binding_table(result)
    if not bind.empty:
        templates = "; ".join(f"<em>{html.escape(k)}</em>: “{html.escape(str(v[1]))}”"
                              for k, v in result.summary.get("binding_templates", {}).items())
        parts.append("<h3>binding (the causal part-level test: does each colour go where the words put it?)</h3>")
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in binding_findings(result)) + "</ul>")
        parts.append(_table_html(bind.reset_index()))
        parts.append(f"<p>Per held-out character and one seed, two colours A, B are asked at two places and then "
                     f"swapped ({templates}); score = ¼ × the change, between the two asks, of A's share of the first "
                     "place, B's of the second and the mirror terms (t2p_utils.compare.metrics.binding_score). 0 for a model that "
                     "paints the whole character the first colour named, or ignores the text; 1 for one that paints each "
                     "place as asked. <em>all</em>: the training template's phrasings; <em>heldout</em>: phrasings no "
                     "training caption used. The flat fill gives each closed region one colour, so a place that cuts "
                     "through a region caps flat binding. Rows: <a href=\"binding.csv\">binding.csv</a>; the part ladder "
                     "is in the figures below.</p>")
    flat = flat_findings(result)
    if flat:
        parts.append("<h3>what a user gets back: the drawing coloured flat at its own size</h3>")
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in flat) + "</ul>")
        parts.append("<p>Line fidelity: share of the drawing's outline pixels still dark; background leakage: share of "
                     "background pixels painted; region purity: share of the drawing's closed regions painted in one "
                     "basic colour; ΔE2000 and SSIM against the ground truth rendered at the drawing's size. The "
                     "flat-coloured figures lead the figures below.</p>")
    ctrl = control_table(result)
    if not ctrl.empty:
        colors = ", ".join(result.summary.get("control_colors", []))
        templates = "; ".join(f"<em>{html.escape(k)}</em>: “{html.escape(v)}”"
                              for k, v in result.summary.get("control_templates", {}).items())
        parts.append("<h3>colour control (the causal test: does the model follow the colour words?)</h3>")
        parts.append(_table_html(ctrl.reset_index()))
        parts.append(f"<p>Per held-out character and one seed, {html.escape(colors)} are asked one at a time ({templates}); "
                     "score = share of the character painted in the asked colour minus that colour's mean share when the "
                     "other colours were asked; <em>all</em> = mean of the training template's phrasings, <em>heldout</em> = mean "
                     "of phrasings no training caption used. A model that ignores the text "
                     "scores 0 whatever its images look like. Rows: <a href=\"control.csv\">control.csv</a>; the colour "
                     "ladders are in the figures below.</p>")
    for prompt in ("faithful", "counterfactual"):
        table = headline_table(result, prompt)
        if table.empty:
            continue
        parts.append(f"<h3>{prompt} instruction</h3>")
        parts.append(_table_html(table.reset_index().rename(columns={"model": "model", "variant": "variant"})))
    n = result.summary.get("n_test", "?")
    parts.append(f"<p>Mean [95% bootstrap interval] over {n} test characters; ↑ higher is better, ↓ lower is better. "
                 "<em>raw</em>: the pipeline's output; <em>protected</em>: outline and background restored from the "
                 "line art after generation (both at the model's resolution); <em>upsampled</em>: the raw output "
                 f"enlarged to the drawing's size ({html.escape(str(result.summary.get('drawing_size', '?')))} px); "
                 "<em>flat</em>: the drawing at that size, each closed region filled with the model's colour for it "
                 "and the strokes exactly as drawn (t2p_utils.core.flat) — what a user downloads. Per-sample rows: <a href=\"compare_samples.csv\">compare_samples.csv</a>; "
                 "all statistics: <a href=\"metrics.csv\">metrics.csv</a>, <a href=\"metrics.json\">metrics.json</a>; "
                 "paired differences: <a href=\"paired.csv\">paired.csv</a>; sweep: <a href=\"sweep.csv\">sweep.csv</a>.</p>")
    return "\n".join(parts), findings(result), result


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = "".join(
            f"<td class=\"num\">{html.escape(str(v))}</td>" if "[" in str(v) else f"<td>{html.escape(str(v))}</td>"
            for v in r.tolist()
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figures(paths: Paths) -> list[Path]:
    figs = sorted((paths.reports / "figures").glob("*.png"))
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}

    def key(p: Path) -> tuple[int, str]:
        exact = rank.get(p.stem)
        return (exact if exact is not None else next((rank[k] for k in rank if p.stem.startswith(k)), len(rank)),
                p.name)

    return sorted(figs, key=key)


def _rel(target: Path, base: Path) -> str:
    return Path(target).resolve().relative_to(base.resolve()).as_posix()


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------
def build_report(paths: Paths, steps: list[dict[str, Any]]) -> Path:
    """Write ``paths.reports / "index.html"`` and return its path.

    ``steps``: one dict per executed notebook, in run order, with ``name`` (e.g. "01_scrape"),
    ``notebook_html`` (relative to ``paths.reports``, e.g. "notebooks/01_scrape.html"),
    ``seconds`` and ``status`` ("ok" or an error); extra keys are ignored.
    """
    out = paths.reports / "index.html"
    paths.reports.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    commit = git_commit(paths.root)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(float(s.get("seconds") or 0.0) for s in steps)
    headline, found, result = _headline_html(paths)

    step_rows = []
    for s in steps:
        name = esc(str(s.get("name", "?")))
        link = s.get("notebook_html")
        cell = f"<a href=\"{esc(str(link))}\">{name}</a>" if link else name
        status = str(s.get("status", "?"))
        cls = "ok" if status in ("ok", "skipped") else "fail"
        if s.get("error"):
            status = f"{status}: {s['error']}"
        sec = s.get("seconds")
        sec_txt = f"{float(sec):.1f}" if sec is not None else "–"
        nb = s.get("notebook")
        nb_cell = f" (<a href=\"{esc(str(nb))}\">ipynb</a>)" if nb else ""
        stamp = esc(str(s.get("fingerprint") or "–"))
        step_rows.append(f"<tr><td>{cell}{nb_cell}</td><td class=\"{cls}\">{esc(status)}</td><td class=\"num\">{sec_txt}</td>"
                         f"<td><code>{stamp}</code></td></tr>")

    stands = stand_ins(paths)
    stand_html = ("<ul>" + "".join(f"<li>{esc(s)} <small>({esc(w)})</small></li>" for s, w in stands) + "</ul>"
                  if stands else "<p>None: every model and captioner is the real one.</p>")
    models_html = ""
    if result is not None:
        models_html = "<ul>" + "".join(
            f"<li><b>{esc(m.display)}</b> (<code>{esc(m.name)}</code>)</li>" for m in result.models) + "</ul>"

    fig_html = []
    for p in _figures(paths):
        rel = _rel(p, paths.reports)
        fig_html.append(f"<figure><a href=\"{esc(rel)}\"><img src=\"{esc(rel)}\" alt=\"{esc(p.stem)}\"></a>"
                        f"<figcaption>{esc(p.name)}</figcaption></figure>")

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>t2p report ({esc(paths.profile)})</title>
<style>{CSS}</style></head><body>
<h1>t2p: text-guided line-art colourisation — report ({esc(paths.profile)} profile)</h1>
<p>InstructPix2Pix fine-tuned on captions from a CNN-LSTM captioner versus captions from CLIP interrogation,
scored on held-out test characters (DESIGN.md section 7).</p>
<table class="meta">
<tr><td>profile</td><td>{esc(paths.profile)}</td></tr>
<tr><td>git commit</td><td><code>{esc(commit)}</code></td></tr>
<tr><td>date</td><td>{esc(now)}</td></tr>
<tr><td>wall time of the steps</td><td>{total:.1f} s</td></tr>
</table>
<h2>Stand-ins used</h2>
<div class="standin">{stand_html}</div>
<h2>Headline metrics</h2>
{models_html}
{headline}
<h2>Findings (computed from the numbers)</h2>
{"<ul>" + "".join(f"<li>{esc(f)}</li>" for f in found) + "</ul>" if found else "<p>No findings yet.</p>"}
<h2>Steps</h2>
<table><thead><tr><th>notebook (executed, HTML)</th><th>status</th><th>seconds</th><th>stamp (params-code)</th></tr></thead>
<tbody>{''.join(step_rows)}</tbody></table>
<h2>Figures</h2>
{''.join(fig_html) if fig_html else '<p>No figures yet.</p>'}
</body></html>
"""
    atomic_write_text(page, out)
    broken = check_links(out)
    if broken:
        log.warning("index.html has %d broken link(s): %s", len(broken), ", ".join(broken))
    log.info("report -> %s", out)
    return out


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, val in attrs:
            if name in ("href", "src") and val is not None:
                self.links.append(val)


def check_links(index_html: Path) -> list[str]:
    """Links (``href``/``src``) of ``index_html`` that do not resolve to a file on disk.

    External links (http, https, mailto) and in-page anchors are skipped; absolute paths
    and ``file:`` links count as broken (the report must move as one folder).
    """
    index_html = Path(index_html)
    parser = _LinkParser()
    parser.feed(index_html.read_text(encoding="utf-8"))
    broken: list[str] = []
    for link in parser.links:
        parts = urlsplit(link)
        if parts.scheme in ("http", "https", "mailto", "data") or link.startswith("#"):
            continue
        if parts.scheme or parts.netloc or link.startswith("/"):
            broken.append(f"{link} (not a relative link)")
            continue
        target = index_html.parent / unquote(parts.path)
        if not target.exists():
            broken.append(link)
    return broken
