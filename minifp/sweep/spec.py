"""Sweep specs: a TOML grid of ``minifp train`` options expanded into runs.

The simplest spec is one table of lists (every option of ``minifp train`` may be a key,
spelled as its config field: ``batch_size``, ``loss_scaling``, ``optimizer_format`` ...)::

    [grid]
    dtype = ["float32", "float16"]
    seed = [0, 1]
    net = ["mlp"]
    dataset = ["digits"]
    epochs = [1]

Optional tables and keys:

* ``[fixed]``: single values applied to every run;
* ``exclude = [{dtype = "float16", net = "cnn"}, ...]`` (top level): a run whose options
  match every key of one entry is dropped;
* ``[quick]``: values replacing the grid's or fixed ones under ``--quick``;
* ``name``, ``description``: shown by ``--dry-run`` and the reports.

The runs are the Cartesian product of the grid, in the order of its keys (the last key
varies fastest).  Each run's id is a short hash of its canonical configuration (the
options that decide what it computes, :meth:`TrainConfig.defining`), so the same run has
the same id in every spec and every order of keys.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from pathlib import Path

from ..errors import UserError

#: the TrainConfig fields a spec may not set (a sweep decides them)
_RESERVED = ("out", "progress", "quiet", "device")
_TOP_KEYS = ("name", "description", "grid", "fixed", "exclude", "quick", "expected")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: its id and its TrainConfig options."""
    id: str
    options: dict

    def label(self, keys) -> str:
        return " ".join(f"{k}={self.options[k]}" for k in keys)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed spec (see the module docstring)."""
    name: str
    grid: dict
    fixed: dict
    exclude: tuple
    quick: dict
    description: str = ""
    expected: dict = dataclasses.field(default_factory=dict)
    source: str = ""


def _fields() -> dict:
    from ..train import TrainConfig
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check_keys(where: str, keys, source: str):
    fields = _fields()
    allowed = [k for k in fields if k not in _RESERVED]
    for k in keys:
        if k in _RESERVED:
            raise UserError(f"{source}: [{where}] key {k!r} is decided by the sweep "
                            f"(each run gets DIR/<id>/)")
        if k not in fields:
            import difflib
            close = difflib.get_close_matches(k.replace("-", "_"), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"{source}: unknown [{where}] key {k!r}{hint} (keys: the "
                            f"options of minifp train, as config fields)")


def load_spec(spec) -> SweepSpec:
    """The spec at path ``spec`` (a .toml file), or the shipped spec of that name."""
    path = Path(str(spec))
    if not path.is_file():
        shipped = Path(__file__).parent / "specs" / f"{spec}.toml"
        if shipped.is_file():
            path = shipped
        else:
            folder = Path(__file__).parent / "specs"
            names = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
            raise UserError(f"sweep spec {spec!r}: no such file, and no shipped spec of that "
                            f"name (shipped: {', '.join(names) or 'none yet'})")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"sweep spec {path}: cannot read it ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"sweep spec {path}: not valid TOML ({err})") from None
    return parse_spec(data, str(path))


def parse_spec(data: dict, source: str = "spec") -> SweepSpec:
    """A SweepSpec from TOML data, checked (one-line UserErrors)."""
    for k in data:
        if k not in _TOP_KEYS:
            raise UserError(f"{source}: unknown top-level key {k!r} (keys: "
                            f"{', '.join(_TOP_KEYS)})")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise UserError(f"{source}: the [grid] table is missing or empty")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise UserError(f"{source}: [grid] {k} must be a non-empty list, got {v!r}")
    fixed = data.get("fixed") or {}
    quick = data.get("quick") or {}
    for where, table in (("grid", grid), ("fixed", fixed), ("quick", quick)):
        if not isinstance(table, dict):
            raise UserError(f"{source}: [{where}] must be a table")
        _check_keys(where, table, source)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise UserError(f"{source}: {both[0]!r} is in both [grid] and [fixed]")
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) and e for e in exclude):
        raise UserError(f"{source}: exclude must be a list of tables, e.g. "
                        "exclude = [{dtype = \"float16\", net = \"cnn\"}]")
    for e in exclude:
        _check_keys("exclude", e, source)
    return SweepSpec(name=str(data.get("name") or Path(source).stem), grid=dict(grid),
                     fixed=dict(fixed), exclude=tuple(exclude), quick=dict(quick),
                     description=str(data.get("description") or ""),
                     expected=dict(data.get("expected") or {}), source=source)


def run_id(config) -> str:
    """A short, stable hash of a TrainConfig's canonical configuration."""
    canon = json.dumps(config.defining(), sort_keys=True, default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:10]


def expand(spec: SweepSpec, quick: bool = False) -> list[Run]:
    """The runs of ``spec`` (``quick``: with its [quick] values), each checked by building
    its TrainConfig and policy; duplicates (the same canonical configuration twice) once."""
    from ..train import TrainConfig, make_policy
    from ..train.loop import optimizer_options
    from ..train.policy_flags import changes_of
    grid = dict(spec.grid)
    fixed = dict(spec.fixed)
    if quick:
        for k, v in spec.quick.items():
            if k in grid:
                grid[k] = v if isinstance(v, list) else [v]
            else:
                fixed[k] = v
    keys = list(grid)
    runs, seen = [], set()
    for values in itertools.product(*(grid[k] for k in keys)):
        options = dict(fixed, **dict(zip(keys, values)))
        if any(all(options.get(k) == v for k, v in e.items()) for e in spec.exclude):
            continue
        try:
            config = TrainConfig(**options)
        except TypeError as err:
            raise UserError(f"{spec.source}: a run with {options} is not a train config "
                            f"({err})") from None
        make_policy(config.dtype, changes=changes_of(config))   # bad formats: one line
        optimizer_options(config)
        rid = run_id(config)
        if rid in seen:
            continue
        seen.add(rid)
        runs.append(Run(rid, options))
    if not runs:
        raise UserError(f"{spec.source}: the grid expands to no run (every combination is "
                        "excluded)")
    return runs
