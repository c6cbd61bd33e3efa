"""Componentwise error bounds for every op, propagated through a recorded run.

A run is a list of :class:`OpCall` (``record_calls``).  For each call, ``op`` applied to
its *computed* inputs X_j gives the computed output Y.  With an ideal (real-arithmetic)
op f on the same op parameters and bounds |X_j - X*_j| <= E_j on how far each input is
from its ideal value X*_j, the rule of the op returns E with

    |Y - f(X*)| <= E        elementwise,

split as |Y - f(X)| (the **local** part: the roundings the op makes on its actual inputs)
plus |f(X) - f(X*)| (the **propagated** part: how f amplifies the input errors).
:class:`Propagation` runs the rules in call order, feeding each output's E to the calls
that use it, from given errors on the leaves (the network input, the parameters, the
buffers; anything else is taken as exact).

Rounding of one value (``rounding_error_at`` / ``rounding_error_around``): any rounding
R of v onto a format F, in any mode (stochastic included), returns one of the two
neighbours of v in F, so |R(v) - v| <= RU(v) - RD(v), and for an IEEE-style format under
a nearest mode half of it.  Knowing only y = R(v): v lies between the neighbours of y, so
|y - v| <= max(next(y) - y, y - prev(y)) (halved for nearest modes on IEEE formats).  A
value at the format's largest magnitude may be a clamped or saturated overflow: the bound
there is ``inf``.  Posits never round to 0 and clamp below minpos: an output of minpos
may come from anything in (0, minpos].

Accumulations (linear, matmul, conv2d, sum, mean, the statistics of the norms, the
softmax denominator) use :func:`minifp.theory.accumulation.accumulation_bound` of the op's forward
Accumulation with S = sum |x_i y_i| evaluated on the data (|X| |W| by a float64 BLAS
product of non-negative arrays, scaled up by 1 / (1 - gamma_k(2^-53)) so that it bounds
the exact sum).

float64 steps inside an op (the elementwise arithmetic, exp, erf, sqrt, divisions) are
charged 2^-53 relative per operation, and transcendental functions (exp, log, tanh, erf)
1 float64 ulp (2^-52 relative; the libm accuracy this module assumes).  Every bound is
finally scaled by (1 + 2^-48) so that its own float64 evaluation cannot make it smaller
than the real-number formula.

Propagation rules (E: input error bound, rows = the op's reduction groups):

* linear / matmul / conv2d: E_x |W| + |X| E_W + E_x E_W (+ E_b).
* add / sub: E_a + E_b; mul: E_a |B| + |A| E_b + E_a E_b; div: (E_a + |A/B| E_b) /
  (|B| - E_b) (``inf`` where |B| <= E_b); neg and the index ops (reshape, transpose,
  concat, getitem, dropout with its mask): the same map applied to E.
* relu: E where X >= 0, max(X + E, 0) where X < 0; tanh / sigmoid / gelu / exp / log /
  sqrt / pow: the largest |f'| over [X - E, X + E] times E (closed forms per function).
* max_pool2d: the window maximum of E; avg_pool2d / mean: the window (axis) mean of E;
  sum: the sum of E.
* softmax: |p_i(X) - p_i(X*)| <= min(p_i(X) (exp(2 max_row E) - 1), 1); log_softmax:
  E_i + max_row E.
* batch / layer norm with batch statistics (per group of M values, d = X - mean X,
  s = sqrt(var X + eps), Ebar = mean E, rho = rms E):
  |gamma| [(E_i + Ebar) / (s - rho) + |d_i| rho / (s (s - rho))]  (``inf`` if s <= rho),
  plus E_gamma |xhat| + E_beta; running statistics: |gamma| (E + E_mean) r + |gamma| |d|
  |r - r*| with r = 1 / sqrt(var + eps) and the buffer errors E_mean, E_var.

An op without a rule gets an infinite bound and a note naming it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

from . import accumulation as _bounds
from .. import precision as _prec
from ..accumulate.spec import Accumulation
from ..autograd import Function, Tensor
from ..backend import asnumpy
from ..formats import Rounding, get_format, parse_rounding

__all__ = ["OpCall", "record_calls", "Propagation", "rounding_error_at",
           "rounding_error_around", "abs_matmul", "RULES", "EXACT_POLICY", "exact_clone",
           "softmax_propagation"]

#: float64 for every role, exact (Kulisch) accumulation: the exact reference of a layer.
EXACT_POLICY = _prec.Precision(
    name="float64-exact", **{r: "float64" for r in _prec.ROLES},
    forward=Accumulation("float64", "exact"), backward_acc=Accumulation("float64", "exact"))

U64 = 2.0 ** -53
ULP64 = 2.0 ** -52
_SAFETY = 1.0 + 2.0 ** -48
_NEAREST = (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY)


# ---------------------------------------------------------------------------- recording
@dataclasses.dataclass
class OpCall:
    """One op application: the Function (with its captured policy and attributes), its
    input Tensors and its output Tensor (kept alive, so their ids stay unique).  When the
    backward pass runs through it: ``grad_in`` (the gradient it received), ``grad_out``
    (the gradients it returned, one per input) and ``saved`` (its saved arrays, kept
    before the backward pass frees them)."""

    fn: Function
    inputs: tuple
    output: Tensor
    grad_in: object = None
    grad_out: tuple | None = None
    saved: dict | None = None

    @property
    def op(self) -> str:
        return self.fn.op_name


@contextlib.contextmanager
def record_calls():
    """Context yielding the list of :class:`OpCall` of every op applied inside it (in
    call order).  Wraps ``Function.__call__`` for the duration (not thread-safe)."""
    calls: list = []
    orig = Function.__call__

    def wrapper(self, *inputs):
        y = orig(self, *inputs)
        call = OpCall(self, self.inputs, y)
        calls.append(call)
        if y.creator is self:          # in the graph: record what its backward does
            own_backward = self.backward

            def backward(g, _call=call, _bw=own_backward, _fn=self):
                _call.saved = {k: v for k, v in vars(_fn).items() if k.startswith("saved")}
                out = _bw(g)
                _call.grad_in = g
                _call.grad_out = out if isinstance(out, tuple) else (out,)
                return out

            self.backward = backward
        return y

    Function.__call__ = wrapper
    try:
        yield calls
    finally:
        Function.__call__ = orig


# ---------------------------------------------------------------------------- helpers
def _f64(a):
    if isinstance(a, Tensor):
        a = a.data
    return np.asarray(asnumpy(a), dtype=np.float64)


def _is_posit(fmt) -> bool:
    return getattr(fmt, "kind", None) == "posit"


def _ftz(fmt) -> bool:
    return not _is_posit(fmt) and not fmt.smallest_subnormal < fmt.smallest_normal


def _half(gap):
    """gap / 2 rounded up: half of float64's smallest gap 2^-1074 is not a float64 number
    (it would round to 0), so that one stays 2^-1074."""
    h = gap / 2
    return np.where((h == 0) & (gap > 0), gap, h)


def rounding_error_at(fmt, mode, v) -> np.ndarray:
    """Bound on |R(v) - v| for a rounding R of the known float64 values ``v`` onto
    ``fmt`` in ``mode`` (any mode, stochastic included): RU(v) - RD(v), halved for the
    nearest modes of IEEE-style formats; ``inf`` beyond the largest finite value."""
    fmt, mode = get_format(fmt), parse_rounding(mode)
    a = np.abs(np.asarray(v, dtype=np.float64))
    with np.errstate(all="ignore"):
        hi = fmt.round(a, Rounding.UP, dtype=np.float64).astype(np.float64)
        lo = fmt.round(a, Rounding.DOWN, dtype=np.float64).astype(np.float64)
        gap = hi - lo
    if _is_posit(fmt):
        gap = np.where((a > 0) & (a < fmt.smallest_subnormal), fmt.smallest_subnormal, gap)
    else:
        if mode in _NEAREST:
            gap = _half(gap)
        if _ftz(fmt):
            gap = np.where(a < fmt.smallest_normal, np.maximum(gap, fmt.smallest_normal), gap)
    gap = np.where(np.isfinite(a) & (a <= fmt.max) & np.isfinite(gap), gap, np.inf)
    return gap


def rounding_error_around(fmt, mode, y) -> np.ndarray:
    """Bound on |y - v| for unknown values v that ``fmt`` rounded (in ``mode``) to the
    known ``y``: v lies between the neighbours of y, so max(next(y) - y, y - prev(y)),
    halved for the nearest modes of IEEE-style formats.  ``inf`` where |y| is the largest
    finite value (possibly a saturated or clamped overflow) or y is not finite; posits: 0
    at 0 (they never round to 0), at least minpos at +-minpos (clamped from below)."""
    fmt, mode = get_format(fmt), parse_rounding(mode)
    a = np.abs(np.asarray(y, dtype=np.float64))
    ok = np.isfinite(a) & (a < fmt.max)
    a_ok = np.where(ok, a, 0.0)
    with np.errstate(all="ignore"):
        nxt = fmt.round(np.nextafter(a_ok, np.inf), Rounding.UP,
                        dtype=np.float64).astype(np.float64)
        prv = fmt.round(np.nextafter(a_ok, -np.inf), Rounding.DOWN,
                        dtype=np.float64).astype(np.float64)
        gap = np.maximum(nxt - a_ok, a_ok - prv)
    if _is_posit(fmt):
        minpos = fmt.smallest_subnormal
        gap = np.where(a_ok == 0, 0.0, gap)
        gap = np.where((a_ok > 0) & (a_ok <= minpos), np.maximum(gap, minpos), gap)
    else:
        if mode in _NEAREST:
            gap = _half(gap)
        if _ftz(fmt):
            sn = fmt.smallest_normal
            gap = np.where(a_ok <= sn, np.maximum(gap, sn), gap)
    return np.where(ok & np.isfinite(gap), gap, np.inf)


def _apriori(fmt, mode, mag):
    """Bound on |R(v) - v| for any |v| <= ``mag`` (array), v unknown: u |v| + eta (IEEE;
    ``inf`` beyond the largest value), posit: u over [minpos, max mag] times mag + minpos."""
    fmt, mode = get_format(fmt), parse_rounding(mode)
    mag = np.asarray(mag, dtype=np.float64)
    beyond = ~(mag <= fmt.max)                 # also NaN
    mag = np.where(beyond, 0.0, mag)
    top = float(np.max(mag)) if mag.size else 0.0
    return np.where(beyond, np.inf, _apriori_in_range(fmt, mode, mag, top))


def _apriori_in_range(fmt, mode, mag, top):
    if _is_posit(fmt):
        minpos = fmt.smallest_subnormal
        u = _bounds.posit_relative_error(fmt, minpos, max(top, minpos), mode)
        return u * mag + minpos
    return _bounds.unit_roundoff(fmt, mode) * mag + _bounds.underflow_error(fmt, mode)


def _gamma64(k: int) -> float:
    g = _bounds.gamma(max(int(k), 1), U64)
    return 2.0 * g + 2.0 ** -1000


def abs_matmul(a, b) -> np.ndarray:
    """An upper bound on the exact ``|a| @ |b|`` (NumPy matmul semantics): the float64
    BLAS product of the absolute values, scaled by 1 + 2 gamma_k(2^-53) (k the inner
    length; a sum of non-negative terms computed in any order is within gamma_k of the
    exact sum), plus k * 2^-1074 for underflow."""
    a, b = np.abs(np.asarray(a, dtype=np.float64)), np.abs(np.asarray(b, dtype=np.float64))
    k = a.shape[-1] if a.ndim else 1
    with np.errstate(all="ignore"):
        r = np.matmul(a, b)
    return r * (1 + _gamma64(k)) + k * 2.0 ** -1074


def _abs_sum(a, axes, keepdims=False) -> np.ndarray:
    """Upper bound on the exact sum of |a| over ``axes``."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    k = int(np.prod([a.shape[i] for i in axes])) if axes else 1
    return np.sum(a, axis=axes, keepdims=keepdims) * (1 + _gamma64(k)) + k * 2.0 ** -1074


