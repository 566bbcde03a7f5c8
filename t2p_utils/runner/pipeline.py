"""The headless runner behind ``./run_all.sh``: notebooks 01..05 through papermill, then the report.

    python -m t2p_utils.runner.pipeline run smoke            # resumes from the first unfinished step
    python -m t2p_utils.runner.pipeline run cpu --force      # runs every step again
    python -m t2p_utils.runner.pipeline run cpu --from 04_finetune
    python -m t2p_utils.runner.pipeline run path/to/my.yaml  # a user profile (t2p_utils.config.params)

Before any step runs, the params file is checked whole (:meth:`t2p_utils.config.study.StudyConfig.problems`: every
section's types, keys and ranges, the folders and files 01 reads; no torch imported, under a second): a bad file
stops the run with a line per problem and nothing written under data/, models/ or reports/.

Each executed notebook lands in ``reports/<profile>/notebooks/`` as ``.ipynb`` and ``.html``;
``reports/<profile>/steps.json`` records status, wall time, outputs and a stamp per step, made by the one
staleness rule every cache inside the steps follows too (:func:`t2p_utils.core.stamps.cache_key`: settings, inputs,
code): a hash of the params sections it reads (``STEP_SECTIONS``, plus ``seed``), of its notebook and the content of
the input files no earlier step writes (``step_inputs``), then a hash of the source of the package modules it runs
(its folder and everything its notebook imports, read from the source by :mod:`t2p_utils.runner.codegraph`), so
editing ``compare:`` re-runs only 05, editing the committed reference captions re-runs 02 on, and editing
``metrics.py`` re-runs 05, whose cached outputs key on that code too (only 04 is forced after a code edit:
:data:`CODE_FORCES`). A step counts as done when it succeeded with the same stamp and its outputs still exist; a
failed step stops the run with the notebook and cell named, and the next run starts there; a step
that was interrupted (Ctrl-C, a killed run) is resumed by the next run, ``--from`` included (04
continues from its last checkpoint); ``--force`` starts afresh. An evaluate-only profile
(``compare.models_from``) skips 02-04 and records them as skipped.

Outputs are verified, not just found: when a step finishes, steps.json records (``checks``) the size, modification
time and sha256 of every file it left (:func:`checked_files`: its outputs, and for 04 every file in the model folders
it wrote). Before a step counts as done, each recorded file must still have its size, a file whose modification time
changed must still have its hash, and every ``*.safetensors`` among them must still open (a record from before
``checks`` existed gets only that last test, and its hashes then). A broken output is logged by name and makes the step
stale; it re-runs with ``force`` (its own caches, e.g. 04's "same settings and data" skip, would keep the broken file).

One run per profile at a time: :func:`profile_lock` holds ``reports/<profile>/run.lock`` (``fcntl.flock``, released
by the kernel when the run ends or dies, so a killed run never leaves a stale lock) with who holds it and since when;
a second run stops at once and says so (:class:`ProfileBusy`). An evaluate-only profile also locks the profile whose
models it scores.

Ctrl-C ends on one line, "<step> stopped (Ctrl-C). Resume it with: ./run_all.sh <profile>": the kernel runs in its
own session (jupyter_client), so the Ctrl-C reaches only this process, which then kills the kernel's process group;
the kernel's own console output (its fd 2 and that of every process it starts) goes to
``reports/<profile>/progress/<step>.stderr`` and is shown live until the Ctrl-C, after which only this module's own
log lines are shown (the kernel's teardown, papermill's and asyncio's complaints stay out).

A killed run (``kill -9``) leaves nothing running: the kernel exits when this process does (ipykernel polls its
parent, ``JPY_PARENT_PID``), and 04's training workers die with the kernel (``t2p_utils.train.loop.worker_pool``). An
interrupted 04 resumes with "resuming 04_finetune from checkpoint-15 of 30" (:func:`resume_point`), its bars from there.

A full disk ends on one line (:class:`DiskFull`, :func:`disk_full_message`): the step, the path and its filesystem,
the room left, and about how much the step needs (what it left last time, what its folders hold now). Half-written
temporary files (``.<name>.part``, ``.<name>.old``) that a killed or disk-full run left are removed when the next
run starts (:func:`remove_leftovers`).

While a run re-runs steps, and after one fails or stops, the last report is marked out of date
(:func:`mark_report_out_of_date`: a banner at the top of ``index.html`` naming the step and why, and
``OUT_OF_DATE.txt`` beside ``metrics.csv``); the report of a run that finishes has neither.
"""

from __future__ import annotations

import argparse
import codecs
import errno
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from t2p_utils.config.params import PROFILES, ConfigError, Paths, repo_root
from t2p_utils.config.study import StudyConfig, load_study
from t2p_utils.config.train import TrainConfig
from t2p_utils.core.io import atomic_write_json, atomic_write_text, sha256_file
from t2p_utils.core.progress import ProgressWatcher, progress_file
from t2p_utils.core.stamps import cache_key, file_stamp
from t2p_utils.runner import codegraph

log = logging.getLogger(__name__)

STEPS: tuple[str, ...] = (
    "01_scrape",
    "02_cnn_lstm_captioning",
    "03_clip_captioning",
    "04_finetune",
    "05_compare",
)


