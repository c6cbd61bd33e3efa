"""Public reductions under an explicit :class:`Accumulation`: ``dot``, ``matmul``,
``sum`` and ``mean``.

Each output element is the reduction of its terms (products x_ik*y_kj, or the
elements of x for sums, taken in C index order of the reduced axes) in the
accumulation's order and format, then rounded once to the output format (default:
the accumulator format).  Zero results are returned as +0: the sign of a zero sum
carries no information here and depends on the order.
"""
from __future__ import annotations

import builtins

import numpy as np

from ..backend import array_module
from ..formats import Format, Rounding, get_format, parse_rounding
from ..formats.modes import check_rng
from ..formats.stream import Stream
from .. import kernels
from . import orders
from .exactsum import div_to_odd
from .spec import Accumulation


def _as_accumulation(acc) -> Accumulation:
    if acc is None:
        return Accumulation()
    if isinstance(acc, Accumulation):
        return acc
    if isinstance(acc, dict):
        return Accumulation.from_dict(acc)
    if isinstance(acc, str):
        return Accumulation.parse(acc)
    raise ValueError(f"expected an Accumulation, not {type(acc).__name__}")


def _as_real(xp, a, what):
    a = xp.asarray(a)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{what} must hold real numbers, not {a.dtype}")
    return a.astype(np.float64, copy=False)


def _bits(a, original_dtype) -> int:
    """Significant bits the values of ``a`` need at most: 11 for float16 and 24 for float32
    data (no measuring: every order uses the bits only as an upper bound, to choose
    between paths that compute the same values), else measured."""
    if original_dtype == np.float16:
        return 11
    if original_dtype == np.float32:
        return 24
    return orders.significant_bits(a)


_QUANTUM_EXP = {np.dtype(np.float16): -24, np.dtype(np.float32): -149}


def _quantum(dtype) -> int:
    """Exponent of the smallest positive value of a float dtype (0 for integers)."""
    if dtype.kind in "iub":
        return 0
    return _QUANTUM_EXP.get(np.dtype(dtype), -1074)


#: the exact order tries one certified float64 BLAS product when m n >= ratio (m + n)
EXACT_BLAS_RATIO = 16


def _reduce(acc, x, y, rng, bits=None, quanta=(-1074, -1074)):
    """(value, odd): accumulator values for x @ y batched; ``odd`` is set for exact order."""
    kind = acc.order.kind
    xp = array_module(x, y)
    if x.shape[-1] == 0 or x.size == 0 or y.size == 0:  # empty sums are +0
        shape = (max(x.shape[0], y.shape[0]), x.shape[1], y.shape[2])
        zero = xp.zeros(shape)
        return zero, (zero if kind == "exact" else None)
    sr = None
    if acc.rounding is Rounding.STOCHASTIC and kind != "exact":
        check_rng(acc.rounding, rng)
        sr = Stream.from_rng(rng, xp)       # the reduction's one key
    m, n = x.shape[1], y.shape[2]
    if kind == "exact" and m * n >= EXACT_BLAS_RATIO * (m + n):
        # one float64 BLAS product, where it is provably exact (its certificate costs
        # a few passes over the operands: worth it when each operand element meets
        # many outputs)
        near = orders.exact_by_float64(x, y, orders.operand_bits(x, y, bits), quanta)
        if near is not None:
            return _exact_overflow(acc, x, y, near, near)
    if kind != "native" and xp is not np:   # CuPy: the CUDA kernels, always
        from ..kernels import cuda
        return _reduce_kernels(acc, x, y, sr, bits, cuda.matmul_order)
    if kind != "native" and kernels.library() is not None:
        return _reduce_kernels(acc, x, y, sr, bits)
    if kind == "sequential":
        return orders.sequential(acc, x, y, sr, bits), None
    if kind == "pairwise":
        return orders.pairwise(acc, x, y, sr, bits), None
    if kind == "blocked":
        return orders.blocked(acc, x, y, sr, bits, quanta), None
    if kind == "exact":
        odd, near = orders.exact(x, y)
        return _exact_overflow(acc, x, y, near, odd)
    if kind == "native":
        return orders.round_acc(acc, orders.native(acc, x, y), sr, 1,
                                orders.output_index(xp, *x.shape[:2], y.shape[-1])), None
    raise AssertionError(kind)