def _role_fmt(fn, role):
    p = fn.policy
    return p.format_of(role), p.rounding[role]


def _acc_terms(fn, n, S, phase="forward"):
    """(B, A) of the phase's Accumulation for sums of n terms with sum |terms| <= S
    (array), the result in the accumulator format (the ``exact`` order: one rounding of
    the exact sum to it); (inf, inf) if vacuous."""
    acc = fn.fwd_acc if phase == "forward" else fn.bwd_acc
    top = float(np.max(S)) if np.size(S) else 0.0
    if not math.isfinite(top):
        return math.inf, math.inf
    bd = _bounds.accumulation_bound(acc, int(n), magnitude=max(top, 2.0 ** -1000))
    if bd.vacuous:
        return math.inf, math.inf
    return bd.relative, bd.absolute


def _accumulated(fn, Y, n, S, role, phase="forward"):
    """Local bound of Y = R_out(acc sum of n terms), sum |terms| <= S: B S + A, plus the
    output rounding where the output format is not the accumulator's (or the order is
    exact: the one rounding of the exact sum)."""
    acc = fn.fwd_acc if phase == "forward" else fn.bwd_acc
    out_fmt, out_mode = _role_fmt(fn, role)
    err = rounding_error_around(out_fmt, out_mode, Y)
    if acc.order.kind == "exact":            # the exact sum, rounded once to the output
        return err
    B, A = _acc_terms(fn, n, S, phase)
    with np.errstate(all="ignore"):
        acc_err = B * S + A
    if out_fmt == get_format(acc.format):    # the accumulator's result is the output
        return acc_err
    return acc_err + err


