"""Atomic file writes and content hashes: an interrupted run never leaves half a file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from PIL import Image


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextmanager
def atomic_path(path: Path, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success (every write of the study
    goes through here: a file, or with ``folder=True`` a whole folder such as a saved model).

    A file gets the mode an ordinary ``open`` would give it (0666 minus the umask), not ``mkstemp``'s private
    0600, so reports and model cards stay readable by others. A folder is written as ``.<name>.part``; an old
    ``path`` is moved to ``.<name>.old`` for the swap and removed after it. On an error the temporary file or
    folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = path.with_name(f".{path.name}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
        os.chmod(name, 0o666 & ~_umask())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_bytes(data: bytes, path: Path) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(text: str, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_json(obj: Any, path: Path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def atomic_write_image(img: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def append_csv_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the CSV file ``path`` (a results log), writing the header when the file is new.

    When ``row`` has columns the file lacks, the file is rewritten (atomically) with the union of
    the columns, earlier rows left blank in the new ones, so no value lands under a wrong header.
    """
    import csv

    path = Path(path)
    header: list[str] = []
    rows: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, rows = list(reader.fieldnames or []), list(reader)
    if header and all(k in header for k in row):
        with path.open("a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=header).writerow(row)
        return
    header += [k for k in row if k not in header]
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows + [row])


def rgb_on_white(im: Image.Image) -> Image.Image:
    """``im`` as RGB, its transparent parts (alpha, or a palette / colour-key transparency) composited onto white,
    as the sprites are rendered. The one place the study turns any image into RGB."""
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return im.convert("RGB")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
