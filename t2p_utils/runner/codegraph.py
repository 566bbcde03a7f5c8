"""What a step's code is, and which way imports point, from the package's import graph (read from the source,
nothing imported: :mod:`t2p_utils.core.codegraph`).

- :func:`step_modules`: the modules a notebook runs = its step's folder, the modules its code cells import, and
  everything those import in turn (at the top of a module or inside a function). The runner stamps a step with a
  hash of their source (:func:`code_stamp`), so an edit to any of them re-runs the step and no list is kept by hand.
- :data:`LAYERS`: the order of the folders. A module imports from its own folder or from folders before its own
  (core <- config <- the steps in study order <- the demo and the runner); ``tests/test_layout.py`` checks it, and
  that the graph has no circle.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

# the graph itself (what a module imports, and everything it brings) is core's: one copy, which cache keys read too
from t2p_utils.core.codegraph import PACKAGE, ROOT, closure, import_graph, imported_names
from t2p_utils.core.stamps import cache_key

__all__ = ["LAYERS", "STEP_FOLDERS", "circles", "code_stamp", "layer_of", "notebook_imports", "step_modules",
           "wrong_way_imports"]

#: The package's folders in import order: each may import from itself and from those before it.
LAYERS: tuple[str, ...] = ("core", "config", "scrape", "captions", "inference", "train", "compare", "demo", "runner")

#: The folder of each notebook's step.
STEP_FOLDERS: dict[str, str] = {
    "01_scrape": "scrape",
    "02_cnn_lstm_captioning": "captions",
    "03_clip_captioning": "captions",
    "04_finetune": "train",
    "05_compare": "compare",
}


def notebook_imports(notebook: Path) -> set[str]:
    """The package modules a notebook's code cells import."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    out: set[str] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", []))
        try:
            tree = ast.parse("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        out |= {m for m in imported_names(tree, "__notebook__", False) if m.startswith(PACKAGE)}
    return out


def step_modules(step: str, notebook: Path | None = None, root: Path = ROOT) -> list[str]:
    """The modules step ``step`` runs (see the module docstring), sorted."""
    graph = import_graph(root)
    folder = f"{PACKAGE}.{STEP_FOLDERS[step]}"
    start = {m for m in graph if m == folder or m.startswith(folder + ".")}
    if notebook is not None and notebook.exists():
        start |= notebook_imports(notebook)
    return sorted(closure(start, graph))


def code_stamp(step: str, notebook: Path | None = None, root: Path = ROOT) -> str:
    """A hash of the source of every module ``step`` runs (:func:`t2p_utils.core.stamps.cache_key` of its code):
    editing one re-runs the step."""
    return cache_key(code=step_modules(step, notebook, root), root=root)


def layer_of(module: str) -> str | None:
    """The folder of ``t2p_utils.<folder>.<...>``; None for the package's own ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def wrong_way_imports(root: Path = ROOT) -> list[str]:
    """``a imports b`` lines where ``b``'s folder comes after ``a``'s in :data:`LAYERS`."""
    graph = import_graph(root)
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for a, targets in sorted(graph.items()):
        la = layer_of(a)
        for b in sorted(targets):
            lb = layer_of(b)
            if la in rank and lb in rank and rank[lb] > rank[la]:
                bad.append(f"{a} ({la}) imports {b} ({lb})")
    return bad


def circles(graph: dict[str, frozenset[str]] | None = None) -> list[list[str]]:
    """The import circles: strongly connected groups of two or more modules (Tarjan), each sorted."""
    graph = graph if graph is not None else import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)
