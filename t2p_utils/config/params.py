"""One place for every path and every profile parameter.

Paths are relative to the repository root (``T2P_ROOT`` overrides it, which the tests
use to work in a temporary folder). Parameters live in ``params/<profile>.yaml``: one
mapping per step, each read into that step's own dataclass by :func:`section`, which
collects every problem into one :class:`ConfigError`, a line each naming the file, the
section, the key, the value and what is valid: unknown keys (with the valid ones), values
of the wrong type, and what the dataclass's own checks (:class:`FieldChecks`: ranges,
choices, multiples) reject. :func:`t2p_utils.config.study.load_study` checks every section at once.

A *user profile* is any other params file, given by its path (``./run_all.sh my.yaml``): its
name is its ``profile:`` key or the file's stem, its outputs go under ``data/…/<name>/``,
``models/<name>/`` and ``reports/<name>/``, and ``extends: cpu`` starts it from a built-in
profile's sections, which its own keys then override one by one.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

PROFILES: tuple[str, ...] = ("smoke", "cpu", "full")
#: the top-level keys a params file may hold (every other one is a typo)
TOP_LEVEL_KEYS: tuple[str, ...] = ("profile", "seed", "extends", "scrape", "captions", "train", "compare")
SECTIONS: tuple[str, ...] = ("scrape", "captions", "train", "compare")
RUNS_DIR = "runs"  # models/<p>/runs/: training runs (checkpoints, logs), beside the saved pipelines
CAPTION_SOURCES: tuple[str, ...] = ("reference", "cnn_lstm", "clip", "palette")

T = TypeVar("T")


class ConfigError(ValueError):
    """A profile, a params file or a config key is wrong; the message says how to fix it. ``problems``: its lines,
    one per problem (a params file is checked whole and every problem reported at once)."""

    def __init__(self, message: str = "", problems: Sequence[str] | None = None) -> None:
        self.problems: list[str] = list(problems) if problems is not None else [message]
        super().__init__(message or "\n".join(self.problems))


def repo_root() -> Path:
    """The repository root: ``$T2P_ROOT`` if set, else the folder above this package."""
    env = os.environ.get("T2P_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ConfigError(
            f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
            f"(params files live in {repo_root() / 'params'}) or give the path of your own params file (*.yaml)"
        )
    return profile


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc}): check the path") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}. Fix the file and run again.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of step sections (scrape:, captions:, ...), got {type(data).__name__}")
    return data


def is_params_path(spec: str) -> bool:
    """Whether a profile argument names a params file rather than a built-in profile."""
    return str(spec).endswith((".yaml", ".yml")) or os.sep in str(spec)


def resolve_profile(spec: str | Path, root: Path | None = None) -> tuple[str, Path | None]:
    """``(name, params file)`` of a profile argument: a built-in name (file ``None``: ``params/<name>.yaml``)
    or the path of a user params file, whose name is its ``profile:`` key or else its stem."""
    spec = str(spec)
    if spec in PROFILES:
        return spec, None
    if not is_params_path(spec):
        check_profile(spec)
    root = (root or repo_root()).resolve()
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"params file {spec} does not exist: give the path of a YAML file "
                          f"(see README 'Your own line art'), or one of {', '.join(PROFILES)}")
    path = path.resolve()
    name = str(_read_yaml(path).get("profile") or path.stem)
    if not _NAME.match(name):
        raise ConfigError(f"{path}: profile name {name!r} must be letters, digits, '_', '-' or '.' "
                          "(it names folders): set profile: in the file")
    if name in PROFILES:
        if path == (root / "params" / f"{name}.yaml").resolve():
            return name, None
        raise ConfigError(f"{path} is named {name!r}, a built-in profile: its outputs would overwrite that profile's. "
                          f"Set profile: to another name (e.g. my_{name}); use extends: {name} to start from its settings")
    return name, path


@dataclass(frozen=True)
class Paths:
    """Every file location of one profile (the data contracts of DESIGN.md section 4)."""

    profile: str
    root: Path
    user_params: Path | None = None  # a user profile's params file (None: the built-in params/<profile>.yaml)

    @classmethod
    def for_profile(cls, profile: str | Path, root: Path | None = None) -> Paths:
        """Paths of a built-in profile name or of a user params file (:func:`resolve_profile`)."""
        root = (root or repo_root()).resolve()
        name, file = resolve_profile(profile, root)
        return cls(name, root, file)

    @property
    def is_user(self) -> bool:
        return self.user_params is not None

    @property
    def spec(self) -> str:
        """What names this profile to a notebook or to ``./run_all.sh``: its name, or its params file's path."""
        return str(self.user_params) if self.user_params else self.profile

    # inputs -----------------------------------------------------------------
    @property
    def params_file(self) -> Path:
        return self.user_params or self.root / "params" / f"{self.profile}.yaml"

    def user_path(self, value: str) -> Path:
        """A path named in the params file: absolute, or relative to the params file's folder when it exists
        there, else to the repository root."""
        p = Path(value).expanduser()
        if p.is_absolute():
            return p
        near, repo = self.params_file.parent / p, self.root / p
        return near if near.exists() or not repo.exists() else repo

    @property
    def raw(self) -> Path:
        """Immutable downloads, shared by all profiles (tarballs, SVGs)."""
        return self.root / "data" / "raw"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim" / self.profile

    @property
    def families_csv(self) -> Path:
        return self.root / "data" / "families.csv"

    # processed images ---------------------------------------------------------
    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed" / self.profile

    @property
    def color_dir(self) -> Path:
        return self.processed / "color"

    @property
    def lineart_dir(self) -> Path:
        return self.processed / "lineart"

    @property
    def mask_dir(self) -> Path:
        return self.processed / "mask"

    @property
    def manifest(self) -> Path:
        return self.processed / "manifest.csv"

    def image(self, kind: str, sprite_id: str) -> Path:
        """``kind`` is one of color, lineart, mask."""
        if kind not in ("color", "lineart", "mask"):
            raise ValueError(f"image kind must be color, lineart or mask, not {kind!r}")
        return self.processed / kind / f"{sprite_id}.png"

    # captions -----------------------------------------------------------------
    @property
    def reference_captions(self) -> Path:
        """Reference captions and test instructions.

        Real sprites (``cpu``/``full``): the hand-written, committed ``data/captions/reference.csv``.
        ``smoke``: generated beside the synthetic images from their known colours. User profiles:
        written by step 01 (``t2p_utils.scrape.derive``) from ``captions.reference_file`` and what it derives.
        """
        if self.profile == "smoke" or self.is_user:
            return self.processed / "reference_captions.csv"
        return self.committed_references

    @property
    def committed_references(self) -> Path:
        """The hand-written captions and instructions of the dream-world sprites (committed in git)."""
        return self.root / "data" / "captions" / "reference.csv"

    @property
    def captions_dir(self) -> Path:
        return self.root / "data" / "captions" / self.profile

    def captions(self, source: str) -> Path:
        return self.captions_dir / f"{source}.csv"

    def instructions(self, source: str) -> Path:
        """A folder with images and ``metadata.jsonl`` (diffusers' instruct_pix2pix format)."""
        return self.root / "data" / "instructions" / self.profile / source

    # models and reports ---------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models" / self.profile

    def model(self, name: str) -> Path:
        """A diffusers pipeline folder (or another model's folder, e.g. ``cnn_lstm``)."""
        return self.models / name

    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.profile

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys on top; where both hold a mapping, merged the same way (lists and values are
    replaced whole)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_overrides(params: dict[str, Any], overrides: Iterable[str], where: str = "--set") -> dict[str, Any]:
    """``params`` with each ``section.key[.key...]=value`` of ``overrides`` set (the value read as YAML:
    ``train.max_train_steps=10``, ``captions.cnn_lstm.epochs=2``, ``compare.seeds=[0,1]``); a new dict."""
    out = dict(params)
    for item in overrides:
        key, sep, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
            raise ConfigError(f"{where} {item!r}: write section.key=value with a section of {', '.join(SECTIONS)}, "
                              f"e.g. train.max_train_steps=10")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where} {item!r}: the value is not YAML ({exc})") from exc
        patch: Any = value
        for part in reversed(parts[1:]):
            patch = {part: patch}
        out[parts[0]] = deep_merge(out.get(parts[0]) or {}, patch)
    return out


