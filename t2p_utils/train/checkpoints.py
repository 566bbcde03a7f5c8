"""Which training checkpoint can be resumed from: a broken one (truncated by a disk hiccup, half written when a run was
killed during ``accelerator.save_state``) is set aside and the previous one, or a fresh start, is used instead.

``t2p_utils.train.loop._resume`` calls :func:`usable_checkpoint` for ``resume_from_checkpoint="latest"``. A checkpoint is
usable when ``train_log.csv`` (written last, after the accelerator state) exists, it holds model weights, every
``*.safetensors`` header opens and covers its file, and every ``*.bin``/``*.pkl``/``*.pt`` file (``torch.save``'s zip
format) passes its CRC check. A broken one is renamed to ``broken-checkpoint-<step>`` beside it (a fresh start
removes the run folder with it) and the log names the file that failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_TORCH_FILES = (".bin", ".pkl", ".pt", ".pth")


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be resumed from ("<file>: <reason>"), or None when every file it holds reads back."""
    if not ckpt.is_dir():
        return f"{ckpt} is not a folder"
    if not (ckpt / "train_log.csv").is_file():
        return f"{ckpt / 'train_log.csv'} is missing: the checkpoint was not saved to the end"
    files = sorted(f for f in ckpt.iterdir() if f.is_file())
    if not any(f.suffix == ".safetensors" or (f.name.startswith("pytorch_model") and f.suffix == ".bin") for f in files):
        return f"{ckpt} holds no model weights (model*.safetensors)"
    for f in files:
        why = file_problem(f)
        if why:
            return f"{f}: {why}"
    return None


def file_problem(f: Path) -> str | None:
    """Why the weights/state file ``f`` does not read back (a truncated or corrupted file), or None."""
    try:
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(f), framework="pt") as fh:  # checks that the header covers the whole file
                fh.keys()
        elif f.suffix in _TORCH_FILES:
            if not zipfile.is_zipfile(f):
                import torch

                torch.load(f, map_location="cpu", weights_only=False)  # an old-style pickle: it must load
            else:
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                if bad is not None:
                    return f"member {bad} fails its CRC check"
    except Exception as exc:  # noqa: BLE001  (safetensors, zipfile and pickle each raise their own)
        return f"{type(exc).__name__}: {exc}"
    return None


def usable_checkpoint(found: Sequence[Path], move_aside: bool = True) -> Path | None:
    """The newest of ``found`` (oldest first) that :func:`checkpoint_problem` passes, or None (start afresh).

    Each broken one is logged with the file that failed and, with ``move_aside`` (the main process), renamed to
    ``broken-<name>`` so that no later run picks it again."""
    for i in range(len(found) - 1, -1, -1):
        ckpt = found[i]
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt
        then = f"resuming from {found[i - 1].name} instead" if i > 0 else "starting a new run"
        log.warning("checkpoint %s is broken (%s); %s", ckpt.name, problem, then)
        if move_aside:
            aside = ckpt.with_name(f"broken-{ckpt.name}")
            try:
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(ckpt, aside)
            except OSError as exc:
                log.warning("could not move %s aside (%s)", ckpt, exc)
    return None
