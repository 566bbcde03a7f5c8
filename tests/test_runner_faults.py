"""The runner's faults of issue 22: two runs at once, broken outputs counted as done, a broken checkpoint, Ctrl-C.

Fake notebooks stand in for the study (a kernel start each, ~1-2 s); nothing here trains. The checkpoint fallback
inside real training is tested in tests/test_train.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_pipeline import _notebook  # the one fake-notebook writer of the runner's tests

from t2p_utils.config import Paths, TrainConfig, load_params
from t2p_utils.runner import pipeline
from t2p_utils.train.checkpoints import checkpoint_problem, usable_checkpoint

# 04 stands in for training: it writes a tiny model folder per source (weights that open, a model_index.json)
FAKE_04 = """
import json, os
from pathlib import Path
import torch
from safetensors.torch import save_file
root = Path(os.environ["T2P_ROOT"])
for s in ("cnn_lstm", "clip"):
    d = root / "models" / "smoke" / f"ip2p_{s}"
    (d / "unet").mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.arange(4096, dtype=torch.float32)}, str(d / "unet" / "diffusion_pytorch_model.safetensors"))
    (d / "model_index.json").write_text(json.dumps({"_class_name": "fake"}))
"""
FAKE_05 = """
import os
from pathlib import Path
rep = Path(os.environ["T2P_ROOT"]) / "reports" / "smoke"
(rep / "compare_summary.json").write_text('{"ok": true}')
(rep / "metrics.csv").write_text("model,ssim\\nclip,0.5\\ncnn_lstm,0.4\\n")
"""


@pytest.fixture
def study(tmp_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake notebooks 01..05; each logs "<step> force=<force>" to ran.log; 04 and 05 write outputs."""
    nbdir = tmp_root / "notebooks"
    nbdir.mkdir()
    for step in pipeline.STEPS:
        body = f"open({str(tmp_root / 'ran.log')!r}, 'a').write('{step} force=' + str(force) + '\\n')\n"
        body += {"04_finetune": FAKE_04, "05_compare": FAKE_05}.get(step, "")
        _notebook(nbdir / f"{step}.ipynb", body)
    monkeypatch.setattr(pipeline, "build_index", lambda paths, records: paths.reports / "index.html")
    return tmp_root


def _ran(root: Path) -> list[str]:
    log = root / "ran.log"
    out = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return out


def _cli_env(root: Path) -> dict[str, str]:
    return {**os.environ, "T2P_ROOT": str(root), "OMP_NUM_THREADS": "1"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.1)


