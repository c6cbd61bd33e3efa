"""Correctly rounded + - * / and sqrt for every format, including the wide ones.

minifp computes an elementwise op in float64 and rounds the float64 result once to the
output format F.  That is one correct rounding only when the float64 step cannot change
the outcome: for a format of p <= 25 significant bits (53 >= 2p + 2) with operands of
at most p bits, in round-to-nearest.  For wider formats (posit32 has up to 28 bits,
``eXmY`` layouts up to 51) the float64 result is already a rounding of the exact one,
and rounding it again to F can be wrong next to F's midpoints (double rounding).

:func:`prepare` returns, for an op on float64 operands, the float64 array that the
caller then rounds once to F:

* p <= 25 (every registered format but float64 and the 32-bit posits), nearest-even and
  stochastic rounding: the plain float64 result, unchanged (the fast path, bit-identical
  to what minifp always did).  It is the correct rounding when the float64 result is
  exact (products of operands of at most 26 bits; sums whose operands' exponents are
  close) and, in round-to-nearest-even, for operands that are values of formats of at
  most 25 bits (53 >= 2p + 2, Figueroa).  It is NOT guaranteed for operands wider than
  the output, e.g. float64 constants (float16: ``3 * 0.3338216145833333`` gives
  1.001953125, the correct rounding is 1.0009765625) or float32 values under a bfloat16
  output (``(1 + 2**-8) + 2**-60``: 1.0 instead of 1.0078125); those keep the plain result
  on purpose (speed and bit-identity of the registered formats in the default mode);
  :func:`exact_how` is the one place to widen;
* p <= 25 in the directed modes, nearest-away and to-odd, where Figueroa's argument does
  not hold (bfloat16 toward_zero of ``1 - 2**-100`` after a float64 rounding is 1.0, the
  correct rounding 0.99609375): the exact result rounded to odd, as for wider formats;
* 26 <= p <= 51: the exact result rounded to odd in float64 (TwoSum / TwoProduct and
  the remainder's sign, :mod:`minifp.accumulate.exactsum`).  Rounding that value once
  more to any format of at most 51 bits is the correct rounding of the exact result in
  every mode (Boldo & Melquiond); near float64's subnormals the format's own quantum is
  at least 4 times float64's (``emin >= -1022``, at most 50 stored bits), so the
  argument holds there too;
* the float64 layout (p = 53: float64, float64:sat, float64:ftz, float64:nan): float64
  arithmetic is the correct rounding only in nearest-even.  In the directed modes,
  ``to_odd`` and ``nearest_away`` the exact result is rounded to float64 in that mode
  (from the same error terms), so the format's rounding of it is a no-op on finite
  values; a finite exact result beyond the largest float64 becomes what the format's
  overflow rule says (with ``:sat`` the largest float64 also in nearest-even, where
  float64 arithmetic would give an Inf that the rounding keeps).  Nearest-even
  (overflow to Inf) and stochastic take the plain float64 result.

Non-finite operands, zero operands of * and /, division by zero and sqrt of zero or of
negative numbers have exact IEEE results: they take the plain float64 value.  Where the
error-free transformations are not exact (operands or results beyond about 2**990, or
products and quotients below about 2**-960, where TwoProduct's error term underflows)
the element is computed with :class:`fractions.Fraction` and rounded by
:func:`fraction_to_float64`: slower, never wrong.  sqrt of tiny and of huge operands is
scaled by an even power of two instead (exact).  An exact zero sum of non-zero operands is +0 in
every mode, as float64 round-to-nearest gives it.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..accumulate.exactsum import to_odd, two_prod, two_sum
from ..backend import array_module, asnumpy
from ..formats import Rounding, parse_rounding
from ..formats.exactparse import to_float64

__all__ = ["exact_how", "prepare", "prepare_for", "fraction_to_float64", "PLAIN_MAX_PRECISION"]

#: Formats up to this many significant bits take the plain float64 result (53 >= 2p + 2).
PLAIN_MAX_PRECISION = 25

_DBL_MAX = float(np.finfo(np.float64).max)

_PLAIN = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


def exact_how(fmt, mode) -> str | None:
    """How a float64 op result must be prepared before it is rounded to ``fmt`` in
    ``mode``: None (the plain float64 result is kept), ``"to_odd"`` (formats of 26 to
    51 bits), or a float64 rounding mode name (the float64 layout outside nearest-even
    and stochastic; nearest-even too for float64:sat and float64:nan, where a finite
    result beyond the largest float64 must saturate or become NaN, not stay Inf)."""
    p = fmt.precision
    mode = parse_rounding(mode)
    if p <= PLAIN_MAX_PRECISION:
        # Figueroa's 2p + 2 argument covers round-to-nearest-even only; a directed mode,
        # nearest-away or to-odd after a float64 rounding can be wrong (bfloat16
        # toward_zero of 1 - 2**-100 is 0.99609375, not 1.0): round from the exact value
        plain = mode in (Rounding.NEAREST_EVEN, Rounding.STOCHASTIC)
        return None if plain else "to_odd"
    if p <= 51:
        return "to_odd"
    if mode is Rounding.STOCHASTIC:
        return None
    if mode is Rounding.NEAREST_EVEN and getattr(fmt, "overflow", "inf") == "inf":
        return None
    return mode.value


def prepare_for(fn, role, op, *operands):
    """:func:`prepare` for the format and rounding mode of ``role`` in ``fn``'s policy."""
    p = fn.policy
    return prepare(p.format_of(role), p.rounding_of(role), op, *operands)


