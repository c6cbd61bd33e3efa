"""An independent, exact, pure-Python reference for rounding onto minifp formats.

Written from the documented semantics (DESIGN.md "Semantics", the docstrings of
``minifp/formats/ieee.py`` and ``posit.py``), not from the implementation: every
quantity is a :class:`fractions.Fraction` or a Python int, so there is no
intermediate rounding anywhere.

``reference_round(fmt, value, mode)`` returns a Python float (exact: every value
of a format fits in float64), ``nan`` or ``±inf``. ``mode`` is any deterministic
rounding mode name (not ``stochastic``).

IEEE-like floats (:class:`FloatFormat`, fields ``ebits, mbits, bias, subnormals,
specials_kind, overflow``):

* the exact value is rounded once to ``mbits + 1`` significant bits at its own
  binary exponent, or with the fixed quantum ``2**(emin - mbits)`` below the
  smallest normal (the exponent range is unbounded above at this step);
* ties-to-even and to-odd look at the parity of the *code* of the lower
  neighbour: the last mantissa bit, or, with no mantissa bits, the parity of
  the biased exponent field (zero has code 0);
* a rounded magnitude above ``max`` overflows: with ``overflow='saturate'`` to
  ``±max``; otherwise nearest modes give the overflow value (Inf when
  ``overflow == 'inf'``, else NaN), directed modes give ``±max`` when they round
  toward zero for that sign (toward_zero and to_odd always, ``up`` for negative,
  ``down`` for positive values) and the overflow value otherwise;
* without subnormals, results below the smallest normal become zero *after*
  rounding (sign kept where the format has -0);
* ±Inf stays ±Inf where the format has Inf; otherwise it saturates to ±max with
  ``overflow='saturate'`` and becomes NaN without; NaN stays NaN (also in formats
  without a NaN code: it is the carrier's NaN);
* formats without -0 (``fnuz``) turn every zero result into +0.

Posits (:class:`PositFormat`, fields ``n, es``): the magnitude is clamped to
``[minpos, maxpos]``, written as its exact, unbounded bit string (regime,
``es`` exponent bits, fraction) and cut after ``n - 1`` bits; the remainder
decides the rounding on that bit string exactly as for integers (nearest-even,
nearest-away, truncation, up/down by the sign, to-odd on the last code bit).
Negative values round their magnitude with the mirrored mode and take the two's
complement of the code. NaN and ±Inf give NaR (NaN); zero gives zero.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "to_odd")

_MIRROR = {"up": "down", "down": "up"}


def _exact(value):
    """Fraction of a finite real (float, int, numpy scalar or Fraction)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(float(value))


