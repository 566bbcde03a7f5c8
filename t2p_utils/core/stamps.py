"""One staleness rule for the runner's steps and every cache inside them: a key is a hash of

- the settings it reads (``config``): a dataclass, a dict, a list, a number ... as canonical JSON (dict keys sorted,
  tuples as lists, paths as text); a dataclass field marked ``field(..., metadata=NOT_STAMPED)`` is left out (it
  changes how a result is made, not what it is: thread counts, logging, ...);
- what it reads (``inputs``): whatever the caller passes, as canonical JSON (file hashes from :func:`file_stamp`, ids,
  sizes, another key);
- the code that makes it (``code``): the source of the named package modules and of every package module they import,
  at the top of a module or inside a function (:func:`t2p_utils.core.codegraph.closure`), so an edit to any of them
  makes the result stale and no version number is kept by hand.

A result is reused when the key it was saved with equals :func:`cache_key` of what would make it now, else made again.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any

from t2p_utils.core.codegraph import ROOT, closure, files_stamp, import_graph, module_files

#: the field metadata key that leaves a dataclass field out of a key: ``field(default=1, metadata={"stamp": False})``
STAMP = "stamp"
#: ``field(..., metadata=NOT_STAMPED)``: the field does not change the result (threads, logging, where to write)
NOT_STAMPED: Mapping[str, Any] = {STAMP: False}
#: hex digits of a key
KEY_LENGTH = 16


def canonical(obj: Any) -> Any:
    """``obj`` as plain JSON values: a dataclass as a dict of its stamped fields, dicts with text keys, tuples and
    sets as lists (sets sorted), paths as text, numpy values as numbers or lists, dates as ISO text."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.metadata.get(STAMP, True)}
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(x) for x in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((canonical(x) for x in obj), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(obj, enum.Enum):
        return canonical(obj.value)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return hashlib.sha256(obj).hexdigest()
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":  # numpy scalars and arrays
        return canonical(obj.tolist())
    return f"{type(obj).__name__}:{obj}"  # anything else by its text (an unstable text only makes a cache miss)


def _json(obj: Any) -> str:
    return json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"))


def code_modules(code: Iterable[str], root: Path | None = None) -> list[str]:
    """The named package modules and every package module they import (sorted); an unknown name raises
    ``ValueError`` (a misspelt module would otherwise leave its code out of the key)."""
    root = ROOT if root is None else root
    graph = import_graph(root)
    names = set(code)
    unknown = sorted(m for m in names if m not in graph)
    if unknown:
        raise ValueError(f"cache_key: no module {', '.join(unknown)} in {root} (give dotted names, "
                         "e.g. t2p_utils.train.vae)")
    return sorted(closure(names, graph))


@lru_cache(maxsize=64)
def _code_digest(names: tuple[str, ...], root: Path, stamp: str) -> str:
    files = module_files(root)
    h = hashlib.sha256()
    for name in code_modules(names, root):
        h.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return h.hexdigest()


def code_digest(code: Iterable[str], root: Path | None = None) -> str:
    """The sha256 of the source of ``code`` and of everything it imports (:func:`code_modules`); "" for no code."""
    names = tuple(sorted(set(code)))
    if not names:
        return ""
    root = ROOT if root is None else root
    return _code_digest(names, root, files_stamp(module_files(root)))


def cache_key(config: Any = None, inputs: Any = None, code: Iterable[str] = (), *, root: Path | None = None) -> str:
    """The key of a result made from ``config`` (its stamped settings), ``inputs`` and ``code`` (dotted package
    module names; what they import counts too): :data:`KEY_LENGTH` hex digits of a sha256. ``root``: the package
    folder whose source is read (default: this package)."""
    doc = {"config": canonical(config), "inputs": canonical(inputs), "code": code_digest(code, root)}
    return hashlib.sha256(_json(doc).encode()).hexdigest()[:KEY_LENGTH]


def file_stamp(path: Path) -> str:
    """What a file or folder holds, for a key: the sha256 of a file; for a folder, a sha256 of its files' names,
    sizes and modification times (images are many); ``"missing"`` when there is nothing there."""
    path = Path(path)
    if path.is_file():
        from t2p_utils.core.io import sha256_file

        return sha256_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(x for x in path.rglob("*") if x.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    return "missing"
