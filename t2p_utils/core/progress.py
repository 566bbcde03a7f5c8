"""Live progress of the notebooks in the terminal that runs ``./run_all.sh``.

papermill executes each notebook in a kernel subprocess, so the ``tqdm`` bars drawn there
only show up inside the executed notebook. This module bridges them to the runner:

* :class:`tqdm` is a drop-in replacement for ``tqdm.auto.tqdm``: it draws the same bar, and
  when the environment variable ``T2P_PROGRESS_FILE`` names a file, it also appends JSON
  lines to it (``start``, throttled ``update``, ``end``)::

      {"t": 1718000000.1, "pid": 4242, "bar": "4242-3", "desc": "train clip", "n": 412,
       "total": 2000, "postfix": "loss=0.0312", "event": "update"}

* :func:`phase` appends one ``{"event": "phase", "desc": ...}`` line for a coarse step
  ("caching latents", "saving pipeline").
* :class:`ProgressWatcher` (used by :func:`t2p_utils.runner.pipeline.run_step`) tails that file in
  a background thread and renders it: one live line rewritten with ``\\r`` on a terminal,
  a few plain lines (bar start and end, phases, one progress line per bar every 30 s)
  when the output goes to a pipe or a CI log.

Each line is written with one ``O_APPEND`` write, so several processes (the kernel and
its workers) can share a file without tearing lines. Writing progress never raises: a
failed write is logged once and the bar carries on.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from tqdm.auto import tqdm as _auto_tqdm

if TYPE_CHECKING:
    from typing import Self

log = logging.getLogger(__name__)

__all__ = [
    "PROGRESS_ENV",
    "ProgressWatcher",
    "format_interval",
    "phase",
    "progress_file",
    "tqdm",
    "trange",
]

PROGRESS_ENV = "T2P_PROGRESS_FILE"
#: at most one ``update`` line per bar per this many seconds (``start`` and ``end`` always)
MIN_INTERVAL_S = 1.0

_ids = itertools.count(1)
_failed_paths: set[str] = set()


def _jsonable(o: Any) -> Any:
    """numpy / torch scalars and the like as plain numbers, anything else as text."""
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _append(path: str, record: dict[str, Any]) -> None:
    """Append one JSON line with a single ``O_APPEND`` write; never raises."""
    data = (json.dumps(record, default=_jsonable) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # one write in practice; the loop only guards against a short write
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        if path not in _failed_paths:
            _failed_paths.add(path)
            log.warning("cannot write progress to %s: %s", path, exc)


def phase(message: str) -> None:
    """Announce a coarse step ("caching latents"): logged, and one ``phase`` event in the progress file."""
    log.info("%s", message)
    path = os.environ.get(PROGRESS_ENV)
    if path:
        _append(path, {"t": time.time(), "pid": os.getpid(), "event": "phase", "desc": str(message)})


@contextmanager
def progress_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Set ``T2P_PROGRESS_FILE`` to ``path`` (absolute) for the block, then restore the previous value.

    Subprocesses started inside the block (a papermill kernel) inherit it.
    """
    p = Path(path).resolve()
    prev = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(p)
    try:
        yield p
    finally:
        if prev is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = prev


