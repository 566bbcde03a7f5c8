"""Live progress: the notebooks' bars reach the runner's terminal through T2P_PROGRESS_FILE."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from t2p_utils.config import Paths
from t2p_utils.core import progress
from t2p_utils.core.progress import PROGRESS_ENV, ProgressWatcher, phase, tqdm
from t2p_utils.runner import pipeline


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, *events: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps(ev) + "\n" for ev in events)


def _ev(event: str, t: float, n: float = 0, total: float | None = 1000, bar: str = "1-1", desc: str = "train clip",
        postfix: str = "") -> dict[str, Any]:
    return {"t": t, "pid": 1, "bar": bar, "desc": desc, "n": n, "total": total, "postfix": postfix, "event": event}


@pytest.fixture
def pfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    f = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(f))
    return f


# --------------------------------------------------------------------------------------------
# the bar
# --------------------------------------------------------------------------------------------


def test_bar_writes_start_throttled_updates_and_end(pfile: Path) -> None:
    with tqdm(total=10_000, desc="work", leave=False) as bar:
        for _ in range(10_000):
            bar.update(1)
        bar.set_postfix(loss=0.5)
    evs = _events(pfile)
    assert evs[0]["event"] == "start" and evs[0]["n"] == 0 and evs[0]["total"] == 10_000 and evs[0]["desc"] == "work"
    assert evs[-1]["event"] == "end" and evs[-1]["n"] == 10_000 and evs[-1]["postfix"] == "loss=0.5"
    assert len(evs) < 20  # throttled: at most one update per second
    assert {e["event"] for e in evs[1:-1]} <= {"update"}
    assert len({e["bar"] for e in evs}) == 1 and evs[0]["pid"] == os.getpid()
    assert bar.n == 10_000  # still a real tqdm


def test_iteration_reports_updates_when_the_throttle_allows(pfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)
    out = [x for x in tqdm(range(5), desc="it", mininterval=0, miniters=1)]
    assert out == list(range(5))
    evs = _events(pfile)
    assert [e["event"] for e in evs] == ["start"] + ["update"] * 5 + ["end"]
    assert [e["n"] for e in evs] == [0, 1, 2, 3, 4, 5, 5]
    assert all(e["total"] == 5 and e["desc"] == "it" for e in evs)

    pfile.unlink()
    bar = tqdm(total=None, desc="first")
    bar.set_description("renamed")  # tqdm stores "renamed: "; the event carries the plain name
    bar.close()
    bar.close()  # a second close writes nothing
    evs = _events(pfile)
    assert [e["event"] for e in evs] == ["start", "update", "end"]
    assert evs[0]["total"] is None and evs[-1]["desc"] == "renamed"


def test_no_file_without_the_variable_and_none_for_disabled_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    for _ in tqdm(range(100), desc="quiet"):
        pass
    phase("nothing to write to")
    assert list(tmp_path.iterdir()) == []

    f = tmp_path / "p.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(f))
    for _ in tqdm(range(100), desc="off", disable=True):
        pass
    with tqdm(total=3, disable=True) as bar:
        bar.update(3)
    assert not f.exists()


def test_phase_event_and_concurrent_writers_keep_whole_lines(pfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)
    phase("caching latents")

    def work(k: int) -> None:
        with tqdm(total=200, desc=f"w{k}") as bar:
            for _ in range(200):
                bar.update(1)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    evs = _events(pfile)  # every line parses
    assert evs[0]["event"] == "phase" and evs[0]["desc"] == "caching latents"
    ends = [e for e in evs if e["event"] == "end"]
    assert sorted(e["desc"] for e in ends) == ["w0", "w1", "w2", "w3"] and {e["n"] for e in ends} == {200}
    assert len({e["bar"] for e in ends}) == 4


# --------------------------------------------------------------------------------------------
# the watcher
# --------------------------------------------------------------------------------------------


def test_watcher_plain_lines_when_not_a_terminal(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = io.StringIO()
    t0 = 1_000_000.0
    w = ProgressWatcher(f, prefix="04_finetune", stream=out, interval_s=30)
    assert not w.tty
    _write(f, {"t": t0, "pid": 1, "event": "phase", "desc": "caching latents"}, _ev("start", t0))
    w.poll()
    _write(f, *[_ev("update", t0 + s, n=10 * s, postfix="loss=0.03") for s in range(1, 100)])  # one per second
    w.poll()
    _write(f, _ev("end", t0 + 100, n=1000, postfix="loss=0.02"))
    w.stop()
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert lines[0] == "  04_finetune | caching latents"
    assert lines[1] == "  04_finetune | train clip  0/1000 0% started"
    progress_lines = lines[2:-1]
    assert 1 <= len(progress_lines) <= 100 // 30  # at most one every 30 s of event time
    assert progress_lines[0] == "  04_finetune | train clip  300/1000 30% [00:30 < 01:10] loss=0.03"
    assert lines[-1] == "  04_finetune | train clip  1000/1000 100% done in 01:40 loss=0.02"


def test_watcher_one_line_for_a_bar_that_starts_and_ends_between_polls(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = io.StringIO()
    with ProgressWatcher(f, prefix="05_compare", stream=out, poll_s=60):
        _write(f, _ev("start", 10.0, total=4, desc="render"), _ev("end", 11.0, n=4, total=4, desc="render"),
               _ev("start", 12.0, n=0, total=None, bar="1-2", desc="never closed"),
               _ev("update", 13.0, n=7, total=None, bar="1-2", desc="never closed"))
    assert out.getvalue().splitlines() == [
        "  05_compare | render  4/4 100% done in 00:01",
        "  05_compare | never closed  0 started",
        "  05_compare | never closed  7 [00:01]",  # its last state, on exit
    ]


def test_watcher_rewrites_one_live_line_on_a_terminal(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = FakeTTY()
    t0 = 5_000.0
    now = [t0 + 10]
    w = ProgressWatcher(f, prefix="04_finetune", stream=out, width=200, clock=lambda: now[0])
    assert w.tty
    _write(f, _ev("start", t0), _ev("update", t0 + 5, n=50), _ev("update", t0 + 10, n=100, postfix="loss=0.0312"))
    w.poll()
    assert out.getvalue() == "\r  04_finetune | train clip  100/1000 10% [00:10 < 01:30] loss=0.0312\x1b[K"
    now[0] = t0 + 20  # no new event: the clock moves on, the ETA counts down
    w.poll()
    assert out.getvalue().endswith("\r  04_finetune | train clip  100/1000 10% [00:20 < 01:20] loss=0.0312\x1b[K")
    _write(f, {"t": t0 + 21, "pid": 1, "event": "phase", "desc": "saving pipeline"},
           _ev("end", t0 + 22, n=1000))
    w.stop()
    text = out.getvalue()
    assert "\r\x1b[K  04_finetune | saving pipeline\n" in text  # phases stay, on a line of their own
    assert text.endswith("\r  04_finetune | train clip  1000/1000 100% done in 00:22\x1b[K\n")
    assert text.count("\n") == 2


def test_live_line_between_bars_shows_the_step_clock_and_the_last_phase(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = FakeTTY()
    now = [100.0]
    w = ProgressWatcher(f, prefix="04_finetune", stream=out, width=200, quiet_s=3, clock=lambda: now[0])
    w.poll()
    assert out.getvalue() == ""  # kernel start-up: nothing yet
    now[0] = 105.0
    w.poll()
    assert out.getvalue() == "\r  04_finetune | running [00:05]\x1b[K"
    _write(f, {"t": 105.5, "pid": 1, "event": "phase", "desc": "caching latents"})
    now[0] = 106.0
    w.stop()
    assert out.getvalue().endswith(
        "\r\x1b[K  04_finetune | caching latents\n\r  04_finetune | caching latents [00:06]\x1b[K\n")


def test_log_records_do_not_land_behind_the_live_line(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = FakeTTY()
    _write(f, _ev("start", 1.0, total=10))
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        w = ProgressWatcher(f, prefix="s", stream=out, width=200, poll_s=60, clock=lambda: 1.0)
        with w:
            w.poll()
            logging.getLogger("papermill").info("Executing notebook")
            assert handler.stream is not out
        assert handler.stream is out  # handed back
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    live = "\r  s | train clip  0/10 0% [00:00 < ?]\x1b[K"
    assert out.getvalue() == live + "\r\x1b[KExecuting notebook\n" + live + "\n"


def test_watcher_live_line_is_cut_to_the_terminal_width(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = FakeTTY()
    _write(f, _ev("start", 1.0, desc="x" * 300))
    with ProgressWatcher(f, stream=out, width=80, poll_s=60):
        pass
    first = out.getvalue().split("\x1b[K")[0]
    assert first.startswith("\r") and len(first) == 1 + 79


def test_watcher_copes_with_a_late_file_partial_lines_and_truncation(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "p.jsonl"
    out = io.StringIO()
    w = ProgressWatcher(f, prefix="s", stream=out)
    w.poll()  # no file yet
    assert out.getvalue() == ""
    f.parent.mkdir()
    line = json.dumps(_ev("start", 1.0, desc="late")) + "\n"
    with open(f, "a") as fh:
        fh.write(line[:25])  # a writer caught mid-line
    w.poll()
    assert out.getvalue() == ""
    with open(f, "a") as fh:
        fh.write(line[25:] + "not json\n")
    w.poll()
    assert out.getvalue() == "  s | late  0/1000 0% started\n"
    f.write_text(json.dumps({"t": 2.0, "event": "phase", "desc": "after truncation"}) + "\n")  # shorter: truncated
    w.stop()
    assert out.getvalue().splitlines()[1:] == ["  s | after truncation", "  s | late  0/1000 0% [00:00 < ?]"]


def test_watcher_thread_follows_a_live_bar(pfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)
    out = io.StringIO()
    with ProgressWatcher(pfile, prefix="02_cnn_lstm_captioning", stream=out, poll_s=0.02):
        time.sleep(0.1)  # the file appears late
        bar = tqdm(total=3, desc="cnn-lstm")
        deadline = time.monotonic() + 5
        while "started" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "  02_cnn_lstm_captioning | cnn-lstm  0/3 0% started" in out.getvalue()  # seen while running
        bar.update(3)
        bar.close()
    assert out.getvalue().splitlines()[-1].startswith("  02_cnn_lstm_captioning | cnn-lstm  3/3 100% done in 00:0")


def test_watcher_never_raises_on_a_closed_stream(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    out = io.StringIO()
    out.close()
    _write(f, _ev("start", 1.0))
    with ProgressWatcher(f, stream=out, poll_s=0.01):
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("previous", [None, "/somewhere/else.jsonl"])
def test_run_step_points_the_kernel_at_a_fresh_progress_file_and_shows_it(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], previous: str | None
) -> None:
    import papermill

    if previous is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, previous)
    paths = Paths.for_profile("smoke", tmp_root)
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    src = paths.notebooks / "04_finetune.ipynb"
    src.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    pfile = paths.reports / "progress" / "04_finetune.jsonl"
    pfile.parent.mkdir(parents=True)
    _write(pfile, {"t": 1.0, "event": "phase", "desc": "stale from an earlier run"})
    seen: dict[str, Any] = {}

    def fake_execute(input_path: str, output_path: str, **kwargs: Any) -> None:
        seen["env"] = os.environ.get(PROGRESS_ENV)
        seen["kwargs"] = kwargs
        phase("caching latents")
        for _ in tqdm(range(3), desc="train clip", file=io.StringIO()):  # its own bar elsewhere
            pass
        shutil.copy(input_path, output_path)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(pipeline, "to_html", lambda ipynb, html: None)
    res = pipeline.run_step(paths, "04_finetune")

    assert res.status == "ok"
    assert seen["env"] == str(pfile.resolve())
    assert seen["kwargs"]["cwd"] == str(paths.notebooks)
    assert os.environ.get(PROGRESS_ENV) == previous  # restored
    err = capsys.readouterr().err
    assert "stale" not in err and "\r" not in err
    assert "  04_finetune | caching latents\n" in err
    assert "  04_finetune | train clip  3/3 100% done in 00:00\n" in err
    assert [e["event"] for e in _events(pfile)] == ["phase", "start", "end"]


def test_run_step_restores_the_variable_when_the_notebook_fails(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    paths = Paths.for_profile("smoke", tmp_root)
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    (paths.notebooks / "01_scrape.ipynb").write_text("{}")

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", boom)
    with pytest.raises(pipeline.StepFailed, match="01_scrape failed"):
        pipeline.run_step(paths, "01_scrape")
    assert PROGRESS_ENV not in os.environ