def _out_rounding(fn, Y, exact=None):
    """|Y - v| for Y = R_F(v): 0 where Y equals the known exact value ``exact``."""
    fmt, mode = _role_fmt(fn, fn.output_role)
    e = rounding_error_around(fmt, mode, Y)
    if exact is not None:
        e = np.where(Y == exact, 0.0, e)
    return e


def _bcast(e, shape):
    return np.broadcast_to(np.asarray(e, dtype=np.float64), shape)


# ---------------------------------------------------------------------------- rules
def _rule_linear(fn, X, E, Y):
    x, w = X[0], X[1]
    ex, ew = E[0], E[1]
    x2 = x.reshape(-1, x.shape[-1])
    ex2 = _bcast(ex, x.shape).reshape(x2.shape)
    ew = _bcast(ew, w.shape)
    S = abs_matmul(x2, w.T)
    P = abs_matmul(ex2, np.abs(w).T) + abs_matmul(np.abs(x2), ew.T) + abs_matmul(ex2, ew.T)
    n = w.shape[1]
    if len(X) > 2 and X[2] is not None:
        S = S + np.abs(X[2])
        P = P + _bcast(E[2], X[2].shape)
        n += 1
    S, P = S.reshape(Y.shape), P.reshape(Y.shape)
    return _accumulated(fn, Y, n, S, fn.output_role) + P


