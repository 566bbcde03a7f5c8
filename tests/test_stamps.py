"""The one staleness rule (t2p_utils.core.stamps.cache_key): settings, inputs and code, and nothing else."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import t2p_utils
from t2p_utils.config.train import TrainConfig
from t2p_utils.core import codegraph as core_graph
from t2p_utils.core.stamps import NOT_STAMPED, cache_key, canonical, code_digest, code_modules, file_stamp
from t2p_utils.runner import codegraph as runner_graph

PKG = Path(t2p_utils.__file__).resolve().parent


@dataclasses.dataclass
class Inner:
    size: int = 64
    threads: int = dataclasses.field(default=1, metadata=NOT_STAMPED)


@dataclasses.dataclass
class Outer:
    name: str = "a"
    inner: Inner = dataclasses.field(default_factory=Inner)
    paths: tuple[Path, ...] = (Path("x/y.png"),)
    log_every: int = dataclasses.field(default=10, metadata=NOT_STAMPED)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "t2p_utils"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_known_answers() -> None:
    """The key is the first 16 hex digits of the sha256 of {"code", "config", "inputs"} as compact sorted JSON."""
    doc = {"code": "", "config": {"a": 1, "b": [1, 2]}, "inputs": "abc"}
    expected = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert cache_key({"b": (1, 2), "a": 1}, "abc") == expected == "dc2600ebbcd779b4"
    assert cache_key() == "2f16af21c9e33faa"  # nothing at all: {"code":"","config":null,"inputs":null}
    assert canonical(Outer()) == {"name": "a", "inner": {"size": 64}, "paths": ["x/y.png"]}


def test_same_config_inputs_and_code_give_the_same_key() -> None:
    code = ["t2p_utils.scrape.render"]
    assert cache_key(Outer(), {"f": "1"}, code) == cache_key(Outer(), {"f": "1"}, code)
    assert len(cache_key(Outer(), {"f": "1"}, code)) == 16
    assert cache_key(Outer(), {"f": "1"}, code) != cache_key(Outer(), {"f": "1"})  # the code counts
    assert cache_key(Outer(), {"f": "1"}, code) != cache_key(Outer(), {"f": "2"}, code)  # so do the inputs


def test_dict_key_order_does_not_matter() -> None:
    a = {"x": 1, "y": {"p": [1, 2], "q": None}}
    b = {"y": {"q": None, "p": [1, 2]}, "x": 1}
    assert list(a) != list(b)
    assert cache_key(a, b) == cache_key(b, a)
    assert cache_key({"s": {3, 1, 2}}) == cache_key({"s": {2, 3, 1}})  # sets too


def test_a_stamped_field_changes_the_key_and_a_not_stamped_one_does_not() -> None:
    base = Outer()
    assert cache_key(dataclasses.replace(base, name="b")) != cache_key(base)
    assert cache_key(dataclasses.replace(base, inner=Inner(size=32))) != cache_key(base)  # nested dataclasses too
    assert cache_key(dataclasses.replace(base, log_every=1)) == cache_key(base)
    assert cache_key(dataclasses.replace(base, inner=Inner(threads=8))) == cache_key(base)

    cfg = TrainConfig()
    assert dataclasses.replace(cfg, cpu_threads=1).fingerprint() == cfg.fingerprint()
    how = dataclasses.replace(cfg, parallel_sources=2, log_every=1, sources=["clip"], inference_steps=5)
    assert how.fingerprint() == cfg.fingerprint()
    assert dataclasses.replace(cfg, learning_rate=1e-3).fingerprint() != cfg.fingerprint()
    assert dataclasses.replace(cfg, seed=1).fingerprint() != cfg.fingerprint()


def test_train_config_leaves_out_the_same_fields_as_its_old_skip_list() -> None:
    """Fingerprints of the same config mean the same thing as before the skip list became field metadata."""
    old_skip = {"sources", "cpu_threads", "parallel_sources", "checkpointing_steps", "checkpoints_total_limit",
                "log_every", "inference_steps", "text_guidance", "image_guidance"}
    left_out = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("stamp", True) is False}
    assert left_out == old_skip
    cfg = TrainConfig()
    assert set(canonical(cfg)) == {f.name for f in dataclasses.fields(TrainConfig)} - old_skip
    assert cfg.fingerprint() == cache_key(cfg)


def test_an_input_file_changes_the_key_when_its_bytes_change(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(b"one")
    before = cache_key({"size": 64}, {"a": file_stamp(f)})
    assert file_stamp(f) == hashlib.sha256(b"one").hexdigest()
    os.utime(f, ns=(1, 1))  # the time alone does not change a file's stamp
    assert cache_key({"size": 64}, {"a": file_stamp(f)}) == before
    f.write_bytes(b"two")
    assert cache_key({"size": 64}, {"a": file_stamp(f)}) != before
    assert file_stamp(tmp_path / "gone.png") == "missing"


def test_a_folder_is_stamped_by_names_sizes_and_times(tmp_path: Path) -> None:
    d = tmp_path / "images"
    d.mkdir()
    (d / "1.png").write_bytes(b"x")
    os.utime(d / "1.png", ns=(10, 10))
    before = file_stamp(d)
    assert file_stamp(d) == before
    (d / "1.png").write_bytes(b"y")  # same size, new time
    os.utime(d / "1.png", ns=(20, 20))
    assert file_stamp(d) != before
    again = file_stamp(d)
    (d / "2.png").write_bytes(b"z")
    assert file_stamp(d) != again


def test_editing_the_source_of_an_imported_module_changes_the_key(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    code = ["t2p_utils.scrape.render"]  # imports t2p_utils.scrape.lineart
    assert "t2p_utils.scrape.lineart" in code_modules(code, root)
    before = cache_key({"size": 64}, "svg", code, root=root)
    assert cache_key({"size": 64}, "svg", code, root=root) == before
    figures = root / "compare" / "figures.py"  # not imported by the renderer
    figures.write_text(figures.read_text() + "\n# edited\n")
    assert cache_key({"size": 64}, "svg", code, root=root) == before
    lineart = root / "scrape" / "lineart.py"
    lineart.write_text(lineart.read_text() + "\n# edited\n")
    after = cache_key({"size": 64}, "svg", code, root=root)
    assert after != before
    render = root / "scrape" / "render.py"  # the named module itself
    render.write_text(render.read_text() + "\n# edited\n")
    assert cache_key({"size": 64}, "svg", code, root=root) not in (before, after)


def test_a_misspelt_module_is_an_error() -> None:
    with pytest.raises(ValueError, match="no module t2p_utils.scrape.rendr"):
        cache_key({}, code=["t2p_utils.scrape.rendr"])
    assert code_digest([]) == ""


def test_the_runner_reads_the_one_import_graph_in_core() -> None:
    for name in ("module_files", "imported_names", "import_graph", "closure"):  # no second copy in the runner
        assert getattr(runner_graph, name, getattr(core_graph, name)) is getattr(core_graph, name)
    # a step's code stamp is the key of its modules' code
    step = "05_compare"
    nb = PKG.parent / "notebooks" / f"{step}.ipynb"
    assert runner_graph.code_stamp(step, nb) == cache_key(code=runner_graph.step_modules(step, nb))


def test_the_runner_reruns_a_step_whose_code_changed_without_forcing_it(tmp_root: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Its caches see their code, so a step re-run after an edit is not forced; only 04 is (CODE_FORCES: an
    interrupted 04 resumes its checkpoints across a code edit)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from t2p_utils.runner import pipeline

    (tmp_root / "notebooks").mkdir()
    for step in pipeline.STEPS:
        nb = new_notebook()
        nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        params = new_code_cell('profile = "smoke"\nforce = False')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, new_code_cell("pass")]
        nbformat.write(nb, tmp_root / "notebooks" / f"{step}.ipynb")
    monkeypatch.setattr(pipeline, "build_index", lambda paths, records: paths.reports / "index.html")
    pipeline.run("smoke", root=tmp_root)
    assert pipeline.CODE_FORCES == ("04_finetune",)
    calls: list[tuple[str, bool]] = []
    real_run_step, real_code = pipeline.run_step, pipeline._code_stamp
    monkeypatch.setattr(pipeline, "run_step", lambda p, s, e: calls.append((s, e["force"])) or real_run_step(p, s, e))
    monkeypatch.setattr(pipeline, "_code_stamp", lambda s: "edited" if s == "02_cnn_lstm_captioning" else real_code(s))
    pipeline.run("smoke", root=tmp_root)
    assert calls == [(s, False) for s in pipeline.STEPS[1:]]  # 02 runs again unforced, and the steps after it
