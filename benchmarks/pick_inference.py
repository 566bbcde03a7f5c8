"""Pick 05's inference settings (steps, sampler, text and image guidance) on the validation split.

    .venv/bin/python benchmarks/pick_inference.py --profile cpu --model ip2p_clip \\
        --steps 10 20 --text-guidance 3 5 7.5 --image-guidance 1.5 2.5 [--sampler euler_ancestral euler] [--n-val 20]

Loads the trained pipeline ``models/<profile>/<model>/`` once and scores every combination with
:func:`t2p_utils.compare.run.score_split` on the first ``--n-val`` validation ids (never the test
split): colour control per template and its bootstrap lower bound, and raw SSIM, ΔE2000,
leakage and named share of the faithful outputs. Appends one row per setting to
``reports/<profile>/inference_val.csv`` (with seconds, threads and load average: timings depend
on what else runs on the cores) and prints the rows. The settings in ``params/<profile>.yaml``
``compare:`` cite the run of this script they were picked from.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from t2p_utils.compare.run import score_split
from t2p_utils.config import Paths, load_study
from t2p_utils.core.io import append_csv_row
from t2p_utils.inference.pipeline import load_pipeline, set_sampler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--model", default="ip2p_clip", help="a trained model: a folder name under models/<profile>/ or a path")
    ap.add_argument("--source", default="clip", help="caption source of the faithful val instructions")
    ap.add_argument("--steps", type=int, nargs="+", default=[20])
    ap.add_argument("--sampler", nargs="+", default=[""], help="scheduler names (default: the pipeline's own)")
    ap.add_argument("--text-guidance", type=float, nargs="+", default=[7.5])
    ap.add_argument("--image-guidance", type=float, nargs="+", default=[1.5])
    ap.add_argument("--n-val", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    paths = Paths.for_profile(args.profile)
    compare = load_study(args.profile).compare
    model_dir = Path(args.model) if Path(args.model).exists() else paths.models / args.model
    pipe = load_pipeline(model_dir)
    own = type(pipe.scheduler).__name__
    out = paths.reports / "inference_val.csv"
    for sampler, steps, tg, ig in itertools.product(args.sampler, args.steps, args.text_guidance,
                                                    args.image_guidance):
        if sampler:
            set_sampler(pipe, sampler)
        t0 = time.perf_counter()
        scores = score_split(paths, pipe, compare, "val", args.n_val, steps=steps, text_guidance=tg,
                             image_guidance=ig, caption_source=args.source, flat=True)
        row = {"model": str(args.model), "sampler": sampler or own, "steps": steps, "text_guidance": tg,
               "image_guidance": ig, "n_val": args.n_val, **{k: round(v, 4) for k, v in scores.items()},
               "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads(),
               "load": round(os.getloadavg()[0], 2)}
        append_csv_row(out, row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
