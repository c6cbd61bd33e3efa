"""Layer-by-layer stepping: where does a low-precision run leave its exact twin?

:func:`step` runs one network twice from the same float64 masters -- once under a precision
``policy`` and once under a ``reference`` policy (float64 by default) -- records the inputs
and outputs of every module call, and yields one :class:`LayerRecord` per call.

Why this module sits beside :mod:`minifp.train` and not in :mod:`minifp.theory`: the theory
is pure functions of values, formats and accumulations (an a-priori bound, an op's bound on
its recorded data), importable without a network.  Inspection builds, copies and runs
networks (the layers above), records their calls and puts the measured errors next to the
theory's bounds: like training, it is a consumer of every layer below it.

Runs and errors
---------------
* **Reference run.** A copy of ``model`` with ``to(reference)``: its weights are the float64
  masters (``model.master_state_dict()``) rounded to the reference weights format.
* **Policy run.** A copy with ``to(policy)``, on the same input ``x``.  Its output at a
  layer against the reference output there is the **propagated** error: everything that
  went wrong up to and including this layer.
* **Local run.** The layer alone, under the policy, on the *reference* run's input to the
  layer rounded to the layer's activations format F.  Against the **local exact** run --
  the same layer in float64 with exact (Kulisch) accumulation on the *same* rounded input
  and the *same* rounded weights -- it gives the **local** error: only the roundings this
  layer makes.  (Containers are re-run whole, so their local error covers their subtree.)
* Errors (:class:`ErrorStats`): max / mean of |computed - reference| over all elements; the
  relative errors |computed - reference| / |reference| over the elements with a nonzero
  reference (elements whose reference is 0 count in the absolute error only).  Where the two
  values are equal (also equal infinities) the error is 0; any other non-finite difference
  (NaN, Inf against a finite value) is ``inf``.
* Counts on the policy output against the reference output: ``overflows`` (non-finite where
  the reference is finite), ``saturated`` (|y| = max of F where |reference| > max: the
  format saturated instead of overflowing), ``zeroed`` (0 where the reference is not 0:
  an underflow here or earlier, or a sign flipped by earlier errors and cut by a ReLU),
  ``subnormals`` (nonzero finite |y| < smallest normal; float formats with subnormals, else
  None), ``nan``, ``inf`` and ``nonfinite`` (= nan + inf).  ``underflows`` counts the
  zeros this layer's own roundings make: 0 in the local run where the local exact value is
  not 0.

A-priori bounds (componentwise, computed on the data)
----------------------------------------------------
Every op of a run is bounded by its rule in :mod:`minifp.theory.ops`: its own roundings on
the inputs it actually received (the engine's order bound times the sum of |terms| for
every accumulation, one rounding for elementwise results, the statistics of the norms,
the exponentials, denominator and quotient of softmax) plus how it amplifies the error
bounds of its inputs.  From them:

* ``bound`` (local): the layer's ops on the rounded reference input, every input exact,
  against the real-arithmetic layer; plus the same analysis of the float64 exact run
  (its own float64 roundings), so that ``|local - local_exact| <= bound``.  Every layer
  has one, containers included (their ops, bound one after the other).  ``ratio`` =
  max(local error / bound) (0 where both are 0).  ``bound_formula`` lists the ops;
  ``bound_note`` says ``vacuous`` (all ``inf``: n u >= 1, a sum that may overflow, an
  input error reaching a singularity such as a norm's spread) or ``partly vacuous``.
* ``propagated_bound``: the bound of the policy run against the exact network (the
  rounding of the input to F and of the float64 masters and buffers to W, then every op)
  plus that of the reference run, so that ``|output - reference| <= propagated_bound``;
  ``propagated_ratio`` likewise.  :func:`softmax_bound` carries the bound on the logits
  through the softmax (an a-priori bound on the lemma's delta).

Capturing module calls does not change :mod:`minifp.nn.module`: during the two runs
``Module.__call__`` is temporarily wrapped (restored on exit; not thread-safe), and only the
copies' modules are recorded.  The user's ``model`` is never modified.

Records come in *completion* order: a layer's record follows those of the modules it called
(children first, the root last), i.e. the order in which outputs become available.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections import OrderedDict

import numpy as np

from .theory import accumulation as _bounds
from . import precision as _prec
from .accumulate.spec import Accumulation
from .autograd import Function, Tensor, enable_grad, no_grad, trace
from .backend import asnumpy
from .nn.module import Module
from .theory.gradients import GradPropagation
from .theory.ops import EXACT_POLICY, Propagation, record_calls, softmax_propagation

__all__ = ["ErrorStats", "LayerRecord", "step", "inspect", "first_overflow",
           "format_table", "EXACT_POLICY", "softmax_bound"]


_TAP = "inspect_tap"


# ---------------------------------------------------------------------------- errors
@dataclasses.dataclass(frozen=True)
class ErrorStats:
    """max / mean absolute and relative error of ``computed`` against ``reference``."""

    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def abs_error(computed, reference) -> np.ndarray:
    """|computed - reference| in float64: 0 where they are equal (also equal infinities),
    ``inf`` where the difference is not finite."""
    a = np.asarray(asnumpy(computed), dtype=np.float64)
    r = np.asarray(asnumpy(reference), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.asarray(np.abs(a - r))
    d[a == r] = 0.0
    d[~np.isfinite(d)] = np.inf
    return d


def error_stats(computed, reference) -> ErrorStats:
    """:class:`ErrorStats` of ``computed`` against ``reference`` (see the module docstring)."""
    d = abs_error(computed, reference)
    r = np.abs(np.asarray(asnumpy(reference), dtype=np.float64))
    if d.size == 0:
        return ErrorStats(0.0, 0.0, 0.0, 0.0)
    nz = r != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = d[nz] / r[nz]
    rel[np.isnan(rel)] = np.inf  # inf / inf: a non-finite reference that differs
    return ErrorStats(float(d.max()), float(d.mean()),
                      float(rel.max()) if rel.size else 0.0,
                      float(rel.mean()) if rel.size else 0.0)


def _counts(y, ref, fmt) -> dict:
    y = np.asarray(asnumpy(y), dtype=np.float64)
    r = np.asarray(asnumpy(ref), dtype=np.float64)
    fin_y, fin_r = np.isfinite(y), np.isfinite(r)
    out = {
        "overflows": int(np.count_nonzero(~fin_y & fin_r)),
        "saturated": int(np.count_nonzero((np.abs(y) == fmt.max) & (np.abs(r) > fmt.max))),
        "zeroed": int(np.count_nonzero((y == 0) & (r != 0))),
        "nan": int(np.count_nonzero(np.isnan(y))),
        "inf": int(np.count_nonzero(np.isinf(y))),
    }
    out["nonfinite"] = out["nan"] + out["inf"]
    if getattr(fmt, "kind", None) != "posit" and fmt.smallest_subnormal < fmt.smallest_normal:
        a = np.abs(y)
        out["subnormals"] = int(np.count_nonzero((a > 0) & (a < fmt.smallest_normal)))
    else:
        out["subnormals"] = None
    return out


# ---------------------------------------------------------------------------- records
@dataclasses.dataclass
class LayerRecord:
    """One module call.  Arrays are NumPy float64 copies (``None`` when the module did not
    return a Tensor).  See the module docstring for the definitions."""

    index: int
    path: str
    kind: str
    depth: int
    leaf: bool
    output_shape: tuple
    policy: str
    formats: dict                   # role -> format name(s) used by the layer's ops
    accumulations: tuple            # forward Accumulation labels of the layer's ops
    ops: tuple                      # op names, in order (nested modules included)
    propagated_error: ErrorStats    # policy run vs reference run
    local_error: ErrorStats | None  # local run vs local exact run
    bound: np.ndarray | None
    ratio: float | None
    bound_note: str
    bound_formula: str
    overflows: int
    saturated: int
    underflows: int
    subnormals: int | None
    nan: int
    inf: int
    nonfinite: int
    reference: np.ndarray | None
    output: np.ndarray | None
    local: np.ndarray | None
    local_exact: np.ndarray | None
    local_input: tuple = ()         # the rounded reference inputs of the local run
    zeroed: int = 0                 # 0 where the reference is not (see the module doc)
    propagated_bound: np.ndarray | None = None   # bound on |output - reference|
    propagated_ratio: float | None = None
    grad_error: ErrorStats | None = None
    grad_output: np.ndarray | None = None
    grad_reference: np.ndarray | None = None
    grad_overflows: int | None = None
    grad_underflows: int | None = None
    param_grad_errors: dict = dataclasses.field(default_factory=dict)
    param_grads: dict = dataclasses.field(default_factory=dict)  # name -> (policy, ref)
    # local backward: the layer's backward on the reference upstream gradient rounded to B
    grad_local_error: ErrorStats | None = None       # gradient w.r.t. the layer's input
    grad_local: np.ndarray | None = None
    grad_local_exact: np.ndarray | None = None
    grad_bound: np.ndarray | None = None
    grad_ratio: float | None = None                  # max over input and parameter grads
    grad_bound_note: str = ""
    param_grad_local_errors: dict = dataclasses.field(default_factory=dict)
    param_grad_bounds: dict = dataclasses.field(default_factory=dict)
    param_grad_ratios: dict = dataclasses.field(default_factory=dict)

    @property
    def error(self) -> ErrorStats:
        """The propagated error (alias)."""
        return self.propagated_error

    @property
    def bound_max(self) -> float | None:
        if self.bound is None:
            return None
        return float(self.bound.max()) if self.bound.size else 0.0

    @property
    def propagated_bound_max(self) -> float | None:
        b = self.propagated_bound
        if b is None:
            return None
        return float(b.max()) if b.size else 0.0

    def to_dict(self) -> dict:
        """JSON-able summary (no arrays)."""
        d = {k: getattr(self, k) for k in (
            "index", "path", "kind", "depth", "leaf", "policy", "accumulations", "ops",
            "ratio", "propagated_ratio", "bound_note", "bound_formula", "overflows",
            "saturated", "underflows", "zeroed", "grad_ratio", "grad_bound_note",
            "param_grad_ratios",
            "subnormals", "nan", "inf", "nonfinite", "grad_overflows", "grad_underflows")}
        d["output_shape"] = list(self.output_shape)
        d["formats"] = dict(self.formats)
        d["accumulations"] = list(self.accumulations)
        d["ops"] = list(self.ops)
        d["propagated_error"] = self.propagated_error.to_dict()
        d["local_error"] = None if self.local_error is None else self.local_error.to_dict()
        d["bound_max"] = self.bound_max
        d["propagated_bound_max"] = self.propagated_bound_max
        d["grad_error"] = None if self.grad_error is None else self.grad_error.to_dict()
        d["param_grad_errors"] = {k: v.to_dict() for k, v in self.param_grad_errors.items()}
        d["grad_local_error"] = None if self.grad_local_error is None else \
            self.grad_local_error.to_dict()
        d["grad_bound_max"] = None if self.grad_bound is None else (
            float(self.grad_bound.max()) if self.grad_bound.size else 0.0)
        d["param_grad_local_errors"] = {k: v.to_dict()
                                        for k, v in self.param_grad_local_errors.items()}
        d["param_grad_ratios"] = dict(self.param_grad_ratios)
        return d

    def __str__(self) -> str:
        return format_table([self], header=False)


def format_table(records, header: bool = True) -> str:
    """One row per record: path, kind, shape, propagated and local max abs error, bound,
    ratio, overflow / underflow / non-finite counts."""
    rows = []
    if header:
        rows.append(f"{'layer':<24}{'kind':<12}{'shape':<16}{'prop max':>10}{'local max':>10}"
                    f"{'bound':>10}{'ratio':>8}{'ovf':>6}{'unf':>6}{'nonfin':>7}")
    for r in records:
        name = ("  " * r.depth + (r.path or "(model)"))[:23]
        lerr = r.local_error.max_abs if r.local_error is not None else float("nan")
        bmax = r.bound_max
        bound = "-" if bmax is None else f"{bmax:.3g}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.3g}"
        rows.append(f"{name:<24}{r.kind[:11]:<12}{str(tuple(r.output_shape))[:15]:<16}"
                    f"{r.propagated_error.max_abs:>10.3g}{lerr:>10.3g}{bound:>10}{ratio:>8}"
                    f"{r.overflows:>6}{r.underflows:>6}{r.nonfinite:>7}")
    return "\n".join(rows)


def first_overflow(records, leaf_only: bool = True):
    """The first record (in the order given) whose output overflows (``overflows`` or
    ``saturated`` > 0) or is non-finite, or None."""
    for r in records:
        if leaf_only and not r.leaf:
            continue
        if r.overflows or r.saturated or r.nonfinite:
            return r
    return None


# ---------------------------------------------------------------------------- capture
class _Call:
    __slots__ = ("module", "path", "depth", "args", "kwargs", "start", "end", "output",
                 "grad", "leaf")

    def __init__(self, module, depth, args, kwargs, start):
        self.module = module
        self.path = module.path
        self.depth = depth
        self.args = args
        self.kwargs = kwargs
        self.start = start
        self.end = start
        self.output = None
        self.grad = None
        self.leaf = not any(True for _ in module.children())


class _Tap(Function):
    """Identity (no rounding) whose backward hands the arriving gradient to ``sink``."""

    op_name = _TAP

    def forward(self, a):
        return a

    def backward(self, g):
        self.sink.grad = g
        return g


@contextlib.contextmanager
def _capture(model: Module, ops: list, tap: bool):
    """Wrap ``Module.__call__`` so every call of a module of ``model`` is recorded (in
    completion order) in the yielded list; restored on exit."""
    watched = {id(m) for m in model.modules()}
    calls: list = []
    depth = [0]
    orig = Module.__call__

    def wrapper(self, *args, **kwargs):
        if id(self) not in watched:
            return orig(self, *args, **kwargs)
        entry = _Call(self, depth[0], args, kwargs, len(ops))
        depth[0] += 1
        try:
            out = orig(self, *args, **kwargs)
        finally:
            depth[0] -= 1
        entry.end = len(ops)
        entry.output = out
        if tap and isinstance(out, Tensor) and out.requires_grad:
            out = _Tap.apply(out, sink=entry)
        calls.append(entry)
        return out

    Module.__call__ = wrapper
    try:
        yield calls
    finally:
        Module.__call__ = orig


@contextlib.contextmanager
def _capture_inputs():
    """Record every raw array a module rounds to a Tensor on entry (``Module._wrap_input``)
    as (tensor, source array): the rounding error of the network input."""
    wrapped: list = []
    orig = Module.__dict__["_wrap_input"]

    def wrapper(a, layer_policy):
        t = orig.__func__(a, layer_policy)
        if isinstance(t, Tensor) and t is not a:
            wrapped.append((t, a))
        return t

    Module._wrap_input = staticmethod(wrapper)
    try:
        yield wrapped
    finally:
        Module._wrap_input = orig


@dataclasses.dataclass
class _Run:
    calls: list          # module calls, completion order
    ops: list            # OpRecords (taps removed)
    op_calls: list       # OpCalls (for the error propagation)
    wrapped: list        # (input Tensor, source array)


def _run(model, x, policy, backward, targets) -> _Run:
    """Forward (and backward) of ``model`` under ``policy``; the recorded calls and ops."""
    with trace() as ops, _prec.use(policy), record_calls() as op_calls, \
            _capture_inputs() as wrapped:
        with _capture(model, ops, tap=backward) as calls:
            if backward:
                out = model(x)
                if targets is not None:
                    from .functional import cross_entropy  # noqa: PLC0415
                    loss = cross_entropy(out, targets)
                    loss.backward()
                else:
                    out.backward(np.ones(out.shape))
            else:
                with no_grad():
                    model(x)
    # drop the taps from the op list and move every call's op range to match
    kept, before = [], [0]
    for o in ops:
        if o.op != _TAP:
            kept.append(o)
        before.append(len(kept))
    for c in calls:
        c.start, c.end = before[c.start], before[c.end]
    return _Run(calls, kept, op_calls, wrapped)


def _propagation(run: _Run, model, base) -> Propagation:
    """Error bounds of every tensor of ``run`` (of ``model``) against the exact network
    with ``base``'s float64 masters and buffers, from the rounding of the input and of
    the weights and buffers."""
    leaf = {id(t): np.abs(_f64(t) - np.asarray(asnumpy(src), dtype=np.float64))
            for t, src in run.wrapped}
    masters = base.master_state_dict()
    for name, prm in model.named_parameters():
        if name in masters:
            leaf[id(prm)] = np.abs(_f64(prm) - _f64(masters[name]))
    base_bufs = dict(base.named_buffers())
    arrays = {}
    for name, buf in model.named_buffers():
        src = base_bufs.get(name)
        if buf is not None and src is not None:
            arrays[id(_data(buf))] = np.abs(_f64(buf) - _f64(src))
    return Propagation(leaf, arrays).run(run.op_calls)


def _data(a):
    if isinstance(a, Tensor):
        return a.data
    return a


def _is_float_array(a) -> bool:
    a = _data(a)
    return hasattr(a, "dtype") and hasattr(a, "shape") and a.dtype.kind == "f"


def _f64(a):
    return None if a is None else np.asarray(asnumpy(_data(a)), dtype=np.float64).copy()


# ---------------------------------------------------------------------------- bounds
def _local_bound(lcalls, lo, ecalls, ex):
    """(bound, formula, note) of the local error: the op-by-op bound of the local run
    (exact inputs, the policy's roundings) plus that of the float64 exact run (its own
    float64 roundings), both against the real-arithmetic layer on the same inputs."""
    lp, ep = Propagation().run(lcalls), Propagation().run(ecalls)
    bound = lp.error(lo) + ep.error(ex)
    ops = []
    for c in lcalls:
        if c.op not in ops:
            ops.append(c.op)
    formula = "op by op (minifp.theory.ops): " + ", ".join(ops) if ops else "no ops: exact"
    missing = sorted(set(lp.notes) | set(ep.notes))
    note = ""
    if missing:
        note = "vacuous: no error rule for " + ", ".join(missing)
    elif bound.size and np.all(np.isinf(bound)):
        note = "vacuous: " + _why_infinite(lp, lcalls)
    elif bound.size and np.any(np.isinf(bound)):
        note = (f"partly vacuous ({int(np.count_nonzero(np.isinf(bound)))} of {bound.size} "
                f"elements): " + _why_infinite(lp, lcalls))
    return bound, formula, note


def _why_infinite(prop, calls) -> str:
    """Which op first made a bound infinite, and the likely reason."""
    for c in calls:
        e = prop.error(c.output)
        if e.size and np.any(np.isinf(e)):
            y = _f64(c.output)
            if not np.all(np.isfinite(y)):
                return f"{c.op} output is not finite"
            return (f"{c.op} (a value or partial sum may exceed the format's largest "
                    "value, n u >= 1, or the input error bounds reach a singularity of the "
                    "op: a divisor, a norm's spread, a log or sqrt near 0)")
    return "an input bound is infinite"


def softmax_bound(logits, bound) -> np.ndarray:
    """Bound on |softmax(l) - softmax(l*)| per element (rows = samples, softmax over the
    last axis) given |l - l*| <= ``bound``: softmax is shift-invariant and
    p_i(l*) / p_i(l) lies in [exp(-2 m), exp(2 m)], m = max over the row of ``bound``,
    so the difference is at most p_i(l) (exp(2 m) - 1), and at most 1 (both lie in
    [0, 1]) (:func:`minifp.theory.ops.softmax_propagation`, in the log domain); + 2^-49
    for the float64 evaluation of the softmax itself.  ``inf`` for rows with non-finite
    logits or bounds."""
    z = np.asarray(logits, dtype=np.float64)
    z = z.reshape(z.shape[0], -1)
    b = np.broadcast_to(np.asarray(bound, dtype=np.float64), z.shape if np.ndim(bound) == 0
                        else np.shape(bound)).reshape(z.shape)
    with np.errstate(all="ignore"):
        s = np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True) * (
            1 - 4 * z.shape[1] * 2.0 ** -53)               # a lower bound on the exact sum
        out = np.minimum((softmax_propagation(z, 1, b, s) + 2.0 ** -49) * (1 + 2.0 ** -48),
                         1.0)
        m = b.max(axis=1, keepdims=True)
    bad = ~np.all(np.isfinite(z), axis=1, keepdims=True) | ~np.isfinite(m)
    return np.where(bad | np.isnan(out), np.inf, out)


def _ratio(err, bound):
    if bound.size == 0:
        return 0.0
    if np.all(np.isinf(bound)):
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.asarray(err / bound)
    q[(err == 0) | np.isinf(bound)] = 0.0     # an infinite bound holds for any error
    q[np.isnan(q)] = np.inf
    return float(q.max())


# ---------------------------------------------------------------------------- step
def _module_index(model):
    return {m.path: m for _, m in model.named_modules()}


def _check(policy, reference):
    p = _prec.get_precision(policy)
    r = _prec.get_precision(reference)
    pf, rf = p.activations, r.activations
    if rf.precision < pf.precision or rf.max < pf.max:
        raise ValueError(f"reference activations format {rf.name} is narrower than the "
                         f"policy's {pf.name}")
    return p, r


def step(model, x, policy, reference="float64", backward: bool = False, targets=None):
    """Yield one :class:`LayerRecord` per module call of ``model`` on input ``x`` under
    ``policy``, against the ``reference`` policy (see the module docstring).

    ``model`` is not modified (the runs use deep copies, re-rounded from its float64
    masters).  ``x``: an array (or Tensor) as the model takes it.  ``backward=True`` also
    compares gradients (cross-entropy against ``targets`` when given, else seed 1 on every
    output).  The two runs happen at the first ``next()``; each record's local run
    happens when it is yielded.  Raises ValueError (at once) for an unknown policy or a
    reference narrower than the policy.
    """
    p, r = _check(policy, reference)
    if isinstance(x, Tensor):
        x = x.data
    return _step(model, x, p, r, bool(backward), targets)


def inspect(model, x, policy, reference="float64", backward: bool = False, targets=None):
    """``list(step(...))``."""
    return list(step(model, x, policy, reference, backward, targets))


def _step(model, x, policy, reference, backward, targets):
    base = copy.deepcopy(model)
    pol_model = copy.deepcopy(base).to(policy)
    ref_model = copy.deepcopy(base).to(reference)
    local_model = copy.deepcopy(base).to(policy)
    exact_model = copy.deepcopy(base).to(policy).commit_master().to(EXACT_POLICY)
    local_mods, exact_mods = _module_index(local_model), _module_index(exact_model)

    prun = _run(pol_model, x, policy, backward, targets)
    rrun = _run(ref_model, x, reference, backward, targets)
    pcalls, rcalls = prun.calls, rrun.calls
    if [c.path for c in pcalls] != [c.path for c in rcalls]:
        raise RuntimeError("the policy and reference runs called different modules: "
                           f"{[c.path for c in pcalls]} vs {[c.path for c in rcalls]}")
    pprop, rprop = _propagation(prun, pol_model, base), _propagation(rrun, ref_model, base)

    for i, (pc, rc) in enumerate(zip(pcalls, rcalls)):
        rec = _record(i, pc, rc, prun.ops, policy, local_mods, exact_mods, backward)
        if isinstance(pc.output, Tensor) and isinstance(rc.output, Tensor):
            rec.propagated_bound = pprop.error(pc.output) + rprop.error(rc.output)
            rec.propagated_ratio = _ratio(abs_error(rec.output, rec.reference),
                                          rec.propagated_bound)
        yield rec


def _formats_of(ops) -> tuple:
    fmts: dict = OrderedDict()
    accs: list = []
    for o in ops:
        for role, name in o.formats.items():
            fmts.setdefault(role, [])
            if name not in fmts[role]:
                fmts[role].append(name)
        for a in o.forward:
            if a not in accs:
                accs.append(a)
    return ({k: ",".join(v) for k, v in fmts.items()}, tuple(accs),
            tuple(o.op for o in ops))


def _record(i, pc, rc, pops, policy, local_mods, exact_mods, backward):
    module = pc.module
    kind = type(module).__name__
    lp = policy.for_layer(pc.path)
    fmt = lp.activations
    formats, accs, opnames = _formats_of(pops[pc.start:pc.end])
    out_p = _f64(pc.output) if isinstance(pc.output, Tensor) else None
    out_r = _f64(rc.output) if isinstance(rc.output, Tensor) else None

    # local run: the reference input rounded to F, through the layer under the policy;
    # local exact: the same rounded input through the same rounded layer in float64, exactly
    rng = np.random.default_rng([policy.seed, i])
    local_args = []
    for a in rc.args:
        if _is_float_array(a):
            src = np.asarray(asnumpy(_data(a)), dtype=np.float64)
            local_args.append(lp.round("activations", src, rng=rng))
        else:
            local_args.append(a)
    with no_grad(), np.errstate(all="ignore"):
        with record_calls() as lcalls:
            lo = local_mods[pc.path](*local_args, **rc.kwargs)
        with record_calls() as ecalls:
            ex = exact_mods[pc.path](*[_f64(a) if _is_float_array(a) else a
                                       for a in local_args], **rc.kwargs)
    local = _f64(lo) if isinstance(lo, Tensor) else None
    local_exact = _f64(ex) if isinstance(ex, Tensor) else None

    if out_p is not None and out_r is not None:
        prop = error_stats(out_p, out_r)
        counts = _counts(out_p, out_r, fmt)
    else:
        prop = ErrorStats(math.nan, math.nan, math.nan, math.nan)
        counts = dict(overflows=0, saturated=0, zeroed=0, nan=0, inf=0, nonfinite=0,
                      subnormals=None)
    local_err = error_stats(local, local_exact) if local is not None else None
    counts["underflows"] = 0 if local is None or local_exact is None else \
        int(np.count_nonzero((local == 0) & (local_exact != 0)))

    # a-priori bound of the local error
    bound = ratio = None
    note, formula = "", ""
    if local is None:
        note = "no Tensor output: no bound"
    else:
        bound, formula, note = _local_bound(lcalls, lo, ecalls, ex)
    if bound is not None:
        ratio = _ratio(abs_error(local, local_exact), bound)

    rec = LayerRecord(
        index=i, path=pc.path, kind=kind, depth=pc.depth, leaf=pc.leaf,
        output_shape=tuple(out_p.shape) if out_p is not None else (),
        policy=lp.name, formats=formats, accumulations=accs, ops=opnames,
        propagated_error=prop, local_error=local_err, bound=bound, ratio=ratio,
        bound_note=note, bound_formula=formula, reference=out_r, output=out_p, local=local,
        local_exact=local_exact, local_input=tuple(_f64(a) for a in local_args
                                                   if _is_float_array(a)),
        **counts)
    if backward:
        _add_grads(rec, pc, rc, lp)
        if rc.grad is not None and local is not None:
            _local_backward(rec, local_mods[pc.path], exact_mods[pc.path], local_args,
                            rc.kwargs, rc.grad, lp, rng)
    return rec


def _grad_run(module, args, kwargs, seed):
    """Forward with grad on Tensor copies of the float ``args``, backward from ``seed``;
    (input tensors, output, op calls)."""
    for prm in module.parameters():
        prm.grad = None
    dev = module.device                      # (the copies go where the module is)
    ins = [Tensor(dev.put(np.array(asnumpy(a), copy=True)), requires_grad=True)
           if _is_float_array(a) else a for a in args]
    with enable_grad(), np.errstate(all="ignore"), record_calls() as calls:
        out = module(*ins, **kwargs)
        if isinstance(out, Tensor) and out.requires_grad:
            out.backward(dev.put(seed))
    return ins, out, calls


def _local_backward(rec, lmod, emod, local_args, kwargs, upstream, lp, rng):
    """The layer's backward on its local input with the reference's upstream gradient
    rounded to B, under the policy and exactly (float64, exact accumulation); errors and
    op-by-op bounds of the input and parameter gradients."""
    seed = lp.round("backward", np.asarray(asnumpy(_data(upstream)), dtype=np.float64),
                    rng=rng)
    lin, lout, lcalls = _grad_run(lmod, local_args, kwargs, seed)
    ein, eout, ecalls = _grad_run(emod, [_f64(a) if _is_float_array(a) else a
                                         for a in local_args], kwargs, _f64(seed))
    if not isinstance(lout, Tensor) or not isinstance(eout, Tensor):
        return
    lg = GradPropagation(Propagation().run(lcalls), {id(lout): 0.0}).run(lcalls)
    eg = GradPropagation(Propagation().run(ecalls), {id(eout): 0.0}).run(ecalls)
    ratios = []

    def compare(a, b, ba, bb):
        err = abs_error(a.grad.data, b.grad.data)
        if ba is None or bb is None:
            return error_stats(a.grad.data, b.grad.data), None, None
        bound = ba + bb
        r = _ratio(err, bound)
        ratios.append(r)
        return error_stats(a.grad.data, b.grad.data), bound, r

    for a, b in zip(lin, ein):
        if isinstance(a, Tensor) and a.grad is not None and b.grad is not None:
            st, bound, _ = compare(a, b, lg.error(a), eg.error(b))
            rec.grad_local_error, rec.grad_bound = st, bound
            rec.grad_local, rec.grad_local_exact = _f64(a.grad), _f64(b.grad)
            break
    eparams = dict(emod.named_parameters())
    for name, prm in lmod.named_parameters():
        other = eparams.get(name)
        if prm.grad is None or other is None or other.grad is None:
            continue
        st, bound, r = compare(prm, other, lg.error(prm), eg.error(other))
        rec.param_grad_local_errors[name] = st
        rec.param_grad_bounds[name] = bound
        rec.param_grad_ratios[name] = r
    rec.grad_ratio = max(ratios) if ratios else None
    missing = sorted(set(lg.notes) | set(eg.notes))
    bounds = [b for b in [rec.grad_bound, *rec.param_grad_bounds.values()] if b is not None]
    if missing:
        rec.grad_bound_note = "vacuous: no gradient rule for " + ", ".join(missing)
    elif any(b.size and np.any(np.isinf(b)) for b in bounds):
        rec.grad_bound_note = ("vacuous in part: a gradient sum may exceed its format's "
                               "largest value, or n u >= 1 for its accumulator")


def _add_grads(rec, pc, rc, lp):
    gp, gr = _f64(pc.grad), _f64(rc.grad)
    if gp is not None and gr is not None:
        rec.grad_output, rec.grad_reference = gp, gr
        rec.grad_error = error_stats(gp, gr)
        c = _counts(gp, gr, lp.backward)
        rec.grad_overflows, rec.grad_underflows = c["overflows"], c["zeroed"]
    rparams = dict(rc.module.named_parameters(recurse=False))
    for name, prm in pc.module.named_parameters(recurse=False):
        rp = rparams.get(name)
        if prm.grad is None or rp is None or rp.grad is None:
            continue
        a, b = _f64(prm.grad), _f64(rp.grad)
        rec.param_grad_errors[name] = error_stats(a, b)
        rec.param_grads[name] = (a, b)