def _floor_log2(a: Fraction) -> int:
    """floor(log2(a)) for a > 0, exactly."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    # now 2**(e-1) < a < 2**(e+1); fix it up
    if a >= Fraction(2) ** (e + 1):
        e += 1
    while Fraction(2) ** e > a:
        e -= 1
    return e


def _pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def _magnitude_round_up(rem: Fraction, lower_is_odd: bool, mode: str) -> bool:
    """Whether a positive magnitude with fractional remainder ``rem`` (in units
    of the last kept place, 0 <= rem < 1) goes to the upper neighbour. ``mode``
    is already mirrored for the sign ('up' = away from zero here)."""
    if rem == 0:
        return False
    if mode == "nearest_even":
        return rem > Fraction(1, 2) or (rem == Fraction(1, 2) and lower_is_odd)
    if mode == "nearest_away":
        return rem >= Fraction(1, 2)
    if mode == "toward_zero":
        return False
    if mode == "up":      # away from zero
        return True
    if mode == "down":    # toward zero
        return False
    if mode == "to_odd":
        return not lower_is_odd
    raise ValueError(f"reference has no deterministic mode {mode!r}")


def _magnitude_mode(mode: str, negative: bool) -> str:
    return _MIRROR.get(mode, mode) if negative else mode


# ---------------------------------------------------------------- IEEE-like floats
def float_reference(fmt, value, mode: str) -> float:
    """Exact rounding of ``value`` onto the FloatFormat ``fmt``."""
    if mode not in MODES:
        raise ValueError(f"reference has no deterministic mode {mode!r}")
    fmax = Fraction(fmt.max)
    has_inf = fmt.specials_kind == "ieee"
    has_neg_zero = fmt.specials_kind != "fnuz"
    over_value = math.inf if fmt.overflow == "inf" else math.nan

    x = float(value) if not isinstance(value, Fraction) else None
    if x is not None and math.isnan(x):
        return math.nan
    if x is not None and math.isinf(x):
        if has_inf:
            return x
        if fmt.overflow == "saturate":
            return math.copysign(float(fmax), x)
        return math.nan

    v = _exact(value)
    negative = v < 0 or (v == 0 and x is not None and math.copysign(1.0, x) < 0)

    def signed_zero():
        return -0.0 if (negative and has_neg_zero) else 0.0

    if v == 0:
        return signed_zero()

    a = abs(v)
    emin = fmt.emin
    e = max(_floor_log2(a), emin)
    quantum = _pow2(e - fmt.mbits)
    scaled = a / quantum
    lo = scaled.numerator // scaled.denominator
    rem = scaled - lo

    # parity of the code of the lower neighbour lo * quantum
    if fmt.mbits >= 1:
        lower_is_odd = bool(lo & 1)
    elif lo == 0:
        lower_is_odd = False            # zero: code 0
    else:
        lower_is_odd = bool((e + fmt.bias) & 1)   # 2**e: exponent field e + bias

    mmode = _magnitude_mode(mode, negative)
    up = _magnitude_round_up(rem, lower_is_odd, mmode)
    r = (lo + (1 if up else 0)) * quantum

    if r > fmax:
        if fmt.overflow == "saturate":
            mag = float(fmax)
        elif mode in ("toward_zero", "to_odd") or (mode == "up" and negative) \
                or (mode == "down" and not negative):
            mag = float(fmax)
        else:
            mag = over_value
        return -mag if negative else mag

    if not fmt.subnormals and r < _pow2(emin):
        r = Fraction(0)
    if r == 0:
        return signed_zero()
    out = float(r)
    assert Fraction(out) == r
    return -out if negative else out


# ---------------------------------------------------------------------- posits
def posit_decode(n: int, es: int, code: int):
    """Exact value (Fraction) of an n-bit posit code; None for NaR."""
    code &= (1 << n) - 1
    if code == 0:
        return Fraction(0)
    if code == 1 << (n - 1):
        return None
    negative = code >> (n - 1) == 1
    if negative:
        code = (-code) & ((1 << n) - 1)
    bits = [(code >> i) & 1 for i in range(n - 2, -1, -1)]  # the n-1 bits after the sign
    first = bits[0]
    run = 0
    while run < len(bits) and bits[run] == first:
        run += 1
    k = run - 1 if first == 1 else -run
    rest = bits[run + 1:]                     # skip the terminating bit (if any)
    exp_bits = rest[:es] + [0] * (es - len(rest[:es]))
    ex = 0
    for b in exp_bits:
        ex = 2 * ex + b
    frac_bits = rest[es:]
    frac = Fraction(0)
    for i, b in enumerate(frac_bits):
        if b:
            frac += Fraction(1, 1 << (i + 1))
    value = _pow2(k * (1 << es) + ex) * (1 + frac)
    return -value if negative else value


def posit_code_of_magnitude(n: int, es: int, a: Fraction, mode: str) -> int:
    """Positive code (1 .. 2**(n-1)-1) of the magnitude ``a`` > 0 rounded on the
    bit string with ``mode`` ('up' meaning away from zero)."""
    max_scale = (n - 2) << es
    a = min(max(a, _pow2(-max_scale)), _pow2(max_scale))
    scale = _floor_log2(a)
    k, ex = scale >> es, scale & ((1 << es) - 1)
    if k >= 0:
        regime, rlen = ((1 << (k + 1)) - 1) << 1, k + 2
    else:
        regime, rlen = 1, -k + 1
    prefix = (regime << es) | ex
    plen = rlen + es
    frac = a / _pow2(scale) - 1               # in [0, 1)
    # the infinite bit string as a number with n-1 bits before the point
    t = (prefix + frac) * _pow2((n - 1) - plen)
    c = t.numerator // t.denominator
    rem = t - c
    up = _magnitude_round_up(rem, bool(c & 1), mode)
    c += 1 if up else 0
    return min(max(c, 1), (1 << (n - 1)) - 1)


def posit_underflow_code_of_magnitude(n: int, es: int, a: Fraction, mode: str) -> int:
    """PositNN's underflow variant: as :func:`posit_code_of_magnitude`, but below minpos
    the bit string is not clamped: its first n-1 bits are all zero (code 0, the value 0)
    and the standard bit-string rounding decides between code 0 and code 1 (minpos)."""
    max_scale = (n - 2) << es
    if a >= _pow2(-max_scale):
        return posit_code_of_magnitude(n, es, a, mode)
    scale = _floor_log2(a)
    k, ex = scale >> es, scale & ((1 << es) - 1)
    rlen = -k + 1                              # k < 0: -k zeros, then a 1
    prefix = (1 << es) | ex                    # the regime's terminating 1, exponent
    plen = rlen + es
    frac = a / _pow2(scale) - 1
    t = (prefix + frac) * _pow2((n - 1) - plen)   # < 1: the string below the cut
    c = t.numerator // t.denominator
    assert c == 0
    up = _magnitude_round_up(t - c, False, mode)
    return 1 if up else 0


def posit_reference_code(fmt, value, mode: str) -> int:
    """Code of ``value`` rounded onto posit(fmt.n, fmt.es) (its underflow variant when
    ``fmt.underflow``)."""
    if mode not in MODES:
        raise ValueError(f"reference has no deterministic mode {mode!r}")
    n, es = fmt.n, fmt.es
    if not isinstance(value, Fraction):
        x = float(value)
        if math.isnan(x) or math.isinf(x):
            return 1 << (n - 1)
    v = _exact(value)
    if v == 0:
        return 0
    negative = v < 0
    of_magnitude = posit_underflow_code_of_magnitude if getattr(fmt, "underflow", False) \
        else posit_code_of_magnitude
    c = of_magnitude(n, es, abs(v), _magnitude_mode(mode, negative))
    return ((-c) & ((1 << n) - 1)) if negative else c


def posit_reference(fmt, value, mode: str) -> float:
    val = posit_decode(fmt.n, fmt.es, posit_reference_code(fmt, value, mode))
    return math.nan if val is None else float(val)


def posit_values(n: int, es: int):
    """Sorted list of every real posit(n, es) value (exact Fractions)."""
    return sorted(v for v in (posit_decode(n, es, c) for c in range(1 << n)) if v is not None)


# ------------------------------------------------------------------- dispatch
def reference_round(fmt, value, mode: str = "nearest_even") -> float:
    """Exact rounding of one value onto ``fmt`` (a FloatFormat or PositFormat)."""
    mode = getattr(mode, "value", mode)
    if hasattr(fmt, "ebits"):
        return float_reference(fmt, value, mode)
    if hasattr(fmt, "es"):
        return posit_reference(fmt, value, mode)
    raise TypeError(f"no reference for {fmt!r}")


def reference_round_array(fmt, values, mode: str = "nearest_even"):
    """List version of :func:`reference_round` (values: any iterable of reals)."""
    return [reference_round(fmt, v, mode) for v in values]


def same_float(a: float, b: float) -> bool:
    """Equal as floats, NaN equal to NaN, and -0 distinct from +0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def float_decode(fmt, code: int):
    """Exact value of a FloatFormat code from its bit fields: a Fraction, or a
    float for the specials (``nan``, ``±inf``); -0 is returned as the float -0.0.
    (Formats with subnormals only: what a flush-to-zero format makes of a
    subnormal code is not part of the documented semantics.)"""
    nbits = 1 + fmt.ebits + fmt.mbits
    code &= (1 << nbits) - 1
    negative = code >> (nbits - 1) == 1
    body = code & ((1 << (nbits - 1)) - 1)
    ef, mant = body >> fmt.mbits, body & ((1 << fmt.mbits) - 1)
    kind = fmt.specials_kind
    if kind == "ieee" and ef == (1 << fmt.ebits) - 1:
        if mant:
            return math.nan
        return -math.inf if negative else math.inf
    if kind == "fn" and body == (1 << (nbits - 1)) - 1:
        return math.nan
    if kind == "fnuz" and code == 1 << (nbits - 1):
        return math.nan
    if ef == 0:
        value = Fraction(mant) * _pow2(fmt.emin - fmt.mbits)
    else:
        value = Fraction(mant + (1 << fmt.mbits)) * _pow2(ef - fmt.bias - fmt.mbits)
    if value == 0:
        return -0.0 if negative else 0.0
    return -value if negative else value


