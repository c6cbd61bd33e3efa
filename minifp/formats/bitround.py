"""Rounding binary floating-point bit patterns: the kernel shared by all formats.

A non-negative (or sign-magnitude) IEEE binary pattern is linear in its value
inside a binade, and a carry out of the mantissa field increments the exponent
field, which is again the correct value. So rounding a float to fewer
significand bits is integer arithmetic on its pattern: clear the low ``s`` bits,
adding first what the rounding mode asks for. This holds for every
``1 <= s <= mantissa bits`` of the work type, for the sign bit riding along
(only NaN patterns can carry into it; callers treat NaN separately), and for
work-type subnormals (their patterns continue the lowest binade linearly).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .modes import Rounding


@dataclasses.dataclass(frozen=True)
class WorkType:
    """A native binary float type used as the working type for pattern rounding."""

    float_dtype: np.dtype
    uint_dtype: np.dtype
    mant_bits: int
    bias: int
    min_exp: int  # exponent of the smallest normal
    max_exp: int

    @property
    def sign_bit(self):
        return self.uint_dtype.type(1 << (8 * self.uint_dtype.itemsize - 1))

    @property
    def abs_mask(self):
        return self.uint_dtype.type((1 << (8 * self.uint_dtype.itemsize - 1)) - 1)

    def pattern(self, value: float):
        """Bit pattern of ``value`` in this type, as a scalar of the uint dtype."""
        return self.uint_dtype.type(np.array(value, dtype=self.float_dtype).view(self.uint_dtype))


W32 = WorkType(np.dtype(np.float32), np.dtype(np.uint32), 23, 127, -126, 127)
W64 = WorkType(np.dtype(np.float64), np.dtype(np.uint64), 52, 1023, -1022, 1023)


def round_pattern(xp, pat, s, mode, negative=None, words=None, parity=0):
    """Round patterns ``pat`` by clearing their low ``s`` bits (scalar or array).

    ``s == 0`` leaves a zero pattern zero in every mode (callers use it to mark
    elements they redo separately).

    ``mode``: a :class:`Rounding`. ``negative``: boolean array, needed by ``up``
    and ``down``. ``words``: uniform random words of the pattern dtype, needed
    by ``stochastic`` (its low ``s`` bits are added before truncation, so the
    probability of rounding away is exactly (dropped bits) / 2**s). ``parity``:
    1 when the parity of bit ``s`` is the opposite of the code's parity (only for
    formats with p = 1, or where bit ``s`` is an exponent bit); a scalar or an
    array of the pattern dtype. Returns the rounded patterns.
    """
    u = pat.dtype.type
    one = u(1)
    mask = (one << s) - one
    keep = ~mask
    if mode is Rounding.NEAREST_EVEN:
        inc = pat >> s
        inc &= one
        if _nonzero(parity):
            inc ^= _as_pattern(parity, u)
        inc += mask >> one  # (half - 1) + lsb: a tie goes up only from an odd code
        out = pat + inc
    elif mode is Rounding.NEAREST_AWAY:
        out = pat + ((mask >> one) + (mask & one))  # half; 0 when s == 0
    elif mode is Rounding.TOWARD_ZERO:
        return pat & keep
    elif mode is Rounding.UP or mode is Rounding.DOWN:
        away = ~negative if mode is Rounding.UP else negative
        out = pat + xp.where(away, mask, u(0))
    elif mode is Rounding.TO_ODD:
        inexact = (pat & mask) != 0
        out = pat & keep
        even = ((out >> s) & one) == _as_pattern(parity, u)
        out += (inexact & even).astype(out.dtype) << s
        return out
    else:  # stochastic
        out = words & mask
        out += pat
    out &= keep
    return out

def _nonzero(parity) -> bool:
    return not isinstance(parity, int) or parity != 0


def _as_pattern(parity, u):
    return u(parity) if isinstance(parity, int) else parity
