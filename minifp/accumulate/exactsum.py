"""Error-free building blocks: TwoSum, round-to-odd additions, and exact (Kulisch) dot
products by splitting the operands into integer slices that BLAS multiplies exactly.

Round-to-odd (Boldo & Melquiond): if the exact value x is not a float64, replace
RN(x) by its neighbour with an odd last bit on x's side.  Rounding that value once
more to any format of at most 51 significant bits gives the same result as rounding
x directly, in every rounding mode, so sums can be corrected with two float64 passes
and one rounding.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import array_module


def two_sum(a, b):
    """Knuth's TwoSum: s = RN(a + b) and the exact error e = (a + b) - s (finite inputs)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def to_odd(s, e):
    """The float64 rounding-to-odd of s + e, where s = RN(s + e) and e is the exact error.

    Where e != 0 and s has an even last bit, step one ulp toward e.  Non-finite s
    (and NaN e) are left alone.
    """
    xp = array_module(s)
    s = xp.asarray(s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        inexact = (e > 0) | (e < 0)
    even = (s.view(np.int64) & 1) == 0
    fix = inexact & even
    if bool(fix.any()):
        s = s.copy()
        s[fix] = xp.nextafter(s[fix], xp.where(e[fix] > 0, xp.inf, -xp.inf))
    return s


_DBL_MAX = float(np.finfo(np.float64).max)


def _odd_overflow(xp, r, *operands):
    """``r`` with every Inf that finite operands produced replaced by ±DBL_MAX: the
    rounding to odd of a finite value beyond float64 (DBL_MAX is odd; a later rounding
    to any narrower format then overflows or saturates as the exact value would)."""
    if bool(xp.isfinite(r).all()):
        return r
    finite = xp.isfinite(operands[0])
    for op in operands[1:]:
        finite = finite & xp.isfinite(op)
    return xp.where(xp.isinf(r) & finite, xp.copysign(_DBL_MAX, r), r)


def add_to_odd(a, b):
    """a + b rounded to odd in float64 (exact sum of two float64 arrays; a finite sum
    beyond float64 is ±DBL_MAX)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s, e = two_sum(a, b)
    return _odd_overflow(array_module(s), to_odd(s, e), a, b)


_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's splitting constant for float64


def split(a):
    """Veltkamp's split: a = hi + lo exactly, hi with at most 26 and lo with at most 27
    significant bits (|a| < 2**996, so that _SPLIT * a does not overflow)."""
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """Dekker's TwoProduct: p = RN(a * b) and the exact error e = a*b - p.

    Exact when the product neither overflows nor underflows: |a|, |b| < 2**996 and every
    partial product a multiple of 2**-1074 (|a*b| >= 2**-969 suffices).  :func:`prod_safe`
    checks this on the data."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def prod_safe(xp, a, b) -> bool:
    """Whether :func:`two_prod` is exact for every pair of nonzero finite entries of
    ``a`` and ``b`` (broadcast): |a|, |b| < 2**995, no product beyond 2**1020 (sums of a
    few stay finite) and |a*b| >= 2**-968 or 0, checked on the extreme magnitudes."""
    aa, bb = xp.abs(a), xp.abs(b)
    if not (bool(xp.isfinite(aa).all()) and bool(xp.isfinite(bb).all())):
        return False
    nza, nzb = aa[aa > 0], bb[bb > 0]
    if nza.size == 0 or nzb.size == 0:
        return True
    hi_a, hi_b = float(nza.max()), float(nzb.max())
    lo_a, lo_b = float(nza.min()), float(nzb.min())
    return (hi_a < 2.0 ** 995 and hi_b < 2.0 ** 995 and hi_a * hi_b < 2.0 ** 1020
            and lo_a * lo_b >= 2.0 ** -968)


def add3_to_odd(a, b, c):
    """a + b + c rounded to odd in float64, for finite floats with b = RN(b + c) (``(b, c)``
    the exact pair of a :func:`two_prod`, or c = 0).

    (u, e1) = TwoSum(a, b), (v, e2) = TwoSum(e1, c), (w, e3) = TwoSum(u, v): the exact sum
    is w + e3 + e2.  Either a + b is exact (Sterbenz: e1 = 0, so e2 = 0) or |u| >= |b|/2,
    and then |v| <= 1.5 ulp(u), so e2 is far below ulp(w) and |e3 + e2| < the gap from w
    to its neighbours: the exact sum lies strictly between them on the side of
    sign(e3 + e2), and RN(e3 + e2) has that sign (and is 0 only when the sum is w).
    Non-finite operands give the IEEE sum a + b + c; a finite sum beyond float64 gives
    ±DBL_MAX (its rounding to odd)."""
    xp = array_module(a, b, c)
    with np.errstate(invalid="ignore", over="ignore"):
        u, e1 = two_sum(a, b)
        v, e2 = two_sum(e1, c)
        w, e3 = two_sum(u, v)
        t = e3 + e2
        odd = to_odd(w, t)
        if not bool(xp.isfinite(odd).all()):   # Inf or NaN operands: IEEE; overflow of
            odd = xp.where(xp.isfinite(odd), odd, (a + b) + c)   # finite ones: ±DBL_MAX
            odd = _odd_overflow(xp, odd, a, b, c)
    return odd


def div_to_odd(a, b):
    """a / b rounded to odd in float64 (finite, b != 0, no underflow of the remainder):
    q = RN(a/b) and the sign of the exact remainder a - q*b (a TwoProduct) give the side
    of the exact quotient."""
    xp = array_module(a, b)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        q = a / b
        p, e = two_prod(q, b)
        r = (a - p) - e                 # a - p is exact (Sterbenz), r has the right sign
        side = xp.where(b < 0, -r, r)   # q too small where the remainder has b's sign
    return to_odd(q, xp.where(xp.isfinite(q), side, 0.0))


# ---- exact dot products -------------------------------------------------------------

_PIECE = 8  # bits gathered per step when converting the limbs to a float


def _slices(a, axis, beta):
    """Split ``a`` (finite float64) into integer-valued float64 slices along ``axis``.

    Returns (exps, slices): ``a = 2**exps * sum_s slices[s] * 2**(-beta*(s+1))`` exactly,
    where ``exps`` is the exponent of the largest |a| along ``axis`` (keepdims) and
    every slice holds integers of magnitude < 2**beta.
    """
    xp = array_module(a)
    big = xp.max(xp.abs(a), axis=axis, keepdims=True)
    _, exps = xp.frexp(big)                     # big < 2**exps
    nz = a != 0
    if bool(nz.any()):
        _, e_all = xp.frexp(a)
        if int(xp.max(xp.where(nz, exps - e_all, 0))) > 1021 - 53:
            return exps, _slices_wide(xp, a, exps, beta)   # scaling would underflow
    scaled = xp.ldexp(a, -exps)                 # |scaled| < 1, exact
    out = []
    rest = scaled
    while True:
        rest = rest * float(2 ** beta)          # exact: a power of two
        piece = xp.trunc(rest)
        out.append(piece)
        rest = rest - piece                     # exact: the fraction bits
        if not bool(xp.any(rest)):
            break
        if len(out) > 2200 // beta:             # float64 spans < 2200 bits
            raise AssertionError("slicing did not terminate")
    return exps, out


def _slices_wide(xp, a, exps, beta):
    """The slices of :func:`_slices` from the integer significands, for data whose range
    along the axis exceeds what a float64 scaling by 2**-exps keeps (over ~970 binades):
    with |a| = M * 2**q (M < 2**53), slice s holds the bits of M at value positions
    [exps - beta(s+1), exps - beta s), so nothing underflows."""
    m, e = xp.frexp(a)
    mant = xp.abs(xp.ldexp(m, 53)).astype(np.int64)          # |a| = mant * 2**(e - 53)
    q = e.astype(np.int64) - 53
    ex = xp.broadcast_to(exps, a.shape).astype(np.int64)
    nz = mant != 0
    count = int(xp.max(xp.where(nz, -(-(ex - q) // beta), 1)))
    sign = xp.where(a < 0, -1.0, 1.0)
    mask = np.int64((1 << beta) - 1)
    out = []
    for s in range(count):
        k = q - ex + beta * (s + 1)         # piece = floor(mant * 2**k) mod 2**beta
        up = xp.clip(k, 0, beta)
        low_bits = mant & ((np.int64(1) << (np.int64(beta) - up)) - 1)
        left = xp.where(k < beta, low_bits << up, 0)
        right = (mant >> xp.clip(-k, 0, 63)) & mask
        piece = xp.where(k >= 0, left, xp.where(-k < 64, right, 0))
        out.append(sign * piece.astype(np.float64))
    return out


def exact_matmul_odd(x, y):
    """Exact ``x @ y`` (batched, float64, finite) rounded to odd in float64, with the
    rounding to nearest-even computed alongside.

    x has shape (B, m, K) and y (B, K, n).  Returns ``(odd, nearest)``: the exact sums
    rounded to odd (for a later rounding to a format of <= 51 bits) and to nearest
    even (for float64 results).  The sums are computed exactly: the operands are split
    into integer slices of beta bits (row-wise for x, column-wise for y) so that every
    slice product is an integer matrix below 2**53 that BLAS computes exactly, and the
    slice products are carried into int64 limbs.
    """
    xp = array_module(x, y)
    K = x.shape[-1]
    beta = min(24, (53 - max(1, math.ceil(math.log2(max(K, 2))))) // 2)
    ex, xs = _slices(x, -1, beta)               # ex (B, m, 1)
    ey, ys = _slices(y, -2, beta)               # ey (B, 1, n)
    ndig = len(xs) + len(ys) - 1
    limbs = [None] * ndig
    for s, xsl in enumerate(xs):
        if not bool(xp.any(xsl)):
            continue
        for t, ysl in enumerate(ys):
            prod = xp.matmul(xsl, ysl).astype(np.int64)   # exact integers < 2**53
            d = s + t
            limbs[d] = prod if limbs[d] is None else limbs[d] + prod
    shape = x.shape[:-1] + (y.shape[-1],)
    limbs = [xp.zeros(shape, np.int64) if l is None else l for l in limbs]
    # value = 2**(ex+ey-2*beta) * sum_d limbs[d] * 2**(-beta*d)
    _normalise(xp, limbs, beta)
    negative = limbs[0] < 0
    if bool(negative.any()):
        limbs = [xp.where(negative, -l, l) for l in limbs]
        _normalise(xp, limbs, beta)
    top, shifted, sticky = _gather(xp, limbs, beta)
    scale = (ex + ey - 2 * beta).astype(np.int64) - shifted
    odd, nearest = _to_float(xp, top, sticky, scale)
    odd = xp.where(negative, -odd, odd)
    nearest = xp.where(negative, -nearest, nearest)
    return odd, nearest


def _normalise(xp, limbs, beta):
    """Carry so that limbs[1:] lie in [0, 2**beta); limbs[0] keeps the sign (in place)."""
    mask = np.int64((1 << beta) - 1)
    for d in range(len(limbs) - 1, 0, -1):
        carry = limbs[d] >> beta                # floor division by 2**beta
        limbs[d] = limbs[d] & mask
        limbs[d - 1] = limbs[d - 1] + carry


def _gather(xp, limbs, beta):
    """Shift limbs into one int64 ``top`` (8 bits at a time) until it holds >= 56 bits.

    Returns (top, shifted, sticky): value = top * 2**-shifted + (something in
    [0, 2**-shifted) that is nonzero exactly where sticky).
    """
    top = limbs[0].copy()
    shifted = xp.zeros(top.shape, np.int64)
    sticky = xp.zeros(top.shape, bool)
    room_limit = np.int64(1) << np.int64(55)
    for limb in limbs[1:]:
        pieces = []
        left = beta
        while left > 0:
            w = min(_PIECE, left)
            left -= w
            pieces.append(((limb >> left) & ((1 << w) - 1), w))
        for piece, w in pieces:
            room = top < room_limit
            top = xp.where(room, (top << w) | piece, top)
            shifted = shifted + xp.where(room, w, 0)
            sticky = sticky | (~room & (piece != 0))
    return top, shifted, sticky


def _bit_length(xp, v):
    """Bit length of non-negative int64 values (0 for 0)."""
    _, e = xp.frexp(v.astype(np.float64))
    e = e.astype(np.int64)
    safe = xp.maximum(e - 1, 0)
    too_big = (e > 0) & ((v >> safe) == 0)
    return e - too_big


def _to_float(xp, top, sticky, scale):
    """top * 2**scale (+ sticky below) rounded to odd and to nearest-even float64, with
    one rounding also where the result is a float64 subnormal (the last kept bit is then
    never below 2**-1074)."""
    bl = _bit_length(xp, top)
    sh_true = xp.maximum(xp.maximum(bl - 53, 0), -1074 - scale)
    sh = xp.minimum(sh_true, 63)
    mant = top >> sh
    rem = top & ((np.int64(1) << sh) - 1)                 # sh = 63 wraps to the full mask
    inexact = (rem != 0) | sticky
    odd_mant = mant | inexact.astype(np.int64)
    half = xp.where(sh > 0, np.int64(1) << xp.maximum(sh - 1, 0), 0)
    up = (sh > 0) & (sh_true <= 63) & \
        ((rem > half) | ((rem == half) & (sticky | ((mant & 1) == 1))))
    near_mant = mant + up.astype(np.int64)
    exp = (scale + sh_true).astype(np.int32)
    with np.errstate(over="ignore"):              # beyond float64: nearest is Inf,
        odd = xp.ldexp(odd_mant.astype(np.float64), exp)   # odd is DBL_MAX (odd)
        nearest = xp.ldexp(near_mant.astype(np.float64), exp)
    odd = xp.where(xp.isinf(odd), _DBL_MAX, odd)
    return odd, nearest
