"""Exact parsing of real numbers typed by a person, for rounding to a format.

``float(text)`` rounds a decimal to the *nearest* float64. If that float64 is
then rounded again to a narrower format, the result can be wrong: a decimal
just above a float16 halfway point may become exactly that halfway point in
float64 (the excess is lost), and the second rounding then breaks the tie to
even -- downwards -- although the true value lies above the midpoint. This is
double rounding.

:func:`parse_real` avoids it. It reads the text exactly (a
``fractions.Fraction`` for decimals, an exact binary reading for hex floats)
and converts to float64 with **round-to-odd**: an exactly representable value
is returned unchanged; otherwise, of the two float64 neighbours of the value,
the one whose last significand bit is 1 (odd) is returned. Round-to-odd keeps
the information the second rounding needs: the result is never exactly a
midpoint or a point of a coarser grid unless the value is, and it lies on the
same side of every coarser grid point as the value. Hence (Boldo & Melquiond,
"Emulation of FMA and correctly rounded sums: proved algorithms using rounding
to odd", IEEE TC 2008) rounding the float64 once more to any binary format of
precision p <= 51 = 53 - 2, with any of the directed or nearest modes, gives
the same result as rounding the exact value directly. The format's exponent
range must lie inside float64's with two bits to spare below its smallest
subnormal, which holds for every minifp float format (its smallest quantum is
at least 2**-1072; formats of 52 or 53 bits other than float64 itself are
refused by :class:`~minifp.formats.ieee.FloatFormat` for these reasons) and for
posits up to 32 bits, whose rounding on the bit
string only needs the float64 to keep the binade, the leading fraction bits and
whether any bits are left (round-to-odd never produces a power of two from an
inexact value, so all three survive).

Values beyond the largest finite float64 round to odd as ``±DBL_MAX`` (whose
significand is all ones), which every such format still sees as an overflow of
the right sign; values below the smallest subnormal become ``±2**-1074``.
Stochastic rounding has no single correct result; it sees the float64, off the
exact value by less than 2**-52 relative.

Accepted spellings (surrounding blanks ignored, case-insensitive):
decimals and integers (``-0.5``, ``1e9``, ``.1``, ``1_000``), fractions
(``1/3``), hex floats (``0x1.8p-3``, ``-0X.1P4``), ``inf``/``infinity`` and
``nan`` with an optional sign. ``-0`` gives ``-0.0``.
"""
from __future__ import annotations

import math
import re
import struct
from fractions import Fraction

from .modes import Rounding, parse_rounding

__all__ = ["parse_real", "parse_exact", "round_to_odd", "to_float64", "neighbours"]

_DBL_MAX = Fraction(2) ** 1024 - Fraction(2) ** 971
_HEX_RE = re.compile(
    r"^([+-]?)0x(?=[0-9a-f]|\.[0-9a-f])([0-9a-f_]*)(?:\.([0-9a-f_]*))?(?:p([+-]?\d+))?$")
_SPECIAL = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}


def _bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def neighbours(q) -> tuple[float, float]:
    """The float64s ``lo <= q <= hi`` next to the rational ``q`` (equal when exact).

    Beyond the float64 range the outer neighbour is ``±inf``.
    """
    q = Fraction(q)
    if q < 0:
        lo, hi = neighbours(-q)
        return -hi, -lo
    if q > _DBL_MAX:
        return float(_DBL_MAX), math.inf
    f = q.numerator / q.denominator  # int / int: correctly rounded in CPython
    fq = Fraction(f)
    if fq == q:
        return f, f
    if fq < q:
        return f, math.nextafter(f, math.inf)
    return math.nextafter(f, -math.inf), f


def _odd(x: float) -> bool:
    # The lowest bit of a float64's pattern is its significand's last bit
    # (subnormals and zero included).
    return bool(_bits(x) & 1)


def round_to_odd(q) -> float:
    """The float64 obtained from the exact rational ``q`` by rounding to odd.

    Exact when ``q`` is a float64; otherwise the neighbour of ``q`` with an odd
    significand (``±DBL_MAX`` beyond the float64 range).
    """
    return to_float64(q, "to_odd")


