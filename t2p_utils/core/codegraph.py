"""The package's import graph, read from the source (nothing is imported): which modules there are, what each one
imports, and everything a module brings with it (:func:`closure`).

What a cache's code is (:func:`t2p_utils.core.stamps.cache_key`) and what a step's code is
(:mod:`t2p_utils.runner.codegraph`, which adds the steps' folders and the layer checks) both come from here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = "t2p_utils"
ROOT = Path(__file__).resolve().parents[1]


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (``t2p_utils.core.io`` -> ``.../core/io.py``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def files_stamp(files: dict[str, Path]) -> str:
    """The modification times and sizes of ``files``: what :func:`import_graph` and the code hashes are cached on."""
    parts = []
    for p in files.values():
        st = p.stat()
        parts.append(f"{p}:{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The dotted names imported anywhere in ``tree`` (absolute, relative ones resolved), with ``from X import y``
    giving both ``X`` and ``X.y``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            out.add(src)
            out.update(f"{src}.{a.name}" for a in node.names)
    return out


@lru_cache(maxsize=4)
def _graph(root: Path, stamp: str) -> dict[str, frozenset[str]]:
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = imported_names(tree, name, path.name == "__init__.py")
        graph[name] = frozenset(m for m in found if m in files and m != name)
    return graph


def import_graph(root: Path = ROOT) -> dict[str, frozenset[str]]:
    """module -> the package modules it imports (anywhere in its source)."""
    return _graph(root, files_stamp(module_files(root)))


def closure(start: Iterable[str], graph: dict[str, frozenset[str]]) -> set[str]:
    """``start`` and every module reachable from it; a module brings its packages' ``__init__`` too."""
    seen: set[str] = set()
    todo = [m for m in start if m in graph]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parents = [".".join(m.split(".")[:k]) for k in range(1, m.count(".") + 1)]
        todo.extend(x for x in [*graph[m], *parents] if x in graph and x not in seen)
    return seen
