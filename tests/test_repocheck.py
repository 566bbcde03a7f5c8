"""CI's repository checks (t2p_utils.runner.repocheck): the committed notebooks are as nbstripout leaves them."""

from __future__ import annotations

import json
from pathlib import Path

from t2p_utils.runner import repocheck

REPO = Path(__file__).resolve().parents[1]


def _notebook(path: Path, minor: int, cells: list[dict]) -> Path:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}
    path.write_text(json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": minor}, indent=1)
                    + "\n", encoding="utf-8")
    return path


def _code(source: str, **extra: object) -> dict:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]}, "outputs": [],
            "source": [source]}
    return {**cell, **extra}


def test_every_committed_notebook_passes() -> None:
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert repocheck.notebook_problems(nb) == [], nb


def test_outputs_and_cells_without_ids_are_caught(tmp_path: Path) -> None:
    clean = _notebook(tmp_path / "clean.ipynb", 4, [_code("x = 1")])
    assert repocheck.notebook_problems(clean) == []
    out = _notebook(tmp_path / "out.ipynb", 4, [_code("x = 1", execution_count=3,
                                                      outputs=[{"output_type": "stream", "name": "stdout",
                                                                "text": ["1\n"]}])])
    assert "has outputs" in repocheck.notebook_problems(out)[0]
    # nbformat 4.5 wants an id on every cell: one pasted without it is what nbstripout --verify flags
    no_id = _notebook(tmp_path / "no_id.ipynb", 5, [_code("x = 1", id="0"), _code("y = 2")])
    problems = repocheck.notebook_problems(no_id)
    assert len(problems) == 1 and "nbstripout would change it" in problems[0] and "no_id.ipynb" in problems[0]
