"""The accumulation orders, each reducing ``x @ y`` over k for batched operands.

Every function takes x of shape (B, m, K) and y of shape (B, K, n) as float64 arrays
holding the operands' values, and returns the (B, m, n) float64 array of accumulator
values (before the final rounding to the output format).

Stochastic rounding: every rounding of output ``o`` (its C-order index in (B, m, n)) at
event ``t`` takes the word ``stream.words(t, o)`` of the reduction's one key
(:mod:`minifp.formats.stream`).  Events: ``4k`` the product of term k (fma off, and the
single term of a pairwise sum of one), ``4k + 2`` the sequential sum after term k,
``4j + 1`` / ``4j + 2`` block j's sum and the running sum after it (blocked),
``((L << 32) | i) * 4 + 3`` node i of level L of the pairwise tree (level 1 sums the
terms), ``1`` the single rounding of ``native``.  The C kernels number them alike.

Products of operands of at most 53 significant bits together (two float16, bfloat16,
float32 or posit16 values) are exact in float64.  Wider operands (posit32 has up to 28
bits, eXmY spellings up to 51) are *wide*: their products are carried exactly as
``(hi, lo)`` TwoProduct pairs, or summed exactly as two-term dot products
(:func:`pair_sums_to_odd`) where TwoProduct could overflow or underflow, so every order
still rounds each sum once.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from ..backend import array_module
from ..formats import FloatFormat, Rounding
from .exactsum import (add3_to_odd, add_to_odd, exact_matmul_odd, prod_safe, to_odd,
                       two_prod)

try:  # rank-1 update in one pass; only for NumPy arrays
    from scipy.linalg.blas import dger as _dger
except Exception:  # pragma: no cover - scipy is a dependency
    _dger = None

try:  # one BLAS thread inside the sequential loop: waking threads per rank-1 update
    from threadpoolctl import ThreadpoolController                # costs 3x its work
except Exception:  # pragma: no cover - a dependency; the loop is only slower without it
    ThreadpoolController = None
_controller = []


def _one_blas_thread():
    """A context limiting BLAS to one thread (a no-op without threadpoolctl)."""
    if ThreadpoolController is None:
        return contextlib.nullcontext()
    if not _controller:
        _controller.append(ThreadpoolController())
    return _controller[0].limit(limits=1, user_api="blas")

_CHUNK_ELEMENTS = 1 << 22  # products materialised at once by pairwise


def round_acc(acc, v, sr=None, event=0, index=None):
    """Round float64 values ``v`` (exact, or already rounded to odd) to the accumulator.

    A float64 accumulator takes ``v`` as float64 arithmetic rounded it (nearest-even);
    its variants apply their rule to that result: ``:ftz`` flushes subnormal results
    (:func:`add_round` also turns a finite overflow into ``±max`` under ``:sat`` and NaN
    under ``:nan``).  Stochastic rounding takes the words of ``event`` and the output
    indices ``index`` (broadcasting with v) from the stream ``sr``."""
    fmt = acc.format
    if fmt.precision >= 53:
        if acc.rounding is not Rounding.NEAREST_EVEN:
            raise ValueError(f"a float64 accumulator supports nearest_even only, "
                             f"not {acc.rounding.value}")
        return v if _plain_float64(fmt) else fmt.round(v, dtype=np.float64)
    words = None
    if acc.rounding is Rounding.STOCHASTIC:
        words = array_module(v).broadcast_to(sr.words(event, index), v.shape)
    return fmt.round(v, acc.rounding, None, dtype=np.float64, words=words)


def pairwise_event(level, i):
    """The stochastic event of node ``i`` (int or array) of pairwise level ``level``."""
    xp = array_module(i)
    return ((np.uint64(level) << np.uint64(32)) | xp.asarray(i, dtype=np.uint64)) \
        * np.uint64(4) + np.uint64(3)


def output_index(xp, B, m, n):
    """C-order indices of the (B, m, n) outputs (uint64), for the stochastic words."""
    return xp.arange(B * m * n, dtype=np.uint64).reshape(B, m, n)


def _plain_float64(fmt) -> bool:
    return getattr(fmt, "subnormals", True) and getattr(fmt, "overflow", "inf") == "inf"


def add_round(acc, a, b, sr=None, event=0, index=None):
    """R(a + b): the exact sum of two float64 arrays rounded once to the accumulator."""
    if acc.format.precision >= 53:
        round_acc(acc, a)  # mode check
        with np.errstate(over="ignore", invalid="ignore"):
            s = a + b
        if _plain_float64(acc.format):
            return s
        return round_acc(acc, _finite_overflow(acc.format, s, a, b))
    return round_acc(acc, add_to_odd(a, b), sr, event, index)


def _finite_overflow(fmt, r, *operands, finite=None):
    """``r`` (a float64 result of finite or not operands) with every Inf that finite
    operands produced replaced by the format's overflow value: ±max (``:sat``) or NaN.
    ``finite``: a mask of the results whose operands were all finite, instead."""
    xp = array_module(r)
    if getattr(fmt, "overflow", "inf") == "inf" or bool(xp.isfinite(r).all()):
        return r
    if finite is None:
        finite = xp.isfinite(operands[0])
        for op in operands[1:]:
            finite = finite & xp.isfinite(op)
    over = xp.isinf(r) & finite
    value = xp.copysign(xp.full(r.shape, fmt.max), r) if fmt.overflow == "saturate" \
        else xp.full(r.shape, np.nan)
    return xp.where(over, value, r)


def wide(bits) -> bool:
    """Whether products of operands of these significant bits can be inexact in float64:
    p + q > 53, unless one side has a single bit (powers of two: the ones of ``sum``)."""
    return sum(bits) > 53 and min(bits) > 1


def pair_sums_to_odd(a1, b1, a2, b2):
    """a1*b1 + a2*b2 exactly, rounded to odd in float64, elementwise (arrays of one shape;
    any finite floats: the two-term dot products go through the exact Kulisch kernel)."""
    xp = array_module(a1, b1, a2, b2)
    shape = a1.shape
    xs = xp.stack([a1, a2], axis=-1).reshape(-1, 1, 2)
    ys = xp.stack([b1, b2], axis=-1).reshape(-1, 2, 1)
    return exact(xs, ys)[0].reshape(shape)


def products_to_odd(x, y):
    """x * y (broadcast) exactly, rounded to odd in float64: TwoProduct where it is exact,
    the exact kernel elsewhere."""
    xp = array_module(x, y)
    if prod_safe(xp, x, y):
        with np.errstate(invalid="ignore", over="ignore"):
            return to_odd(*two_prod(x, y))
    xb, yb = xp.broadcast_arrays(x, y)
    zero = xp.zeros(xb.shape)
    return pair_sums_to_odd(xb, yb, zero, zero)


def operand_bits(x, y, bits=None):
    """(bits of x, bits of y): given, or measured on the data."""
    return bits if bits is not None else (significant_bits(x), significant_bits(y))


def significant_bits(a) -> int:
    """Most significant bits any element of the float array ``a`` needs (<= 53)."""
    if a.dtype == np.float16:
        return 11
    xp = array_module(a)
    fin = a[xp.isfinite(a) & (a != 0)]
    if fin.size == 0:
        return 1
    _, tz = _exponent_and_low_bit(fin)
    return int(54 - int(xp.min(tz)))


def _exponent_and_low_bit(a):
    """(e, t) for finite nonzero floats a = m * 2**e, 1/2 <= |m| < 1: t is the frexp
    exponent of the lowest set bit of the 53-bit integer |m| * 2**53 (t = 54 - bits)."""
    xp = array_module(a)
    m, e = xp.frexp(a)
    mant = xp.abs(xp.ldexp(m, 53)).astype(np.int64)
    low = mant & -mant                                   # lowest set bit
    _, t = xp.frexp(low.astype(np.float64))
    return e, t


# ---- sequential -----------------------------------------------------------------------

def sequential(acc, x, y, sr=None, bits=None):
    """``s = R(s + x_k*y_k)`` (fma) or ``s = R(s + R(x_k*y_k))`` for k = 0..K-1, s0 = +0."""
    xp = array_module(x, y)
    B, m, K = x.shape
    n = y.shape[-1]
    if K == 0:
        return xp.zeros((B, m, n))
    bits = operand_bits(x, y, bits)
    fast = _fast_rounder(acc, x, y, bits)
    if fast is not None and xp is np:
        return _sequential_fast(acc, x, y, fast)
    if xp is np and _float32_fast_ok(acc, x, y, bits):
        with _one_blas_thread():
            return _sequential_float32(x, y)
    s = xp.zeros((B, m, n))
    direct = _float64_add_is_correct(acc, x, y, bits)
    idx = output_index(xp, B, m, n)
    with np.errstate(invalid="ignore", over="ignore"):  # Inf/NaN propagate as IEEE says
        if wide(bits) and acc.format.precision < 53:
            return _sequential_wide(acc, x, y, sr, s, idx)
        return _sequential_general(acc, x, y, sr, s, direct, idx)


def _sequential_general(acc, x, y, sr, s, direct, idx):
    K = x.shape[-1]
    flagged = acc.format.precision >= 53 and not _plain_float64(acc.format)
    direct = direct and not flagged
    for k in range(K):
        p = x[:, :, k, None] * y[:, None, k, :]
        if flagged:
            p = _finite_overflow(acc.format, p, x[:, :, k, None], y[:, None, k, :])
        if not acc.fma:
            p = round_acc(acc, p, sr, 4 * k, idx)
        if direct:
            s = round_acc(acc, s + p, sr, 4 * k + 2, idx)
        else:
            s = add_round(acc, s, p, sr, 4 * k + 2, idx)
    return s


def _sequential_wide(acc, x, y, sr, s, idx):
    """The sequential loop for wide operands: R(s + x_k y_k) from the exact TwoProduct
    pair (three-term sum rounded to odd), or from an exact two-term dot product where
    TwoProduct is not exact; without fma R(x_k y_k) is rounded from the exact product."""
    xp = array_module(x, y)
    safe = prod_safe(xp, x, y)
    ones = xp.ones_like(s)
    for k in range(x.shape[-1]):
        xk, yk = x[:, :, k, None], y[:, None, k, :]
        if not acc.fma:
            p = round_acc(acc, products_to_odd(xk, yk), sr, 4 * k, idx)
            s = add_round(acc, s, p, sr, 4 * k + 2, idx)
        elif safe:
            hi, lo = two_prod(xk, yk)
            s = round_acc(acc, add3_to_odd(s, hi, lo), sr, 4 * k + 2, idx)
        else:
            xb, yb = xp.broadcast_arrays(xk, yk)
            s = round_acc(acc, pair_sums_to_odd(s, ones, xb + 0.0, yb + 0.0), sr,
                          4 * k + 2, idx)
    return s


def _float64_add_is_correct(acc, x, y, bits) -> bool:
    """True when RN_A(RN_64(s + p)) = RN_A(s + p) for every partial sum s in A.

    Holds for round-to-nearest-even into a float format A of precision t when
    (a) p is itself in A (fma off, or products of at most t bits inside A's normal
        range) and 53 >= 2t + 2 (Figueroa: double rounding of a sum is innocuous), or
    (b) A's whole grid spans at most 51 bits (max < 2**E, E - log2(quantum) <= 51) and
        t + (bits of p) <= 50: then RN_64(s + p) can only be an A-midpoint if s + p is.
    """
    fmt = acc.format
    if not isinstance(fmt, FloatFormat) or acc.rounding is not Rounding.NEAREST_EVEN:
        return fmt.precision >= 53
    t = fmt.precision
    if t >= 53:
        return True
    if 2 * t + 2 <= 53:
        if not acc.fma:
            return True
        if sum(bits) <= t and _products_in_normal_range(fmt, x, y):
            return True
    pbits = sum(bits)
    span = math.ceil(math.log2(fmt.max)) + 1 - math.log2(fmt.smallest_subnormal)
    return span <= 51 and t + pbits <= 50


def float64_add_is_correct_for(fmt, rounding, product_bits) -> bool:
    """Case (b) of :func:`_float64_add_is_correct`, from the format alone: with nearest-
    even, RN_A(RN_64(s + p)) = RN_A(s + p) when A's grid spans at most 51 bits and
    t + (bits of p) <= 50."""
    if not isinstance(fmt, FloatFormat) or rounding is not Rounding.NEAREST_EVEN:
        return False
    if fmt.precision >= 53:
        return True
    span = math.ceil(math.log2(fmt.max)) + 1 - math.log2(fmt.smallest_subnormal)
    return span <= 51 and fmt.precision + product_bits <= 50


def _products_in_normal_range(fmt, x, y) -> bool:
    """Every nonzero |x_i*y_j| lies in [smallest normal, max] of fmt (finite data)."""
    xp = array_module(x, y)
    ax, ay = xp.abs(x), xp.abs(y)
    if not (bool(xp.isfinite(ax).all()) and bool(xp.isfinite(ay).all())):
        return False
    nzx, nzy = ax[ax > 0], ay[ay > 0]
    if nzx.size == 0 or nzy.size == 0:
        return True
    return (float(nzx.max()) * float(nzy.max()) <= fmt.max
            and float(nzx.min()) * float(nzy.min()) >= fmt.smallest_normal)


def _fast_rounder(acc, x, y, bits):
    """Constants for the in-place rounding of the fast sequential loop, or None.

    The fast loop needs: a float format with subnormals, nearest-even, fma, products
    exact, the float64-add argument above, finite data, and no partial sum that can
    reach the overflow threshold, checked with |s_k| <= min((1+u)^K, 2) sum|x*y|: under
    round-to-nearest R(s + p) is the format value nearest to s + p, and s is one at
    distance |p|, so |R(s + p)| <= |s| + 2|p| whatever K (the (1+u)^K bound alone made
    every long sum, e.g. the 73,728-term conv weight gradients, take the slow loop).
    """
    fmt = acc.format
    if not (isinstance(fmt, FloatFormat) and fmt.subnormals and acc.fma
            and acc.rounding is Rounding.NEAREST_EVEN and fmt.precision < 53):
        return None
    if not (sum(bits) <= 53 and _float64_add_is_correct(acc, x, y, bits)):
        return None
    xp = array_module(x, y)
    if not (bool(xp.isfinite(x).all()) and bool(xp.isfinite(y).all())):
        return None
    K = x.shape[-1]
    log_growth = K * math.log1p(fmt.unit_roundoff) + 1e-12    # (1+u)^K, capped at 2
    growth = (2.0 if log_growth >= math.log(2.0) else math.exp(log_growth)) * (1 + 2.0 ** -40)
    bound = float(xp.max(_abs_sum_bound(xp.abs(x), xp.abs(y), False))) \
        if x.size and y.size else 0.0
    if not bound * growth < fmt.max:
        return None
    return magic_constants(fmt)


def magic_constants(fmt):
    """Constants of :func:`round_rne_inplace` for a float format with subnormals, or None
    when the constant c of the format's top binade would not be a finite float64 (a wide
    exponent with a small bias, e.g. e10m2b10: emax + 53 - t > 1023) or the format has no
    mantissa bit; callers then take the general path."""
    emin = round(math.log2(fmt.smallest_normal))
    emax = math.frexp(fmt.max)[1] - 1
    if emax + 53 - fmt.precision > 1023 or fmt.precision < 2:
        return None         # (p = 1: "even" is the exponent's parity, not a mantissa bit)
    # c = 1.5 * 2**(max(e, emin) + 52 - (t-1)): exponent shift plus the 0.5 mantissa bit
    return {"minnorm": 2.0 ** emin,
            "add": np.uint64(((52 - (fmt.precision - 1)) << 52) | (1 << 51))}


_EXP = np.uint64(0x7FF0000000000000)


def round_rne_inplace(s, k, c):
    """Round float64 ``s`` to nearest-even in a float format with subnormals, in place.

    With 2**e <= |s| < 2**(e+1) and c = 1.5 * 2**(max(e, emin) + 52 - (t-1)), s + c
    stays in c's binade, whose float64 spacing is the format's spacing at s (2**(e-t+1),
    or the subnormal quantum); c is an even multiple of it, so RN_64(s + c) - c is s
    rounded to nearest-even, subnormals included.  Values beyond the format's max are
    not sent to Inf: callers rule them out.  ``c`` is a float64 scratch array like s.
    """
    cv = c.view(np.uint64)
    np.bitwise_and(s.view(np.uint64), _EXP, out=cv)
    np.maximum(c, k["minnorm"], out=c)
    np.add(cv, k["add"], out=cv)
    np.add(s, c, out=s)
    np.subtract(s, c, out=s)
    return s


def _sequential_fast(acc, x, y, k):
    """Sequential RNE accumulation in six passes per term over the output: the rank-1
    BLAS update s += x_k y_k^T (the product is exact, so an FMA inside BLAS gives the
    same RN_64(s + p)) and :func:`round_rne_inplace`."""
    if x.shape[-1] < 64:
        return _sequential_fast_loop(x, y, k)
    with _one_blas_thread():
        return _sequential_fast_loop(x, y, k)


def _sequential_fast_loop(x, y, k):
    B, m, K = x.shape
    n = y.shape[-1]
    out = np.empty((B, m, n))
    c = np.empty((m, n), order="F")
    buf = None if _dger is not None else np.empty((m, n), order="F")
    for b in range(B):
        s = np.zeros((m, n), order="F")
        xb = np.asfortranarray(x[b])
        yb = np.ascontiguousarray(y[b])
        for kk in range(K):
            if _dger is not None:
                _dger(1.0, xb[:, kk], yb[kk], a=s, overwrite_a=True)
            else:
                np.multiply(xb[:, kk, None], yb[None, kk, :], out=buf)
                np.add(s, buf, out=s)
            round_rne_inplace(s, k, c)
        out[b] = s
    return out


def _float32_fast_ok(acc, x, y, bits) -> bool:
    """Conditions of :func:`_sequential_float32`: a float32 accumulator, nearest-even, fma,
    exact products, finite data, no overflow (bound), and every product a multiple of
    2**-149 (then every partial sum is, and those below 2**-126 are float32 subnormals,
    exact in float64 and in float32)."""
    fmt = acc.format
    if not (isinstance(fmt, FloatFormat) and fmt.name == "float32" and acc.fma
            and acc.rounding is Rounding.NEAREST_EVEN and sum(bits) <= 53):
        return False
    if not (bool(np.isfinite(x).all()) and bool(np.isfinite(y).all())):
        return False
    ax, ay = np.abs(x), np.abs(y)
    K = x.shape[-1]
    if x.size == 0 or y.size == 0:
        return False
    if float(np.max(_abs_sum_bound(ax, ay, False))) * min(1 + K * 2.0 ** -23, 2.0) \
            >= fmt.max:                   # |s_k| <= 2 sum|x*y| in RNE (see _fast_rounder)
        return False
    lo = (_row_low_exponent(ax, -1) - (bits[0] - 1)).min() + \
        (_row_low_exponent(ay, -2) - (bits[1] - 1)).min()
    return int(lo) >= -149


_LOW29 = np.uint64((1 << 29) - 1)
_HALF29 = np.uint64(1 << 28)


def _sequential_float32(x, y):
    """Sequential float32 accumulation, RNE, in seven passes per term.

    t = RN_64(s + x_k y_k) (one rank-1 BLAS update) rounded to float32 is the correct
    rounding of s + x_k y_k unless t is a float32 midpoint (its 29 low mantissa bits are
    1000...0) that the exact sum is not: those rare elements are redone with TwoSum and
    round-to-odd from the previous float32 value kept in ``prev``.
    """
    B, m, K = x.shape
    n = y.shape[-1]
    out = np.empty((B, m, n))
    low = np.empty((m, n), np.uint64, order="F")
    for b in range(B):
        s = np.zeros((m, n), order="F")
        prev = np.zeros((m, n), np.float32, order="F")
        xb = np.asfortranarray(x[b])
        yb = np.ascontiguousarray(y[b])
        for kk in range(K):
            _dger(1.0, xb[:, kk], yb[kk], a=s, overwrite_a=True)
            np.bitwise_and(s.view(np.uint64), _LOW29, out=low)
            tie = low == _HALF29
            if tie.any():
                idx = np.nonzero(tie)
                p = xb[idx[0], kk] * yb[kk, idx[1]]
                s[idx] = add_to_odd(prev[idx].astype(np.float64), p)
            prev[...] = s          # RN to float32 (IEEE cast)
            s[...] = prev
        out[b] = s
    return out


# ---- pairwise -------------------------------------------------------------------------

def pairwise(acc, x, y, sr=None, bits=None):
    """A fixed tree: level by level, terms (0,1), (2,3), ... are added and rounded to A;
    an odd last term moves up unchanged.  Without fma the products are rounded first."""
    xp = array_module(x, y)
    B, m, K = x.shape
    n = y.shape[-1]
    out = xp.empty((B, m, n))
    if K == 0:
        out[...] = 0.0
        return out
    rows = max(1, _CHUNK_ELEMENTS // max(1, B * K * n))
    is_wide = wide(operand_bits(x, y, bits)) and acc.format.precision < 53
    idx = output_index(xp, B, m, n)
    for i0 in range(0, m, rows):
        i1 = min(m, i0 + rows)
        index = idx[None, :, i0:i1, :]
        if is_wide:
            out[:, i0:i1] = _pairwise_wide(acc, x[:, i0:i1], y, sr, index)
            continue
        terms = xp.moveaxis(x[:, i0:i1, :, None] * y[:, None, :, :], 2, 0)  # (K, B, mi, n)
        if not acc.fma or K == 1:
            terms = round_acc(acc, terms, sr, _leaf_events(xp, K), index)
        level = 0
        while terms.shape[0] > 1:
            half = terms.shape[0] // 2
            level += 1
            summed = add_round(acc, terms[0:2 * half:2], terms[1:2 * half:2], sr,
                               _node_events(xp, level, 0, half), index)
            if terms.shape[0] % 2:
                summed = xp.concatenate([summed, terms[-1:]], axis=0)
            terms = summed
        out[:, i0:i1] = terms[0]
    return out


def _leaf_events(xp, K):
    return (xp.arange(K, dtype=np.uint64) * np.uint64(4)).reshape(K, 1, 1, 1)


def _node_events(xp, level, first, count):
    return pairwise_event(level, xp.arange(first, first + count, dtype=np.uint64)) \
        .reshape(count, 1, 1, 1)


def _pairwise_wide(acc, x, y, sr, index):
    """The pairwise tree for wide operands.  Without fma the leaves are R(x_k y_k) from
    the exact products.  With fma the first level adds two exact products
    (:func:`pair_sums_to_odd`) and an odd last product moves up as the pair (x, y) until
    it meets a sum, which then adds it exactly."""
    xp = array_module(x, y)
    K = x.shape[-1]
    xk = xp.moveaxis(xp.broadcast_to(x[:, :, :, None], x.shape + (y.shape[-1],)), 2, 0)
    yk = xp.moveaxis(xp.broadcast_to(y[:, None, :, :], (y.shape[0], x.shape[1]) + y.shape[1:]),
                     2, 0)
    xk, yk = xp.broadcast_arrays(xk, yk)                       # (K, B, m, n) each
    if not acc.fma or K == 1:
        vals = round_acc(acc, products_to_odd(xk, yk), sr, _leaf_events(xp, K), index)
        pending = None
        level = 0
    else:
        half = K // 2
        vals = round_acc(acc, pair_sums_to_odd(xk[0:2 * half:2], yk[0:2 * half:2],
                                               xk[1:2 * half:2], yk[1:2 * half:2]), sr,
                         _node_events(xp, 1, 0, half), index)
        pending = (xk[-1], yk[-1]) if K % 2 else None
        level = 1
    while vals.shape[0] + (pending is not None) > 1:
        count = vals.shape[0] + (pending is not None)
        level += 1
        if pending is not None and count % 2 == 0:     # the product meets the last sum
            body, pending_xy = vals[:-1], pending
            half = body.shape[0] // 2
            last = round_acc(acc, pair_sums_to_odd(vals[-1], xp.ones_like(vals[-1]),
                                                   pending_xy[0] + 0.0, pending_xy[1] + 0.0),
                             sr, pairwise_event(level, half), index[0])
            pending = None
            vals = xp.concatenate([add_round(acc, body[0::2], body[1::2], sr,
                                             _node_events(xp, level, 0, half), index),
                                   last[None]], axis=0) if half else last[None]
            continue
        half = vals.shape[0] // 2
        summed = add_round(acc, vals[0:2 * half:2], vals[1:2 * half:2], sr,
                           _node_events(xp, level, 0, half), index)
        if vals.shape[0] % 2:
            summed = xp.concatenate([summed, vals[-1:]], axis=0)
        vals = summed
    return vals[0]


# ---- blocked --------------------------------------------------------------------------

def blocked(acc, x, y, sr=None, bits=None, quanta=(-1074, -1074)):
    """Blocks of b products: exact block sum, rounded to float64 (nearest-even), then to
    A; the block results are accumulated sequentially in A (s0 = +0).  Without fma the
    products are rounded to A before they enter the block sum."""
    xp = array_module(x, y)
    B, m, K = x.shape
    n = y.shape[-1]
    b = acc.order.block
    bits = operand_bits(x, y, bits)
    starts = list(range(0, K, b))
    total = None
    sums = None
    if acc.fma and sum(bits) <= 53:
        total, sums = _blas_block_sums(x, y, b, bits, quanta)
    fast = None
    fmt = acc.format
    if (sums is not None and xp is np and isinstance(fmt, FloatFormat) and fmt.subnormals
            and acc.rounding is Rounding.NEAREST_EVEN and 2 * fmt.precision + 2 <= 53
            and float(total.max(initial=0.0)) * (1 + 2.0 ** -20) < fmt.max):
        fast = magic_constants(fmt)
    if fast is not None:
        # block sums and partial sums stay below max; s and R(block) are in A, so
        # RN_64(s + R(block)) rounded to A is one correct rounding (Figueroa).
        c = np.empty((B, m, n))
        s = round_rne_inplace(sums[0].copy(), fast, c)
        for j in range(1, len(starts)):
            s += round_rne_inplace(sums[j].copy(), fast, c)
            round_rne_inplace(s, fast, c)
        return s
    s = xp.zeros((B, m, n))
    lx = ly = None
    idx = output_index(xp, B, m, n)
    for j, k0 in enumerate(starts):
        k1 = min(K, k0 + b)
        if sums is not None:
            bs = sums[j]
        elif acc.fma:
            if lx is None:
                lx, ly = _lsb_exponents(x), _lsb_exponents(y)
            bs = block_sum(x[:, :, k0:k1], y[:, k0:k1, :], lx[:, :, k0:k1], ly[:, k0:k1, :])
        else:
            bs = _rounded_products_sum(acc, x[:, :, k0:k1], y[:, k0:k1, :], sr, bits, k0,
                                       idx)
        if fmt.precision >= 53 and not _plain_float64(fmt):
            bs = _finite_overflow(fmt, bs, finite=finite_outputs(x[:, :, k0:k1],
                                                                 y[:, k0:k1, :]))
        bs = round_acc(acc, bs, sr, 4 * j + 1, idx)
        s = bs if k0 == 0 else add_round(acc, s, bs, sr, 4 * j + 2, idx)
    return s


def finite_outputs(x, y):
    """Mask (B, m, n) of the outputs of x @ y whose row of x and column of y are finite."""
    xp = array_module(x, y)
    return xp.isfinite(x).all(axis=-1)[:, :, None] & xp.isfinite(y).all(axis=-2)[:, None, :]


def _blas_block_sums(x, y, b, bits, quanta):
    """(bound on the partial sums, list of the exact block sums rounded to float64) from
    one batched float64 BLAS product of the blocks, for finite data of at most 53 bits
    together (else (None, None)).

    Every product x_ik y_kj is a multiple of 2**(lo_i + lo_j), lo = the exponent of the
    smallest nonzero |value| of the block's row (column) minus (bits - 1), but at least the
    exponent of the operand dtype's quantum (2**-24 for float16 data); a block sum of such
    products below 2**(lo_i + lo_j + 53) is exact in float64 in any order.  The test is made
    per block and output; the (rare) block sums that fail it are computed exactly.
    """
    xp = array_module(x, y)
    if not (bool(xp.isfinite(x).all()) and bool(xp.isfinite(y).all())):
        return None, None
    B, m, K = x.shape
    n = y.shape[-1]
    nb = -(-K // b)
    pad = nb * b - K
    if pad:
        x = xp.concatenate([x, xp.zeros((B, m, pad))], axis=2)
        y = xp.concatenate([y, xp.zeros((B, pad, n))], axis=1)
    xs = xp.ascontiguousarray(x.reshape(B, m, nb, b).transpose(0, 2, 1, 3))   # (B, nb, m, b)
    ys = y.reshape(B, nb, b, n)
    sums = xp.matmul(xs, ys)                                                  # (B, nb, m, n)
    # one test for the whole row first (one BLAS call): it holds for short sums
    total, ok = _float64_certificate(x, y, bits, quanta)                      # (B, m, n)
    if bool(ok.all()):
        return total, [sums[:, j] for j in range(nb)]
    totals, ok = _float64_certificate(xs, ys, bits, quanta)   # then block by block
    if not bool(ok.all()):
        for j in xp.nonzero((~ok).any(axis=(0, 2, 3)))[0].tolist():
            k0, k1 = j * b, min(K, (j + 1) * b)
            near = _exact_nearest(x[:, :, k0:k1], y[:, k0:k1, :])
            sums[:, j] = xp.where(ok[:, j], sums[:, j], near)
    return totals.sum(axis=1), [sums[:, j] for j in range(nb)]


def _float64_certificate(x, y, bits, quanta):
    """(bound, ok) for finite x (..., m, K) @ y (..., K, n): ``bound`` >= sum_k |x_k y_k|
    per output, and ``ok`` where every product is a multiple of 2**(lo_i + lo_j) (lo: the
    exponent of the row's (column's) smallest nonzero |value| minus (bits - 1), at least
    the dtype quantum's) and bound < 2**(lo_i + lo_j + 53): there, the sum in float64 is
    exact whatever the order of the additions (BLAS, with or without FMA)."""
    xp = array_module(x, y)
    exact32 = bits[0] <= 24 and bits[1] <= 24 and min(quanta) >= -149
    ax, ay = xp.abs(x), xp.abs(y)
    total = _abs_sum_bound(ax, ay, exact32)
    return total, total < _certificate_limit(ax, ay, bits, quanta)


def _certificate_limit(ax, ay, bits, quanta):
    """2**(lo_i + lo_j + 53) per output (broadcast shape), for :func:`_float64_certificate`."""
    xp = array_module(ax, ay)
    lo_x = xp.maximum(_row_low_exponent(ax, -1) - (bits[0] - 1), quanta[0])
    lo_y = xp.maximum(_row_low_exponent(ay, -2) - (bits[1] - 1), quanta[1])
    return xp.ldexp(1.0, xp.clip(lo_x + lo_y + 53, -1070, 1020).astype(np.int32))


def exact_by_float64(x, y, bits, quanta=(-1074, -1074)):
    """The exact sums of x @ y (batched) from one float64 BLAS product, or None where
    that is not certified exact for every output (:func:`_float64_certificate`) or the
    data are not finite.  Zero sums are +0, as :func:`exact` gives them."""
    xp = array_module(x, y)
    if sum(bits) > 53 or not (bool(xp.isfinite(x).all()) and bool(xp.isfinite(y).all())):
        return None
    ax, ay = xp.abs(x), xp.abs(y)
    limit = _certificate_limit(ax, ay, bits, quanta)
    # first the bound rowsum_i |x| * colmax_j |y| (no product), then the certificate's
    coarse = xp.sum(ax, axis=-1, keepdims=True) * xp.max(ay, axis=-2, keepdims=True) \
        * (1 + (x.shape[-1] + 2) * 2.0 ** -52)
    rows = ~(coarse < limit).all(axis=-1)                      # (B, m): rows to test
    exact32 = bits[0] <= 24 and bits[1] <= 24 and min(quanta) >= -149
    for b in xp.nonzero(rows.any(axis=-1))[0].tolist():        # with the product bound
        i = xp.nonzero(rows[b])[0]
        total = _abs_sum_bound(ax[min(b, ax.shape[0] - 1)][i], ay[min(b, ay.shape[0] - 1)],
                               exact32)
        if not bool((total < limit[min(b, limit.shape[0] - 1)][i]).all()):
            return None
    return xp.matmul(x, y) + 0.0


def _abs_sum_bound(ax, ay, exact32):
    """An upper bound on sum_k |x_ik||y_kj|: float32 BLAS when the data are float32
    values (``exact32``; relative error <= gamma_K(2**-24), covered by a margin), else
    float64."""
    xp = array_module(ax, ay)
    K = ax.shape[-1]
    f32 = np.finfo(np.float32)
    amax = float(ax.max()) if ax.size else 0.0      # (CuPy's max takes no ``initial``)
    bmax = float(ay.max()) if ay.size else 0.0
    if exact32 and K * amax * bmax < f32.max / 4 and K < 2 ** 20:
        t = xp.matmul(ax.astype(np.float32), ay.astype(np.float32)).astype(np.float64)
        # each of the K products and K - 1 additions rounds once in float32 (relative
        # 2**-24 each, or an absolute subnormal quantum when a product underflows)
        return t * (1 + 4 * (K + 2) * 2.0 ** -24) + 2.0 * K * float(f32.smallest_subnormal)
    with np.errstate(over="ignore"):
        # float64 BLAS: relative error <= gamma_K(2**-53) < (K + 2) 2**-52, plus at most
        # 2**-1075 for each product that underflows
        return xp.matmul(ax, ay) * (1 + (K + 2) * 2.0 ** -52) + K * 2.0 ** -1074


def _row_low_exponent(a, axis):
    """floor(log2) of the smallest nonzero entry along ``axis`` (keepdims; 0 if none)."""
    xp = array_module(a)
    if xp is np:      # one pass (CuPy's reductions take no ``where``)
        low = np.min(a, axis=axis, keepdims=True, where=a > 0, initial=np.inf)
    else:
        low = xp.min(xp.where(a > 0, a, xp.inf), axis=axis, keepdims=True)
    low = xp.where(xp.isfinite(low), low, 1.0)
    _, e = xp.frexp(low)
    return e.astype(np.int64) - 1


def _rounded_products_sum(acc, x, y, sr, bits, k0, idx):
    """RN_64 of the exact sum over k of R(x_k*y_k) (fma off: products rounded to A; the
    block starts at term k0)."""
    xp = array_module(x, y)
    B, m, b = x.shape
    n = y.shape[-1]
    exact_products = wide(operand_bits(x, y, bits)) and acc.format.precision < 53
    # (a float64 accumulator takes RN_64(x*y), as it takes every float64 operation)
    p = products_to_odd(x[:, :, :, None], y[:, None, :, :]) if exact_products else \
        x[:, :, :, None] * y[:, None, :, :]
    events = ((xp.arange(b, dtype=np.uint64) + np.uint64(k0)) * np.uint64(4)).reshape(1, 1, b, 1)
    prods = round_acc(acc, p, sr, events, idx[:, :, None, :])              # (B, m, b, n)
    terms = xp.moveaxis(prods, 2, 3).reshape(1, B * m * n, b)
    near = exact(terms, xp.ones((1, b, 1)))[1]
    return near.reshape(B, m, n)


def _lsb_exponents(a):
    """Exponent of the last set bit of each element (a large number for 0 and non-finite)."""
    xp = array_module(a)
    fin = xp.isfinite(a) & (a != 0)
    e, tz = _exponent_and_low_bit(xp.where(fin, a, 1.0))
    return xp.where(fin, e.astype(np.int64) - 54 + tz, 1 << 20)


def block_sum(x, y, lx, ly):
    """RN_64 of the exact sums of x @ y over a short block (x (B,m,b), y (B,b,n)).

    BLAS computes it in float64; that is exact, whatever the order, when every product
    is a multiple of 2**L and sum|x*y| < 2**(L + 53), L = min lsb(x) + min lsb(y).
    Where that test fails the exact (Kulisch) sum is used.
    """
    xp = array_module(x, y)
    finite = bool(xp.isfinite(x).all()) and bool(xp.isfinite(y).all())
    if not finite:
        return _exact_nearest(x, y)
    with np.errstate(over="ignore"):
        fast = xp.matmul(x, y)
        total = _abs_sum_bound(xp.abs(x), xp.abs(y), False)
    low = xp.min(lx, axis=-1, keepdims=True) + xp.min(ly, axis=-2, keepdims=True)
    limit = xp.ldexp(xp.ones(low.shape), xp.clip(low + 53, -1070, 1020).astype(np.int32))
    ok = total < limit
    if bool(ok.all()):
        return fast
    return xp.where(ok, fast, _exact_nearest(x, y))


def _exact_nearest(x, y):
    return exact(x, y)[1]


# ---- exact ----------------------------------------------------------------------------

def exact(x, y):
    """The exact sums of x @ y: (rounded to odd, rounded to nearest-even) float64.

    Non-finite operands: an output whose row or column holds Inf/NaN is NaN if one of its
    float64 products x_k*y_k is NaN (0 * Inf, a NaN operand) or its products hold both
    +Inf and -Inf, else the Inf of its products (finite products, even those that
    overflow, do not change it; no summation order is involved).
    """
    xp = array_module(x, y)
    fx = xp.isfinite(x)
    fy = xp.isfinite(y)
    if bool(fx.all()) and bool(fy.all()):
        return exact_matmul_odd(x, y)
    bad = (~fx).any(axis=-1)[:, :, None] | (~fy).any(axis=-2)[:, None, :]
    odd, near = exact_matmul_odd(xp.where(fx, x, 0.0), xp.where(fy, y, 0.0))
    special = _special_sums(x, y, bad)
    return xp.where(bad, special, odd), xp.where(bad, special, near)


def _special_sums(x, y, bad):
    """The value of each output flagged ``bad`` by the rule of :func:`exact` (0 elsewhere),
    from its float64 products, output by output (they are few)."""
    xp = array_module(x, y)
    out = xp.zeros(bad.shape)
    for b, i, j in zip(*(a.tolist() for a in xp.nonzero(bad))):
        with np.errstate(invalid="ignore", over="ignore"):
            p = x[b, i, :] * y[b, :, j]
        if bool(xp.isnan(p).any()) or (bool((p == np.inf).any()) and bool((p == -np.inf).any())):
            out[b, i, j] = np.nan
        else:
            out[b, i, j] = np.inf if bool((p == np.inf).any()) else -np.inf
    return out


# ---- native ---------------------------------------------------------------------------

def native(acc, x, y):
    """The backend's matmul in float32 (accumulators that fit it) or float64; the
    summation order is the library's and unspecified."""
    xp = array_module(x, y)
    dt = np.float32 if acc.format.fits_in(np.float32) else np.float64
    with np.errstate(over="ignore", invalid="ignore"):
        r = xp.matmul(x.astype(dt), y.astype(dt))
    return r.astype(np.float64)