@dataclass
class StepResult:
    name: str
    status: str  # ok / failed / interrupted
    seconds: float
    notebook: str  # executed .ipynb, relative to reports/<p>/
    notebook_html: str
    fingerprint: str
    error: str = ""
    outputs: list[str] = field(default_factory=list)  # what the step wrote, relative to the root; all must still exist
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> size, mtime_ns, sha256 when it finished


def step_outputs(paths: Paths, step: str) -> list[Path]:
    """The files a finished ``step`` leaves for the next ones (those that exist are recorded in steps.json)."""
    if step == "01_scrape":
        return [paths.manifest]
    if step == "02_cnn_lstm_captioning":
        return [paths.captions("cnn_lstm")]
    if step == "03_clip_captioning":
        return [paths.captions(s) for s in ("clip", "palette")]
    if step == "04_finetune":
        sources = load_study(paths.spec, paths.root, check=False).train.sources
        return [paths.model(f"ip2p_{s}") / "model_index.json" for s in sources]
    if step == "05_compare":
        return [paths.reports / "compare_summary.json", paths.reports / "metrics.csv"]
    return []


def checked_files(paths: Paths, step: str) -> list[Path]:
    """The files whose size and hash steps.json records when ``step`` finishes: its outputs that exist and, for 04,
    every file in the model folders it wrote (weights, configs, tokenizer, summary)."""
    outputs = step_outputs(paths, step)
    files = [p for p in outputs if p.is_file()]
    if step == "04_finetune":
        for folder in sorted({p.parent for p in outputs if p.parent.is_dir()}):
            files += sorted(f for f in folder.rglob("*") if f.is_file() and f not in files)
    return files


def _output_checks(paths: Paths, step: str) -> dict[str, dict[str, Any]]:
    checks = {}
    for f in checked_files(paths, step):
        st = f.stat()
        checks[str(f.relative_to(paths.root))] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                  "sha256": sha256_file(f)}
    return checks


def output_problem(paths: Paths, step: str, prev: dict[str, Any]) -> str | None:
    """What is wrong with the files ``step`` left ("<file> ..."), or None: a recorded file gone, of another size, or
    with another hash (hashed again only when its modification time changed), or saved weights that do not open."""
    from t2p_utils.train.checkpoints import file_problem

    checks: dict[str, dict[str, Any]] = prev.get("checks") or {}
    for rel, rec in checks.items():
        f = paths.root / rel
        if not f.is_file():
            return f"{rel} is gone"
        st = f.stat()
        if st.st_size != rec.get("size"):
            return f"{rel} is {st.st_size} bytes, {rec.get('size')} when {step} finished (truncated or rewritten)"
        if st.st_mtime_ns != rec.get("mtime_ns") and sha256_file(f) != rec.get("sha256"):
            return f"{rel} changed since {step} finished (its sha256 differs)"
    files = [paths.root / r for r in checks] if checks else checked_files(paths, step)
    for f in files:
        if f.suffix == ".safetensors":
            why = file_problem(f)
            if why:
                return f"{f.relative_to(paths.root)} does not open ({why})"
    return None


def _recorded_outputs(paths: Paths, step: str) -> list[str]:
    return [str(p.relative_to(paths.root)) for p in step_outputs(paths, step) if p.exists()]


def _missing_outputs(paths: Paths, prev: dict[str, Any]) -> list[str]:
    return [o for o in prev.get("outputs") or [] if not (paths.root / o).exists()]


class StepFailed(RuntimeError):
    pass


class DiskFull(StepFailed):
    """A step (or the runner writing its records) ran out of disk space; the message is one line: where, how much
    is free, about how much the step needs (:func:`disk_full_message`). ``where``: the file named, if any."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


class ProfileBusy(RuntimeError):
    """Another run of the same profile holds its lock (:func:`profile_lock`)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a step, after :func:`run` has logged which step stopped and how to resume it."""


def _lock_file(paths: Paths) -> Path:
    return paths.reports / "run.lock"


@contextmanager
def profile_lock(paths: Paths) -> Iterator[None]:
    """Hold ``reports/<profile>/run.lock`` for the run (``fcntl.flock``, exclusive, non-blocking); the file says who
    holds it. Raises :class:`ProfileBusy` naming the holder's pid, command and start time when another run has it.
    Where ``fcntl`` does not exist (Windows) runs are not locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock = _lock_file(paths)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock, "a+", encoding="utf-8")  # noqa: SIM115  (held open for the whole run)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            raise ProfileBusy(_busy_message(paths, lock, fh.read())) from None
        fh.seek(0)
        fh.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                   "command": _command_line()}, fh)
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
    finally:
        fh.close()  # releases the lock


def _command_line() -> str:
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog == "pipeline.py":  # ./run_all.sh and python -m t2p_utils.runner.pipeline
        prog = "python -m t2p_utils.runner.pipeline"
    return " ".join([prog, *sys.argv[1:]])


