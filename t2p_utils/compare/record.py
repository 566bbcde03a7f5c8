"""Headline numbers recorded in an executed notebook and read back from it (the papermill / scrapbook pattern).

Inside a notebook kernel :func:`record` leaves a small display output in the cell that calls it: the value as JSON
under the mimetype :data:`MIMETYPE` (``{"name": ..., "value": ...}``) and a ``text/plain`` line for people and for
front ends that do not know the mimetype. Papermill keeps that output in the executed notebook
(``reports/<profile>/notebooks/05_compare.ipynb``), and :func:`recorded` reads every recorded value back from the
file, so a test asserts on the numbers the notebook itself showed, as microsoft/recommenders' notebook tests do with
``store_metadata`` / ``read_notebook``. No scrapbook: json and IPython's display only.

:func:`headline_numbers` picks 05's headline numbers out of its ``metrics`` frame (``reports/<profile>/metrics.csv``).

Cheap to import: the standard library only (IPython is used only when a kernel already imported it; pandas only
as the frame :func:`headline_numbers` is handed).
"""

from __future__ import annotations

import json
import math
import numbers
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HEADLINES", "MIMETYPE", "RecordError", "headline_numbers", "record", "recorded"]

#: The mimetype of a record's display output: ``{"name": str, "value": float | int | str | bool | None}``.
MIMETYPE = "application/vnd.t2p.record+json"

#: 05's headline numbers: ``kind -> (metric, variant, prompt)`` of a row of its metrics frame; recorded per model as
#: ``<kind>:<model>``. ``control:all`` / ``binding:all`` are the means over the training template's phrasings,
#: ``control:heldout`` over the phrasings no training caption used (:mod:`t2p_utils.compare.stats`); raw outputs.
#: ``flat_line_fidelity``: line preservation of the drawing coloured flat at its own size, faithful instruction.
HEADLINES: dict[str, tuple[str, str, str]] = {
    "control": ("color_control", "raw", "control:all"),
    "control_heldout": ("color_control", "raw", "control:heldout"),
    "binding": ("binding", "raw", "binding:all"),
    "flat_line_fidelity": ("line_preservation", "flat", "faithful"),
}


class RecordError(ValueError):
    """An executed notebook that holds no records, or not a notebook at all."""


def _jsonable(value: float | str | None) -> float | int | str | bool | None:
    """``value`` as JSON holds it: NaN, infinities and None become None (JSON null); numpy scalars plain Python."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    raise TypeError(f"record: value must be a number, a string or None, not {type(value).__name__} ({value!r})")


def _shell() -> Any | None:
    """The running IPython shell, or None outside IPython (IPython is not imported when nothing imported it yet)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # noqa: BLE001  (a half-imported or odd IPython: behave as outside it)
        return None


def record(name: str, value: float | str | None) -> float | str | None:
    """Record ``value`` (a float or int, numpy's included, a string or None) under ``name`` in the running notebook
    and return ``value`` unchanged.

    Inside IPython (a notebook kernel: papermill's run) this displays one output holding ``{"name", "value"}`` under
    :data:`MIMETYPE`, with the text ``t2p record: <name> = <value>``; NaN and None are stored as JSON null. Outside
    IPython it does nothing. :func:`recorded` reads the records back from the executed notebook."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"record: name must be a non-empty string, not {name!r}")
    stored = _jsonable(value)
    shell = _shell()
    if shell is not None:
        from IPython.display import display

        display({MIMETYPE: {"name": name, "value": stored}, "text/plain": f"t2p record: {name} = {stored!r}"},
                raw=True)
    return value


def _records_of(output: dict[str, Any]) -> list[tuple[str, Any]]:
    data = output.get("data") if output.get("output_type") in ("display_data", "execute_result") else None
    if not isinstance(data, dict) or MIMETYPE not in data:
        return []
    payload = data[MIMETYPE]
    if isinstance(payload, (str, list)):  # a writer that kept the JSON as text (nbformat keeps it parsed)
        payload = json.loads("".join(payload))
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return []
    value = payload.get("value")
    if isinstance(value, float) and not math.isfinite(value):  # a NaN written by a lenient JSON writer
        value = None
    return [(payload["name"], value)]


def recorded(ipynb_path: str | Path) -> dict[str, Any]:
    """Every value :func:`record` recorded in the executed notebook ``ipynb_path``: ``name -> value`` in the order
    first recorded, a later record of the same name winning; JSON null (NaN or None when recorded) reads as None.

    Raises FileNotFoundError when the file is missing, :class:`RecordError` when it is not a notebook or holds no
    records (both name the file and say to run the notebook first)."""
    path = Path(ipynb_path)
    hint = f"run notebooks/{path.name} first (./run_all.sh <profile> writes the executed copy)"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no executed notebook there; {hint}")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{path}: not a readable notebook ({exc}); {hint}") from exc
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise RecordError(f"{path}: not a notebook (no cells); {hint}")
    out: dict[str, Any] = {}
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs") or []:
            if isinstance(output, dict):
                out.update(_records_of(output))
    if not out:
        raise RecordError(f"{path}: holds no t2p records ({MIMETYPE} outputs); it was not executed, or stopped "
                          f"before its record cell; {hint}")
    return out


def headline_numbers(metrics: pd.DataFrame, models: Sequence[str] | None = None) -> dict[str, float | None]:
    """05's headline numbers from its metrics frame (``CompareResult.metrics``, ``reports/<profile>/metrics.csv``):
    for each model (``models``, default every model of the frame in its order) and each kind of :data:`HEADLINES`,
    ``"<kind>:<model>" -> mean``; None where the frame has no such row or its mean is not finite (e.g. no flat
    variant when ``compare.drawing_size`` is 0, no faithful prompt for line art without a colour image)."""
    missing = {"model", "variant", "prompt", "metric", "mean"} - set(metrics.columns)
    if missing:
        raise ValueError(f"headline_numbers: the metrics frame lacks columns {sorted(missing)}")
    names = list(dict.fromkeys(metrics["model"].astype(str))) if models is None else list(models)
    out: dict[str, float | None] = {}
    for model in names:
        for kind, (metric, variant, prompt) in HEADLINES.items():
            sel = metrics[(metrics["model"] == model) & (metrics["variant"] == variant) & (metrics["prompt"] == prompt)
                          & (metrics["metric"] == metric)]
            if len(sel) > 1:
                raise ValueError(f"headline_numbers: {len(sel)} rows for {model}/{variant}/{prompt}/{metric}, "
                                 "expected one")
            mean = float(sel["mean"].iloc[0]) if len(sel) else math.nan
            out[f"{kind}:{model}"] = mean if math.isfinite(mean) else None
    return out