def prepare(fmt, mode, op, *operands):
    """The float64 array whose rounding to ``fmt`` in ``mode`` is the correct rounding of
    ``op`` (``"add"``, ``"sub"``, ``"mul"``, ``"div"``, ``"sqrt"``) on the float64
    ``operands`` (broadcast).  See the module docstring."""
    how = exact_how(fmt, mode)
    if op == "sqrt":
        (a,) = operands
        xp = array_module(a)
        if how is None:
            return xp.sqrt(a)
        a = xp.asarray(a, dtype=np.float64)
        return _sqrt_exact(xp, a.reshape(-1), how).reshape(a.shape)
    a, b = operands
    if how is None:
        return _PLAIN[op](a, b)
    xp = array_module(a, b)
    a = xp.asarray(a, dtype=np.float64)
    b = xp.asarray(b, dtype=np.float64)
    a, b = xp.broadcast_arrays(a, b)
    shape = a.shape
    a, b = a.reshape(-1), b.reshape(-1)
    if op == "sub":
        op, b = "add", -b                     # exact
    overflow = getattr(fmt, "overflow", "inf")
    return _binary_exact(xp, op, a, b, how, overflow).reshape(shape)


# ---------------------------------------------------------------- the fast, exact parts
# s = RN(x) is the plain float64 result everywhere.  r (the error term, or a value with
# the sign of x - s) is exact where ``safe``; on the special elements (Inf, NaN, zero
# operands) it is 0 or NaN, which leaves s alone; the other elements are recomputed
# exactly (``slow``), so whatever r holds there does not matter.
def _binary_exact(xp, op, a, b, how, overflow):
    with np.errstate(all="ignore"):
        aa, ab = xp.abs(a), xp.abs(b)
        if op == "add":
            s, r = two_sum(a, b)
            safe = (aa < 2.0 ** 1021) & (ab < 2.0 ** 1021)      # False for Inf, NaN
            tie_r = r                          # the exact error: ties can be seen
        elif op == "mul":
            # two_prod splits with 2**27 + 1: operands below 2**995; its error term is
            # exact when every partial product is a multiple of 2**-1074 (normal
            # operands, |a*b| >= 2**-968) and nothing overflows (|a*b| < 2**1020)
            s, r = two_prod(a, b)
            abs_s = xp.abs(s)
            safe = ((aa >= 2.0 ** -1022) & (ab >= 2.0 ** -1022)
                    & (aa < 2.0 ** 995) & (ab < 2.0 ** 995)
                    & (abs_s >= 2.0 ** -968) & (abs_s < 2.0 ** 1020))
            tie_r = r
        else:  # div
            s = a / b
            p_, e_ = two_prod(s, b)
            rem = (a - p_) - e_                # a - p_ exact (Sterbenz), sign of a - s*b
            r = xp.where(b < 0, -rem, rem)     # sign of a/b - s
            aq = xp.abs(s)
            safe = ((aa >= 2.0 ** -960) & (aa < 2.0 ** 1019)
                    & (ab >= 2.0 ** -1022) & (ab < 2.0 ** 995)
                    & (aq >= 2.0 ** -1022) & (aq < 2.0 ** 995))
            tie_r = None                       # a/b is never a float64 midpoint
        out = _finish(xp, s, r, tie_r, how)
        if bool(safe.all()):
            return out
        finite = xp.isfinite(a) & xp.isfinite(b)
        if op == "add":
            special = ~finite
        else:
            special = ~finite | (a == 0) | (b == 0)
        slow = ~(safe | special)
    if bool(slow.any()):
        out = _fraction_fill(xp, out, slow, op, how, a, b, overflow)
    return out


