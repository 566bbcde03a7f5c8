"""Headline numbers recorded in an executed notebook and read back (t2p_utils.compare.record), with known answers."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from t2p_utils.compare import record as R
from t2p_utils.compare.record import MIMETYPE, RecordError, headline_numbers, recorded

REPO = Path(__file__).resolve().parents[1]


def _record_output(name: str, value: Any) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {},
            "data": {MIMETYPE: {"name": name, "value": value}, "text/plain": [f"t2p record: {name} = {value!r}"]}}


def _write_nb(path: Path, cells: list[dict[str, Any]]) -> Path:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}
    path.write_text(json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 4}, indent=1) + "\n",
                    encoding="utf-8")
    return path


def _code(*outputs: dict[str, Any], source: str = "record(...)") -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": list(outputs), "source": [source]}


def test_a_hand_built_executed_notebook_reads_back_exactly(tmp_path: Path) -> None:
    nb = _write_nb(tmp_path / "05_compare.ipynb", [
        {"cell_type": "markdown", "metadata": {}, "source": ["# no outputs here"]},
        _code({"output_type": "stream", "name": "stdout", "text": ["control:ip2p_clip = 9.0\n"]},  # text is no record
              {"output_type": "display_data", "metadata": {}, "data": {"text/plain": ["t2p record: x = 1"]}},
              _record_output("control:ip2p_clip", 0.4395840172),
              _record_output("binding:ip2p_clip", None)),  # a NaN, as record() stores it: JSON null
        _code(_record_output("control:ip2p_clip", 0.125),  # recorded again later: this one wins
              {"output_type": "execute_result", "execution_count": 2, "metadata": {},
               "data": {"text/plain": ["3"], MIMETYPE: {"name": "n", "value": 3}}},
              {"output_type": "display_data", "metadata": {}, "data": {MIMETYPE: {"name": "label", "value": "CLIP"}}}),
    ])
    got = recorded(nb)
    assert got == {"control:ip2p_clip": 0.125, "binding:ip2p_clip": None, "n": 3, "label": "CLIP"}
    assert list(got) == ["control:ip2p_clip", "binding:ip2p_clip", "n", "label"]  # first-recorded order
    assert recorded(str(nb)) == got


def test_a_lenient_writers_nan_and_a_payload_kept_as_text_read_back(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    out_text = {"output_type": "display_data", "metadata": {},
                "data": {MIMETYPE: json.dumps({"name": "a", "value": 2.5})}}
    text = json.dumps({"cells": [_code(_record_output("nan", float("nan")), out_text)], "metadata": {},
                       "nbformat": 4, "nbformat_minor": 4})
    assert "NaN" in text  # Python's json writes a bare NaN token, which its reader accepts
    path.write_text(text, encoding="utf-8")
    assert recorded(path) == {"nan": None, "a": 2.5}


def test_a_missing_notebook_or_one_without_records_raises_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "reports" / "smoke" / "notebooks" / "05_compare.ipynb"
    with pytest.raises(FileNotFoundError, match="05_compare.ipynb") as exc:
        recorded(missing)
    assert str(missing) in str(exc.value) and "run notebooks/05_compare.ipynb first" in str(exc.value)

    stripped = _write_nb(tmp_path / "stripped.ipynb", [_code(source="record('a', 1)")])  # never executed
    with pytest.raises(RecordError) as exc2:
        recorded(stripped)
    assert str(stripped) in str(exc2.value) and "no t2p records" in str(exc2.value)

    other = _write_nb(tmp_path / "other.ipynb", [_code({"output_type": "stream", "name": "stdout", "text": ["hi\n"]})])
    with pytest.raises(RecordError, match="no t2p records") as exc3:
        recorded(other)
    assert str(other) in str(exc3.value)

    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")  # a truncated file
    with pytest.raises(RecordError) as exc4:
        recorded(broken)
    assert str(broken) in str(exc4.value)


def test_record_outside_ipython_returns_the_value_and_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    if "IPython" in sys.modules:
        import IPython

        assert IPython.get_ipython() is None  # pytest is no IPython shell
    assert R.record("a", 0.5) == 0.5
    nan = R.record("b", float("nan"))
    assert isinstance(nan, float) and math.isnan(nan)
    assert R.record("c", None) is None
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="name"):
        R.record("", 1.0)
    with pytest.raises(TypeError, match="list"):
        R.record("d", [1.0])  # type: ignore[arg-type]


def test_record_displays_json_with_a_text_fallback_that_reads_back(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display
    import nbformat
    import numpy as np

    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
    monkeypatch.setattr(R, "_shell", lambda: object())  # as inside a kernel
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    assert R.record("control:ip2p_clip", np.float64(0.25)) == 0.25
    assert math.isnan(R.record("binding:ip2p_clip", float("nan")))  # type: ignore[arg-type]
    R.record("n", np.int64(7))  # type: ignore[arg-type]
    R.record("inf", float("inf"))
    assert all(kw == {"raw": True} for _, kw in shown)
    assert [obj[MIMETYPE] for obj, _ in shown] == [{"name": "control:ip2p_clip", "value": 0.25},
                                                  {"name": "binding:ip2p_clip", "value": None},
                                                  {"name": "n", "value": 7}, {"name": "inf", "value": None}]
    assert shown[0][0]["text/plain"] == "t2p record: control:ip2p_clip = 0.25"
    assert shown[1][0]["text/plain"] == "t2p record: binding:ip2p_clip = None"
    assert type(shown[2][0][MIMETYPE]["value"]) is int
    # what the kernel sends becomes a valid nbformat output, written as strict JSON, and reads back
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "...", outputs=[nbformat.v4.new_output("display_data", data=obj) for obj, _ in shown])])
    nbformat.validate(nb)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert recorded(path) == {"control:ip2p_clip": 0.25, "binding:ip2p_clip": None, "n": 7, "inf": None}


def test_records_made_in_a_real_kernel_read_back(tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    src = (f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom t2p_utils.compare.record import record\n"
           "record('a', 0.5)\nrecord('b', float('nan'))\nrecord('a', 1.5)\n_ = record('s', 'text')")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    assert recorded(path) == {"a": 1.5, "b": None, "s": "text"}
    texts = ["".join(o["data"]["text/plain"]) for o in nb.cells[0].outputs]
    assert texts == ["t2p record: a = 0.5", "t2p record: b = None", "t2p record: a = 1.5", "t2p record: s = 'text'"]


def _row(model: str, variant: str, prompt: str, metric: str, mean: float) -> dict[str, Any]:
    return {"model": model, "variant": variant, "prompt": prompt, "metric": metric, "mean": mean,
            "ci_low": mean - 0.01, "ci_high": mean + 0.01, "n": 40}


def _metrics() -> pd.DataFrame:
    rows = []
    for model, base in (("ip2p_cnn_lstm", 0.0), ("ip2p_clip", 0.5)):
        rows += [
            _row(model, "raw", "control:all", "color_control", base + 0.011),  # wanted
            _row(model, "flat", "control:all", "color_control", base + 0.901),  # decoy: variant
            _row(model, "raw", "control:body", "color_control", base + 0.902),  # decoy: one template, not all
            _row(model, "raw", "control:body_heldout", "color_control", base + 0.903),  # decoy: one held-out template
            _row(model, "raw", "control:heldout", "color_control", base + 0.012),  # wanted
            _row(model, "flat", "control:heldout", "color_control", base + 0.904),  # decoy: variant
            _row(model, "raw", "binding:all", "binding", base + 0.013),  # wanted
            _row(model, "raw", "binding:heldout", "binding", base + 0.905),  # decoy: held-out phrasings
            _row(model, "flat", "binding:all", "binding", base + 0.906),  # decoy: variant
            _row(model, "raw", "binding:top_bottom", "binding", base + 0.907),  # decoy: one template
            _row(model, "flat", "faithful", "line_preservation", base + 0.014),  # wanted
            _row(model, "flat", "counterfactual", "line_preservation", base + 0.908),  # decoy: prompt
            _row(model, "upsampled", "faithful", "line_preservation", base + 0.909),  # decoy: variant
            _row(model, "raw", "faithful", "line_preservation", base + 0.910),  # decoy: variant
            _row(model, "flat", "faithful", "region_purity", base + 0.911),  # decoy: metric
        ]
    rows += [_row("ip2p_reference", "raw", "control:all", "color_control", 0.3),  # a model without every row
             _row("ip2p_reference", "raw", "binding:all", "binding", math.nan)]  # its binding not computed
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)  # row order must not matter


def test_headline_numbers_pick_the_right_model_variant_and_template() -> None:
    got = headline_numbers(_metrics(), ["ip2p_cnn_lstm", "ip2p_clip", "ip2p_reference"])
    want = {"control:ip2p_cnn_lstm": 0.011, "control_heldout:ip2p_cnn_lstm": 0.012, "binding:ip2p_cnn_lstm": 0.013,
            "flat_line_fidelity:ip2p_cnn_lstm": 0.014,
            "control:ip2p_clip": 0.511, "control_heldout:ip2p_clip": 0.512, "binding:ip2p_clip": 0.513,
            "flat_line_fidelity:ip2p_clip": 0.514,
            "control:ip2p_reference": 0.3, "control_heldout:ip2p_reference": None, "binding:ip2p_reference": None,
            "flat_line_fidelity:ip2p_reference": None}
    assert list(got) == list(want)
    for k, v in want.items():
        assert got[k] == (None if v is None else pytest.approx(v, abs=1e-12)), k
    # by default every model of the frame, in the frame's order
    default = headline_numbers(_metrics())
    assert set(default) == set(want)
    assert headline_numbers(_metrics(), ["ip2p_clip"]) == {k: got[k] for k in want if k.endswith(":ip2p_clip")}


def test_headline_numbers_of_a_metrics_csv_and_bad_frames(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    _metrics().to_csv(csv, index=False)
    assert headline_numbers(pd.read_csv(csv))["control:ip2p_clip"] == pytest.approx(0.511, abs=1e-12)
    twice = pd.concat([_metrics(), pd.DataFrame([_row("ip2p_clip", "raw", "control:all", "color_control", 0.2)])])
    with pytest.raises(ValueError, match="2 rows for ip2p_clip/raw/control:all/color_control"):
        headline_numbers(twice)
    with pytest.raises(ValueError, match="mean"):
        headline_numbers(_metrics().drop(columns="mean"))
