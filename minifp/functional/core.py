"""Helpers shared by the ops: float64 views, the engine calls under the phase's
Accumulation, shape checks and the broadcasting reduction of gradients.

Engine wrappers take the Function ``fn`` whose captured policy they use.  ``role`` is
the role whose format the engine rounds its result to (``out`` / ``out_rounding`` of
:mod:`minifp.accumulate`); ``role=None`` leaves the result in the accumulator format
(an intermediate such as a softmax denominator or a batch statistic).
"""
from __future__ import annotations

import numpy as np

from .. import accumulate as _acc
from ..backend import array_module

__all__ = ["f64", "engine_matmul", "engine_sum", "engine_mean", "engine_dot_reduce",
           "unbroadcast", "broadcast_shape", "normalize_axes", "round_acc", "append_bias"]


def f64(a):
    """``a`` as a float64 array of its own backend (values unchanged)."""
    xp = array_module(a)
    return xp.asarray(a, dtype=np.float64)


def _acc_of(fn, phase):
    if phase == "forward":
        return fn.fwd_acc
    if phase == "backward":
        return fn.bwd_acc
    raise ValueError(f"phase must be 'forward' or 'backward', not {phase!r}")


def _out_kw(fn, role):
    if role is None:
        return {"rng": fn.rng}
    p = fn.policy
    kw = {"out": p.format_of(role), "out_rounding": p.rounding[role], "rng": fn.rng}
    if role in ("backward", "gradients"):       # count the gradients that underflow
        from ..autograd import _count_underflows  # noqa: PLC0415
        kw["on_result"] = lambda value, result: _count_underflows(role, value, result)
    return kw


def engine_matmul(fn, a, b, phase, role=None):
    """``a @ b`` (NumPy matmul semantics) under the phase's Accumulation, rounded to
    ``role`` (or left in the accumulator format)."""
    return _acc.matmul(a, b, _acc_of(fn, phase), **_out_kw(fn, role))


def engine_sum(fn, a, axis, phase, role=None, keepdims=False):
    """Sum over ``axis`` (terms in C index order) under the phase's Accumulation."""
    return _acc.sum(a, axis=axis, acc=_acc_of(fn, phase), keepdims=keepdims,
                    **_out_kw(fn, role))


def engine_mean(fn, a, axis, phase, role=None, keepdims=False):
    """Engine sum over ``axis`` divided by the count, rounded once."""
    return _acc.mean(a, axis=axis, acc=_acc_of(fn, phase), keepdims=keepdims,
                     **_out_kw(fn, role))


def engine_dot_reduce(fn, a, b, axes, phase, role=None, keepdims=False):
    """Sum over ``axes`` of ``a * b`` (same-shape or broadcastable arrays) as one engine
    dot product per output element: the products enter the accumulator as the
    Accumulation's ``fma`` setting says."""
    xp = array_module(a, b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    a = xp.broadcast_to(a, shape)
    b = xp.broadcast_to(b, shape)
    axes = normalize_axes(axes, len(shape))
    keep = [i for i in range(len(shape)) if i not in axes]
    perm = keep + list(axes)
    kept_shape = [shape[i] for i in keep]
    k = int(np.prod([shape[i] for i in axes])) if axes else 1
    at = a.transpose(perm).reshape(kept_shape + [1, k])
    bt = b.transpose(perm).reshape(kept_shape + [k, 1])
    r = engine_matmul(fn, at, bt, phase, role).reshape(kept_shape)
    if keepdims:
        r = r.reshape([1 if i in axes else shape[i] for i in range(len(shape))])
    return r


def append_bias(x2, wt, b):
    """``(x2 | 1, wt ; b)``: a column of ones appended to the 2-D ``x2`` and the bias row
    ``b`` to ``wt``, so that ``x2 @ wt + b`` is ONE engine matmul with the bias as the last
    term of every accumulation.  ``b`` is only ever widened: a bias in a wider carrier than
    ``wt`` promotes ``wt`` (exact) rather than being rounded by a cast."""
    xp = array_module(x2, wt)
    dt = wt.dtype
    if b.dtype.kind == "f" and b.dtype.itemsize > dt.itemsize:
        dt = b.dtype
    ones = xp.ones((x2.shape[0], 1), dtype=x2.dtype)
    x2 = xp.concatenate([x2, ones], axis=1)
    wt = xp.concatenate([wt.astype(dt, copy=False), b.reshape(1, -1).astype(dt, copy=False)],
                        axis=0)
    return x2, wt


def round_acc(fn, x, phase):
    """Round ``x`` once to the phase's accumulator format with its rounding mode
    (for intermediates kept at accumulator precision, e.g. 1/sqrt(var + eps))."""
    acc = _acc_of(fn, phase)
    return acc.format.round(x, acc.rounding, fn.rng)


def normalize_axes(axis, ndim) -> tuple:
    """``None`` -> all axes; int or sequence -> sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def broadcast_shape(op, *shapes) -> tuple:
    """The broadcast shape, or ValueError naming every operand shape."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        names = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {names} cannot be broadcast together") from None


def unbroadcast(fn, g, shape, role):
    """Reduce a gradient ``g`` of the broadcast shape to ``shape``: an engine sum (the
    backward Accumulation) over the broadcast axes, rounded once to ``role``.  Without
    broadcasting ``g`` is only rounded to ``role``."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return fn.policy.round(role, g, fn.rng)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return engine_sum(fn, g, axes, "backward", role).reshape(shape)
