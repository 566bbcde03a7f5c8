"""The SHA-256 of every weight file of two tiny training runs, to show a refactor left training unchanged.

    .venv/bin/python benchmarks/weights_digest.py > before.txt   # on the old commit
    .venv/bin/python benchmarks/weights_digest.py > after.txt    # on the new one
    diff before.txt after.txt                                    # nothing: byte-identical weights

Run 1: cached latents, fp16 autocast, EMA, a frozen text encoder, epsilon loss.
Run 2: uncached latents, a trained text encoder, pooled text in the time embedding, v-prediction, min-SNR 5.
Both train the shared scratch VAE first, on 12 synthetic creatures at 32 px, one thread (about 30 s).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from t2p_utils.config import Paths, TrainConfig, VaeConfig
from t2p_utils.core.manifest import read_manifest
from t2p_utils.core.reference_csv import read_reference_csv
from t2p_utils.scrape.synthetic import make_synthetic
from t2p_utils.train.loop import train

RUN_1 = dict(
    model_source="scratch", arch="tiny", resolution=32, train_batch_size=4, gradient_accumulation_steps=2,
    gradient_checkpointing=True, max_train_steps=4, learning_rate=1e-3, mixed_precision="fp16",
    checkpointing_steps=2, checkpoints_total_limit=1, validation_steps=100, num_validation_images=1,
    validation_inference_steps=2, vae=VaeConfig(steps=4, batch_size=4), use_ema=True, ema_decay=0.99, log_every=1,
    cpu_threads=1, seed=7,
)
RUN_2 = RUN_1 | dict(
    cache_latents=False, mixed_precision="no", use_ema=False, train_text_encoder=True,
    text_time_embedding=True, prediction_type="v_prediction", snr_gamma=5.0,
)


def write_instructions(paths: Paths, source: str, n: int = 8) -> None:
    df = read_manifest(paths.manifest)
    ref = read_reference_csv(paths.reference_captions).set_index("id")
    folder = paths.instructions(source)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for _, r in df[df["split"] == "train"].head(n).iterrows():
            fh.write(json.dumps({
                "input_image": os.path.relpath(paths.root / r["lineart"], folder),
                "edit_prompt": "Turn it into " + ref.loc[r["id"], "caption"],
                "edited_image": os.path.relpath(paths.root / r["color"], folder),
                "caption_source": source,
            }) + "\n")


def digests(model_dir: Path) -> list[str]:
    return [f"{p.relative_to(model_dir)} {hashlib.sha256(p.read_bytes()).hexdigest()}"
            for p in sorted(model_dir.rglob("*.safetensors"))]


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "params", root / "params")
        paths = Paths.for_profile("smoke", root)
        make_synthetic(paths, n=12, size=64, seed=3)
        for source in ("cnn_lstm", "clip"):
            write_instructions(paths, source)
        for name, source, kw in (("run_1", "cnn_lstm", RUN_1), ("run_2", "clip", RUN_2)):
            cfg = dataclasses.replace(TrainConfig(), **kw)
            out = train(cfg, paths, source)
            for line in digests(out):
                print(name, line)
        for line in digests(paths.models / "vae"):
            print("vae", line)


if __name__ == "__main__":
    main()