class tqdm(_auto_tqdm):
    """``tqdm.auto.tqdm`` that also reports to ``$T2P_PROGRESS_FILE`` when that is set.

    Same signature and behaviour as ``tqdm.auto.tqdm``. The variable is read when the bar
    is created; disabled bars write nothing.
    """

    _t2p_file: str | None = None
    _t2p_id: str = ""
    _t2p_last: float = 0.0
    _t2p_closed: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = os.environ.get(PROGRESS_ENV)
        if path and not self.disable:
            self._t2p_file = path
            self._t2p_id = f"{os.getpid()}-{next(_ids)}"
            self._t2p_emit("start")

    def _t2p_emit(self, event: str, now: float | None = None) -> None:
        if self._t2p_file is None:
            return
        now = time.time() if now is None else now
        self._t2p_last = now
        desc = str(getattr(self, "desc", "") or "").removesuffix(": ")  # set_description appends ": "
        total = getattr(self, "total", None)
        _append(self._t2p_file, {
            "t": now, "pid": os.getpid(), "bar": self._t2p_id, "desc": desc, "n": getattr(self, "n", 0),
            "total": None if total is None or total == float("inf") else total,
            "postfix": str(getattr(self, "postfix", "") or ""), "event": event,
        })

    def _t2p_tick(self) -> None:
        """A throttled ``update`` event."""
        if self._t2p_file is not None and not self._t2p_closed:
            now = time.time()
            if now - self._t2p_last >= MIN_INTERVAL_S:
                self._t2p_emit("update", now)

    def update(self, n: float | None = 1) -> bool | None:
        displayed = super().update(n)
        self._t2p_tick()
        return displayed

    def set_postfix(self, ordered_dict: Any = None, refresh: bool | None = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)
        self._t2p_tick()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=refresh)
        self._t2p_tick()

    def set_description(self, desc: str | None = None, refresh: bool | None = True) -> None:
        super().set_description(desc, refresh=refresh)
        self._t2p_tick()

    def reset(self, total: float | None = None) -> None:
        super().reset(total=total)
        if self._t2p_file is not None and not self._t2p_closed:
            self._t2p_emit("update")

    def close(self) -> None:
        try:
            if self._t2p_file is not None and not self._t2p_closed:
                self._t2p_closed = True
                self._t2p_emit("end")
        except Exception:  # close() also runs from __del__, at interpreter exit too
            log.debug("progress: end event failed", exc_info=True)
        super().close()


