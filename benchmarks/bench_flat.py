"""Flat colouring (t2p_utils.core.flat): its speed, and the rules it uses, measured.

    python benchmarks/bench_flat.py --speed                # one 512 px drawing, one thread: median of 20 runs
    python benchmarks/bench_flat.py --rules --profile cpu  # gap / margin / tiny-region rules on val sprites

``--speed`` times :func:`t2p_utils.core.flat.flat_fill` on a 512 px drawing (the first val sprite of ``--profile``
rendered at 512 px when that profile has been scraped, else a synthetic creature) from a 64 px model output, with
torch, BLAS and OpenMP held to one thread. The issue's budget is 50 ms.

``--rules`` uses the ground truth as the "model": each val sprite's colour image at the model's size (``scrape.size``)
is flat-filled onto its line art at ``--size`` px, and the result is scored against the ground truth at that size
(ΔE2000 in the mask, SSIM, region purity, the share that fell back). The best a fill rule can do with a perfect
model; val sprites only, never test.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np
from PIL import Image

from t2p_utils.compare import metrics as M
from t2p_utils.config import Paths
from t2p_utils.core import flat as F


def _val_drawings(profile: str, size: int, n: int) -> tuple[Paths, list[tuple[str, Image.Image, Image.Image, Image.Image, Image.Image]]]:
    from t2p_utils.compare.drawing import make_drawings
    from t2p_utils.config.study import load_study
    from t2p_utils.core.manifest import read_manifest

    paths = Paths.for_profile(profile)
    manifest = read_manifest(paths.manifest)
    val = manifest[(manifest["split"] == "val") & (manifest["color"] != "")].sort_values("id").head(n)
    files = make_drawings(paths, val["id"].tolist(), size, load_study(profile).seed)
    out = []
    for r in val.itertuples():
        small = Image.open(paths.root / r.color).convert("RGB")
        f = files[r.id]
        out.append((r.id, small, Image.open(f.lineart).convert("RGB"), Image.open(f.color).convert("RGB"),
                    Image.open(f.mask).convert("L")))
    return paths, out


def speed(profile: str, runs: int) -> None:
    try:
        _, items = _val_drawings(profile, 512, 1)
        sid, small, line, _, mask = items[0]
        what = f"val sprite {sid} of profile {profile!r} at 512 px"
    except Exception as exc:  # no scraped profile: a synthetic creature
        from t2p_utils.scrape.synthetic import Creature, draw_creature

        c = Creature("s000", "cat", {"body": "red", "belly": "yellow", "eyes": "blue", "ears": "green", "tail": "purple"})
        col, line, mask = draw_creature(c, 512, np.random.default_rng(0))
        small = col.resize((64, 64), Image.Resampling.BOX)
        what = f"a synthetic creature at 512 px ({type(exc).__name__}: no scraped {profile!r} profile)"
    small = small.resize((64, 64), Image.Resampling.BOX)
    F.flat_fill(line, small, mask)  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = F.flat_fill(line, small, mask)
        times.append(time.perf_counter() - t0)
    print(f"flat_fill on {what}, one thread, {runs} runs: median {statistics.median(times) * 1000:.1f} ms, "
          f"min {min(times) * 1000:.1f} ms ({res.regions.n} regions, fallback: {res.fallback or 'none'})")


def rules(profile: str, size: int, n: int) -> None:
    paths, items = _val_drawings(profile, size, n)
    model = Image.open(paths.root / next(iter(_manifest_colors(paths)))).size[0]
    print(f"{len(items)} val sprites of {profile!r}: ground truth at {model} px as the model, filled at {size} px\n")
    print("| gap | margin | tiny | min_area | ΔE2000 ↓ | SSIM ↑ | region purity ↑ | fell back |")
    print("|---|---|---|---|---|---|---|---|")
    for gap, margin, tiny, min_area in itertools.product((1, 2, 3), (0.0, 1.0), F.TINY_RULES, (0.5, 1.0, 2.0)):
        de, ss, pur, fb = [], [], [], 0
        for _, small, line, gt, mask in items:
            res = F.flat_fill(line, small.resize((model, model), Image.Resampling.BOX), mask, gap=gap, margin=margin,
                              tiny=tiny, min_area=min_area)
            fb += not res.ok
            out = res.composite.convert("RGB")
            de.append(M.delta_e_in_mask(out, gt, mask))
            ss.append(M.ssim(out, gt))
            pur.append(M.region_purity(out, line, mask))
        print(f"| {gap} | {margin:g} | {tiny} | {min_area:g} | {np.nanmean(de):.2f} | {np.nanmean(ss):.3f} | "
              f"{np.nanmean(pur):.3f} | {fb}/{len(items)} |")


def _manifest_colors(paths: Paths) -> list[str]:
    from t2p_utils.core.manifest import read_manifest

    m = read_manifest(paths.manifest)
    return m.loc[m["color"] != "", "color"].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--rules", action="store_true")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--size", type=int, default=256, help="drawing size for --rules")
    ap.add_argument("--n", type=int, default=24, help="val sprites for --rules")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if not (args.speed or args.rules):
        ap.error("give --speed and/or --rules")
    if args.speed:
        speed(args.profile, args.runs)
    if args.rules:
        rules(args.profile, args.size, args.n)


if __name__ == "__main__":
    main()