def _busy_message(paths: Paths, lock: Path, holder_text: str) -> str:
    try:
        holder = json.loads(holder_text)
    except ValueError:
        holder = {}
    who = "another run"
    if holder.get("pid"):
        since = float(holder.get("since") or 0)
        ago = max(0, int(time.time() - since))
        who = (f"run {holder.get('command') or '?'!r} (pid {holder['pid']} on {holder.get('host') or '?'}, since "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}, {ago // 60} min {ago % 60} s ago)")
    stop = f"or stop it (Ctrl-C in its terminal, or kill {holder['pid']})" if holder.get("pid") else "or stop it"
    return (f"profile {paths.profile!r} is busy: {who} is using data/, models/ and reports/ of this profile in "
            f"this checkout. Wait for it to finish {stop}, then run again (lock: {lock})")


def default_profile() -> str:
    """``full`` when CUDA is available, else ``cpu``."""
    try:
        import torch

        return "full" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


#: The params sections each step reads (besides the top-level ``seed``).
STEP_SECTIONS: dict[str, tuple[str, ...]] = {
    "01_scrape": ("scrape",),
    "02_cnn_lstm_captioning": ("captions",),
    "03_clip_captioning": ("captions",),
    "04_finetune": ("train",),
    "05_compare": ("compare",),
}

#: The steps forced when the code they run changed. Every cache inside a step keys on the code that makes it
#: (:func:`t2p_utils.core.stamps.cache_key`: 01's renders and synthetic creatures, 02's CNN-LSTM, 02's and 03's caption
#: sets, 04's shared VAE and trained models, 05's outputs and drawings), so a step re-run after an edit remakes what
#: the edit touched and reuses the rest. 04 stays forced: an interrupted 04 resumes its checkpoints across a code edit
#: (they key on settings and data only, so an hour of training survives a fix), and a finished one starts afresh.
CODE_FORCES: tuple[str, ...] = ("04_finetune",)


def _code_stamp(step: str) -> str:
    """A hash of the source of every package module ``step`` runs (:func:`t2p_utils.runner.codegraph.step_modules`:
    its folder, what its notebook imports, and what those import): editing one re-runs the step."""
    return codegraph.code_stamp(step, repo_root() / "notebooks" / f"{step}.ipynb")


def _params_stamp(paths: Paths, step: str) -> str:
    """A hash of the notebook, the profile, the top-level seed, the params sections ``step`` reads and the content of
    the input files no earlier step writes (:func:`step_inputs`); for 05 of an evaluate-only profile, the stamp of
    the other profile's 04 (its models)."""
    study = load_study(paths.spec, paths.root, check=False)
    params = study.params
    used: dict[str, Any] = {k: params.get(k) for k in ("profile", "seed", *STEP_SECTIONS.get(step, ()))}
    inputs: dict[str, Any] = {"notebook": file_stamp(paths.notebooks / f"{step}.ipynb"),
                              "files": {str(p): file_stamp(p) for p in step_inputs(paths, step, study)}}
    if step == "05_compare" and study.compare.models_from:
        other = Paths.for_profile(study.compare.models_from, paths.root)
        inputs["models_from"] = (load_state(other).get("04_finetune") or {}).get("fingerprint", "")
    return cache_key(used, inputs)


def step_inputs(paths: Paths, step: str, study: StudyConfig) -> list[Path]:
    """The files (or folders) ``step`` reads that no earlier step writes: editing one makes the step stale.

    01: the family table, a user's image folder and reference file; 02, 03 and 05: the committed hand-written
    references (smoke and user profiles get theirs from 01, whose re-run already re-runs everything after it)."""
    if step == "01_scrape":
        from t2p_utils.scrape.derive import reference_file

        scrape = study.scrape
        found = [paths.families_csv]
        for key in ("kaggle_dir", "folder_dir"):
            if scrape.source == key.split("_")[0] and getattr(scrape, key):
                found.append(paths.user_path(getattr(scrape, key)))
        ref = reference_file(paths, study)
        return found + ([ref] if ref else [])
    reads_references = step in ("02_cnn_lstm_captioning", "03_clip_captioning", "05_compare")
    return [paths.committed_references] if reads_references and paths.reference_captions == paths.committed_references else []


#: the steps an evaluate-only profile (``compare.models_from``) does not run: it trains nothing
TRAINING_STEPS: tuple[str, ...] = ("02_cnn_lstm_captioning", "03_clip_captioning", "04_finetune")


def _fingerprint(paths: Paths, step: str) -> str:
    """The step's stamp: its notebook and params sections, and the source of the modules it runs."""
    return f"{_params_stamp(paths, step)}-{_code_stamp(step)}"


def _state_path(paths: Paths) -> Path:
    return paths.reports / "steps.json"


def load_state(paths: Paths) -> dict[str, dict[str, Any]]:
    p = _state_path(paths)
    if not p.exists():
        return {}
    return {s["name"]: s for s in json.loads(p.read_text())["steps"]}


def _save_state(paths: Paths, results: dict[str, dict[str, Any]]) -> None:
    ordered = [results[s] for s in STEPS if s in results]
    atomic_write_json({"profile": paths.profile, "steps": ordered}, _state_path(paths))


def to_html(ipynb: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    atomic_write_text(body, html)


def _cell_of_error(ipynb: Path) -> str:
    """Which cell failed, from papermill's executed notebook."""
    try:
        nb = json.loads(ipynb.read_text())
    except (OSError, ValueError):
        return "unknown cell"
    papermills = {"injected-parameters", "papermill-error-cell-tag"}
    cells = [c for c in nb.get("cells", []) if not papermills & set(c.get("metadata", {}).get("tags", []))]
    for i, cell in enumerate(cells, start=1):  # numbered as in the source notebook, from 1
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                src = "".join(cell.get("source", "")).strip().splitlines()
                first = src[0][:80] if src else ""
                return f"cell {i} ({first!r}): {out.get('ename')}: {out.get('evalue')}"
    return "unknown cell"


# ------------------------------------------------------------------------------ a full disk
#: errno values of a full disk or an exhausted quota
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: how a full disk reads in a kernel's traceback (Python, torch's writer, safetensors' Rust error, quota)
_FULL_TEXT = re.compile(r"No space left on device|\[Errno 28\]|os error 28|StorageFull|Disk quota exceeded|"
                        r"\[Errno 122\]")
_FULL_WHERE = re.compile(r"(?:No space left on device|Disk quota exceeded): '([^']+)'")
#: below this many free bytes a step that failed writing counts as stopped by a full disk, whatever its error says
#: (torch's zip writer only says "file write failed")
DISK_FULL_BYTES = 8 << 20


def _size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def step_folders(paths: Paths, step: str) -> list[Path]:
    """Where ``step`` writes the bulk of what it makes (its size is a rough measure of what the step needs)."""
    if step == "01_scrape":
        return [paths.processed, paths.interim]
    if step == "02_cnn_lstm_captioning":
        return [paths.model("cnn_lstm"), paths.instructions("cnn_lstm"), paths.captions_dir]
    if step == "03_clip_captioning":
        return [paths.instructions(s) for s in ("clip", "palette")] + [paths.captions_dir]
    if step == "04_finetune":
        return sorted({o.parent for o in step_outputs(paths, "04_finetune")}) + [paths.models / "runs",
                                                                                 paths.model("vae")]
    return [paths.reports]


def _tree_bytes(folder: Path) -> int:
    total = 0
    if folder.is_file():
        return folder.stat().st_size
    for f in folder.rglob("*") if folder.is_dir() else ():
        try:
            if f.is_file() and not f.is_symlink():
                total += f.stat().st_size
        except OSError:
            pass
    return total


def _mount_of(path: Path) -> Path:
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _free_bytes(path: Path) -> tuple[int, int] | None:
    """(free, total) bytes of the filesystem holding ``path`` (its nearest existing folder), or None."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def disk_full_where(exc: BaseException | None, text: str = "") -> tuple[bool, str | None]:
    """(whether ``exc`` or ``text`` says the disk is full, the file it names if any)."""
    seen: set[int] = set()
    full, where = False, None
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            full = True
            if isinstance(e.filename, str):
                return True, e.filename
        text += "\n" + str(e) + "\n" + str(getattr(e, "evalue", ""))
        e = e.__cause__ or e.__context__
    if full or _FULL_TEXT.search(text):  # a write's OSError names no file: the text may
        m = _FULL_WHERE.search(text)
        return True, m.group(1) if m else where
    return False, None


def recorded_bytes(record: dict[str, Any] | None) -> int:
    """The size of what a step left when it last finished (steps.json's ``checks``), 0 when not known."""
    try:
        return sum(int(c.get("size") or 0) for c in ((record or {}).get("checks") or {}).values())
    except (AttributeError, TypeError, ValueError):
        return 0


def disk_full_message(paths: Paths, step: str | None, where: str | None = None, recorded: int = 0) -> str:
    """One line: ``<step> stopped: the disk is full (<path>, on <mount>: <free> free of <total>); <step> needs about
    <size> there (...). Free some space, then run ./run_all.sh <profile> again ...``. ``recorded``: the bytes the
    step left last time (:func:`recorded_bytes`); the folders it writes (:func:`step_folders`) are measured now."""
    if step is None:
        target = Path(where) if where else paths.reports
        free = _free_bytes(target)
        room = f"{_size_text(free[0])} free of {_size_text(free[1])}" if free else "free space unknown"
        return (f"the run stopped: the disk is full ({target}, on {_mount_of(target)}: {room}). Free some space, then "
                f"run ./run_all.sh {paths.spec} again: finished steps are kept")
    folders = step_folders(paths, step)
    target = Path(where) if where else folders[0]
    free = _free_bytes(target)
    room = f"{_size_text(free[0])} free of {_size_text(free[1])}" if free else "free space unknown"
    held = sum(_tree_bytes(f) for f in folders)
    if recorded or held:
        rel = ", ".join(str(f.relative_to(paths.root)) if f.is_relative_to(paths.root) else str(f)
                        for f in folders if f.exists())
        basis = "; ".join(([f"its outputs last time: {_size_text(recorded)}"] if recorded else [])
                          + ([f"{rel} now hold {_size_text(held)}"] if held else []))
        need = f"{step} needs about {_size_text(max(recorded, held))} there ({basis})"
    else:
        need = f"{step} has not finished before, so its size is not known (a few hundred MB for cpu, GBs for full)"
    return (f"{step} stopped: the disk is full ({target}, on {_mount_of(target)}: {room}); {need}. Free some space, "
            f"then run ./run_all.sh {paths.spec} again: finished steps are kept, half-written files are not used")


def _kernel_console_text(paths: Paths, step: str, limit: int = 1 << 16) -> str:
    f = paths.reports / "progress" / f"{step}.stderr"
    try:
        with open(f, "rb") as fh:
            fh.seek(max(0, f.stat().st_size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _stopped_by_full_disk(paths: Paths, step: str, exc: BaseException) -> tuple[bool, str | None]:
    """Whether ``step`` failed because the disk filled: the error (or the kernel's console) says so, or a step that
    failed has almost no room left where it writes."""
    full, where = disk_full_where(exc, _kernel_console_text(paths, step))
    if full:
        return True, where
    free = _free_bytes(step_folders(paths, step)[0])
    return (free is not None and free[0] < DISK_FULL_BYTES), None


def run_step(paths: Paths, step: str, extra_params: dict[str, Any] | None = None) -> StepResult:
    """Execute ``step``'s notebook. Raises :class:`StepFailed` naming the cell, :class:`DiskFull` (one line) when
    the disk filled."""
    import papermill as pm

    src = paths.notebooks / f"{step}.ipynb"
    if not src.exists():
        raise StepFailed(f"{src} is missing: the study needs notebooks {', '.join(STEPS)}")
    out_dir = paths.reports / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{step}.ipynb"
    html = out_dir / f"{step}.html"
    params = {"profile": paths.spec, **(extra_params or {})}
    t0 = time.perf_counter()
    log.info("running %s (profile %s)", step, paths.profile)
    # the kernel inherits T2P_PROGRESS_FILE: its t2p_utils.core.progress bars report there, the watcher shows them here
    progress = paths.reports / "progress" / f"{step}.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.unlink(missing_ok=True)
    progress.touch()
    kernel_groups: list[int] = []
    try:
        with progress_file(progress), ProgressWatcher(progress, prefix=step), \
                KernelConsole(progress.with_suffix(".stderr")) as console:
            pm.execute_notebook(
                str(src), str(out), parameters=params, cwd=str(paths.notebooks), kernel_name="python3",
                progress_bar=False, log_output=False,
                kernel_manager_class=_kernel_manager_class(console.file, kernel_groups),
            )
    except KeyboardInterrupt:
        _kill_groups(kernel_groups)  # the kernel (and its workers) run in their own session: the Ctrl-C missed them
        raise
    except Exception as exc:  # papermill raises PapermillExecutionError; keep the executed copy
        full, at = _stopped_by_full_disk(paths, step, exc)
        if full:
            raise DiskFull(disk_full_message(paths, step, at), at) from exc
        where = _cell_of_error(out) if out.exists() else str(exc)
        if out.exists():
            try:
                to_html(out, html)
            except Exception as html_exc:  # noqa: BLE001  (a truncated notebook: nbformat's NotJSONError, ...)
                log.warning("could not convert %s to HTML (%s: %s)", out, type(html_exc).__name__, html_exc)
        raise StepFailed(
            f"{step} failed at {where}\n  executed notebook: {out}\n  fix the cause and run again: finished steps are kept"
        ) from exc
    dt = time.perf_counter() - t0
    to_html(out, html)
    return StepResult(step, "ok", round(dt, 2), f"notebooks/{out.name}", f"notebooks/{html.name}", _fingerprint(paths, step))


class KernelConsole:
    """The kernel's console (fd 2 of the kernel and of every process it starts) goes to ``path``; a thread copies what
    arrives to this process's stderr, until a Ctrl-C: then the kernel's teardown noise stays in the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[bytes] = open(path, "wb")  # noqa: SIM115  (the kernel writes it; closed in __exit__)
        self._stop = threading.Event()
        self._quiet = False
        self._thread = threading.Thread(target=self._pump, name="kernel-console", daemon=True)

    def __enter__(self) -> KernelConsole:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._quiet = True
        self._stop.set()
        self._thread.join(timeout=5)
        self.file.close()

    def _pump(self) -> None:
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        with open(self.path, "rb") as src:
            while True:
                stopping = self._stop.wait(0.2)
                data = src.read()
                if data and not (self._quiet or _INTERRUPTED.is_set()):
                    try:
                        sys.stderr.write(decode(data))
                        sys.stderr.flush()
                    except (OSError, ValueError):
                        pass
                if stopping:
                    return


def _kernel_manager_class(stderr: IO[bytes], groups: list[int]) -> type:
    """jupyter_client's AsyncKernelManager, the kernel's stderr sent to ``stderr``, its process group noted in
    ``groups`` (jupyter_client starts each kernel in a session of its own)."""
    from jupyter_client.manager import AsyncKernelManager

    class _KernelManager(AsyncKernelManager):  # type: ignore[misc]
        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("stderr", stderr)
            await super().start_kernel(**kw)
            pgid = getattr(self.provisioner, "pgid", None)
            if pgid:
                groups.append(int(pgid))

    return _KernelManager


def _kill_groups(groups: list[int]) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


#: set by the command line's SIGINT handler: from then on only this module's log lines are shown
_INTERRUPTED = threading.Event()


class _OnlyOurs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == log.name


def _on_sigint(signum: int, frame: Any) -> None:
    """The command line's Ctrl-C: quiet every other logger and the kernel's console, then stop as usual."""
    if not _INTERRUPTED.is_set():
        _INTERRUPTED.set()
        for h in logging.getLogger().handlers:
            h.addFilter(_OnlyOurs())
    raise KeyboardInterrupt


def run(profile: str, *, force: bool = False, start: str | None = None, stop: str | None = None,
        root: Path | None = None) -> list[dict[str, Any]]:
    """Run the study for ``profile`` (a built-in name or a params file); returns the step records of steps.json.
    Holds the profile's lock (:func:`profile_lock`) throughout."""
    paths = Paths.for_profile(profile, root)
    # every section (types, keys, ranges) and the paths the steps read, before any step runs or anything is written:
    # one ConfigError, a line per problem
    study = load_study(paths.spec, paths.root, check=False).check(check_paths=True)
    evaluate_only = study.compare.models_from
    if evaluate_only:
        Paths.for_profile(evaluate_only, paths.root)  # a bad compare.models_from fails now, not in 05
    with profile_lock(paths):
        if evaluate_only:
            with profile_lock(Paths.for_profile(evaluate_only, paths.root)):  # its models must not change under 05
                return _run(paths, study, force=force, start=start, stop=stop)
        return _run(paths, study, force=force, start=start, stop=stop)


def _run(paths: Paths, study: StudyConfig, *, force: bool, start: str | None,
         stop: str | None) -> list[dict[str, Any]]:
    evaluate_only = study.compare.models_from
    os.environ.setdefault("T2P_ROOT", str(paths.root))  # the kernels resolve the same root
    try:
        on_disk = load_state(paths)
    except (OSError, ValueError, KeyError, TypeError):  # a steps.json cut short: start from nothing
        log.warning("%s does not read back; every step runs again", _state_path(paths))
        on_disk = {}
    last_size = {s: recorded_bytes(r) for s, r in on_disk.items()}  # for a disk-full message under --force too
    state = {} if force else on_disk
    remove_leftovers(paths)
    if start is not None and start not in STEPS:
        raise ConfigError(f"unknown step {start!r}: choose one of {', '.join(STEPS)}")
    steps = list(STEPS)
    if stop is not None:
        steps = steps[: steps.index(stop) + 1]
    rerun = False
    for step in steps:
        if evaluate_only and step in TRAINING_STEPS:
            state[step] = asdict(StepResult(step, "skipped", 0.0, "", "", "", (
                f"evaluate-only: compare.models_from is {evaluate_only!r}, so 05 scores the models in "
                f"{Paths.for_profile(evaluate_only, paths.root).models} and this profile trains nothing")))
            _save_state(paths, state)
            log.info("%s: skipped (evaluate-only profile: models from %r)", step, evaluate_only)
            continue
        if step == "02_cnn_lstm_captioning":
            _check_trainable(paths)
        prev = state.get(step) or {}
        forced_here = start is not None and STEPS.index(step) >= STEPS.index(start)
        stamp = _fingerprint(paths, step)
        done = prev.get("status") == "ok" and prev.get("fingerprint") == stamp
        missing = _missing_outputs(paths, prev) if done else []
        if missing:
            log.info("%s: its output %s is gone; running it again", step, missing[0])
            done = False
        broken = output_problem(paths, step, prev) if done else None
        if broken:
            log.warning("%s: its output %s; running it again (forced)", step, broken)
            done = False
        elif done and not prev.get("checks"):  # recorded before outputs were hashed: hash them now
            state[step] = {**prev, "checks": _output_checks(paths, step)}
            _save_state(paths, state)
        # code the step runs changed since it last succeeded: it runs again (its stamp differs); its caches key on
        # their own code, so it is forced only where one of them does not (CODE_FORCES)
        code_changed = (prev.get("status") == "ok" and "-" in str(prev.get("fingerprint"))
                        and str(prev["fingerprint"]).split("-")[1] != stamp.split("-")[1])
        if code_changed:
            log.info("%s: the code it runs changed (t2p_utils.%s or a module it imports); %s", step,
                     codegraph.STEP_FOLDERS.get(step, "?"),
                     "recomputing (forced)" if step in CODE_FORCES else "running it again (its caches see which code)")
        if done and not rerun and not forced_here:
            log.info("%s: done earlier (%.1f s), skipped", step, prev["seconds"])
            continue
        if not rerun:
            mark_report_out_of_date(paths, f"a run started at {_now()} runs {step} and the steps after it again")
        rerun = True  # once a step runs, every later step runs too (its inputs changed)
        # a step stopped part-way resumes (e.g. 04 from its last checkpoint), even under --from; --force starts afresh
        resume = prev.get("status") == "interrupted" and not force
        if resume:
            log.info("%s: interrupted earlier; %s", step, resume_point(paths, step, study.train))
        if step == "05_compare" and evaluate_only:
            _check_models_from(paths, evaluate_only)
        def record(status: str, error: str = "", step: str = step) -> None:
            state[step] = asdict(StepResult(step, status, 0.0, f"notebooks/{step}.ipynb", f"notebooks/{step}.html", "",
                                            error))
            _save_state(paths, state)

        try:
            record("interrupted", "started, not finished")  # what a killed run leaves behind
            code_forced = code_changed and step in CODE_FORCES
            res = run_step(paths, step, {"force": bool(force or forced_here or code_forced or broken) and not resume})
            res.outputs = _recorded_outputs(paths, step)
            res.checks = _output_checks(paths, step)
            state[step] = asdict(res)
            _save_state(paths, state)
        except DiskFull as exc:  # said again with the size the step left last time (steps.json before this run)
            message = disk_full_message(paths, step, exc.where, last_size.get(step, 0))
            _after_failure(paths, step, message, record)
            raise DiskFull(message, exc.where) from exc
        except StepFailed as exc:
            _after_failure(paths, step, str(exc).splitlines()[0], record)
            raise
        except OSError as exc:  # the runner's own writes (steps.json, the executed notebook's HTML)
            full, at = disk_full_where(exc)
            if not full:
                raise
            message = disk_full_message(paths, step, at, last_size.get(step, 0))
            _after_failure(paths, step, message, record)
            raise DiskFull(message, at) from exc
        except KeyboardInterrupt as exc:
            mark_report_out_of_date(paths, f"{step} was stopped (Ctrl-C) at {_now()}")
            log.error("%s stopped (Ctrl-C). Resume it with: ./run_all.sh %s", step, paths.spec)
            raise Interrupted(step) from exc
        log.info("%s: ok in %.1f s", step, res.seconds)
    records = [state[s] for s in STEPS if s in state]
    build_index(paths, records)
    return records


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _after_failure(paths: Paths, step: str, reason: str, record: Any) -> None:
    """A failed step: its record in steps.json (when the disk still takes it) and the old report marked."""
    mark_report_out_of_date(paths, f"{step} failed at {_now()}: {reason}")
    try:
        record("failed", reason)
    except OSError as exc:  # a full disk: steps.json keeps "interrupted", and the next run resumes the step
        log.warning("could not record the failure in %s (%s)", _state_path(paths), exc)


def resume_point(paths: Paths, step: str, train: TrainConfig) -> str:
    """Where an interrupted ``step`` resumes, for the log: 04 names each model's newest complete checkpoint
    (``resuming 04_finetune from checkpoint-15 of 30``; the trainer checks it opens and says so if it falls back)."""
    if step != "04_finetune":
        return "resuming it"
    of = f" of {train.max_train_steps}"
    points = []
    for source in train.sources:
        run_dir = paths.models / "runs" / f"ip2p_{source}"
        found = sorted((d for d in run_dir.glob("checkpoint-*") if d.name.split("-")[-1].isdigit()
                        and (d / "train_log.csv").is_file()), key=lambda d: int(d.name.split("-")[-1]))
        if found:
            points.append((source, f"{found[-1].name}{of}"))
        elif (paths.model(f"ip2p_{source}") / "train_summary.json").is_file() and not run_dir.exists():
            points.append((source, "its saved model"))
        else:
            points.append((source, "its start (no checkpoint yet)"))
    if len({p for _, p in points}) == 1:
        return f"resuming {step} from {points[0][1]}"
    return f"resuming {step} from " + ", ".join(f"{p} ({s})" for s, p in points)


#: what a killed run can leave behind: t2p_utils.core.io.atomic_path's temporary files and folders
_LEFTOVER = re.compile(r"^\..+\.(part|old)$")


def remove_leftovers(paths: Paths, min_age_s: float = 60.0) -> int:
    """Delete half-written temporary files and folders (``.<name>.<random>.part``, ``.<name>.part``, ``.<name>.old``)
    that a killed or disk-full run left in this profile's folders; returns the bytes freed. Only those older than
    ``min_age_s``: the run holds the profile's lock, but a demo may be writing one just now."""
    import shutil

    freed, now = 0, time.time()
    roots = [paths.processed, paths.interim, paths.captions_dir, paths.instructions("x").parent, paths.models,
             paths.reports]
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*filenames, *dirnames]:
                if not _LEFTOVER.match(name):
                    continue
                f = Path(dirpath) / name
                try:
                    if now - f.lstat().st_mtime < min_age_s:
                        continue
                    size = _tree_bytes(f)
                    if f.is_dir() and not f.is_symlink():
                        shutil.rmtree(f)
                        dirnames.remove(name)
                    else:
                        f.unlink()
                    freed += size
                    log.info("removed %s, left half-written by an earlier run", f.relative_to(paths.root))
                except OSError:
                    pass
    return freed


_BANNER = re.compile(r"<!-- t2p:out-of-date -->.*?<!-- /t2p:out-of-date -->\n?", re.DOTALL)
OUT_OF_DATE = "OUT_OF_DATE.txt"


def mark_report_out_of_date(paths: Paths, why: str) -> None:
    """Say on the last report (``index.html``, a red banner at the top) and beside its tables (``OUT_OF_DATE.txt``)
    that they are not this run's: ``why`` (a step running again, failed, stopped). :func:`build_index` clears both.
    When the page cannot be rewritten (a full disk) it is removed rather than left standing unmarked."""
    import html

    index = paths.reports / "index.html"
    tables = [f.name for f in (paths.reports / "metrics.csv", paths.reports / "metrics.json",
                               paths.reports / "compare_summary.json") if f.is_file()]
    if not index.is_file() and not tables:
        return
    try:
        page = index.read_text(encoding="utf-8") if index.is_file() else ""
    except OSError:
        page = ""
    m = re.search(r"Out of date: .*? from the run that finished at ([0-9: -]+)", page)
    finished = m.group(1) if m else (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(index.stat().st_mtime))
                                     if index.is_file() else "?")
    what = ", ".join(["This page", *tables]) if page else ", ".join(tables)
    text = (f"Out of date: {why}. {what} are from the run that finished at {finished}; "
            f"./run_all.sh {paths.spec} brings them up to date.")
    try:
        if page:
            banner = ('<!-- t2p:out-of-date --><div class="t2p-out-of-date" role="alert" style="background:#fde8e8;'
                      'border:2px solid #c0392b;color:#7b1d12;padding:.6em 1em;margin:0 0 1em;font-weight:bold">'
                      f"{html.escape(text)}</div><!-- /t2p:out-of-date -->\n")
            page = _BANNER.sub("", page)
            body = re.search(r"<body[^>]*>\n?", page)
            at = body.end() if body else 0
            atomic_write_text(page[:at] + banner + page[at:], index)
        atomic_write_text(text + "\n", paths.reports / OUT_OF_DATE)
    except OSError as exc:
        log.warning("could not mark the report out of date (%s); removing %s", exc, index.name)
        index.unlink(missing_ok=True)


def _check_models_from(paths: Paths, other: str) -> None:
    """05 of an evaluate-only profile scores another profile's models: they must be trained and intact."""
    other_paths = Paths.for_profile(other, paths.root)
    rec = load_state(other_paths).get("04_finetune") or {}
    problem = output_problem(other_paths, "04_finetune", rec) if rec.get("status") == "ok" else None
    if problem:
        raise StepFailed(f"05_compare scores the models of profile {other!r}, but its output {problem}: "
                         f"run ./run_all.sh {other} first (it retrains them)")


def _check_trainable(paths: Paths) -> None:
    """Training needs train ids: test-only data must name the models it scores (``compare.models_from``)."""
    import pandas as pd

    try:
        splits = pd.read_csv(paths.manifest, dtype=str, keep_default_na=False)["split"]
    except (OSError, ValueError, KeyError):
        return  # no manifest or not a valid one: 02 itself says to run 01 again
    if not (splits == "train").any():
        raise ConfigError(
            f"{paths.manifest} has no training pairs ({int((splits == 'test').sum())} test, "
            f"{int((splits == 'val').sum())} val): to score models trained by another profile on this data, set "
            f"compare: {{models_from: cpu}} in {paths.params_file}; to train, add pairs with a colour image")


def build_index(paths: Paths, records: list[dict[str, Any]]) -> Path:
    """The HTML report (``t2p_utils.compare.report``) over the executed steps."""
    from t2p_utils.compare.report import build_report

    index = build_report(paths, records)
    (paths.reports / OUT_OF_DATE).unlink(missing_ok=True)  # this run's report: no longer out of date
    log.info("report: %s", index)
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m t2p_utils.runner.pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run notebooks 01..05 and write reports/<profile>/index.html")
    r.add_argument("profile", nargs="?", metavar="PROFILE",
                   help=f"{' | '.join(PROFILES)} | path/to/your.yaml (default: full with CUDA, else cpu)")
    r.add_argument("--params", type=Path, help="your own params file (a user profile; same as giving its path)")
    r.add_argument("--force", action="store_true", help="run every step again, ignoring finished ones")
    r.add_argument("--from", dest="start", choices=STEPS, help="run again from this step on")
    r.add_argument("--to", dest="stop", choices=STEPS, help="stop after this step")
    sub.add_parser("default-profile", help="print the profile run_all.sh picks on this machine")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.cmd == "default-profile":
        print(default_profile())
        return 0
    if args.params is not None and args.profile is not None:
        print("error: give a profile or --params, not both", file=sys.stderr)
        return 2
    profile = str(args.params) if args.params is not None else args.profile or default_profile()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_sigint) if main_thread else None
    try:
        paths = Paths.for_profile(profile)
        run(paths.spec, force=args.force, start=args.start, stop=args.stop)
    except ConfigError as exc:  # a line per problem of the params file
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"error: {len(exc.problems)} problems, no step has run: fix them, then run ./run_all.sh {profile} "
                  "again", file=sys.stderr)
        return 1
    except (StepFailed, FileNotFoundError, ProfileBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk outside a step (the lock file, the report): one line too
        full, at = disk_full_where(exc)
        if not full:
            raise
        print(f"error: {disk_full_message(Paths.for_profile(profile), None, at)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        if main_thread:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while stopping: no traceback either
            previous = None
        if not isinstance(exc, Interrupted):  # run() has not said it yet (Ctrl-C outside a step)
            print(f"stopped; run ./run_all.sh {profile} to resume where it stopped", file=sys.stderr)
        _silence_the_rest()
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    print(f"report: {paths.reports / 'index.html'}")
    return 0


def _silence_the_rest() -> None:
    """After the Ctrl-C line: nothing more on the console (asyncio's never-retrieved tasks, "Exception ignored"
    at interpreter exit, ...)."""
    logging.disable(logging.CRITICAL)
    try:
        sys.stderr.flush()
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
