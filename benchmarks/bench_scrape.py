"""Time the cold and warm ingest of all dream-world SVGs (tarball already on disk).

    python benchmarks/bench_scrape.py --size 128 --workers 2

Cold: every sprite rendered (colour, line art, mask) into a fresh folder.
Warm: the same call again; unchanged sources are skipped by content hash.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from t2p_utils.config import Paths, ScrapeConfig, repo_root
from t2p_utils.scrape.run import fetch_npm_svgs, render_folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    real = Paths.for_profile("cpu")
    cfg = ScrapeConfig(size=args.size, workers=args.workers, limit=args.limit)
    svg_dir = fetch_npm_svgs(real, cfg)  # downloads once; excluded from the timings
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        shutil.copy(repo_root() / "data" / "families.csv", root / "data" / "families.csv")
        paths = Paths.for_profile("cpu", root)
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            df = render_folder(paths, cfg, svg_dir, "npm")
            dt = time.perf_counter() - t0
            n = len(df)
            print(f"{label}: {n} sprites x 3 images at {args.size}px, {args.workers} workers: "
                  f"{dt:.1f} s, {n / dt:.1f} sprites/s, {3 * n / dt:.1f} images/s, ok={int((df.status == 'ok').sum())}")


if __name__ == "__main__":
    main()
