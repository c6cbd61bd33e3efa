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
* bundles: a grid key that is not an option, whose values are tables of options, varies
  several options together (a row of a paper's table), each bundle named by its ``label``::

      setup = [{label = "FP32", dtype = "float32"},
               {label = "O16-L8q", dtype = "posit(8,2)", optimizer_format = "posit(16,2)"}]

* ``reference = {setup = "FP32"}``: the runs the reports compare predictions with (the
  run with the same other grid values and seed);
* ``expected = [{where = {setup = "O16-L8q"}, test_accuracy = 0.8814, source = "..."}]``:
  published values the reports put beside the measured ones;
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
_TOP_KEYS = ("name", "description", "grid", "fixed", "exclude", "quick", "expected",
             "reference")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: its id, its TrainConfig options and its grid coordinates (each
    grid key's value; a bundle's label)."""
    id: str
    options: dict
    coords: dict = dataclasses.field(default_factory=dict)

    def label(self, keys) -> str:
        where = self.coords or self.options
        return " ".join(f"{k}={where.get(k, self.options.get(k))}" for k in keys)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed spec (see the module docstring)."""
    name: str
    grid: dict
    fixed: dict
    exclude: tuple
    quick: dict
    description: str = ""
    expected: tuple = ()
    reference: dict = dataclasses.field(default_factory=dict)
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
        bundles = [k for k, v in table.items() if k not in _fields() and _is_bundle(v)]
        if where == "quick":       # bundles chosen by label: ["FP32", "O16-L8q"]
            bundles += [k for k in table if k in grid and k not in _fields()
                        and k not in bundles]
        for k in bundles:
            for b in (table[k] if isinstance(table[k], list) else [table[k]]):
                if isinstance(b, dict):
                    _check_keys(f"{where}.{k}", [x for x in b if x != "label"], source)
        _check_keys(where, [k for k in table if k not in bundles], source)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise UserError(f"{source}: {both[0]!r} is in both [grid] and [fixed]")
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) and e for e in exclude):
        raise UserError(f"{source}: exclude must be a list of tables, e.g. "
                        "exclude = [{dtype = \"float16\", net = \"cnn\"}]")
    bundle_keys = [k for k, v in grid.items() if k not in _fields() and _is_bundle(v)]
    for e in exclude:
        _check_keys("exclude", [k for k in e if k not in bundle_keys], source)
    reference = data.get("reference") or {}
    if not isinstance(reference, dict):
        raise UserError(f"{source}: reference must be a table, e.g. reference = "
                        "{dtype = \"float32\"}")
    for k in reference:
        if k not in grid:
            raise UserError(f"{source}: reference key {k!r} is not a [grid] key")
    expected = data.get("expected") or []
    if not isinstance(expected, list) or not all(
            isinstance(e, dict) and isinstance(e.get("where", {}), dict) for e in expected):
        raise UserError(f"{source}: expected must be a list of tables, e.g. expected = "
                        "[{where = {dtype = \"float32\"}, test_accuracy = 0.9028, "
                        "source = \"Table 3\"}]")
    return SweepSpec(name=str(data.get("name") or Path(source).stem), grid=dict(grid),
                     fixed=dict(fixed), exclude=tuple(exclude), quick=dict(quick),
                     description=str(data.get("description") or ""),
                     expected=tuple(expected), reference=dict(reference), source=source)


def _is_bundle(value) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, dict) for v in values)


def bundle_label(bundle: dict) -> str:
    """A bundle's name: its ``label``, else its options as ``k=v`` joined by commas."""
    if "label" in bundle:
        return str(bundle["label"])
    return ",".join(f"{k}={v}" for k, v in bundle.items())


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
          "tuple": (list, tuple)}


def _check_types(options: dict, source: str) -> None:
    """Each option's TOML value has its TrainConfig field's type (a one-line UserError,
    before any run starts, rather than an error in every worker)."""
    fields = _fields()
    for k, v in options.items():
        names = [t.strip() for t in str(fields[k].type).split("|") if t.strip() != "None"]
        types = tuple(t for n in names for t in _TYPES.get(n, (object,)))
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            want = " or ".join("a number" if n == "float" else f"an {n}" if n == "int"
                               else f"a {n}" if n != "tuple" else "a list" for n in names)
            raise UserError(f"{source}: {k} = {v!r} must be {want}")
    if isinstance(options.get("seed"), int) and options["seed"] < 0:
        raise UserError(f"{source}: seed must be a non-negative integer, got "
                        f"{options['seed']}")


def run_id(config) -> str:
    """A short, stable hash of a TrainConfig's canonical configuration: the options that
    decide what it computes, and its number of epochs (a row of a table)."""
    canon = json.dumps(dict(config.defining(), epochs=config.epochs), sort_keys=True,
                       default=str)
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
                v = v if isinstance(v, list) else [v]
                if _is_bundle(grid[k]) and all(isinstance(x, str) for x in v):
                    by_label = {bundle_label(b): b for b in grid[k]}
                    unknown = [x for x in v if x not in by_label]
                    if unknown:
                        raise UserError(f"{spec.source}: [quick] {k}: no [grid] {k} is "
                                        f"labelled {unknown[0]!r}")
                    v = [by_label[x] for x in v]
                grid[k] = v
            else:
                fixed[k] = v
    keys = list(grid)
    runs, seen = [], set()
    fields = _fields()
    for values in itertools.product(*(grid[k] for k in keys)):
        options, coords = dict(fixed), {}
        for k, v in zip(keys, values):
            if k not in fields and isinstance(v, dict):
                options.update({x: y for x, y in v.items() if x != "label"})
                coords[k] = bundle_label(v)
            else:
                options[k] = v
                coords[k] = v
        if any(all(coords.get(k, options.get(k)) == v for k, v in e.items())
               for e in spec.exclude):
            continue
        _check_types(options, spec.source)
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
        runs.append(Run(rid, options, coords))
    if not runs:
        raise UserError(f"{spec.source}: the grid expands to no run (every combination is "
                        "excluded)")
    return runs