def _rule_matmul(fn, X, E, Y):
    a, b = X
    ea, eb = _bcast(E[0], a.shape), _bcast(E[1], b.shape)
    S = abs_matmul(a, b)
    P = abs_matmul(ea, np.abs(b)) + abs_matmul(np.abs(a), eb) + abs_matmul(ea, eb)
    n = a.shape[-1]
    return _accumulated(fn, Y, n, S.reshape(Y.shape), fn.output_role) + P.reshape(Y.shape)


def _conv_abs(x, w, fn):
    """Upper bound on the exact conv2d of |x| and |w| (no bias)."""
    from ..functional.conv import im2col_rows  # noqa: PLC0415
    n = x.shape[0]
    co, _, kh, kw = w.shape
    xc, (oh, ow) = im2col_rows(np.abs(x), (kh, kw), fn.stride, fn.padding)
    r = abs_matmul(xc, np.abs(w).reshape(co, -1).T)
    return r.reshape(n, oh, ow, co).transpose(0, 3, 1, 2)


def _rule_conv2d(fn, X, E, Y):
    x, w = X[0], X[1]
    ex, ew = _bcast(E[0], x.shape), _bcast(E[1], w.shape)
    S = _conv_abs(x, w, fn)
    P = _conv_abs(ex, w, fn) + _conv_abs(x, ew, fn) + _conv_abs(ex, ew, fn)
    n = int(np.prod(w.shape[1:]))
    if len(X) > 2 and X[2] is not None:
        S = S + np.abs(X[2]).reshape(1, -1, 1, 1)
        P = P + _bcast(E[2], X[2].shape).reshape(1, -1, 1, 1)
        n += 1
    return _accumulated(fn, Y, n, S, fn.output_role) + P


def _rule_add_sub(fn, X, E, Y):
    a, b = X
    v = np.abs(a) + np.abs(b)
    return _out_rounding(fn, Y) + U64 * v + _bcast(E[0], a.shape) + _bcast(E[1], b.shape)


def _rule_mul(fn, X, E, Y):
    a, b = X
    ea, eb = _bcast(E[0], a.shape), _bcast(E[1], b.shape)
    return (_out_rounding(fn, Y) + U64 * np.abs(a * b)
            + ea * np.abs(b) + np.abs(a) * eb + ea * eb)


def _rule_div(fn, X, E, Y):
    a, b = X
    ea, eb = _bcast(E[0], a.shape), _bcast(E[1], b.shape)
    with np.errstate(all="ignore"):
        q = np.abs(a / b)
        den = np.abs(b) - eb
        prop = np.where(den > 0, (ea + q * eb) / den, np.inf)
        prop = np.where((ea == 0) & (eb == 0) & (b != 0), 0.0, prop)
    return _out_rounding(fn, Y) + U64 * q + prop


def exact_clone(fn, saved=None):
    """A copy of the Function ``fn`` (same attributes) under :data:`EXACT_POLICY`:
    float64 values, exact accumulation, no random stream; ``saved`` replaces saved
    arrays.  Running its forward or backward on other arrays (absolute values, error
    bounds) leaves ``fn`` and what the inspection tap recorded untouched."""
    g = object.__new__(type(fn))
    g.__dict__.update({k: v for k, v in vars(fn).items() if k != "backward"})
    g.policy = EXACT_POLICY
    g.fwd_acc = EXACT_POLICY.accumulation("forward")
    g.bwd_acc = EXACT_POLICY.accumulation("backward")
    g.rng = None
    if "sink" in g.__dict__:      # the inspection tap: do not overwrite what it recorded
        g.sink = type("Sink", (), {})()
    if saved:
        g.__dict__.update(saved)
    return g


def _rule_index(fn, X, E, Y):
    """Exact index maps (reshape, transpose, concat, getitem, the inspection tap), neg
    and dropout: the op itself applied to E in float64, plus one output rounding where
    Y is not the float64 value."""
    g = exact_clone(fn)
    Es = [_bcast(e, x.shape).copy() for e, x in zip(E, X)]
    Xs = list(X)
    if fn.op_name == "dropout":        # the mask input carries no error, keep it
        Es[1] = X[1]
    with np.errstate(all="ignore"):
        prop = np.abs(_f64(g.forward(*Es)))
        exact = _f64(g.forward(*Xs))
    local = _out_rounding(fn, Y, exact)
    if fn.op_name == "dropout":
        local = local + U64 * np.abs(exact)
    return local + prop