def load_params(profile: str | Path, root: Path | None = None) -> dict[str, Any]:
    """Read a profile's params file into a dict of step sections (``extends:`` merged in, top-level keys checked)."""
    paths = Paths.for_profile(profile, root)
    path = paths.params_file
    if not path.exists():
        raise ConfigError(f"{path} is missing: every profile needs a params file ({', '.join(PROFILES)})")
    data = _read_yaml(path)
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(map(str, unknown))}; valid keys are: "
                          f"{', '.join(TOP_LEVEL_KEYS)}")
    for name in SECTIONS:
        if data.get(name) is not None and not isinstance(data[name], dict):
            raise ConfigError(f"{path}: {name}: must be a mapping of keys, got {type(data[name]).__name__}")
    base_name = data.pop("extends", None)
    if base_name is not None:
        if base_name not in PROFILES:
            raise ConfigError(f"{path}: extends: {base_name!r} must be a built-in profile ({', '.join(PROFILES)})")
        base = load_params(base_name, paths.root)
        for name in SECTIONS:  # the user's keys override the base's, key by key at every depth
            data[name] = deep_merge(base.get(name) or {}, data.get(name) or {})
        data.setdefault("seed", base.get("seed"))
        data["extends"] = base_name
    data.setdefault("profile", paths.profile)
    if data["profile"] != paths.profile:
        raise ConfigError(f"{path} says profile {data['profile']!r} but was loaded as {paths.profile!r}")
    data["_source"] = str(path)
    return data


