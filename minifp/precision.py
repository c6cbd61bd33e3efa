"""The precision policy: which format each role uses, how each phase accumulates, how values
are rounded, and how the loss is scaled (../shared/DESIGN.md, "Semantics" 6).

Roles (a tensor's role decides the format it is rounded to)::

    weights      W  parameters as the forward pass uses them
    activations  F  every forward output (except the loss)
    loss         L  the loss value (loss ops)
    backward     B  gradients w.r.t. activations (backward errors)
    gradients    G  gradients w.r.t. parameters (weight gradients)
    optimizer    O  optimizer state, and master weights when ``master_weights`` is set

Every reduction of the forward pass goes through ``policy.forward`` and every reduction of
the backward pass through ``policy.backward_acc`` (:class:`~minifp.accumulate.spec.Accumulation`:
accumulator format, order, fma, rounding).  Results are then rounded once to the role's
format with the role's rounding mode.

>>> from minifp.precision import get_precision, use, current
>>> p = get_precision("mixed")
>>> p.activations.name, p.optimizer.name, str(p.forward)
('float16', 'float32', 'float32 sequential fma')
>>> with use("float16"):
...     current().name
'float16'
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import json
import math
import os
import threading
from collections.abc import Mapping

import numpy as np

from .accumulate.spec import Accumulation
from .formats import Format, Rounding, get_format, parse_rounding

__all__ = ["ROLES", "PHASES", "LossScaling", "Precision", "PRESETS", "preset_names",
           "get_precision", "use", "current", "current_rng", "layer_scope", "current_layer"]

ROLES = ("weights", "activations", "loss", "backward", "gradients", "optimizer")
PHASES = ("forward", "backward")
_ROLE_LETTERS = {"W": "weights", "F": "activations", "L": "loss", "B": "backward",
                 "G": "gradients", "O": "optimizer"}
_LETTER_OF = {v: k for k, v in _ROLE_LETTERS.items()}

# Keys of to_dict()/JSON; the subset a per-layer override may set.
_KEYS = ("name",) + ROLES + ("rounding", "forward", "backward_acc", "master_weights",
                             "loss_scaling", "overrides", "seed", "loss_stage")
#: how cross_entropy computes its softmax, loss and gradient: "L" (in L arithmetic, every
#: elementwise result rounded to L, the sums by the engine: PositNN, pure 16-bit training)
#: or "float64" (the reference: float64 from the engine-summed denominator, rounded once)
LOSS_STAGES = ("L", "float64")
_OVERRIDE_KEYS = ROLES + ("rounding", "forward", "backward_acc")


def _unknown(what: str, key, known) -> ValueError:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {what} {key!r}{hint} (known: {', '.join(known)})")


def _role(role) -> str:
    """Canonical role name from a role name or its letter (W F L B G O)."""
    if role in ROLES:
        return role
    if isinstance(role, str) and role.strip() in _ROLE_LETTERS:
        return _ROLE_LETTERS[role.strip()]
    if isinstance(role, str) and role.strip().lower() in ROLES:
        return role.strip().lower()
    raise _unknown("role", role, ROLES)


class FrozenMap(Mapping):
    """A read-only, hashable, ordered mapping (used for per-role rounding and overrides)."""

    __slots__ = ("_items", "_d")

    def __init__(self, items=()):
        d = dict(items)
        self._d = d
        self._items = tuple(d.items())

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def __hash__(self):
        return hash(self._items)

    def __eq__(self, other):
        if isinstance(other, Mapping):
            return dict(self._d) == dict(other)
        return NotImplemented

    def __repr__(self):
        return f"FrozenMap({self._d!r})"


# ---------------------------------------------------------------------------------------
# Loss scaling
# ---------------------------------------------------------------------------------------
LOSS_SCALING_MODES = ("none", "static", "dynamic")


@dataclasses.dataclass(frozen=True)
class LossScaling:
    """How the loss is scaled before the backward pass (gradients are unscaled before the
    optimizer step).

    mode             ``none`` (scale 1), ``static`` (always ``scale``) or ``dynamic``: start
                     at ``scale``; on a non-finite gradient skip the step and divide the
                     scale by ``factor``; after ``growth_interval`` finite steps in a row
                     multiply it by ``factor`` (the AMP GradScaler rule).
    scale            initial (static: fixed) scale, finite and > 0.
    growth_interval  steps between growths (dynamic), int >= 1.
    factor           growth / backoff factor (dynamic), > 1.
    """

    mode: str = "none"
    scale: float = 1.0
    growth_interval: int = 2000
    factor: float = 2.0

    def __post_init__(self):
        mode = str(self.mode).strip().lower()
        if mode not in LOSS_SCALING_MODES:
            raise _unknown("loss scaling mode", self.mode, LOSS_SCALING_MODES)
        object.__setattr__(self, "mode", mode)
        for key, lo in (("scale", 0.0), ("factor", 1.0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"loss scaling {key} must be a number, not {v!r}")
            v = float(v)
            if not (math.isfinite(v) and v > lo):
                raise ValueError(f"loss scaling {key} must be finite and > {lo:g}, not {v!r}")
            object.__setattr__(self, key, v)
        gi = self.growth_interval
        if isinstance(gi, bool) or not isinstance(gi, (int, np.integer)) or gi < 1:
            raise ValueError(f"loss scaling growth_interval must be an int >= 1, not {gi!r}")
        object.__setattr__(self, "growth_interval", int(gi))

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def __str__(self) -> str:
        if self.mode == "none":
            return "none"
        e = math.log2(self.scale)
        s = f"{self.scale:g}" + (f" (2^{int(e)})" if e == int(e) else "")
        if self.mode == "static":
            return f"static, scale {s}"
        return (f"dynamic, initial scale {s}, x{self.factor:g} after {self.growth_interval} "
                f"finite steps, /{self.factor:g} and skip on overflow")

    def to_dict(self) -> dict:
        return {"mode": self.mode, "scale": self.scale, "growth_interval": self.growth_interval,
                "factor": self.factor}

    @classmethod
    def from_dict(cls, d) -> "LossScaling":
        if isinstance(d, LossScaling):
            return d
        if d is None:
            return cls()
        if isinstance(d, str):
            return cls(mode=d)
        if not isinstance(d, Mapping):
            raise ValueError(f"loss_scaling must be a dict or a mode name, not {d!r}")
        known = ("mode", "scale", "growth_interval", "factor")
        for k in d:
            if k not in known:
                raise _unknown("loss_scaling key", k, known)
        return cls(**d)


# ---------------------------------------------------------------------------------------
# Normalisers shared by Precision fields and per-layer overrides
# ---------------------------------------------------------------------------------------
def _as_format(key, v) -> Format:
    try:
        return get_format(v)
    except ValueError as err:
        raise ValueError(f"precision key {key!r}: {err}") from None


def _as_acc(key, v) -> Accumulation:
    try:
        if isinstance(v, Accumulation):
            return v
        if isinstance(v, Mapping):
            return Accumulation.from_dict(dict(v))
        if isinstance(v, (str, Format)):
            return Accumulation.parse(v) if isinstance(v, str) else Accumulation(v)
    except (ValueError, TypeError) as err:
        raise ValueError(f"precision key {key!r}: {err}") from None
    raise ValueError(f"precision key {key!r}: expected an Accumulation, a dict or a string "
                     f"like 'float32:sequential', not {v!r}")


def _as_rounding(v, *, partial: bool) -> FrozenMap:
    """Per-role rounding: one mode for every role, or a dict role -> mode (missing roles
    default to nearest_even unless ``partial``)."""
    try:
        if v is None:
            m = {}
        elif isinstance(v, (str, Rounding)):
            mode = parse_rounding(v)
            m = {r: mode for r in ROLES}
        elif isinstance(v, Mapping):
            m = {}
            for k, mode in v.items():
                m[_role(k)] = parse_rounding(mode)
        else:
            raise ValueError(f"expected a mode name or a dict role -> mode, not {v!r}")
    except ValueError as err:
        raise ValueError(f"precision key 'rounding': {err}") from None
    if partial:
        return FrozenMap((r, m[r]) for r in ROLES if r in m)
    return FrozenMap((r, m.get(r, Rounding.NEAREST_EVEN)) for r in ROLES)


def _as_override(pattern, d) -> tuple[str, FrozenMap]:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"override pattern must be a non-empty string, not {pattern!r}")
    if not isinstance(d, Mapping):
        raise ValueError(f"override {pattern!r}: expected a dict, not {d!r}")
    out = {}
    for k, v in d.items():
        if k not in _OVERRIDE_KEYS:
            if k in _KEYS:
                raise ValueError(f"override {pattern!r}: key {k!r} cannot be set per layer "
                                 f"(per-layer keys: {', '.join(_OVERRIDE_KEYS)})")
            raise _unknown(f"override key in {pattern!r}:", k, _OVERRIDE_KEYS)
        if k in ROLES:
            out[k] = _as_format(k, v)
        elif k == "rounding":
            out[k] = _as_rounding(v, partial=True)
        else:
            out[k] = _as_acc(k, v)
    # canonical key order so equal overrides compare and print equal
    return pattern, FrozenMap((k, out[k]) for k in _OVERRIDE_KEYS if k in out)


def _as_overrides(v) -> tuple:
    if v is None:
        return ()
    items = v.items() if isinstance(v, Mapping) else v
    out = []
    for item in items:
        try:
            pattern, d = item
        except (TypeError, ValueError):
            raise ValueError(f"each override must be a (pattern, dict) pair, not {item!r}") \
                from None
        out.append(_as_override(pattern, d))
    return tuple(out)


def _override_to_dict(o: Mapping) -> dict:
    out = {}
    for k, v in o.items():
        if k in ROLES:
            out[k] = v.name
        elif k == "rounding":
            out[k] = {r: m.value for r, m in v.items()}
        else:
            out[k] = v.to_dict()
    return out


def _override_label(o: Mapping) -> str:
    parts = []
    for k, v in o.items():
        if k in ROLES:
            parts.append(f"{k}={v.name}")
        elif k == "rounding":
            parts.extend(f"{r} rounding={m.value}" for r, m in v.items())
        else:
            parts.append(f"{'forward' if k == 'forward' else 'backward'} acc={v}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------------------
def _f32():
    return get_format("float32")


@dataclasses.dataclass(frozen=True)
class Precision:
    """A precision policy: one format per role, one Accumulation per phase, a rounding
    mode per role, master weights, loss scaling, per-layer overrides and a seed.

    Fields accept names and plain data and are normalised: role formats via
    :func:`minifp.formats.get_format`; ``forward`` / ``backward_acc`` from an
    Accumulation, a dict (``Accumulation.to_dict`` keys) or a string such as
    ``"float32:sequential"``; ``rounding`` from one mode for all roles or a dict role ->
    mode (missing roles: nearest_even); ``loss_scaling`` from a LossScaling, a dict or a
    mode name; ``overrides`` from pairs ``(fnmatch pattern on the layer path, dict)`` whose
    dict may set role formats, ``rounding`` (per role) and ``forward`` / ``backward_acc``.

    ``master_weights``: the optimizer keeps a copy of every parameter in the ``optimizer``
    format, updates it there, and rounds it to ``weights`` for the forward pass.
    ``seed`` seeds the stochastic-rounding stream (:func:`current_rng`).
    ``loss_stage`` (:data:`LOSS_STAGES`): ``"L"`` computes cross_entropy's softmax, loss
    and gradient in L arithmetic; ``"float64"`` is the float64 reference.
    """

    name: str = "custom"
    weights: Format = dataclasses.field(default_factory=_f32)
    activations: Format = dataclasses.field(default_factory=_f32)
    loss: Format = dataclasses.field(default_factory=_f32)
    backward: Format = dataclasses.field(default_factory=_f32)
    gradients: Format = dataclasses.field(default_factory=_f32)
    optimizer: Format = dataclasses.field(default_factory=_f32)
    forward: Accumulation = dataclasses.field(default_factory=Accumulation)
    backward_acc: Accumulation = dataclasses.field(default_factory=Accumulation)
    rounding: Mapping = None
    master_weights: bool = False
    loss_scaling: LossScaling = dataclasses.field(default_factory=LossScaling)
    overrides: tuple = ()
    seed: int = 0
    loss_stage: str = "L"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"precision name must be a non-empty string, not {self.name!r}")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for r in ROLES:
            set_(r, _as_format(r, getattr(self, r)))
        set_("forward", _as_acc("forward", self.forward))
        set_("backward_acc", _as_acc("backward_acc", self.backward_acc))
        set_("rounding", _as_rounding(self.rounding, partial=False))
        if not isinstance(self.master_weights, (bool, np.bool_)):
            raise ValueError(f"master_weights must be True or False, not {self.master_weights!r}")
        set_("master_weights", bool(self.master_weights))
        try:
            set_("loss_scaling", LossScaling.from_dict(self.loss_scaling))
        except (ValueError, TypeError) as err:
            raise ValueError(f"precision key 'loss_scaling': {err}") from None
        set_("overrides", _as_overrides(self.overrides))
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seed must be an int >= 0, not {s!r}")
        set_("seed", int(s))
        if self.loss_stage not in LOSS_STAGES:
            raise ValueError(f"loss_stage must be one of {', '.join(LOSS_STAGES)}, not "
                             f"{self.loss_stage!r}")

    # ---- queries ------------------------------------------------------------------
    def format_of(self, role) -> Format:
        """The format of ``role`` (a role name or its letter W F L B G O)."""
        return getattr(self, _role(role))

    def rounding_of(self, role) -> Rounding:
        """The rounding mode of ``role``."""
        return self.rounding[_role(role)]

    def round(self, role, x, rng=None):
        """Round ``x`` to the role's format with the role's rounding mode, once; returns an
        array of the format's carrier dtype.  Stochastic rounding draws from ``rng``, or
        from :func:`current_rng` when ``rng`` is None."""
        r = _role(role)
        mode = self.rounding[r]
        if mode is Rounding.STOCHASTIC and rng is None:
            rng = current_rng()
        return getattr(self, r).round(x, mode, rng)

    def accumulation(self, phase: str) -> Accumulation:
        """The Accumulation of ``phase``: ``"forward"`` or ``"backward"``."""
        if phase == "forward":
            return self.forward
        if phase == "backward":
            return self.backward_acc
        raise _unknown("phase", phase, PHASES)

    def for_layer(self, path: str) -> "Precision":
        """The policy for the layer at ``path`` (e.g. ``"features.0.conv"``): every override
        whose fnmatch pattern matches the path is applied in order (later ones win).
        The result has no overrides of its own; a policy without overrides returns itself."""
        if not self.overrides:
            return self
        kw: dict = {"overrides": ()}
        rounding = dict(self.rounding)
        for pattern, o in self.overrides:
            if not fnmatch.fnmatchcase(str(path), pattern):
                continue
            for k, v in o.items():
                if k == "rounding":
                    rounding.update(v)
                else:
                    kw[k] = v
        kw["rounding"] = rounding
        return dataclasses.replace(self, **kw)

    def replace(self, **changes) -> "Precision":
        """A copy with ``changes`` (field names; values normalised as in the constructor).
        A partial ``rounding`` dict updates only the roles it names."""
        fields = {f.name for f in dataclasses.fields(self)}
        for k in changes:
            if k not in fields:
                raise _unknown("precision key", k, _KEYS)
        if isinstance(changes.get("rounding"), Mapping):
            changes["rounding"] = {**self.rounding,
                                   **_as_rounding(changes["rounding"], partial=True)}
        return dataclasses.replace(self, **changes)

    # ---- serialisation --------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-able data; ``Precision.from_dict(p.to_dict()) == p``."""
        d: dict = {"name": self.name}
        for r in ROLES:
            d[r] = getattr(self, r).name
        d["rounding"] = {r: self.rounding[r].value for r in ROLES}
        d["forward"] = self.forward.to_dict()
        d["backward_acc"] = self.backward_acc.to_dict()
        d["master_weights"] = self.master_weights
        d["loss_scaling"] = self.loss_scaling.to_dict()
        d["overrides"] = [[p, _override_to_dict(o)] for p, o in self.overrides]
        d["seed"] = self.seed
        d["loss_stage"] = self.loss_stage
        return d

    @classmethod
    def from_dict(cls, d) -> "Precision":
        """Build a policy from :meth:`to_dict` data.  Missing keys take the values of
        ``d["base"]`` (a preset or format name, see :func:`get_precision`) or, without
        ``base``, the defaults (float32 everywhere).  Unknown keys raise ValueError."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a precision policy must be a dict, not {type(d).__name__}")
        for k in d:
            if k not in _KEYS and k != "base":
                raise _unknown("precision key", k, _KEYS)
        d = dict(d)
        base = d.pop("base", None)
        if base is None:
            return cls(**d)
        if isinstance(base, Mapping):
            raise ValueError("precision key 'base' must be a preset or format name")
        base_p = get_precision(base)
        if "name" not in d:
            d["name"] = base_p.name
        return base_p.replace(**d)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Precision":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"precision policy is not valid JSON: {err}") from None
        return cls.from_dict(d)

    # ---- display ----------------------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"precision policy {self.name!r}",
                 f"  {'role':<17}{'format':<14}{'bits':>4}{'p':>4}  {'u':<8}rounding"]
        for r in ROLES:
            f = getattr(self, r)
            lines.append(f"  {r + ' (' + _LETTER_OF[r] + ')':<17}{f.name:<14}{f.bits:>4}"
                         f"{f.precision:>4}  {'2^-' + str(f.precision):<8}"
                         f"{self.rounding[r].value}")
        lines.append(f"  forward accumulation:   {self.forward}")
        lines.append(f"  backward accumulation:  {self.backward_acc}")
        mw = (f"yes (kept in {self.optimizer.name}, rounded to {self.weights.name} for compute)"
              if self.master_weights else "no")
        lines.append(f"  master weights:         {mw}")
        lines.append(f"  loss scaling:           {self.loss_scaling}")
        stage = ("in L (softmax, loss, gradient rounded to L; gradient to B)"
                 if self.loss_stage == "L" else "float64 reference (rounded once to L, B)")
        lines.append(f"  loss stage:             {stage}")
        lines.append(f"  seed:                   {self.seed}")
        if not self.overrides:
            lines.append("  overrides:              none")
        else:
            lines.append("  overrides (later wins):")
            for p, o in self.overrides:
                lines.append(f"    {p!r}: {_override_label(o)}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------
def _uniform(name, fmt, acc, **kw) -> Precision:
    f = get_format(fmt)
    return Precision(name=name, **{r: f for r in ROLES}, forward=acc, backward_acc=acc, **kw)


def _seq(fmt) -> Accumulation:
    return Accumulation(fmt, "sequential", fma=True)


def _quire(fmt) -> Accumulation:
    return Accumulation(fmt, "exact")


def _build_presets() -> dict[str, Precision]:
    p = {}
    # IEEE references: everything in one format, sequential fma accumulation in it.
    p["float64"] = _uniform("float64", "float64", _seq("float64"))
    p["float32"] = _uniform("float32", "float32", _seq("float32"))
    # Pure fp16: every role and every partial sum in fp16 (sequential fma).  No loss scaling.
    p["float16"] = _uniform("float16", "float16", _seq("float16"))
    # fp16 storage, fp32 accumulation (what cuBLAS / NumPy matmul do for fp16 data).
    p["float16-acc32"] = _uniform("float16-acc32", "float16", _seq("float32"))
    # AMP-style mixed precision (Micikevicius et al. 2018): fp16 weights copy for compute,
    # fp16 activations and gradients, fp32 loss (autocast runs losses in fp32), fp32 master
    # weights + optimizer state, fp32 accumulation, dynamic loss scaling from 2^16 with the
    # GradScaler defaults (x2 every 2000 good steps, /2 on overflow).
    p["mixed"] = Precision(
        name="mixed", weights="float16", activations="float16", loss="float32",
        backward="float16", gradients="float16", optimizer="float32",
        forward=_seq("float32"), backward_acc=_seq("float32"), master_weights=True,
        loss_scaling=LossScaling("dynamic", 2.0 ** 16, 2000, 2.0))
    # bf16 everywhere with fp32 accumulation (TPU MXU / tensor-core behaviour).  bf16 has
    # fp32's exponent range, so no loss scaling; no master weights (pure bf16 updates).
    p["bfloat16"] = _uniform("bfloat16", "bfloat16", _seq("float32"))
    # FP8 (Noune et al. 2022, Graphcore; Micikevicius et al. 2022): weights and activations
    # 1.4.3 (OCP e4m3), backward errors and weight gradients 1.5.2 (e5m2), loss kept in
    # fp32 (one scalar; 3 bits would lose the value), fp32 accumulation, fp32 master weights
    # and optimizer, dynamic loss scaling starting at 2^12 (e5m2 tops out near 2^15.8, so
    # the fp16 start of 2^16 would overflow the first loss gradient).
    p["fp8"] = Precision(
        name="fp8", weights="e4m3", activations="e4m3", loss="float32", backward="e5m2",
        gradients="e5m2", optimizer="float32", forward=_seq("float32"),
        backward_acc=_seq("float32"), master_weights=True,
        loss_scaling=LossScaling("dynamic", 2.0 ** 12, 2000, 2.0))
    # Posits (Gustafson 2017; 2022 standard, es = 2): every sum exact in the quire.
    p["posit8"] = _uniform("posit8", "posit8", _quire("posit8"))
    p["posit16"] = _uniform("posit16", "posit16", _quire("posit16"))
    # posit(8,2) compute (W/F/B/G), posit(16,2) loss and optimizer (master weights), quires.
    p["posit8-mixed"] = Precision(
        name="posit8-mixed", weights="posit8", activations="posit8", loss="posit16",
        backward="posit8", gradients="posit8", optimizer="posit16",
        forward=_quire("posit8"), backward_acc=_quire("posit8"), master_weights=True)
    return p


PRESETS: dict[str, Precision] = _build_presets()


def preset_names() -> list[str]:
    """Names of the presets, in listing order."""
    return list(PRESETS)


def get_precision(spec) -> Precision:
    """Resolve ``spec`` to a Precision: a Precision (returned as is), a preset name, a dict
    (:meth:`Precision.from_dict`), JSON text, a path to a JSON file, or a bare format name
    (e.g. ``"e5m2"``: that format for every role and sequential fma accumulation in it;
    an alias of a preset's name, such as ``"bf16"``, gives the preset).  Unknown names
    raise a one-line ValueError suggesting close matches."""
    if isinstance(spec, Precision):
        return spec
    if isinstance(spec, Mapping):
        return Precision.from_dict(spec)
    if isinstance(spec, Format):
        return _uniform(spec.name, spec, _seq(spec))
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise ValueError(f"a precision must be a Precision, name, dict or JSON path, "
                         f"not {type(spec).__name__}")
    text = spec.strip()
    key = text.lower()
    if key in PRESETS:
        return PRESETS[key]
    if text.startswith("{"):
        return Precision.from_json(text)
    if key.endswith(".json") or os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as fh:
                content = fh.read()
        except OSError as err:
            raise ValueError(f"cannot read precision file {text!r}: {err.strerror}") from None
        try:
            return Precision.from_json(content)
        except ValueError as err:
            raise ValueError(f"{text}: {err}") from None
    try:
        fmt = get_format(text)
    except ValueError as err:
        if not str(err).startswith("unknown format"):
            raise ValueError(str(err)) from None      # a spelling the registry refuses
        from .formats import named_formats
        known = list(dict.fromkeys(list(PRESETS) + [n for n, _, _ in named_formats()]))
        close = difflib.get_close_matches(key, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown precision {spec!r}{hint} (presets: {', '.join(PRESETS)}; "
                         "or a format name, a dict, or a JSON file)") from None
    if fmt.name in PRESETS:           # an alias of a preset's format ("bf16", "fp16")
        return PRESETS[fmt.name]
    return _uniform(fmt.name, fmt, _seq(fmt))


# ---------------------------------------------------------------------------------------
# The policy in force (thread-local)
# ---------------------------------------------------------------------------------------
class _Frame:
    __slots__ = ("policy", "rng", "per_layer")

    def __init__(self, policy, rng):
        self.policy = policy
        self.rng = rng
        self.per_layer: dict = {}


_local = threading.local()


def _stack() -> list:
    s = getattr(_local, "stack", None)
    if s is None:
        s = _local.stack = [_Frame(PRESETS["float32"], None)]
        _local.layers = []
    return s


def _layers() -> list:
    _stack()
    return _local.layers


@contextlib.contextmanager
def use(policy, rng=None):
    """Put ``policy`` (anything :func:`get_precision` accepts) in force for the block, on
    this thread.  ``rng`` is the generator of stochastic rounding inside the block; by
    default ``numpy.random.default_rng(policy.seed)``, made once per block (on first use),
    so the same seed gives the same draws."""
    p = get_precision(policy)
    s = _stack()
    s.append(_Frame(p, rng))
    try:
        yield p
    finally:
        s.pop()


@contextlib.contextmanager
def layer_scope(path: str):
    """Mark code as running inside the layer at ``path`` (the full module path, e.g.
    ``"features.0.conv"``; scopes do not join paths).  :func:`current` then applies the
    policy's overrides for that path."""
    ls = _layers()
    ls.append(str(path))
    try:
        yield path
    finally:
        ls.pop()


def current_layer() -> str | None:
    """Path of the innermost :func:`layer_scope`, or None outside layers."""
    ls = _layers()
    return ls[-1] if ls else None


def current() -> Precision:
    """The policy in force (default: the ``float32`` preset), resolved for the current
    layer path when the policy has overrides (cached per path)."""
    frame = _stack()[-1]
    p = frame.policy
    if not p.overrides:
        return p
    path = current_layer()
    if path is None:
        return p
    q = frame.per_layer.get(path)
    if q is None:
        q = frame.per_layer[path] = p.for_layer(path)
    return q


def current_rng():
    """The stochastic-rounding generator of the innermost :func:`use` block (seeded from the
    policy's ``seed`` on first use, unless one was passed)."""
    frame = _stack()[-1]
    if frame.rng is None:
        frame.rng = np.random.default_rng(frame.policy.seed)
    return frame.rng