def _interval(X, E):
    return X - E, X + E


def _lipschitz_rule(df_max, slack_rel=ULP64, slack_abs_x=0.0, slack_abs=0.0):
    """Rule for y = R_F(f(x)), f computed in float64: rounding of Y, plus
    ``slack_rel`` |f(X)| + ``slack_abs_x`` |X| + ``slack_abs`` for the float64 evaluation
    of f, plus max |f'| over [X - E, X + E] (``df_max(lo, hi)``) times E."""
    def rule(fn, X, E, Y):
        x = X[0]
        e = _bcast(E[0], x.shape)
        lo, hi = _interval(x, e)
        with np.errstate(all="ignore"):
            prop = np.where(e > 0, df_max(lo, hi, fn) * e, 0.0)
        prop = np.where(np.isnan(prop), np.inf, prop)
        rnd = _out_rounding(fn, Y)
        return (rnd + slack_rel * (np.abs(Y) + rnd) + slack_abs_x * np.abs(x) + slack_abs
                + prop)
    return rule


def _dist0(lo, hi):
    """min |t| over [lo, hi]."""
    return np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))


def _tanh_d(lo, hi, fn):
    t = np.tanh(_dist0(lo, hi))
    return 1.0 - t * t


def _sigmoid_d(lo, hi, fn):
    s = 1.0 / (1.0 + np.exp(-_dist0(lo, hi)))
    return s * (1.0 - s)


def _exp_d(lo, hi, fn):
    return np.exp(hi)


def _log_d(lo, hi, fn):
    return np.where(lo > 0, 1.0 / lo, np.inf)


def _sqrt_d(lo, hi, fn):
    return np.where(lo > 0, 0.5 / np.sqrt(np.maximum(lo, 0.0)), np.inf)


def _gelu_prime(t):
    from scipy.special import erf  # noqa: PLC0415
    return 0.5 * (1 + erf(t / math.sqrt(2))) + t * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def _gelu_d(lo, hi, fn):
    if getattr(fn, "approximate", "none") != "none":
        return np.full(np.shape(lo), 1.13)   # max |d/dx| of the tanh form is 1.1289...
    r2 = math.sqrt(2.0)
    cands = [np.abs(_gelu_prime(lo)), np.abs(_gelu_prime(hi))]
    for c in (r2, -r2):     # the extrema of gelu' (gelu'' = phi(t) (2 - t^2))
        inside = (lo <= c) & (hi >= c)
        cands.append(np.where(inside, abs(float(_gelu_prime(np.float64(c)))), 0.0))
    return np.maximum.reduce(cands) * (1 + 1e-12)


def _pow_d(lo, hi, fn):
    c = float(fn.exponent)
    if c == 0:
        return np.zeros(np.shape(lo))
    with np.errstate(all="ignore"):
        m = np.maximum(np.abs(lo), np.abs(hi))
        if c >= 1:
            return abs(c) * m ** (c - 1)
        d = _dist0(lo, hi)
        return np.where(d > 0, abs(c) * d ** (c - 1), np.inf)


def _rule_relu(fn, X, E, Y):
    x = X[0]
    e = _bcast(E[0], x.shape)
    prop = np.where(x >= 0, e, np.maximum(x + e, 0.0))
    return _out_rounding(fn, Y, np.maximum(x, 0.0)) + prop


def _rule_quantize(fn, X, E, Y):
    return _out_rounding(fn, Y, X[0]) + _bcast(E[0], X[0].shape)


def _windows(fn, a, pad):
    """The pooling windows of ``a`` as the pool op cuts them: (N, C, OH, OW, kh*kw)."""
    return exact_clone(fn)._windows(a, pad)


def _rule_max_pool(fn, X, E, Y):
    x = X[0]
    exact = _windows(fn, x, -np.inf).max(axis=-1)
    prop = _windows(fn, _bcast(E[0], x.shape).copy(), 0.0).max(axis=-1)
    return _out_rounding(fn, Y, exact) + prop


def _mean_local(fn, Y, k, S):
    """Y = R_F(fl64(s / k)), s the accumulator-format engine sum of k terms with
    sum |terms| <= S: |Y - exact mean| <= around(Y) + 2^-53 |s/k| + (B S + A) / k."""
    B, A = _acc_terms(fn, k, S)
    with np.errstate(all="ignore"):
        acc_err = (B * S + A) / k
    q = (S + acc_err * k) / k
    return rounding_error_around(*_role_fmt(fn, fn.output_role), Y) + U64 * q + acc_err