def _plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(x: float) -> str:
    return f"{x:g}"


class FieldChecks:
    """A step dataclass's own checks (ranges, choices), every problem collected, for its ``__post_init__``::

        FieldChecks(self).positive("learning_rate").at_least(1, "max_train_steps").raise_if_any("train")

    raises one :class:`ConfigError` with a line per problem ("[train]: key 'learning_rate' must be > 0, got -1");
    :func:`from_dict` puts the params file in front. ``None`` (an optional key left unset) and values of the wrong
    type (reported by :func:`from_dict`) pass every range check."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.problems: list[str] = []

    def bad(self, key: str, valid: str) -> FieldChecks:
        self.problems.append(f"key {key!r} must be {valid}, got {getattr(self.obj, key)!r}")
        return self

    def _numbers(self, keys: tuple[str, ...]) -> Iterator[tuple[str, float]]:
        for key in keys:
            value = getattr(self.obj, key)
            if _plain_number(value):
                yield key, value

    def positive(self, *keys: str, valid: str = "> 0") -> FieldChecks:
        for key, value in self._numbers(keys):
            if not value > 0:
                self.bad(key, valid)
        return self

    def at_least(self, low: float, *keys: str) -> FieldChecks:
        for key, value in self._numbers(keys):
            if value < low:
                self.bad(key, f">= {_num(low)}")
        return self

    def within(self, low: float, high: float, *keys: str, low_open: bool = False, high_open: bool = False,
               valid: str = "") -> FieldChecks:
        text = valid or f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
        for key, value in self._numbers(keys):
            if value < low or value > high or (low_open and value == low) or (high_open and value == high):
                self.bad(key, text)
        return self

    def one_of(self, key: str, choices: Iterable[Any]) -> FieldChecks:
        choices = tuple(choices)
        value = getattr(self.obj, key)
        if isinstance(value, (str, int, float, bool)) and value not in choices:
            self.bad(key, f"one of {', '.join(map(str, choices))}")
        return self

    def each_of(self, key: str, choices: Iterable[Any]) -> FieldChecks:
        choices = tuple(choices)
        value = getattr(self.obj, key)
        if isinstance(value, list) and any(v not in choices for v in value):
            self.bad(key, f"a list of {', '.join(map(str, choices))}")
        return self

    def multiple_of(self, key: str, factor: int, why: str = "") -> FieldChecks:
        value = getattr(self.obj, key)
        if isinstance(value, int) and not isinstance(value, bool) and value % factor:
            lower, upper = value // factor * factor, (value // factor + 1) * factor
            near = f"{lower} or {upper}" if lower > 0 else str(upper)
            self.bad(key, f"a multiple of {factor}{f' ({why})' if why else ''}, e.g. {near}")
        return self

    def raise_if_any(self, section: str) -> None:
        if self.problems:
            raise ConfigError("\n".join(f"[{section}]: {p}" for p in self.problems), problems=self.problems)


_NONE = type(None)


def type_fits(value: Any, tp: Any) -> bool:
    """Whether a YAML value fits a field's type hint (int, float, str, bool, ``X | None``, ``list[X]``,
    ``dict[K, V]``; anything else is not checked). Ints fit float; booleans fit only bool."""
    if tp is None or tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(type_fits(value, a) for a in args)
    if tp is _NONE:
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp in (int, float):
        return _plain_number(value) and (tp is float or isinstance(value, int))
    if tp is list or origin is list:
        return isinstance(value, list) and (not args or all(type_fits(v, args[0]) for v in value))
    if tp is dict or origin is dict:
        return isinstance(value, dict) and (not args or all(type_fits(k, args[0]) and type_fits(v, args[1])
                                                            for k, v in value.items()))
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def type_text(tp: Any) -> str:
    """A type hint as a params file's reader says it: "int", "float or null", "a list of str"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a) for a in args)
    if tp is _NONE:
        return "null"
    if tp is list or origin is list:
        return f"a list of {type_text(args[0])}" if args else "a list"
    if tp is dict or origin is dict:
        return f"a mapping of {type_text(args[0])} to {type_text(args[1])}" if args else "a mapping"
    return getattr(tp, "__name__", str(tp))


