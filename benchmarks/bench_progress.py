"""What a user sees of a notebook step's progress: the runner's bridge (t2p_utils.core.progress) vs papermill's own
output streaming, each in a terminal (a pseudo-terminal, 120 columns) and in a CI log (a pipe to a file).

    .venv/bin/python benchmarks/bench_progress.py                 # tiny bar notebook (4 ways) + 01_scrape (2 ways)
    .venv/bin/python benchmarks/bench_progress.py --no-scrape     # only the tiny bar notebook (about 2 min)
    .venv/bin/python benchmarks/bench_progress.py --out /tmp/t2p_bench_progress

The ways (each a fresh child process, its own temporary root with params/, data/families.csv and notebooks/):

* ``bridge``      t2p_utils.runner.pipeline.run_step(paths, "01_scrape"): papermill with log_output=False, the kernel's
                  t2p_utils.core.progress bars redrawn by ProgressWatcher (what ./run_all.sh does today)
* ``pm-log``      papermill.execute_notebook(log_output=True, progress_bar=False): cell stdout/stderr through the
                  "papermill" logger (the smallest change to run_step)
* ``pm-log+bar``  the same with progress_bar=True (papermill's per-cell "Executing" bar, as ``papermill --log-output``)
* ``pm-files``    execute_notebook(stdout_file=sys.stdout, stderr_file=sys.stderr, progress_bar=False): the kernel's
                  stream text written raw, without the logger

The notebooks:

* ``tiny``   a notebook written here (stored as notebooks/01_scrape.ipynb of its root so that run_step accepts it): a
             120-step loop with ``t2p_utils.core.progress.tqdm`` (desc ``t2p_tqdm``, ~6 s) and one with plain
             ``tqdm.auto.tqdm`` (desc ``plain_auto``, ~6 s), a print and a log line
* ``scrape`` the real notebooks/01_scrape.ipynb on the smoke profile (48 synthetic creatures; it draws no bar: the
             derive bar is disabled under 50 rows, synthetic data renders no SVG)

Per case it records the raw capture (``<out>/<case>.<tty|log>.raw``), its bytes, newlines, bare carriage returns (a
``\\r`` not followed by ``\\n``: the pty's own ``\\r\\n`` does not count), what a terminal is left showing (a small
emulator: ``\\r``, ``\\n``, ``ESC[K``, ``ESC[nA``, wrapping at 120 columns; ``<case>.tty.screen``), and per bar how
often it is drawn (segments between ``\\r``/``\\n`` that name it), how many physical log lines hold it, whether a
percentage and an ETA show, and the wall time. A table is printed and ``<out>/summary.json`` written. Timings are
indicative: the machine's cores are shared.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COLS, ROWS = 120, 40
BARS = ("t2p_tqdm", "plain_auto", "Executing:")  # the two notebook bars and papermill's own cell bar
MARKERS = {"print": "tiny: hello from a print", "log": "tiny: a log line", "scrape log": "wrote 48 synthetic"}

TINY_CELLS = [
    ('import logging, time\nlogging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")\n'
     'print("tiny: hello from a print")\nlogging.getLogger("tiny").info("tiny: a log line")'),
    ('from t2p_utils.core.progress import tqdm as t2p_tqdm\n'
     'for i in t2p_tqdm(range(120), desc="t2p_tqdm"):\n    time.sleep(0.05)'),
    'from tqdm.auto import tqdm\nfor i in tqdm(range(120), desc="plain_auto"):\n    time.sleep(0.05)',
    'print("tiny: done")',
]

WAYS = ("bridge", "pm-log", "pm-log+bar", "pm-files")


# ------------------------------------------------------------------------------------------------ the child


def child(way: str, root: Path) -> int:
    """Run notebooks/01_scrape.ipynb of ``root`` (smoke profile) one way; output goes to this process's stdout/err."""
    import logging

    from t2p_utils.config.params import Paths

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    paths = Paths.for_profile("smoke", root)
    if way == "bridge":
        from t2p_utils.runner.pipeline import run_step

        run_step(paths, "01_scrape")
        return 0
    import papermill as pm

    out = paths.reports / "notebooks" / "01_scrape.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    kw: dict[str, Any] = {"log_output": True, "progress_bar": way == "pm-log+bar"}
    if way == "pm-files":
        kw = {"log_output": False, "progress_bar": False, "stdout_file": sys.stdout, "stderr_file": sys.stderr}
    pm.execute_notebook(str(paths.notebooks / "01_scrape.ipynb"), str(out), parameters={"profile": paths.spec},
                        cwd=str(paths.notebooks), kernel_name="python3", **kw)
    return 0