def _rule_avg_pool(fn, X, E, Y):
    x = X[0]
    win = _windows(fn, x, 0.0)
    k = win.shape[-1]
    S = _abs_sum(win, (win.ndim - 1,))
    prop = _windows(fn, _bcast(E[0], x.shape).copy(), 0.0).sum(axis=-1) / k
    return _mean_local(fn, Y, k, S) + prop * (1 + _gamma64(k))


def _rule_reduce(fn, X, E, Y):
    x = X[0]
    axes = tuple(fn.axes)
    k = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    S = _abs_sum(x, axes, fn.keepdims).reshape(Y.shape)
    esum = _abs_sum(_bcast(E[0], x.shape), axes, fn.keepdims).reshape(Y.shape)
    if fn.op_name == "sum":
        return _accumulated(fn, Y, k, S, fn.output_role) + esum
    return _mean_local(fn, Y, k, S) + esum / k


def _softmax_parts(fn, x, axis):
    """For the exp terms of softmax / log_softmax along ``axis``: (v, gap, eps_s,
    s_lo, tpart): v = exp(X - max) in float64, gap = |R_F(v) - v| bound, eps_s = bound on
    |s_hat - sum exp(X - max)| (engine denominator against the exact one), s_lo a lower
    bound on both, tpart = per-element float64 error factor of v."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(all="ignore"):
        t = x - m
        v = np.exp(t)
    fmt, mode = _role_fmt(fn, "activations")
    # |R_F(v) - exp(t)|: the rounding of v, plus 2^-1074 for an exp that underflowed in
    # float64 (v = 0 or subnormal while exp(t) > 0)
    gap = rounding_error_at(fmt, mode, v) + 2.0 ** -1074
    tpart = 2 * ULP64 * (1 + np.abs(t))                   # float64 x - m and exp: relative
    n = x.shape[axis]
    Sv = np.sum(v + gap, axis=axis, keepdims=True) * (1 + _gamma64(n))
    B, A = _acc_terms(fn, n, Sv)
    with np.errstate(all="ignore"):
        eps_s = (B * Sv + A + np.sum(gap + tpart * v, axis=axis, keepdims=True)
                 * (1 + _gamma64(n)))
        s_true_lo = np.maximum(np.sum(v * (1 - tpart), axis=axis, keepdims=True)
                               * (1 - _gamma64(n)), 1.0 - 2 * ULP64)
        s_lo = s_true_lo - eps_s
    s_lo = np.where(s_lo > 0, s_lo, np.nan)
    return v, gap, eps_s, s_lo, tpart, s_true_lo


def softmax_propagation(x, axis, E, s_true):
    """min(1, p_i(X) (exp(2 max_row E) - 1)) evaluated in the log domain, so that an
    exp(x_i - max) below float64's range still counts when exp(2 max E) lifts it."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    z = 2 * np.max(_bcast(E, x.shape), axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        t = x - m
        log_em1 = np.where(z > 30, z, np.log(np.expm1(z)))    # log(exp(z) - 1)
        logp = t - np.log(s_true) + log_em1
        prop = np.exp(logp + 2 * ULP64 * (1 + np.abs(t)) + 8 * U64 * (1 + np.abs(logp)))
    return np.where(z > 0, np.minimum(prop, 1.0), 0.0)


def _rule_softmax(fn, X, E, Y):
    x = X[0]
    axis = fn.axis % x.ndim
    v, gap, eps_s, s_lo, tpart, s_true = _softmax_parts(fn, x, axis)
    with np.errstate(all="ignore"):
        e_hi = v * (1 + tpart)
        y_true = np.minimum(e_hi / s_true, 1.0)            # the exact softmax at X
        quot = (gap + tpart * v + y_true * eps_s) / s_lo
        local = (rounding_error_around(*_role_fmt(fn, fn.output_role), Y)
                 + U64 * (y_true + quot) + quot)
        # both softmax values lie in [0, 1]: the difference is at most 1 as well
        prop = softmax_propagation(x, axis, E[0], s_true)
    out = local + prop
    return np.where(np.isnan(out), np.inf, out)


def _rule_log_softmax(fn, X, E, Y):
    x = X[0]
    axis = fn.axis % x.ndim
    v, gap, eps_s, s_lo, tpart, s_true = _softmax_parts(fn, x, axis)
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        n = x.shape[axis]
        logs = np.maximum(np.log(n * (1 + 1e-9) + eps_s), -np.log(s_lo))  # >= |log s_hat|
        local = (rounding_error_around(*_role_fmt(fn, fn.output_role), Y)
                 + eps_s / s_lo + 3 * U64 * (np.abs(x - m) + np.abs(logs)) + ULP64 * logs)
        emax = np.max(_bcast(E[0], x.shape), axis=axis, keepdims=True)
        prop = _bcast(E[0], x.shape) + emax
    out = local + prop
    return np.where(np.isnan(out), np.inf, out)