def _sqrt_exact(xp, a, how):
    with np.errstate(all="ignore"):
        # two_prod(s, s) is exact for 2**-960 <= a < 2**1000.  Outside, sqrt(a * 2**600)
        # = sqrt(a) * 2**300 (tiny a) and sqrt(a * 2**-600) = sqrt(a) * 2**-300 (huge a):
        # the scalings and the roots' rescaling are exact there (normal numbers).
        tiny = (a > 0) & (a < 2.0 ** -960)
        huge = (a >= 2.0 ** 1000) & (a < np.inf)
        scaled = bool(tiny.any() | huge.any())
        x = xp.where(tiny, a * 2.0 ** 600, xp.where(huge, a * 2.0 ** -600, a)) if scaled \
            else a
        s = xp.sqrt(x)                         # -0, NaN and Inf as IEEE; r 0 or NaN there
        p_, e_ = two_prod(s, s)
        r = (x - p_) - e_                      # sign of sqrt(x) - s
        out = _finish(xp, s, r, None, how)
        if scaled:
            out = xp.where(tiny, out * 2.0 ** -300, xp.where(huge, out * 2.0 ** 300, out))
    return out


def _step(xp, s, where, toward):
    """``s`` with the entries ``where`` moved one float64 toward ``toward`` (+-inf)."""
    if not bool(where.any()):
        return s
    return xp.where(where, xp.nextafter(s, toward), s)


def _finish(xp, s, r, tie_r, how):
    """The exact value x (s = RN(x), sign(r) = sign(x - s), r = 0 iff x = s) rounded to
    float64 in ``how``.  ``tie_r``: the exact error x - s where ties can occur (add,
    mul), None where they cannot (div, sqrt)."""
    if how == "to_odd":
        return to_odd(s, r)
    if how == "nearest_even":
        return s
    up, down = r > 0, r < 0
    if how == "up":
        return _step(xp, s, up, xp.inf)
    if how == "down":
        return _step(xp, s, down, -xp.inf)
    if how == "toward_zero":
        inward = (up & (s < 0)) | (down & (s > 0))
        return _step(xp, s, inward, 0.0)
    if how == "nearest_away":
        if tie_r is None:
            return s
        nb = xp.nextafter(s, xp.where(up, xp.inf, -xp.inf))
        tie = (up | down) & ((nb - s) == 2.0 * tie_r)
        away = tie & (xp.abs(nb) > xp.abs(s))
        return xp.where(away, nb, s)
    raise ValueError(f"no float64 rounding for mode {how!r}")


# ---------------------------------------------------------------- the slow, exact path
def _fraction_fill(xp, out, slow, op, how, a, b, overflow):
    """``out`` with the entries ``slow`` recomputed exactly (Fractions, on the host).
    A finite exact result that overflows float64 to Inf (the float64 layout's modes)
    becomes what the format makes of a finite overflow: ``overflow`` "saturate" gives
    the largest float64, "nan" NaN (rounding an Inf would keep it)."""
    idx = xp.nonzero(slow)
    av = asnumpy(a[idx]).tolist()
    bv = asnumpy(b[idx]).tolist()
    vals = []
    for x, y in zip(av, bv):
        fx, fy = Fraction(x), Fraction(y)
        exact = fx + fy if op == "add" else (fx * fy if op == "mul" else fx / fy)
        v = fraction_to_float64(exact, how)
        if v in (np.inf, -np.inf) and overflow != "inf":
            v = np.copysign(_DBL_MAX, v) if overflow == "saturate" else np.nan
        vals.append(v)
    out = out.copy()
    out[idx] = xp.asarray(np.array(vals, dtype=np.float64))
    return out


def fraction_to_float64(x: Fraction, how: str) -> float:
    """The rational ``x`` rounded to float64 (subnormals included) in ``how``, a
    deterministic mode name: :func:`minifp.formats.exactparse.to_float64` (IEEE 754
    overflow: nearest modes give Inf, ``toward_zero`` and ``to_odd`` the largest finite
    float, ``up`` and ``down`` Inf on their side and the largest finite float on the
    other).  An exact zero is +0; a result that underflows to zero keeps the sign."""
    return to_float64(x, how)