# ------------------------------------------------------------------------------------------------ set-up


def make_root(root: Path, notebook: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(REPO / "params", root / "params")
    (root / "data").mkdir()
    shutil.copy(REPO / "data" / "families.csv", root / "data" / "families.csv")
    (root / "notebooks").mkdir()
    if notebook == "scrape":
        shutil.copy(REPO / "notebooks" / "01_scrape.ipynb", root / "notebooks" / "01_scrape.ipynb")
        return
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    params = new_code_cell('profile = "smoke"\nforce = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(src) for src in TINY_CELLS)]
    nbformat.write(nb, root / "notebooks" / "01_scrape.ipynb")


def child_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2P_")}
    env.update(T2P_ROOT=str(root), PYTHONUNBUFFERED="1", COLUMNS=str(COLS), LINES=str(ROWS), TERM="xterm-256color",
               HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    return env


def run_in_pty(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[bytes, int, float]:
    """``cmd`` with stdin/stdout/stderr on a pseudo-terminal of COLS x ROWS; returns (what it wrote, rc, seconds)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                            close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        if time.perf_counter() - t0 > timeout:
            proc.kill()
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the slave
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            # the child is gone; drain whatever is left (a kernel grandchild may still hold the slave a moment)
            try:
                while select.select([master], [], [], 0.5)[0]:
                    data = os.read(master, 65536)
                    if not data:
                        break
                    chunks.append(data)
            except OSError:
                pass
            break
    rc = proc.wait()
    dt = time.perf_counter() - t0
    os.close(master)
    return b"".join(chunks), rc, dt


def run_piped(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[bytes, int, float]:
    """``cmd`` with stdout and stderr both into ``log`` (a CI log: no terminal)."""
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        try:
            rc = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return log.read_bytes(), rc, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ measuring

_ESC = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
_PCT = re.compile(r"\d+%")
#: tqdm's "[00:02<00:04" and ProgressWatcher's "[00:02 < 00:04]"
_ETA = re.compile(r"\[\d+:\d\d(:\d\d)? ?< ?(\d+:\d\d|\?)")


def screen(text: str, cols: int = COLS) -> list[str]:
    """What a terminal shows after ``text`` (scroll-back included): \\r, \\n, ESC[K, ESC[nA, wrapping at ``cols``."""
    rows: list[list[str]] = [[]]
    r = c = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            m = _ESC.match(text, i)
            if m:
                arg, op = m.group(1), m.group(2)
                if op == "K":
                    del rows[r][c:]
                elif op == "A":
                    r = max(0, r - int(arg or 1))
                i = m.end()
                continue
        i += 1
        if ch == "\r":
            c = 0
        elif ch == "\n":
            r += 1
            c = 0  # the pty's ONLCR already sends \r\n; a pipe's bare \n is taken the same way
            if r == len(rows):
                rows.append([])
        elif ch == "\b":
            c = max(0, c - 1)
        elif ch >= " " or ch == "\t":
            if c >= cols:
                r, c = r + 1, 0
                if r == len(rows):
                    rows.append([])
            line = rows[r]
            line.extend(" " * (c - len(line)))
            if c < len(line):
                line[c] = ch
            else:
                line.append(ch)
            c += 1
    out = ["".join(x).rstrip() for x in rows]
    while out and not out[-1]:
        out.pop()
    return out


def measure(raw: bytes, wall: float, rc: int) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace")
    segments = re.split(r"[\r\n]", text)
    lines = text.split("\n")
    shown = screen(text)
    res: dict[str, Any] = {
        "rc": rc, "wall_s": round(wall, 1), "bytes": len(raw), "newlines": text.count("\n"),
        "bare_cr": len(re.findall(r"\r(?!\n)", text)), "screen_lines": len(shown),
        "longest_line": max((len(x) for x in lines), default=0), "bars": {}, "markers": {},
    }
    for bar in BARS:
        segs = [s for s in segments if bar in s]
        res["bars"][bar] = {
            "draws": len(segs),
            "log_lines": sum(bar in x for x in lines),
            "screen_lines": sum(bar in x for x in shown),
            "pct": any(_PCT.search(s) for s in segs),
            "eta": any(_ETA.search(s) for s in segs),
            "last": _ESC.sub("", segs[-1]).strip()[:110] if segs else "",
        }
    for name, marker in MARKERS.items():
        res["markers"][name] = marker in text
    return res


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/t2p_bench_progress"))
    ap.add_argument("--no-scrape", action="store_true", help="skip the real 01_scrape cases")
    ap.add_argument("--scrape-ways", default="bridge,pm-log", help="ways for 01_scrape (comma-separated)")
    ap.add_argument("--tiny-ways", default=",".join(WAYS), help="ways for the tiny bar notebook (comma-separated)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per case")
    ap.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.root)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cases = [("tiny", w) for w in args.tiny_ways.split(",") if w]
    if not args.no_scrape:
        cases += [("scrape", w) for w in args.scrape_ways.split(",") if w]
    results: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for notebook, way in cases:
        for mode in ("tty", "log"):
            name = f"{notebook}.{way}.{mode}"
            root = out / "roots" / name
            make_root(root, notebook)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", way, "--root", str(root)]
            env = child_env(root)
            if mode == "tty":
                raw, rc, dt = run_in_pty(cmd, env, args.timeout)
                (out / f"{name}.raw").write_bytes(raw)
            else:
                raw, rc, dt = run_piped(cmd, env, out / f"{name}.raw", args.timeout)
            res = {"case": name, "notebook": notebook, "way": way, "mode": mode, **measure(raw, dt, rc)}
            (out / f"{name}.screen").write_text("\n".join(screen(raw.decode("utf-8", "replace"))) + "\n")
            results.append(res)
            print(f"  {name}: rc {rc}, {dt:.1f} s, {len(raw)} bytes", file=sys.stderr, flush=True)
    total = time.perf_counter() - t_all
    (out / "summary.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "total_s": round(total, 1),
                                                  "cols": COLS, "cases": results}, indent=1))
    print_table(results)
    print(f"\ntotal {total:.0f} s; captures, screens and summary.json under {out}")
    return 0


def print_table(results: list[dict[str, Any]]) -> None:
    def bar(r: dict[str, Any], b: str) -> str:
        x = r["bars"][b]
        if not x["draws"]:
            return "-"
        flags = ("%" if x["pct"] else "") + ("E" if x["eta"] else "")
        return f"{x['draws']}d/{x['log_lines']}l/{x['screen_lines']}s {flags}"

    head = ["case", "rc", "wall s", "bytes", "\\n", "bare \\r", "screen", "longest", *BARS, "print/log"]
    rows = [[r["case"], str(r["rc"]), f"{r['wall_s']:.1f}", str(r["bytes"]), str(r["newlines"]), str(r["bare_cr"]),
             str(r["screen_lines"]), str(r["longest_line"]), *(bar(r, b) for b in BARS),
             "/".join("y" if r["markers"][k] else "n" for k in ("print", "log")) if r["notebook"] == "tiny"
             else ("y" if r["markers"]["scrape log"] else "n")] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("bar cells: draws (segments between \\r/\\n naming it) / physical log lines / lines left on the screen; "
          "% = percentage shown, E = ETA shown; print/log: the notebook's own print and log line reached the output")


if __name__ == "__main__":
    sys.exit(main())
