"""Google Colab set-up: every notebook opens with one guarded cell that, only inside Colab, clones
this repository, installs it and changes into it, so that a notebook opened in Colab runs top to
bottom. Outside Colab the cell does nothing.

The repository URL lives here (:data:`REPO_URL`); the cell's text is :func:`setup_cell` (print it
with ``python -m t2p_utils.runner.colab``), and ``tests/test_demo.py`` checks that every notebook's
Colab cell is exactly that text, so the URL cannot drift between notebooks. The cell has to carry
the URL itself: before the clone there is no ``t2p_utils`` to import it from.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Where the notebooks' Colab cell clones the project from (the one place to change it).
REPO_URL = "https://github.com/OWNER/t2p.git"
#: Where it is cloned to inside Colab.
COLAB_DIR = "/content/t2p"
#: The first line of the cell (how tests find it in a notebook).
CELL_MARKER = "# Colab only: clone and install this repository"


def in_colab() -> bool:
    return "google.colab" in sys.modules


def setup_cell(repo_url: str = REPO_URL, repo_dir: str = COLAB_DIR) -> str:
    """The source of the guarded Colab cell that starts every notebook."""
    return (
        f"{CELL_MARKER}, then work from it (does nothing outside Colab).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import os\n"
        "    import subprocess\n"
        "\n"
        f'    T2P_REPO_URL, T2P_DIR = "{repo_url}", "{repo_dir}"  # t2p_utils.runner.colab.REPO_URL\n'
        "    if not os.path.isdir(T2P_DIR):\n"
        '        subprocess.run(["git", "clone", "--depth", "1", T2P_REPO_URL, T2P_DIR], check=True)\n'
        "    sys.path.insert(0, T2P_DIR)\n"
        "    from t2p_utils.runner.colab import setup_colab\n"
        "\n"
        "    setup_colab(T2P_DIR)"
    )


def _stamp_value(repo: Path) -> str:
    """What scripts/env.sh writes to ``<prefix>/.t2p-installed``: the first 16 hex digits of sha256(pyproject.toml)."""
    return hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()[:16]


def setup_colab(repo_dir: str | Path = COLAB_DIR, *, repo_url: str = REPO_URL,
                run: Callable[..., Any] = subprocess.run) -> Path | None:
    """Inside Colab: clone (when missing), ``pip install -e`` (when pyproject.toml changed), chdir into the repo.

    Returns the repository folder, or None outside Colab (where it does nothing at all). ``run``
    is :func:`subprocess.run` (replaceable in tests).
    """
    if not in_colab():
        return None
    repo = Path(repo_dir)
    if not (repo / "pyproject.toml").exists():
        log.info("colab: cloning %s into %s", repo_url, repo)
        run(["git", "clone", "--depth", "1", repo_url, str(repo)], check=True)
    stamp = Path(sys.prefix) / ".t2p-installed"
    want = _stamp_value(repo)
    have = stamp.read_text(encoding="utf-8").strip() if stamp.exists() else ""
    if have != want:
        log.info("colab: installing t2p_utils and its pinned dependencies (a few minutes)")
        run([sys.executable, "-m", "pip", "install", "-q", "-e", str(repo)], check=True)
        stamp.write_text(want + "\n", encoding="utf-8")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    importlib.invalidate_caches()
    os.chdir(repo)
    return repo


if __name__ == "__main__":
    print(setup_cell())