# ------------------------------------------------------------------------------ 6: two runs at once
def test_a_second_run_of_the_same_profile_stops_at_once_saying_who_holds_it(
        study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started, go = study / "started", study / "go"
    _notebook(study / "notebooks/01_scrape.ipynb",  # the first run waits in 01 until the test lets it go
              f"import time\nopen({str(started)!r}, 'w').write('x')\n"
              f"while not __import__('os').path.exists({str(go)!r}): time.sleep(0.1)")
    first = subprocess.Popen([sys.executable, "-m", "t2p_utils.runner.pipeline", "run", "smoke", "--to", "01_scrape"],
                             cwd=study, env=_cli_env(study), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(started, first)
        assert pipeline.main(["run", "smoke"]) == 1
        err = capsys.readouterr().err
        assert "profile 'smoke' is busy" in err
        assert f"pid {first.pid} " in err and "since " in err and "pipeline run smoke --to 01_scrape" in err
        assert f"kill {first.pid}" in err and "reports/smoke/run.lock" in err
        assert _ran(study) == []  # the second run touched nothing
    finally:
        go.write_text("x")
        out = first.communicate(timeout=120)[0]
    assert first.returncode == 0, out
    assert pipeline.main(["run", "smoke", "--to", "01_scrape"]) == 0  # the lock is free again


def test_a_killed_run_leaves_no_stale_lock(study: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\nfrom t2p_utils.runner import pipeline\nfrom t2p_utils.config import Paths\n"
                                "with pipeline.profile_lock(Paths.for_profile('smoke')):\n"
                                "    print('held', flush=True)\n    time.sleep(120)")],
        env=_cli_env(study), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    paths = Paths.for_profile("smoke", study)
    with pytest.raises(pipeline.ProfileBusy, match=f"pid {holder.pid} "), pipeline.profile_lock(paths):
        pass
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.wait()
    with pipeline.profile_lock(paths):  # the kernel released the flock with the process
        assert json.loads(pipeline._lock_file(paths).read_text())["pid"] == os.getpid()
    assert pipeline._lock_file(paths).read_text() == ""  # emptied when released


# ------------------------------------------------------------------------------ 7: broken outputs are not done
def _state(root: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((root / "reports/smoke/steps.json").read_text())["steps"]}


def test_a_truncated_or_changed_output_makes_its_step_stale_naming_the_file(
        study: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=pipeline.log.name)
    pipeline.run("smoke", root=study)
    _ran(study)
    unet = "models/smoke/ip2p_clip/unet/diffusion_pytorch_model.safetensors"
    checks = _state(study)["04_finetune"]["checks"]
    assert unet in checks and "models/smoke/ip2p_cnn_lstm/model_index.json" in checks
    assert set(_state(study)["05_compare"]["checks"]) == {"reports/smoke/compare_summary.json",
                                                          "reports/smoke/metrics.csv"}
    pipeline.run("smoke", root=study)
    assert _ran(study) == []  # intact: done

    # the case: one model's weights cut to half their size
    f = study / unet
    size = f.stat().st_size
    os.truncate(f, size // 2)
    caplog.clear()
    pipeline.run("smoke", root=study)
    assert f"04_finetune: its output {unet} is {size // 2} bytes, {size} when 04_finetune finished" in caplog.text
    assert _ran(study) == ["04_finetune force=True", "05_compare force=False"]  # forced: 04's skip would keep it

    # same size, other content (a rewrite): the hash says so
    metrics = study / "reports/smoke/metrics.csv"
    metrics.write_text(metrics.read_text().replace("0.5", "0.9"))
    caplog.clear()
    pipeline.run("smoke", root=study)
    assert "05_compare: its output reports/smoke/metrics.csv changed since 05_compare finished" in caplog.text
    assert _ran(study) == ["05_compare force=True"]


def test_weights_that_do_not_open_make_a_step_stale_also_without_recorded_hashes(
        study: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipeline.run("smoke", root=study)
    _ran(study)
    state = json.loads((study / "reports/smoke/steps.json").read_text())
    for s in state["steps"]:
        s.pop("checks")  # as recorded before hashes existed (the cpu models trained before this change)
    (study / "reports/smoke/steps.json").write_text(json.dumps(state))
    pipeline.run("smoke", root=study)
    assert _ran(study) == []  # an old record is not a reason to retrain ...
    assert _state(study)["04_finetune"]["checks"]  # ... its hashes are taken now
    for s in state["steps"]:
        s.pop("checks", None)
    (study / "reports/smoke/steps.json").write_text(json.dumps(state))
    f = study / "models/smoke/ip2p_cnn_lstm/unet/diffusion_pytorch_model.safetensors"
    os.truncate(f, f.stat().st_size - 100)
    caplog.set_level(logging.INFO, logger=pipeline.log.name)
    pipeline.run("smoke", root=study)
    assert ("04_finetune: its output models/smoke/ip2p_cnn_lstm/unet/diffusion_pytorch_model.safetensors does not "
            "open (SafetensorError") in caplog.text
    assert _ran(study) == ["04_finetune force=True", "05_compare force=False"]


# ------------------------------------------------------------------------------ 8: a broken checkpoint
def _checkpoint(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(2048, generator=g)}, str(folder / "model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.randn(2048, generator=g)}}}, folder / "optimizer.bin")
    (folder / "train_log.csv").write_text("step,loss\n1,0.5\n")
    return folder


def test_a_broken_checkpoint_falls_back_to_the_one_before_then_to_a_fresh_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "runs/ip2p_clip"
    c2, c4 = _checkpoint(run_dir / "checkpoint-2", 2), _checkpoint(run_dir / "checkpoint-4", 4)
    assert checkpoint_problem(c4) is None and usable_checkpoint([c2, c4]) == c4
    w = c4 / "model.safetensors"
    os.truncate(w, w.stat().st_size // 2)
    with caplog.at_level(logging.WARNING):
        assert usable_checkpoint([c2, c4]) == c2
    assert f"checkpoint checkpoint-4 is broken ({w}: SafetensorError" in caplog.text
    assert "resuming from checkpoint-2 instead" in caplog.text
    assert not c4.exists() and (run_dir / "broken-checkpoint-4/model.safetensors").exists()  # no run picks it again

    opt = c2 / "optimizer.bin"  # one flipped byte inside the zip: its CRC check fails
    data = bytearray(opt.read_bytes())
    data[len(data) // 3] ^= 0xFF
    opt.write_bytes(data)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert usable_checkpoint([c2], move_aside=False) is None
    assert f"checkpoint checkpoint-2 is broken ({opt}:" in caplog.text and "starting a new run" in caplog.text
    assert c2.exists()  # move_aside=False (not the main process) leaves it
    (c2 / "train_log.csv").unlink()  # a save killed before its end
    assert "the checkpoint was not saved to the end" in checkpoint_problem(c2)


# ------------------------------------------------------------------------------ 9: Ctrl-C ends on one line
def test_ctrl_c_ends_on_the_resume_line_and_leaves_no_kernel(study: Path) -> None:
    started = study / "started"
    _notebook(study / "notebooks/01_scrape.ipynb",
              f"import os, time\nopen({str(started)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)")
    # a terminal's Ctrl-C: SIGINT to the foreground process group (the runner's; jupyter_client puts the kernel in
    # its own session)
    proc = subprocess.Popen([sys.executable, "-m", "t2p_utils.runner.pipeline", "run", "smoke"], cwd=study,
                            env=_cli_env(study), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    _wait_for(started, proc)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[-1].endswith("01_scrape stopped (Ctrl-C). Resume it with: ./run_all.sh smoke"), out
    for noise in ("Traceback", "KeyboardInterrupt", "Task", "CellExecutionError", "DeadKernelError", "stopped; run"):
        assert noise not in out, out
    kernel = int(started.read_text())
    t0 = time.time()
    while time.time() - t0 < 10:
        stat = Path(f"/proc/{kernel}/stat")
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie nobody reaped yet: dead
                break
        except (OSError, IndexError):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the kernel (pid {kernel}) outlived the Ctrl-C")
    assert _state(study)["01_scrape"]["status"] == "interrupted"  # the next run resumes it
    assert (study / "reports/smoke/progress/01_scrape.stderr").exists()  # the kernel's own console, kept


# ============================================================================== issue 24
def _session_members(sid: int) -> set[int]:
    """Live (not zombie) processes of session ``sid``: a kernel is its session's leader (jupyter_client), its
    workers and their helpers (multiprocessing's resource tracker) share the session."""
    found = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            found.add(int(d.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_the_runner_leaves_no_kernel_or_training_worker_alive(study: Path) -> None:
    """1: ``kill -9`` of the runner while train_all's worker processes run (t2p_utils.train.loop.worker_pool, as 04
    starts them): the kernel exits (ipykernel polls its parent) and the workers die with it."""
    pids = study / "pids.json"
    _notebook(study / "notebooks/01_scrape.ipynb", f"""
import json, os, time
from t2p_utils.train.loop import worker_pool
pool = worker_pool(2)
[f.result() for f in [pool.submit(os.getpid) for _ in range(4)]]  # the initializer has run in each started worker
busy = [pool.submit(time.sleep, 300) for _ in range(2)]           # training, for as long as the test lasts
while not all(f.running() for f in busy):
    time.sleep(0.05)
open({str(pids)!r} + ".part", "w").write(json.dumps({{"kernel": os.getpid(), "workers": list(pool._processes)}}))
os.replace({str(pids)!r} + ".part", {str(pids)!r})
time.sleep(300)
""")
    runner = subprocess.Popen([sys.executable, "-m", "t2p_utils.runner.pipeline", "run", "smoke", "--to", "01_scrape"],
                              cwd=study, env=_cli_env(study), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(pids, runner)
        got = json.loads(pids.read_text())
        kernel, workers = got["kernel"], set(got["workers"])
        members = _session_members(kernel)
        assert len(workers) == 2 and workers <= members and kernel in members
    finally:
        runner.kill()  # SIGKILL: nothing of the runner's own runs
        runner.wait()
    t0 = time.time()
    while (alive := _session_members(kernel)) and time.time() - t0 < 10:
        time.sleep(0.2)
    for pid in alive:  # leave nothing behind for the next test, then fail
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"alive 10 s after kill -9 of the runner: {sorted(alive)} (kernel {kernel}, workers {workers})"


# a run whose disk fills in 04: the kernel's write fails, then papermill's save of the executed notebook is cut short
# (the NotJSONError came from converting that half notebook to HTML); build_report stands in for the report
DISK_FULL_RUNNER = """
import errno, os, sys
from pathlib import Path
import nbformat
import papermill.engines
import t2p_utils.compare.report
from t2p_utils.runner import pipeline

full = Path(sys.argv[1])
real_write = papermill.engines.write_ipynb

def write_ipynb(nb, path):
    if full.exists() and "04_finetune" in str(path):
        text = nbformat.writes(nb)
        Path(path).write_text(text[: len(text) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_write(nb, path)

def build_report(paths, records):
    out = paths.reports / "index.html"
    out.write_text("<html><body>\\n<h1>t2p report</h1>\\n" + "".join(r["name"] + " " + r["status"] + "\\n"
                   for r in records) + "</body></html>\\n")
    return out

papermill.engines.write_ipynb = write_ipynb
t2p_utils.compare.report.build_report = build_report
sys.exit(pipeline.main(sys.argv[2:]))
"""


def test_a_full_disk_ends_on_one_line_the_report_is_marked_and_a_run_with_room_finishes(study: Path) -> None:
    """3 and 4: the last line says the disk is full, where, and about how much 04 needs; the earlier report carries
    a banner naming the step; the next run, with room again, finishes past the half-written files."""
    full = study / "disk_is_full"
    runner = study / "runner.py"
    runner.write_text(DISK_FULL_RUNNER)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(runner), str(full), "run", "smoke", *args], cwd=study,
                              env=_cli_env(study), capture_output=True, text=True, timeout=240, check=False)

    first = cli()
    assert first.returncode == 0, first.stderr
    index = study / "reports/smoke/index.html"
    assert "05_compare ok" in index.read_text() and not (study / "reports/smoke/OUT_OF_DATE.txt").exists()
    _ran(study)

    # the disk fills in 04: the kernel's own write fails, and so does papermill's save of the executed notebook
    _notebook(study / "notebooks/04_finetune.ipynb",
              f"open({str(study / 'ran.log')!r}, 'a').write('04_finetune force=' + str(force) + '\\n')\n"
              f"open({str(full)!r}, 'w').close()\n"
              "import errno, os\n"
              "from pathlib import Path\n"
              "d = Path(os.environ['T2P_ROOT']) / 'models/smoke/ip2p_clip'\n"
              "(d / '.diffusion_pytorch_model.safetensors.x1y2.part').write_bytes(b'half')  # t2p_utils.core.io's temp file\n"
              "os.utime(d / '.diffusion_pytorch_model.safetensors.x1y2.part', (1, 1))\n"
              "raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(d / 'unet/diffusion_pytorch_model.safetensors'))")
    run = cli("--from", "04_finetune")  # forced from 04 on, as --force is
    assert run.returncode == 1
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
    last = lines[-1]
    assert last.startswith("error: 04_finetune stopped: the disk is full ("), run.stderr
    assert "models/smoke/ip2p_clip" in last and " free of " in last  # where, and how much room there is
    assert "04_finetune needs about " in last and "its outputs last time: " in last  # from the run before
    assert "then run ./run_all.sh smoke again" in last
    for noise in ("Traceback", "NotJSONError", "PapermillExecutionError"):
        assert noise not in run.stderr, run.stderr
    assert _state(study)["04_finetune"]["status"] == "failed" and _ran(study)[-1] == "04_finetune force=True"
    page = index.read_text()
    assert page.startswith("<html><body>\n<!-- t2p:out-of-date -->")  # at the top of the old report
    assert "Out of date: 04_finetune failed at " in page and "the disk is full" in page
    assert "This page, metrics.csv, compare_summary.json are from the run that finished at " in page
    stale = (study / "reports/smoke/OUT_OF_DATE.txt").read_text()
    assert "04_finetune failed" in stale and "metrics.csv" in stale

    # room again: the 04 notebook as it was, the next run resumes at 04 and finishes
    full.unlink()
    _notebook(study / "notebooks/04_finetune.ipynb",
              f"open({str(study / 'ran.log')!r}, 'a').write('04_finetune force=' + str(force) + '\\n')\n" + FAKE_04)
    _ran(study)
    again = cli()
    assert again.returncode == 0, again.stderr
    assert _ran(study) == ["04_finetune force=False", "05_compare force=False"]
    assert not list((study / "models/smoke/ip2p_clip").glob(".*.part"))  # the half-written file, removed
    assert "removed models/smoke/ip2p_clip/.diffusion_pytorch_model.safetensors.x1y2.part" in again.stderr
    assert "out-of-date" not in index.read_text() and not (study / "reports/smoke/OUT_OF_DATE.txt").exists()
    assert (study / "reports/smoke/notebooks/04_finetune.html").exists()


def test_disk_full_is_told_from_the_error_and_from_the_room_left(tmp_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3: how a full disk reads (Python's OSError, safetensors' Rust error in a kernel's traceback, torch's writer that
    says only "file write failed" while almost nothing is free) and the one line made of it."""
    import errno

    paths = Paths.for_profile("smoke", tmp_root)
    err = OSError(errno.ENOSPC, "No space left on device", "/data/x.png")
    assert pipeline.disk_full_where(RuntimeError("wrapped")) == (False, None)
    try:
        raise RuntimeError("save failed") from err
    except RuntimeError as exc:
        assert pipeline.disk_full_where(exc) == (True, "/data/x.png")
    assert pipeline.disk_full_where(None, "SafetensorError: IoError(Os { code: 28, kind: StorageFull })")[0]
    assert pipeline.disk_full_where(None, "OSError: [Errno 28] No space left on device: '/m/a.bin'") == (True, "/m/a.bin")
    torch_says = RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file")
    monkeypatch.setattr(pipeline, "_free_bytes", lambda p: (3 << 20, 30 << 20))
    assert pipeline._stopped_by_full_disk(paths, "04_finetune", torch_says) == (True, None)
    monkeypatch.setattr(pipeline, "_free_bytes", lambda p: (5 << 30, 50 << 30))
    assert pipeline._stopped_by_full_disk(paths, "04_finetune", torch_says) == (False, None)  # room: another fault
    monkeypatch.setattr(pipeline, "_free_bytes", lambda p: (0, 30_000_000))
    line = pipeline.disk_full_message(paths, "04_finetune", None, recorded=12_500_000)
    assert "\n" not in line
    assert line.startswith(f"04_finetune stopped: the disk is full ({paths.models / 'ip2p_clip'}, on /")
    assert ": 0 B free of 30.0 MB); 04_finetune needs about 12.5 MB there (its outputs last time: 12.5 MB). " in line
    (paths.models / "runs").mkdir(parents=True)
    (paths.models / "runs/x.bin").write_bytes(b"0" * 20_000_000)  # what the folders hold now counts too
    line = pipeline.disk_full_message(paths, "04_finetune", "/m/a.bin", recorded=12_500_000)
    assert "(/m/a.bin, on /: " in line
    assert "needs about 20.0 MB there (its outputs last time: 12.5 MB; models/smoke/runs now hold 20.0 MB)" in line


_real_build_index = pipeline.build_index  # before the study fixture replaces it


def test_a_failed_step_marks_the_last_report_out_of_date_until_a_run_finishes(
        study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4: a failing cell in 02: the report of the earlier run gets a banner naming the step and the cell (and
    OUT_OF_DATE.txt beside metrics.csv); the run that finishes writes a report without them."""
    import t2p_utils.compare.report

    monkeypatch.setattr(pipeline, "build_index", _real_build_index)  # the study fixture's stand-in writes nothing
    monkeypatch.setattr(t2p_utils.compare.report, "build_report", lambda paths, records: (
        (paths.reports / "index.html").write_text("<html><head></head><body class='r'>\n<p>fresh</p></body></html>"),
        paths.reports / "index.html")[1])
    to = "02_cnn_lstm_captioning"  # the report is written after the last step run, here 02 (fewer kernels to start)
    pipeline.run("smoke", root=study, stop=to)
    index = study / "reports/smoke/index.html"
    assert "Out of date" not in index.read_text()
    _notebook(study / "notebooks/02_cnn_lstm_captioning.ipynb", "raise ValueError('bad captions')")
    with pytest.raises(pipeline.StepFailed):
        pipeline.run("smoke", root=study, start="02_cnn_lstm_captioning", stop=to)
    page = index.read_text()
    assert page.startswith("<html><head></head><body class='r'>\n<!-- t2p:out-of-date --><div ")
    assert "Out of date: 02_cnn_lstm_captioning failed at " in page and "ValueError: bad captions" in page
    assert page.count("t2p:out-of-date -->") == 2  # one banner: the "runs again" one was replaced
    assert "02_cnn_lstm_captioning failed" in (study / "reports/smoke/OUT_OF_DATE.txt").read_text()
    _notebook(study / "notebooks/02_cnn_lstm_captioning.ipynb", "x = 1")
    pipeline.run("smoke", root=study, stop=to)
    assert index.read_text().endswith("<p>fresh</p></body></html>")
    assert not (study / "reports/smoke/OUT_OF_DATE.txt").exists()


def test_a_resumed_04_names_its_checkpoints(study: Path, caplog: pytest.LogCaptureFixture) -> None:
    """5: ``resuming 04_finetune from checkpoint-15 of 30`` (smoke trains 30 steps, a checkpoint every 15)."""
    pipeline.run("smoke", root=study, stop="04_finetune")
    state = json.loads((study / "reports/smoke/steps.json").read_text())
    for s in state["steps"]:
        if s["name"] == "04_finetune":
            s["status"] = "interrupted"  # as a killed run leaves it
    (study / "reports/smoke/steps.json").write_text(json.dumps(state))
    train = load_params("smoke", study)["train"]
    total, every = train["max_train_steps"], train["checkpointing_steps"]
    for source in train["sources"]:
        for n in (every, 2 * every) if 2 * every < total else (every,):
            (study / f"models/smoke/runs/ip2p_{source}/checkpoint-{n}").mkdir(parents=True)
            (study / f"models/smoke/runs/ip2p_{source}/checkpoint-{n}/train_log.csv").write_text("step\n1\n")
    latest = max(n for n in (every, 2 * every) if 2 * every < total or n == every)
    (study / f"models/smoke/runs/ip2p_clip/checkpoint-{total}").mkdir()  # a save cut short: no train_log.csv
    caplog.set_level(logging.INFO, logger=pipeline.log.name)
    pipeline.run("smoke", root=study, stop="04_finetune")
    assert f"04_finetune: interrupted earlier; resuming 04_finetune from checkpoint-{latest} of {total}" in caplog.text
    paths = Paths.for_profile("smoke", study)
    for ckpt in (paths.models / "runs/ip2p_cnn_lstm").glob("checkpoint-*"):
        ckpt.rename(ckpt.with_name(f"x{ckpt.name}"))
    train = TrainConfig(max_train_steps=30, sources=["cnn_lstm", "clip"])
    assert pipeline.resume_point(paths, "04_finetune", train) == (
        f"resuming 04_finetune from its start (no checkpoint yet) (cnn_lstm), checkpoint-{latest} of 30 (clip)")


def test_a_resumed_bar_counts_its_eta_from_where_it_started(tmp_path: Path) -> None:
    """5: a bar that starts at step 15 of 30 (resumed) and reaches 20 in 10 s has 10 s per 5 steps: 20 s to go."""
    import io

    from t2p_utils.core.progress import ProgressWatcher

    f = tmp_path / "p.jsonl"
    ev = {"pid": 1, "bar": "1-1", "desc": "train clip", "total": 30, "postfix": ""}
    f.write_text(json.dumps({**ev, "t": 100.0, "n": 15, "event": "start"}) + "\n"
                 + json.dumps({**ev, "t": 110.0, "n": 20, "event": "update"}) + "\n")
    out = io.StringIO()
    w = ProgressWatcher(f, prefix="04_finetune", stream=out, interval_s=5)
    w.poll()
    w.stop()
    assert "04_finetune | train clip  15/30 50% started" in out.getvalue()
    assert "train clip  20/30 66% [00:10 < 00:20]" in out.getvalue()