def to_float64(q, mode="nearest_even", rng=None) -> float:
    """Round the exact rational ``q`` to float64 with ``mode`` (any minifp mode).

    This is what rounding a number *as written* to float64 means; for narrower
    formats :func:`parse_real` followed by the format's own rounding gives the
    same. Overflow follows IEEE 754: nearest modes go to ±inf from the overflow
    threshold on (2**1024 - 2**970, a tie that goes to the even ±inf), directed
    modes to ±DBL_MAX or ±inf, to-odd to ±DBL_MAX. ``stochastic`` picks the upper
    neighbour (in magnitude) with probability (|q| - lo) / (hi - lo), drawing one
    ``rng.random()``; beyond DBL_MAX the upper neighbour is inf, at distance
    2**971 (as if 2**1024 were a float64).
    """
    mode = parse_rounding(mode)
    if mode is Rounding.STOCHASTIC and rng is None:
        raise ValueError("stochastic rounding needs a random generator (rng)")
    q = Fraction(q)
    if q == 0:
        return 0.0
    lo, hi = neighbours(abs(q))
    neg = q < 0
    if lo == hi:
        return -lo if neg else lo
    a = abs(q)
    hi_q = Fraction(2) ** 1024 if math.isinf(hi) else Fraction(hi)
    if mode is Rounding.TOWARD_ZERO:
        r = lo
    elif mode is Rounding.UP:
        r = lo if neg else hi
    elif mode is Rounding.DOWN:
        r = hi if neg else lo
    elif mode is Rounding.TO_ODD:
        r = lo if (_odd(lo) or math.isinf(hi)) else hi
    elif mode is Rounding.STOCHASTIC:
        r = hi if rng.random() * float(hi_q - Fraction(lo)) < float(a - Fraction(lo)) else lo
    else:
        mid = (Fraction(lo) + hi_q) / 2
        if a != mid:
            r = lo if a < mid else hi
        elif mode is Rounding.NEAREST_AWAY:
            r = hi
        else:  # tie to even; inf counts as even (DBL_MAX is odd)
            r = hi if (math.isinf(hi) or _odd(lo)) else lo
    return -r if neg else r


def parse_exact(text: str):
    """Read ``text`` exactly: a ``Fraction``, or the float ``±inf``/``nan``.

    Also returns whether a leading minus sign was present (to keep ``-0``).
    Raises ``ValueError`` with a one-line message for anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    s = text.strip().lower()
    negative = s.startswith("-")
    body = s[1:] if s[:1] in "+-" else s
    if body in _SPECIAL:
        v = _SPECIAL[body]
        return (-v if negative else v), negative
    m = _HEX_RE.match(s)
    if m:
        sign, ip, fp, exp = m.groups()
        ip, fp = ip.replace("_", ""), (fp or "").replace("_", "")
        mant = int(ip + fp, 16) if (ip + fp) else 0
        scale = int(exp or 0) - 4 * len(fp)
        q = Fraction(mant) * Fraction(2) ** scale
        return (-q if sign == "-" else q), negative
    try:
        q = Fraction(s.replace("_", "") if "_" in s and "/" not in s else s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"not a number: {text!r} (expected e.g. -0.5, 1e9, 1/3, 0x1.8p-3, inf or nan)"
        ) from None
    return q, negative


def parse_real(text: str) -> float:
    """Parse ``text`` exactly and return its float64 by round-to-odd.

    The result, rounded once more to any format of precision <= 51 bits (every
    minifp format except float64 itself), gives the correctly rounded value of
    the number as written, in every rounding mode (see the module docstring).

    >>> parse_real("0.1").hex()   # float("0.1") is 0x1.999999999999ap-4, an even neighbour
    '0x1.9999999999999p-4'
    >>> parse_real("1.00048828125000000000000001") > 1 + 2**-11  # above the fp16 midpoint
    True
    >>> parse_real("-0"), parse_real("-inf"), parse_real("0x1.8p-3")
    (-0.0, -inf, 0.1875)
    """
    value, negative = parse_exact(text)
    if isinstance(value, float):
        return value
    if value == 0:
        return -0.0 if negative else 0.0
    return round_to_odd(value)