def _rule_norm(fn, X, E, Y, ctx):
    """batch_norm / layer_norm (see the module docstring and functional.norm)."""
    a = norm_analysis(fn, X, E, ctx)
    out = rounding_error_around(*_role_fmt(fn, fn.output_role), Y) + a["local"] + a["prop"]
    return np.where(np.isnan(out), np.inf, out)


def norm_analysis(fn, X, E, ctx) -> dict:
    """The pieces of the batch / layer norm bound: ``local`` (before the output rounding)
    and ``prop`` for y; ``e_r`` >= |istd - r*| and ``e_xh`` >= |d istd - xhat*| (the
    float64 xhat before its rounding to F) against the exact values at the exact inputs;
    ``r_hi`` >= istd, r*."""
    x, gam, bet = X
    axes = tuple(fn.axes)
    pshape = tuple(fn.pshape)
    M = int(np.prod([x.shape[i] for i in axes]))
    ex = _bcast(E[0], x.shape)
    g = np.abs(gam).reshape(pshape)
    eg = _bcast(E[1], gam.shape).reshape(pshape)
    eb = _bcast(E[2], bet.shape).reshape(pshape)
    acc = fn.fwd_acc
    A_fmt, A_mode = get_format(acc.format), acc.rounding
    with np.errstate(all="ignore"):
        if fn.use_batch_stats:
            S = _abs_sum(x, axes, True)
            mu64 = np.mean(x, axis=axes, keepdims=True)
            err_mu64 = _gamma64(M + 1) * S / M
            B, A = _acc_terms(fn, M, S)
            mag_mu = (S * (1 + B) + A) / M * (1 + U64)
            eps_mu = (B * S + A) / M * (1 + U64) + U64 * mag_mu + _apriori(A_fmt, A_mode,
                                                                         mag_mu)
            d0 = np.abs(x - mu64) * (1 + U64) + err_mu64          # >= |X - exact mean|
            D = d0 + eps_mu                                        # >= |X - mu_hat|
            D2 = D * D
            eps_sq = _apriori(A_fmt, A_mode, D2 * (1 + 4 * U64)) + 4 * U64 * D2
            Q = _abs_sum(D2 + eps_sq, axes, True)
            Bq, Aq = _acc_terms(fn, M, Q)
            mag_v = (Q * (1 + Bq) + Aq) / M * (1 + U64)
            eps_v = ((Bq * Q + Aq + _abs_sum(eps_sq, axes, True)) / M * (1 + U64)
                     + U64 * mag_v + _apriori(A_fmt, A_mode, mag_v) + eps_mu * eps_mu)
            var_lo = np.maximum(np.mean((np.abs(x - mu64) * (1 - U64)) ** 2, axis=axes,
                                        keepdims=True) * (1 - _gamma64(M + 3))
                                - err_mu64 * err_mu64, 0.0)
            lo = np.maximum((var_lo + fn.eps) * (1 - 2 * U64) - eps_v,
                            fn.eps * (1 - 2 * U64))
            r_hi = 1.0 / np.sqrt(lo)
            eps_r = (eps_v / (2 * lo ** 1.5) + 4 * U64 * r_hi
                     + _apriori(A_fmt, A_mode, r_hi * (1 + 4 * U64)))
            xh_hi = D * (r_hi + eps_r) * (1 + U64)
            eps_xh = (eps_mu + U64 * D) * (r_hi + eps_r) + D * eps_r + U64 * xh_hi
            local = g * eps_xh + 3 * U64 * (g * xh_hi + np.abs(bet).reshape(pshape))
            # propagation from the input errors (exact normalisation, real arithmetic)
            s = np.sqrt(var_lo + fn.eps)
            ebar = _abs_sum(ex, axes, True) / M
            rho = np.sqrt(_abs_sum(ex * ex, axes, True) / M) * (1 + 4 * U64)
            den = s - rho
            dxh = np.where(den > 0, (ex + ebar) / den + d0 * rho / (s * den), np.inf)
            dxh = np.where((ebar == 0) & (rho == 0), 0.0, dxh)
            xh_true = d0 / s
            dr = np.where(rho == 0, 0.0, np.where(den > 0, rho / (s * den), np.inf))
            e_r = eps_r + dr
            e_xh = eps_xh + dxh
        else:
            rm = _f64(fn.running_mean_data).reshape(pshape)
            rv = _f64(fn.running_var_data).reshape(pshape)
            erm = _bcast(np.reshape(ctx.array_error(fn.running_mean_data), (-1,)),
                         (rm.size,)).reshape(rm.shape)
            erv = _bcast(np.reshape(ctx.array_error(fn.running_var_data), (-1,)),
                         (rv.size,)).reshape(rv.shape)
            d = np.abs(x - rm) * (1 + U64)
            r = 1.0 / np.sqrt(rv + fn.eps)
            eps_r = _apriori(A_fmt, A_mode, r * (1 + 4 * U64)) + 4 * U64 * r
            xh_hi = d * (r + eps_r) * (1 + U64)
            local = (g * (d * eps_r + 2 * U64 * xh_hi)
                     + 3 * U64 * (g * xh_hi + np.abs(bet).reshape(pshape)))
            lo_true = np.maximum(rv - erv, 0.0) + fn.eps
            r_true_hi = 1.0 / np.sqrt(lo_true)
            dr = erv / (2 * np.minimum(lo_true, rv + fn.eps) ** 1.5)
            dxh = (ex + erm) * r_true_hi + d * dr
            xh_true = d * r
            r_hi = np.maximum(r, r_true_hi)
            e_r = eps_r + dr
            e_xh = d * eps_r + 2 * U64 * xh_hi + dxh
        prop = g * dxh + eg * (xh_true + dxh) + eb
    return {"local": local, "prop": prop, "e_r": e_r, "e_xh": e_xh, "r_hi": r_hi}


