"""The package's layout: one folder per step, imports pointing one way, no circle, and a step's code stamp that
follows what the step imports (t2p_utils.runner.codegraph)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import t2p_utils
from t2p_utils.core.codegraph import import_graph
from t2p_utils.runner import codegraph as G

PKG = Path(t2p_utils.__file__).resolve().parent
NOTEBOOKS = PKG.parent / "notebooks"


def test_every_module_sits_in_a_step_folder_or_core() -> None:
    loose = [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside a folder: {loose}"
    folders = sorted(p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(G.LAYERS)
    for folder in folders:
        init = PKG / folder / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"{folder}/ needs a docstring"


def test_the_package_docstring_names_every_folder() -> None:
    for folder in G.LAYERS:
        assert f"``{folder}``" in (t2p_utils.__doc__ or ""), folder


def test_imports_point_one_way() -> None:
    assert G.wrong_way_imports() == []


def test_no_import_circle() -> None:
    assert G.circles() == []


def test_the_checks_catch_what_they_are_for() -> None:
    """A known wrong-way import and a known circle are found (on a made-up graph and a copied package)."""
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert G.circles(graph) == [["a", "b", "c"]]


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "t2p_utils"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_wrong_way_import_is_reported(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    f = root / "core" / "places.py"
    f.write_text(f.read_text() + "\n\ndef _late() -> None:\n    from t2p_utils.compare import metrics  # noqa: F401\n")
    bad = G.wrong_way_imports(root)
    assert bad == ["t2p_utils.core.places (core) imports t2p_utils.compare (compare)",
                   "t2p_utils.core.places (core) imports t2p_utils.compare.metrics (compare)"]
    assert G.circles(import_graph(root))  # compare.metrics imports core.places: now a circle too


def _stamps(root: Path) -> dict[str, str]:
    return {s: G.code_stamp(s, NOTEBOOKS / f"{s}.ipynb", root) for s in G.STEP_FOLDERS}


@pytest.mark.parametrize(("module", "changed"), [
    ("compare/figures.py", {"05_compare"}),
    ("train/loss.py", {"04_finetune"}),
    ("scrape/lineart.py", {"01_scrape", "05_compare"}),  # 05 renders the test characters at their own size
    ("captions/templates.py", {"02_cnn_lstm_captioning", "03_clip_captioning"}),
    ("core/places.py", set(G.STEP_FOLDERS)),
])
def test_a_step_reruns_when_code_it_imports_changes(tmp_path: Path, module: str, changed: set[str]) -> None:
    root = _copy(tmp_path)
    before = _stamps(root)
    f = root / module
    f.write_text(f.read_text() + "\n# edited\n")
    after = _stamps(root)
    assert {s for s in before if before[s] != after[s]} == changed


def test_a_step_runs_its_folder_and_what_its_notebook_imports() -> None:
    mods = G.step_modules("05_compare", NOTEBOOKS / "05_compare.ipynb")
    assert "t2p_utils.compare.figures" in mods and "t2p_utils.core.flat" in mods
    assert not any(m.startswith("t2p_utils.train.") for m in mods)
    assert set(G.notebook_imports(NOTEBOOKS / "04_finetune.ipynb")) & set(G.step_modules("04_finetune"))
