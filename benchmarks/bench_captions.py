"""Time the captioners: palette captioning of N images and CNN-LSTM training.

    .venv/bin/python benchmarks/bench_captions.py --profile cpu            # real sprites (after 01_scrape)
    .venv/bin/python benchmarks/bench_captions.py --profile smoke --n 48   # synthetic creatures

Uses the profile's processed images and ``captions:`` params; writes nothing into the repo
(the CNN-LSTM is trained in memory). Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "full"])
    ap.add_argument("--n", type=int, default=0, help="palette: number of images (0 = all manifest ids)")
    ap.add_argument("--workers", type=int, default=1, help="palette: processes")
    ap.add_argument("--skip-train", action="store_true", help="only time the palette captioner")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from t2p_utils.captions.cnn_lstm import caption_images, load_images, train_captioner
    from t2p_utils.captions.sets import load_manifest, load_references, training_references
    from t2p_utils.config import Paths, load_study
    from t2p_utils.config.captions import palette_settings
    from t2p_utils.core.palette import caption_files

    paths = Paths.for_profile(args.profile)
    cfg = load_study(args.profile).captions
    manifest = load_manifest(paths)
    rows = manifest if args.n <= 0 else manifest.head(args.n)
    triples = [(paths.root / c, paths.root / m, paths.root / ln)
               for c, m, ln in zip(rows["color"], rows["mask"], rows["lineart"], strict=True)]
    t0 = time.perf_counter()
    caption_files(triples, palette_settings(cfg), workers=args.workers, progress=False)
    dt = time.perf_counter() - t0
    print(f"palette: {len(triples)} images in {dt:.2f} s ({1000 * dt / len(triples):.1f} ms/image, "
          f"{args.workers} worker(s), profile {args.profile})")
    if args.skip_train:
        return

    refs = load_references(paths, manifest)
    train = training_references(refs, cfg)
    val = refs[refs["split"] == "val"]
    color = dict(zip(manifest["id"], manifest["color"], strict=True))
    t0 = time.perf_counter()
    images = load_images([paths.root / color[i] for i in train["id"]], cfg.cnn_lstm.image_size)
    val_images = load_images([paths.root / color[i] for i in val["id"]], cfg.cnn_lstm.image_size) if len(val) else None
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    trained = train_captioner(images, train["caption"].tolist(), cfg.cnn_lstm, val_images=val_images,
                              val_captions=val["caption"].tolist() if len(val) else None, progress=False)
    t_train = time.perf_counter() - t0
    print(f"cnn_lstm: load {len(train) + len(val)} images {t_load:.2f} s; train {len(train)} captions "
          f"{len(trained.history)} epochs (best {trained.best_epoch}) in {t_train:.2f} s "
          f"({t_train / len(trained.history):.2f} s/epoch, torch threads {cfg.cnn_lstm.torch_threads or torch.get_num_threads()})")
    all_images = load_images([paths.root / c for c in manifest["color"]], cfg.cnn_lstm.image_size)
    for beam in (1, cfg.cnn_lstm.beam_size):
        t0 = time.perf_counter()
        caption_images(trained, all_images, beam_size=beam, progress=False)
        dt = time.perf_counter() - t0
        print(f"cnn_lstm decode: {len(all_images)} images, beam {beam}: {dt:.2f} s")


if __name__ == "__main__":
    main()