RULES = {
    "linear": _rule_linear,
    "matmul": _rule_matmul,
    "conv2d": _rule_conv2d,
    "add": _rule_add_sub,
    "sub": _rule_add_sub,
    "mul": _rule_mul,
    "div": _rule_div,
    "neg": _rule_index,
    "reshape": _rule_index,
    "transpose": _rule_index,
    "concat": _rule_index,
    "getitem": _rule_index,
    "dropout": _rule_index,
    "inspect_tap": _rule_index,
    "relu": _rule_relu,
    "quantize": _rule_quantize,
    "tanh": _lipschitz_rule(_tanh_d),
    # sigmoid = 0.5 + 0.5 tanh(x / 2) in float64: 3 roundings and one tanh, <= 4 ulp(1)
    "sigmoid": _lipschitz_rule(_sigmoid_d, slack_rel=0.0, slack_abs=4 * ULP64),
    "exp": _lipschitz_rule(_exp_d),
    "log": _lipschitz_rule(_log_d),
    "sqrt": _lipschitz_rule(_sqrt_d, slack_rel=U64),
    "pow": _lipschitz_rule(_pow_d, slack_rel=4 * ULP64),
    "gelu": _lipschitz_rule(_gelu_d, slack_rel=U64, slack_abs_x=4 * ULP64),
    "max_pool2d": _rule_max_pool,
    "avg_pool2d": _rule_avg_pool,
    "sum": _rule_reduce,
    "mean": _rule_reduce,
    "softmax": _rule_softmax,
    "log_softmax": _rule_log_softmax,
}
_CTX_RULES = {"batch_norm": _rule_norm, "layer_norm": _rule_norm}


class Propagation:
    """Error bounds of a recorded run, op by op.

    ``leaf_errors``: id(Tensor) -> bound array for tensors no recorded op produced (the
    network input, parameters); ``array_errors``: id(array) -> bound for arrays an op
    reads as an attribute (the running statistics of batch norm).  Everything else not
    produced by a recorded op is exact.  After :meth:`run`, :meth:`error` gives the bound
    of any tensor of the run and ``notes`` the ops that had no rule."""

    def __init__(self, leaf_errors=None, array_errors=None):
        self.errors: dict = dict(leaf_errors or {})
        self.arrays: dict = dict(array_errors or {})
        self.notes: list = []
        self._keep: list = []

    def error(self, t) -> np.ndarray:
        """The bound of Tensor ``t`` (zeros for an exact leaf)."""
        e = self.errors.get(id(t))
        if e is None:
            return np.zeros(np.shape(t.data) if isinstance(t, Tensor) else np.shape(t))
        return e

    def array_error(self, a):
        e = self.arrays.get(id(a))
        return 0.0 if e is None else e

    def run(self, calls) -> "Propagation":
        for c in calls:
            self._keep.append(c)
            self.errors[id(c.output)] = self.bound_call(c)
        return self

    def bound_call(self, c: OpCall) -> np.ndarray:
        Y = _f64(c.output)
        X = [_f64(t) if t.data.dtype.kind == "f" else np.asarray(asnumpy(t.data))
             for t in c.inputs]
        E = [self.error(t) for t in c.inputs]
        name = c.op
        with np.errstate(all="ignore"):
            if name in _CTX_RULES:
                e = _CTX_RULES[name](c.fn, X, E, Y, self)
            elif name in RULES:
                e = RULES[name](c.fn, X, E, Y)
            else:
                if name not in self.notes:
                    self.notes.append(name)
                return np.full(Y.shape, np.inf)
        e = np.broadcast_to(np.asarray(e, dtype=np.float64), Y.shape) * _SAFETY
        e = np.where(np.isnan(e), np.inf, e)
        # equal non-finite values (inf == inf) are no error; any other non-finite output
        # has no finite bound
        e = np.where(np.isfinite(Y), e, np.inf)
        return e