def assert_same_values(got, want, inputs=None, what=""):
    """Bitwise-equal floats (as float64), NaN == NaN whatever its payload/sign, -0 != +0."""
    with np.errstate(invalid="ignore"):      # signalling NaN payloads
        got = np.asarray(got, dtype=np.float64).ravel()
        want = np.asarray(want, dtype=np.float64).ravel()
    assert got.shape == want.shape
    both_nan = np.isnan(got) & np.isnan(want)
    same = (got.view(np.uint64) == want.view(np.uint64)) | both_nan
    if not same.all():
        idx = np.flatnonzero(~same)[:8]
        shown = [(None if inputs is None else np.asarray(inputs).ravel()[i].item(),
                  got[i].item(), want[i].item()) for i in idx]
        raise AssertionError(f"{what}: {(~same).sum()} mismatches (input, got, want): {shown}")


def softposit_code(n, es, value):
    """SoftPosit's code for ``value`` in posit(n, es) (the formats SoftPosit has)."""
    import softposit as sp
    if (n, es) == (8, 0):
        return sp.posit8(value).v.v
    if (n, es) == (16, 1):
        return sp.posit16(value).v.v
    if (n, es) == (32, 2):
        return sp.posit32(value).v.v
    assert es == 2
    return sp.posit_2(value, n).v.v >> (32 - n)     # posit_2 stores the code left-aligned