def _reduce_kernels(acc, x, y, sr, bits, matmul_order=None):
    """The explicit orders through the C kernels, or the CUDA kernels for CuPy data
    (``matmul_order``): bit-identical to the NumPy orders."""
    if matmul_order is None:
        from ..kernels.host import matmul_order
    bits = orders.operand_bits(x, y, bits)
    fmt = acc.format
    if (fmt.precision >= 53 and acc.rounding is not Rounding.NEAREST_EVEN
            and acc.order.kind != "exact"):
        orders.round_acc(acc, x[:0])                     # the one-line refusal
    is_wide = orders.wide(bits) and fmt.precision < 53
    direct = orders.float64_add_is_correct_for(fmt, acc.rounding, builtins.sum(bits))
    key = 0 if sr is None else sr.key
    if acc.order.kind != "exact":
        return matmul_order(acc, x, y, key, is_wide, direct), None
    odd, near = matmul_order(acc, x, y, key, is_wide, direct)
    return _exact_overflow(acc, x, y, near, odd)


def _exact_overflow(acc, x, y, near, odd):
    """(near, odd) of the exact order, with a finite exact sum beyond float64 replaced by
    the overflow value of a float64-wide accumulator with :sat or :nan."""
    fmt = acc.format
    if fmt.precision >= 53 and getattr(fmt, "overflow", "inf") != "inf":
        xp = array_module(near)
        over = orders.finite_outputs(x, y) & ~xp.isfinite(near)
        if bool(over.any()):         # a finite exact sum beyond float64: the rule
            odd = near = orders._finite_overflow(fmt, near, finite=over)
    return near, odd


def _finish(acc, value, odd, out, out_rounding, rng, on_result=None):
    """Round the accumulator values once to the output format; zeros become +0.
    ``on_result(value, result)``, when given, sees the float64 sums and their rounding
    (the gradient-underflow counts of training)."""
    out_fmt = acc.format if out is None else get_format(out)
    mode = parse_rounding(out_rounding)
    if odd is not None:  # exact order: one rounding from the exact sum
        if out is None:   # no output format given: into A, with the accumulation's mode
            mode = acc.rounding
        if out_fmt.precision >= 53:
            if mode.value not in ("nearest_even",):
                raise ValueError("an exact sum rounds into float64 with nearest_even only")
            result = out_fmt.round(value, dtype=np.float64)   # :ftz flushes, :sat keeps
        else:
            result = out_fmt.round(odd, mode, rng, dtype=np.float64)
    elif out_fmt == acc.format:
        result = value
    else:
        result = out_fmt.round(value, mode, rng, dtype=np.float64)
    result = result + 0.0  # -0 -> +0
    if on_result is not None:
        on_result(value, result)
    if out_fmt.carrier == np.float16 and isinstance(result, np.ndarray) \
            and kernels.library() is not None:
        from ..kernels.host import to_float16         # the values are float16 values
        return to_float16(result)
    return result.astype(out_fmt.carrier, copy=False)


def matmul(x, y, acc=None, out: Format | str | None = None, out_rounding="nearest_even",
           rng=None, on_result=None):
    """``x @ y`` with every output's sum over k computed under ``acc``, then rounded to
    ``out`` (default: the accumulator format) with ``out_rounding``.

    Shapes follow ``numpy.matmul`` (1-D operands, batched leading dimensions that
    broadcast).  Returns an array of the output format's carrier dtype.
    """
    acc = _as_accumulation(acc)
    xp = array_module(x, y)
    dx, dy = xp.asarray(x).dtype, xp.asarray(y).dtype
    x = _as_real(xp, x, "matmul operand x")
    y = _as_real(xp, y, "matmul operand y")
    bits = (_bits(x, dx), _bits(y, dy))
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"matmul needs arrays of at least 1 dimension, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    xv = x[None, :] if x.ndim == 1 else x
    yv = y[:, None] if y.ndim == 1 else y
    if xv.shape[-1] != yv.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {tuple(x.shape)} @ {tuple(y.shape)} "
                         f"(inner dimensions {xv.shape[-1]} and {yv.shape[-2]})")
    try:
        lead = np.broadcast_shapes(xv.shape[:-2], yv.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul batch dimensions do not broadcast: {tuple(x.shape)} @ "
                         f"{tuple(y.shape)}") from None
    m, K = xv.shape[-2:]
    n = yv.shape[-1]
    batch = int(np.prod(lead)) if lead else 1
    xb = xp.broadcast_to(xv, lead + (m, K)).reshape(batch, m, K)
    yb = xp.broadcast_to(yv, lead + (K, n)).reshape(batch, K, n)
    value, odd = _reduce(acc, xb, yb, rng, bits, (_quantum(dx), _quantum(dy)))
    res = _finish(acc, value, odd, out, out_rounding, rng, on_result).reshape(lead + (m, n))
    if x.ndim == 1:
        res = res[..., 0, :]
    if y.ndim == 1:
        res = res[..., 0]
    return res