def trange(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(range(*args), **kwargs)``, like ``tqdm.auto.trange``."""
    return tqdm(range(*args), **kwargs)


# --------------------------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------------------------


def format_interval(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from one hour on."""
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def _fmt_n(x: float) -> str:
    if isinstance(x, float) and not x.is_integer():
        return f"{x:.1f}"
    return str(int(x))


@dataclass(eq=False)  # compared by identity
class _Bar:
    bar: str
    desc: str
    start_t: float
    last_t: float
    printed_t: float  # event time of the last plain progress line (non-TTY)
    n: float = 0
    total: float | None = None
    postfix: str = ""
    ended: bool = False
    shown_n: float = -1  # n in the last plain line written for this bar
    start_text: str = ""  # its start line, as it was when the bar was first seen
    n0: float | None = None  # n when the bar was first seen (a resumed run's bar starts at its checkpoint's step)

    def counts(self) -> str:
        if self.total:
            return f"{_fmt_n(self.n)}/{_fmt_n(self.total)} {int(100 * self.n / self.total)}%"
        return _fmt_n(self.n)

    def line(self, now: float) -> str:
        """``train clip  412/2000 21% [03:12 < 12:20] loss=0.0312``; the ETA is elapsed/(n-n0)*(total-n), n0 where the
        bar started (0, or the step a resumed run starts from)."""
        elapsed = max(0.0, now - self.start_t)
        done = self.n - (self.n0 or 0)
        if self.total and done > 0:
            eta = (self.last_t - self.start_t) / done * (self.total - self.n) - max(0.0, now - self.last_t)
            clock = f"[{format_interval(elapsed)} < {format_interval(max(0.0, eta))}]"
        elif self.total:
            clock = f"[{format_interval(elapsed)} < ?]"
        else:
            clock = f"[{format_interval(elapsed)}]"
        return " ".join(p for p in (f"{self.desc or 'progress'} ", self.counts(), clock, self.postfix) if p)

    def end_line(self) -> str:
        done = f"done in {format_interval(self.last_t - self.start_t)}"
        return " ".join(p for p in (f"{self.desc or 'progress'} ", self.counts(), done, self.postfix) if p)


class _LiveLineAware:
    """The stream a hooked logging handler writes to while a :class:`ProgressWatcher` draws a live line."""

    def __init__(self, watcher: ProgressWatcher) -> None:
        self._watcher = watcher

    def write(self, text: str) -> int:
        self._watcher._external_write(text)
        return len(text)

    def flush(self) -> None:
        try:
            self._watcher.stream.flush()
        except (OSError, ValueError):
            pass


class ProgressWatcher:
    """Tail a progress file written by :class:`tqdm` / :func:`phase` and render it to ``stream``.

    ``with ProgressWatcher(path, prefix="04_finetune"): run_the_notebook()``

    On a terminal (``stream.isatty()``) one live line is rewritten in place with ``\\r``:
    the most recently updated open bar, else the last phase or ``running`` with the time
    since the start (after ``quiet_s``); phases are kept as lines of their own, and log
    records of root handlers on the same stream are written above the live line. Otherwise plain lines are written only at
    bar start, bar end (with the elapsed time), for each phase, and at most one progress
    line per bar every ``interval_s`` seconds of event time. The file may appear late,
    be truncated, or end in a partial line. Rendering problems are logged, never raised.
    """

    def __init__(self, path: str | os.PathLike[str], prefix: str = "", stream: IO[str] | None = None, *,
                 poll_s: float = 0.5, interval_s: float = 30.0, tty: bool | None = None,
                 width: int | None = None, quiet_s: float = 3.0, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.prefix = prefix
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        self.poll_s = poll_s
        self.interval_s = interval_s
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = tty
        self._width = width
        self.quiet_s = quiet_s  # no "running [mm:ss]" line before this many seconds without any event
        self._clock = clock
        self._t0 = clock()
        self._bars: dict[str, _Bar] = {}
        self._pending: list[_Bar] = []  # started, start line not written yet (non-TTY)
        self._last_phase: tuple[str, float] | None = None
        self._last_ended: _Bar | None = None
        self._offset = 0
        self._ino: int | None = None
        self._buf = b""
        self._live = ""  # the live line as last drawn ("" when none is on screen)
        self._lock = threading.RLock()  # re-entered when a hooked log record comes from the watcher thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broken = False
        self._hooked: list[tuple[logging.StreamHandler[Any], Any]] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self.tty:
            self._hook_logging()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="t2p-progress", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, render what remains, end the live line with a newline."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        error: Exception | None = None
        with self._lock:
            try:
                self._poll_locked()
                self._finish_locked()
            except Exception as exc:  # noqa: BLE001 - progress must never fail the run
                error = exc
        self._unhook_logging()
        if error is not None:
            log.debug("progress watcher: final render failed", exc_info=error)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        """Read the complete lines added since the last poll and render them (the thread calls this)."""
        error: Exception | None = None
        with self._lock:
            try:
                self._poll_locked()
            except Exception as exc:  # noqa: BLE001 - progress must never fail the run
                error = exc
        if error is not None:  # logged outside the lock (see _hook_logging)
            log.debug("progress watcher: poll failed", exc_info=error)

    # -- log records on a terminal ---------------------------------------------------------

    def _hook_logging(self) -> None:
        """Let the root logger's handlers on our stream clear the live line before a record, redraw it after.

        Otherwise a log line (papermill's "Executing notebook ...") lands behind the live line.
        """
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is self.stream:
                old = h.setStream(_LiveLineAware(self))
                if old is not None:
                    self._hooked.append((h, old))

    def _unhook_logging(self) -> None:
        for h, old in self._hooked:
            h.setStream(old)
        self._hooked = []

    def _external_write(self, text: str) -> None:
        got = self._lock.acquire(timeout=1.0)  # bounded: never deadlock against a logging thread
        try:
            live = self._live
            if live:
                self._write("\r\x1b[K")
                self._live = ""
            self._write(text)
            if live and text.endswith("\n"):
                self._draw_live(live)
        finally:
            if got:
                self._lock.release()

    # -- reading --------------------------------------------------------------------------

    def _read_events(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except OSError:  # not there yet
            return []
        if self._ino is not None and (st.st_ino != self._ino or st.st_size < self._offset):
            self._offset, self._buf = 0, b""  # replaced or truncated: read it from the start
        self._ino = st.st_ino
        if st.st_size <= self._offset:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(st.st_size - self._offset)
        except OSError:
            return []
        self._offset += len(data)
        *lines, self._buf = (self._buf + data).split(b"\n")  # the last piece is partial (or b"")
        events = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                ev = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:  # not ours, or torn by a writer that died mid-line: skip it
                continue
            if isinstance(ev, dict):
                events.append(ev)
        return events

    def _poll_locked(self) -> None:
        for ev in self._read_events():
            self._handle(ev)
        self._flush_pending()
        if self.tty:
            self._draw_live(self._live_text(self._clock()))

    # -- events ---------------------------------------------------------------------------

    def _handle(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        try:
            t = float(ev.get("t", self._clock()))
        except (TypeError, ValueError):
            t = self._clock()
        desc = str(ev.get("desc") or "")
        if kind == "phase":
            self._last_phase = (desc, t)
            self._println(desc)
            return
        bid = ev.get("bar")
        if bid is None or kind not in ("start", "update", "end"):
            return
        bar = self._bars.get(str(bid))
        new = bar is None
        if bar is None:
            bar = _Bar(str(bid), desc, start_t=t, last_t=t, printed_t=t)
            self._bars[bar.bar] = bar
        bar.desc, bar.last_t = desc, t
        bar.postfix = str(ev.get("postfix") or "")
        try:
            bar.n = float(ev.get("n") or 0)
            total = ev.get("total")
            bar.total = float(total) if total is not None else None
        except (TypeError, ValueError):
            pass
        if bar.n0 is None:
            bar.n0 = bar.n if kind == "start" else 0.0  # first seen mid-way (a file read late): no known start
        if kind == "end":
            bar.ended = True
            self._last_ended = bar
            if bar in self._pending:  # started and ended since the last line: one line is enough
                self._pending.remove(bar)
            if not self.tty:
                self._println(bar.end_line())
                bar.shown_n = bar.n
            return
        if new and not self.tty:
            bar.start_text = f"{bar.desc or 'progress'}  {bar.counts()} started"
            self._pending.append(bar)
        if kind == "update" and not self.tty and t - bar.printed_t >= self.interval_s:
            self._println(bar.line(t))
            bar.printed_t, bar.shown_n = t, bar.n

    def _finish_locked(self) -> None:
        now = self._clock()
        if self.tty:
            if self._live:
                self._draw_live(self._live_text(now))
                self._write("\n")
                self._live = ""
            return
        for bar in self._bars.values():  # bars that never ended (a failed cell): their last state
            if not bar.ended and bar.n != bar.shown_n:
                self._println(bar.line(bar.last_t))
                bar.shown_n = bar.n

    # -- output ---------------------------------------------------------------------------

    def _head(self) -> str:
        return f"  {self.prefix} | " if self.prefix else "  "

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed stream: stop rendering, keep running
            self._broken = True

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for bar in pending:
            if not bar.ended:
                self._println(bar.start_text, flush=False)

    def _println(self, text: str, flush: bool = True) -> None:
        """A line of its own (clears the live line first on a terminal)."""
        if flush:
            self._flush_pending()
        if self.tty and self._live:
            self._write("\r\x1b[K")
            self._live = ""
        self._write(self._head() + text + "\n")

    def _live_text(self, now: float) -> str:
        active = [b for b in self._bars.values() if not b.ended]
        if active:
            bar = max(active, key=lambda b: b.last_t)  # dict order breaks ties: the latest started
            return self._head() + bar.line(now)
        last = self._last_ended
        if last is not None and (self._last_phase is None or last.last_t >= self._last_phase[1]):
            return self._head() + last.end_line()
        if self._last_phase is None and now - self._t0 < self.quiet_s:
            return ""  # kernel start-up: its own stderr warnings would land behind a live line
        what = self._last_phase[0] if self._last_phase else "running"
        return self._head() + f"{what} [{format_interval(now - self._t0)}]"

    def _columns(self) -> int:
        if self._width:
            return self._width
        try:
            cols = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            cols = 0
        return cols if cols > 0 else shutil.get_terminal_size((100, 24)).columns  # a pty may report 0

    def _draw_live(self, text: str) -> None:
        text = text[: max(10, self._columns() - 1)]
        if text and text != self._live:
            self._write("\r" + text + "\x1b[K")
            self._live = text
