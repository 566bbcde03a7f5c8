"""Atomic writes: nothing half-written, and files others can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from t2p_utils.core.io import atomic_write_json, atomic_write_text


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_write_gives_the_mode_open_would(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text("hi", tmp_path / "a.txt")
        with open(tmp_path / "b.txt", "w") as fh:
            fh.write("hi")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o666 & ~umask


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_json({"v": 1}, target)
    with pytest.raises(TypeError):
        atomic_write_text(None, target)  # type: ignore[arg-type]  # fails inside the write
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_append_csv_row_writes_the_header_once(tmp_path: Path) -> None:
    import csv

    from t2p_utils.core.io import append_csv_row

    out = tmp_path / "sub" / "log.csv"
    append_csv_row(out, {"tag": "a", "score": 0.5})
    append_csv_row(out, {"tag": "b", "score": 0.25})
    append_csv_row(out, {"score": 0.1, "tag": "c"})  # other order: by name
    append_csv_row(out, {"tag": "d", "steps": 10})  # a new column: earlier rows get it blank
    with out.open(newline="") as fh:
        assert list(csv.DictReader(fh)) == [
            {"tag": "a", "score": "0.5", "steps": ""}, {"tag": "b", "score": "0.25", "steps": ""},
            {"tag": "c", "score": "0.1", "steps": ""}, {"tag": "d", "score": "", "steps": "10"}]


def test_rgb_on_white_composites_every_kind_of_transparency() -> None:
    from PIL import Image

    from t2p_utils.core.io import rgb_on_white

    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 255, 0))  # fully transparent blue
    assert [rgb_on_white(rgba).getpixel((x, 0)) for x in range(2)] == [(255, 0, 0), (255, 255, 255)]
    half = Image.new("LA", (1, 1), (0, 128))
    assert rgb_on_white(half).getpixel((0, 0)) == (127, 127, 127)
    pal = rgba.convert("RGB").convert("P")
    pal.info["transparency"] = pal.getpixel((0, 0))  # the red entry is transparent
    assert rgb_on_white(pal).getpixel((0, 0)) == (255, 255, 255)
    rgb = Image.new("RGB", (1, 1), (10, 20, 30))
    assert rgb_on_white(rgb).getpixel((0, 0)) == (10, 20, 30)