def value_problems(cls_name: str, hints: dict[str, Any], values: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(a line per unknown key or wrongly typed value, the values that fit) of one section's ``values`` against a
    dataclass's fields (name -> type hint)."""
    problems, good = [], {}
    for key, value in values.items():
        if key not in hints:
            near = difflib.get_close_matches(str(key), list(hints), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"unknown key {key!r}{hint}, got {value!r}; valid keys for {cls_name} are: "
                            f"{', '.join(sorted(hints))}")
        elif not type_fits(value, hints[key]):
            yaml_note = ""
            if isinstance(value, str) and type_fits(1.0, hints[key]):
                try:
                    float(value)
                    yaml_note = " (YAML reads a number without a dot, like 1e-4, as text: write 1.0e-4)"
                except ValueError:
                    pass
            problems.append(f"key {key!r} must be {type_text(hints[key])}, got {value!r}{yaml_note}")
        else:
            good[key] = value
    return problems, good


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; every problem is collected into one :class:`ConfigError`, a line
    each, "``<where>: <problem>``": unknown keys (with the nearest valid one), values of the wrong type, and what the
    dataclass's own checks (:class:`FieldChecks`) reject among the values that fit."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints.get(f.name) for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    values = dict(values or {})
    problems: list[str] = []
    moved = getattr(cls, "MOVED", {})
    for key in [k for k in values if k in moved and k not in fields]:
        head, _, rest = moved[key].partition(".")
        problems.append(f"key {key!r} moved to {moved[key]!r}: write it under {head}: as {rest}: {values.pop(key)!r}")
    nested: dict[str, Any] = {}
    for name, tp in fields.items():  # a field that is itself a dataclass: its own mapping, checked the same way
        if not dataclasses.is_dataclass(tp):
            continue
        sub = values.pop(name, {})
        if not isinstance(sub, dict):
            problems.append(f"key {name!r} must be a mapping of {tp.__name__}'s keys, got {sub!r}")
            continue
        # the section's seed reaches its parts, as the top-level seed reaches the sections
        sub = section_values_for({"seed": values.get("seed"), name: sub}, name, [f.name for f in dataclasses.fields(tp)])
        if not sub:
            continue  # nothing set: the field's default
        try:
            nested[name] = from_dict(tp, sub, where=f"{where} {name}")
        except ConfigError as exc:
            problems += [line[len(where) + 1:] if line.startswith(f"{where} ") else line for line in exc.problems]
    more, good = value_problems(cls.__name__, fields, values)
    problems += more
    good.update(nested)
    cfg = None
    try:
        cfg = cls(**good)
    except ConfigError as exc:
        problems += exc.problems
    except ValueError as exc:  # a dataclass whose checks raise one plain error ("compare: ...")
        m = re.search(r"\[(\w+)\]$", where)
        text = str(exc)
        if m and text.startswith((f"{m.group(1)}: ", f"{m.group(1)}.")):
            text = text[len(m.group(1)) + (2 if text[len(m.group(1))] == ":" else 1):]
        problems.append(text)
    if problems:
        lines = [f"{where}: {p}" for p in problems]
        raise ConfigError("\n".join(lines), problems=lines)
    return cfg  # type: ignore[return-value]


def section_values(params: dict[str, Any], name: str, cls: type) -> dict[str, Any]:
    """The raw values of section ``name`` (a new dict), with the top-level ``seed:`` added when ``cls``
    has a ``seed`` field and the section sets none: one seed reaches every step (split, captioners,
    recolouring, training)."""
    return section_values_for(params, name, {f.name for f in dataclasses.fields(cls)})


def section_values_for(params: dict[str, Any], name: str, fields: Iterable[str]) -> dict[str, Any]:
    """:func:`section_values` for a dataclass known by its field names; a top-level seed that is not an int is not
    handed on (:meth:`t2p_utils.config.study.StudyConfig.problems` reports it once)."""
    values = dict(params.get(name) or {})
    seed = params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and "seed" in set(fields):
        values.setdefault("seed", seed)
    return values


def section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """The dataclass for step ``name`` of loaded params (missing section -> defaults; seed: :func:`section_values`)."""
    src = params.get("_source", "params")
    return from_dict(cls, section_values(params, name, cls), where=f"{src} [{name}]")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a CUDA GPU is available, else ``"cpu"``; any other value is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
