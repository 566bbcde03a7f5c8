"""Measure one training recipe ("lever" setting) by what it buys: colour control on the validation split, and time.

    .venv/bin/python benchmarks/levers.py --profile cpu --tag text_time --source clip \\
        --set train_text_encoder=true --set text_time_embedding=true [--vae models/cpu/vae] [--n-val 20]

Trains one IP2P model with the profile's ``train:`` section plus the ``--set`` overrides, in an
overlay folder ``models/<profile>/levers/<tag>/`` (data and params are the profile's own, linked;
``--vae`` links an already trained shared VAE instead of training one; ``--model DIR`` skips training
and scores a model trained earlier, e.g. the profile's own), then scores it with
:func:`t2p_utils.compare.run.score_split` on the first ``--n-val`` validation ids: colour control per
template, SSIM, ΔE2000, leakage, named share. Never the test split. Appends one row to
``reports/<profile>/levers.csv`` (tag, overrides, train seconds, samples/s, scores), which notebook
04 shows as the lever table. Timings depend on what else runs on the cores: say which run they come from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from t2p_utils.compare.run import score_split
from t2p_utils.config import Paths, load_study
from t2p_utils.core.io import append_csv_row
from t2p_utils.inference.pipeline import load_pipeline
from t2p_utils.train.loop import train


def overlay(paths: Paths, tag: str, vae: Path | None) -> Paths:
    """A root whose data/ and params/ are the profile's and whose models/ is the lever's own."""
    root = paths.models / "levers" / tag
    root.mkdir(parents=True, exist_ok=True)
    for name in ("data", "params"):
        link = root / name
        if not link.exists():
            link.symlink_to(paths.root / name, target_is_directory=True)
    models = root / "models" / paths.profile
    models.mkdir(parents=True, exist_ok=True)
    if vae is not None and not (models / "vae").exists():
        (models / "vae").symlink_to(Path(vae).resolve(), target_is_directory=True)
    return Paths(paths.profile, root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--tag", required=True, help="a name for this setting (folder and table row)")
    ap.add_argument("--source", default="clip", help="caption source to train on")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a train: key")
    ap.add_argument("--vae", type=Path, help="a trained shared VAE folder to reuse")
    ap.add_argument("--model", type=Path, help="score this already trained model folder instead of training one "
                    "(e.g. models/cpu/ip2p_clip, the profile's own recipe)")
    ap.add_argument("--n-val", type=int, default=20)
    ap.add_argument("--steps", type=int, help="inference steps (default: compare.steps)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-flat", action="store_true", help="skip the flat variant's scores (flat_* columns)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    base = Paths.for_profile(args.profile)
    overrides = {k: yaml.safe_load(v) for k, v in (item.partition("=")[::2] for item in args.set)}
    study = load_study(args.profile, overrides=[f"train.{item}" for item in args.set])  # --set is train.<key>=<value>
    cfg, compare = study.train, study.compare
    t0 = time.perf_counter()
    if args.model is not None:  # the profile's data, a model trained earlier
        paths, model_dir, overrides = base, args.model, {}
    else:
        paths = overlay(base, args.tag, args.vae)
        model_dir = train(cfg, paths, args.source)
    seconds = time.perf_counter() - t0
    summary = json.loads((model_dir / "train_summary.json").read_text(encoding="utf-8"))
    t1 = time.perf_counter()
    scores = score_split(paths, load_pipeline(model_dir), compare, "val", args.n_val, steps=args.steps,
                         caption_source=args.source, flat=not args.no_flat)
    row = {"tag": args.tag, "source": args.source, "overrides": json.dumps(overrides, sort_keys=True),
           "train_steps": summary["steps"], "train_s": round(summary["train_seconds"], 1),
           "wall_s": round(seconds, 1), "samples_per_s": round(summary["median_samples_per_s"], 1),
           "final_loss": round(summary["final_loss_mean_last_10pct"], 4), "n_val": args.n_val,
           "inference_steps": args.steps or compare.steps, "text_guidance": compare.text_guidance, "score_s": round(time.perf_counter() - t1, 1),
           **{k: round(v, 4) for k, v in scores.items()}, "threads": args.threads, "load": os.getloadavg()[0]}
    append_csv_row(base.reports / "levers.csv", row)
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
