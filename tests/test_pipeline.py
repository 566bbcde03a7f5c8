"""The runner: resume from the first unfinished step, name the failing notebook and cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from t2p_utils.config import Paths
from t2p_utils.runner import pipeline


def _notebook(path: Path, body: str) -> None:
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    params = new_code_cell('profile = "smoke"\nforce = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body)]
    nbformat.write(nb, path)


@pytest.fixture
def fake_study(tmp_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    nbdir = tmp_root / "notebooks"
    nbdir.mkdir()
    for step in pipeline.STEPS:
        # each step appends its name to a log, so the test sees which steps ran
        _notebook(nbdir / f"{step}.ipynb", f"open({str(tmp_root / 'ran.log')!r}, 'a').write('{step} ' + profile + '\\n')")
    monkeypatch.setattr(pipeline, "build_index", lambda paths, records: paths.reports / "index.html")
    return tmp_root


def _ran(root: Path) -> list[str]:
    log = root / "ran.log"
    return log.read_text().split("\n")[:-1] if log.exists() else []


def test_runs_every_step_then_resumes_and_reruns_from_a_changed_step(fake_study: Path) -> None:
    pipeline.run("smoke", root=fake_study, stop="03_clip_captioning")
    assert _ran(fake_study) == [f"{s} smoke" for s in pipeline.STEPS[:3]]
    state = json.loads((fake_study / "reports/smoke/steps.json").read_text())
    assert [s["status"] for s in state["steps"]] == ["ok"] * 3
    assert (fake_study / "reports/smoke/notebooks/02_cnn_lstm_captioning.html").stat().st_size > 1000

    (fake_study / "ran.log").unlink()
    pipeline.run("smoke", root=fake_study)  # 01..03 are done: only 04 and 05 run
    assert _ran(fake_study) == ["04_finetune smoke", "05_compare smoke"]

    (fake_study / "ran.log").unlink()
    nb = fake_study / "notebooks/04_finetune.ipynb"
    nb.write_text(nb.read_text().replace("smoke", "smoke "))  # an edited notebook is not "done"
    pipeline.run("smoke", root=fake_study)
    assert _ran(fake_study) == ["04_finetune smoke", "05_compare smoke"]


def test_a_failing_cell_is_named_and_the_next_run_starts_there(fake_study: Path) -> None:
    _notebook(fake_study / "notebooks/02_cnn_lstm_captioning.ipynb", "raise ValueError('captions.csv lacks ids 7, 9')")
    with pytest.raises(pipeline.StepFailed, match=r"02_cnn_lstm_captioning failed at cell 2 .*ValueError: captions.csv lacks ids 7, 9"):
        pipeline.run("smoke", root=fake_study)
    assert _ran(fake_study) == ["01_scrape smoke"]
    state = {s["name"]: s for s in json.loads((fake_study / "reports/smoke/steps.json").read_text())["steps"]}
    assert state["02_cnn_lstm_captioning"]["status"] == "failed"
    _notebook(fake_study / "notebooks/02_cnn_lstm_captioning.ipynb", "pass")
    (fake_study / "ran.log").unlink()
    pipeline.run("smoke", root=fake_study)
    assert _ran(fake_study) == [f"{s} smoke" for s in pipeline.STEPS[2:]]


def test_default_profile_is_cpu_without_cuda() -> None:
    import torch

    assert pipeline.default_profile() == ("full" if torch.cuda.is_available() else "cpu")


def test_missing_notebook_is_reported(tmp_root: Path) -> None:
    with pytest.raises(pipeline.StepFailed, match="01_scrape.ipynb is missing"):
        pipeline.run_step(Paths.for_profile("smoke"), "01_scrape")


def test_a_step_whose_outputs_are_gone_runs_again(fake_study: Path) -> None:
    paths = Paths.for_profile("smoke", fake_study)
    paths.manifest.parent.mkdir(parents=True, exist_ok=True)
    paths.manifest.write_text("id\n")  # as if 01 had written it
    pipeline.run("smoke", root=fake_study, stop="02_cnn_lstm_captioning")
    state = {s["name"]: s for s in json.loads((fake_study / "reports/smoke/steps.json").read_text())["steps"]}
    assert state["01_scrape"]["outputs"] == [str(paths.manifest.relative_to(fake_study))]
    (fake_study / "ran.log").unlink()
    pipeline.run("smoke", root=fake_study, stop="02_cnn_lstm_captioning")
    assert _ran(fake_study) == []  # done, outputs present
    paths.manifest.unlink()
    pipeline.run("smoke", root=fake_study, stop="02_cnn_lstm_captioning")
    assert _ran(fake_study) == ["01_scrape smoke", "02_cnn_lstm_captioning smoke"]  # 01's output is gone


def test_an_interrupted_step_is_not_done_and_resumes_even_under_from(fake_study: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []
    interrupt = ["04_finetune"]
    real = pipeline.run_step

    def fake_run_step(paths: Paths, step: str, extra: dict) -> pipeline.StepResult:
        calls.append((step, extra["force"]))
        if step in interrupt:
            interrupt.remove(step)
            raise KeyboardInterrupt  # Ctrl-C during training
        return real(paths, step, extra)

    monkeypatch.setattr(pipeline, "run_step", fake_run_step)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run("smoke", root=fake_study)
    state = {s["name"]: s for s in json.loads((fake_study / "reports/smoke/steps.json").read_text())["steps"]}
    assert state["04_finetune"]["status"] == "interrupted"
    calls.clear()
    pipeline.run("smoke", root=fake_study, start="04_finetune")
    # 04 resumes (force False) although --from asks to redo it; 05 after it is redone as asked
    assert calls == [("04_finetune", False), ("05_compare", True)]
    calls.clear()
    pipeline.run("smoke", root=fake_study)
    assert calls == []  # everything done now


def test_editing_one_params_section_reruns_only_its_step_and_code_edits_force_it(
        fake_study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline.run("smoke", root=fake_study)
    (fake_study / "ran.log").unlink()
    params = fake_study / "params/smoke.yaml"
    text = params.read_text()
    assert "\n  n_boot: 1000\n" in text  # in compare:
    params.write_text(text.replace("\n  n_boot: 1000\n", "\n  n_boot: 999\n", 1))
    pipeline.run("smoke", root=fake_study)
    assert _ran(fake_study) == ["05_compare smoke"]  # only the step that reads compare:

    calls: list[tuple[str, bool]] = []
    real_run_step, real_code = pipeline.run_step, pipeline._code_stamp
    monkeypatch.setattr(pipeline, "run_step", lambda p, s, e: calls.append((s, e["force"])) or real_run_step(p, s, e))
    monkeypatch.setattr(pipeline, "_code_stamp", lambda s: "edited" if s == "04_finetune" else real_code(s))
    pipeline.run("smoke", root=fake_study)
    assert calls == [("04_finetune", True), ("05_compare", False)]  # 04's code changed: forced; 05 after it
    state = {s["name"]: s for s in json.loads((fake_study / "reports/smoke/steps.json").read_text())["steps"]}
    assert state["04_finetune"]["fingerprint"].endswith("-edited")


def test_editing_an_input_file_makes_only_the_steps_that_read_it_stale(fake_study: Path) -> None:
    ref = fake_study / "data/captions/reference.csv"  # cpu reads the committed references in 02, 03 and 05
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text("id,split,caption,faithful,counterfactual\n")
    pipeline.run("cpu", root=fake_study)
    (fake_study / "ran.log").unlink()
    pipeline.run("cpu", root=fake_study)
    assert _ran(fake_study) == []
    ref.write_text("id,split,caption,faithful,counterfactual\n25,test,a mouse,x,y\n")
    pipeline.run("cpu", root=fake_study)
    assert _ran(fake_study) == [f"{s} cpu" for s in pipeline.STEPS[1:]]  # 02 and every step after it, not 01
    (fake_study / "ran.log").unlink()
    families = fake_study / "data/families.csv"
    families.write_text(families.read_text() + "\n")
    pipeline.run("cpu", root=fake_study)
    assert _ran(fake_study) == [f"{s} cpu" for s in pipeline.STEPS]