def dot(x, y, acc=None, out=None, out_rounding="nearest_even", rng=None, on_result=None):
    """Inner product of two 1-D arrays under ``acc`` (a 0-d array of the output carrier)."""
    xp = array_module(x, y)
    x, y = xp.asarray(x), xp.asarray(y)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"dot needs two 1-D arrays of the same length, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    return matmul(x, y, acc, out, out_rounding, rng, on_result)


def _normalise_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    norm = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"axis {a!r} is out of range for an array of {ndim} dimensions")
        norm.append(int(a) % ndim)
    if len(set(norm)) != len(norm):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(norm))


def sum(x, axis=None, acc=None, keepdims=False, out=None, out_rounding="nearest_even",
        rng=None, on_result=None):
    """Sum over ``axis`` (None, int or tuple) under ``acc``; terms in C order of the
    reduced axes; rounded once to ``out`` (default: the accumulator format)."""
    acc = _as_accumulation(acc)
    xp = array_module(x)
    dx = xp.asarray(x).dtype
    x = _as_real(xp, x, "sum operand")
    axes = _normalise_axes(axis, x.ndim)
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    moved = xp.transpose(x, kept + axes)
    rows = int(np.prod([x.shape[i] for i in kept])) if kept else 1
    K = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    terms = moved.reshape(1, rows, K)
    ones = xp.ones((1, K, 1))
    value, odd = _reduce(acc, terms, ones, rng, (_bits(x, dx), 1), (_quantum(dx), 0))
    res = _finish(acc, value, odd, out, out_rounding, rng, on_result)
    shape = tuple(1 if (i in axes) else x.shape[i] for i in range(x.ndim)) if keepdims \
        else tuple(x.shape[i] for i in kept)
    return res.reshape(shape)


def mean(x, axis=None, acc=None, keepdims=False, out=None, out_rounding="nearest_even",
         rng=None, on_result=None):
    """The engine sum (rounded to the accumulator format) divided by the number of terms,
    rounded once to ``out`` (default: the accumulator format).  The division is done in
    float64 (a correct rounding for outputs of at most 25 significant bits) or, for wider
    outputs, rounded to odd in float64 from its exact remainder, so the one rounding to
    ``out`` is correct for every format."""
    acc = _as_accumulation(acc)
    xp = array_module(x)
    x = xp.asarray(x)
    axes = _normalise_axes(axis, x.ndim)
    count = int(np.prod([x.shape[i] for i in axes])) if axes else 1
    if count == 0:
        raise ValueError("mean of an empty selection")
    s = sum(x, axis, acc, keepdims, rng=rng).astype(np.float64)
    out_fmt = acc.format if out is None else get_format(out)
    if 25 < out_fmt.precision < 53:      # posit32, wide eXmY: the quotient rounded to odd
        q = div_to_odd(s, xp.full(s.shape, float(count)))
    else:
        q = s / float(count)
    r = out_fmt.round(q, parse_rounding(out_rounding), rng, dtype=np.float64) + 0.0
    if on_result is not None:
        on_result(q, r)
    return r.astype(out_fmt.carrier, copy=False)


__all__ = ["matmul", "dot", "sum", "mean"]
_ = builtins  # the module shadows ``sum``; builtins stays reachable
