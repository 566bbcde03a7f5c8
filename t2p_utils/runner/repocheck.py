"""Repository checks CI runs before the tests: notebooks stripped, no images or weights tracked.

    python -m t2p_utils.runner.repocheck
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from t2p_utils.config.params import repo_root

#: sprites are (c) The Pokemon Company and weights are generated: neither belongs in git
FORBIDDEN = re.compile(r"\.(png|jpe?g|gif|webp|svg|safetensors|ckpt|pt|pth|bin|onnx|tgz)$", re.IGNORECASE)


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def nbstripout_problems(path: Path) -> list[str]:
    """What ``nbstripout --verify`` objects to (e.g. cells of an nbformat 4.5 notebook without an ``id``)."""
    res = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", str(path)], check=False,
                         capture_output=True, text=True)
    if res.returncode == 0:
        return []
    return [f"{path}: nbstripout would change it; run `nbstripout {path}` and commit the result"]


def notebook_problems(path: Path) -> list[str]:
    """Outputs, execution counts, missing kernel metadata (papermill needs kernelspec + language_info), or
    anything else ``nbstripout --verify`` would change."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path}: unreadable ({exc})"]
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("outputs") or cell.get("execution_count") is not None:
            problems.append(f"{path}: cell {i} has outputs; run `nbstripout {path}`")
            break
    meta = nb.get("metadata", {})
    for key in ("kernelspec", "language_info"):
        if key not in meta:
            problems.append(f"{path}: metadata lacks {key!r} (papermill needs it)")
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.get("cells", [])):
        problems.append(f"{path}: no cell tagged 'parameters'")
    return problems or nbstripout_problems(path)


def check(root: Path) -> list[str]:
    files = tracked_files(root)
    problems = [f"{f}: images and weights must not be tracked (git rm --cached {f})" for f in files if FORBIDDEN.search(f)]
    for f in files:
        if f.endswith(".ipynb"):
            problems += notebook_problems(root / f)
    return problems


def main() -> int:
    problems = check(repo_root())
    for p in problems:
        print(p, file=sys.stderr)
    print(f"repocheck: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
