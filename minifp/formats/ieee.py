"""IEEE-like binary floating-point formats (float64 down to 4-bit floats).

A :class:`FloatFormat` is sign + ``ebits`` exponent bits + ``mbits`` stored
significand bits (precision p = mbits + 1), an exponent ``bias``, subnormals on
or off, one of four conventions for special values, and an overflow rule:

``ieee``    Inf at exponent all-ones with zero mantissa, NaNs at all-ones with a
            non-zero mantissa (float16, bfloat16, OCP E5M2).
``fn``      finite: no Inf; the all-ones codes S.1..1.1..1 are NaN (OCP E4M3).
``fnuz``    finite, unsigned zero: no Inf, no -0; the single NaN is the code of
            -0, 0b1000...0 (E4M3FNUZ, E5M2FNUZ, Graphcore 1.4.3 / 1.5.2).
``finite``  every code is a number: no Inf, no NaN (OCP MX E2M1, E2M3, E3M2).

Rounding is exact and done on bit patterns: the input (float16/32 in a float32
work type, float64 in a float64 work type) is rounded once, with the mode's
rule, to the format's precision at the input's exponent (or at the smallest
normal exponent, for subnormal results); then values beyond ``max`` overflow.
Overflow follows IEEE 754 §7.4: nearest and stochastic modes go to the
overflow value (Inf, or NaN when the format has no Inf), directed modes go to
±max when they round toward zero for that sign; ``overflow='saturate'`` sends
every finite overflow (and ±Inf, in formats that have no Inf) to ±max.
"""
from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction

import numpy as np

from .base import Format
from .modes import Rounding, random_unit, random_words

SPECIALS = ("ieee", "fn", "fnuz", "finite")
OVERFLOWS = ("inf", "nan", "saturate")


@dataclasses.dataclass(frozen=True)
class _Work:
    """A native binary float type used as the working type for pattern rounding."""

    float_dtype: np.dtype
    uint_dtype: np.dtype
    mant_bits: int
    bias: int
    min_exp: int  # exponent of the smallest normal
    max_exp: int


_W32 = _Work(np.dtype(np.float32), np.dtype(np.uint32), 23, 127, -126, 127)
_W64 = _Work(np.dtype(np.float64), np.dtype(np.uint64), 52, 1023, -1022, 1023)

_NATIVE = {(5, 10, 15): np.dtype(np.float16), (8, 23, 127): np.dtype(np.float32),
           (11, 52, 1023): np.dtype(np.float64)}


@dataclasses.dataclass(frozen=True)
class FloatFormat(Format):
    """An IEEE-like binary float format (see the module docstring).

    ``overflow`` defaults to ``inf`` for ``ieee`` formats, ``nan`` for ``fn`` and
    ``fnuz`` and ``saturate`` for ``finite`` formats. ``subnormals=False`` flushes
    results below the smallest normal to zero after rounding (as FTZ hardware does).
    """

    ebits: int
    mbits: int
    bias: int | None = None
    subnormals: bool = True
    specials_kind: str = "ieee"
    overflow: str | None = None
    name: str = dataclasses.field(default="", compare=False)

    kind = "float"

    def __post_init__(self):
        if not (isinstance(self.ebits, int) and 1 <= self.ebits <= 11):
            raise ValueError(f"exponent bits must be an integer from 1 to 11, got {self.ebits!r}")
        if not (isinstance(self.mbits, int) and 0 <= self.mbits <= 52):
            raise ValueError(f"mantissa bits must be an integer from 0 to 52, got {self.mbits!r}")
        if self.specials_kind not in SPECIALS:
            raise ValueError(f"unknown special-value convention {self.specials_kind!r} "
                             f"(known: {', '.join(SPECIALS)})")
        if self.bias is None:
            default = (1 << (self.ebits - 1)) - (0 if self.specials_kind == "fnuz" else 1)
            object.__setattr__(self, "bias", default)
        overflow = self.overflow or {"ieee": "inf", "fn": "nan", "fnuz": "nan",
                                     "finite": "saturate"}[self.specials_kind]
        if overflow not in OVERFLOWS:
            raise ValueError(f"unknown overflow rule {overflow!r} (known: {', '.join(OVERFLOWS)})")
        if overflow == "inf" and not self.has_inf:
            raise ValueError(f"overflow='inf' needs a format with Inf ({self.specials_kind} has none)")
        if overflow == "nan" and not self.has_nan:
            raise ValueError(f"overflow='nan' needs a format with NaN ({self.specials_kind} has none)")
        object.__setattr__(self, "overflow", overflow)
        if self.max_code_magnitude < 1:
            raise ValueError("format has no finite non-zero value")
        if self._max_exponent > 1023 or self.emin < -1022 or self.precision > 53:
            raise ValueError("format exceeds the range or precision of float64")
        if self._max_fraction < Fraction(2) ** self.emin:
            raise ValueError("format has no normal number")
        if not self.name:
            object.__setattr__(self, "name", self.canonical_name())

    # ---- layout ------------------------------------------------------------
    def canonical_name(self) -> str:
        """A name the registry parses back to this format, e.g. ``e4m3b11fnuz:sat``."""
        default_bias = (1 << (self.ebits - 1)) - (0 if self.specials_kind == "fnuz" else 1)
        s = f"e{self.ebits}m{self.mbits}"
        if self.bias != default_bias:
            s += f"b{self.bias}"
        if self.specials_kind != "ieee":
            s += self.specials_kind
        default_overflow = {"ieee": "inf", "fn": "nan", "fnuz": "nan",
                            "finite": "saturate"}[self.specials_kind]
        if self.overflow != default_overflow:
            s += ":sat" if self.overflow == "saturate" else f":{self.overflow}"
        if not self.subnormals:
            s += ":ftz"
        return s

    @property
    def bits(self) -> int:
        return 1 + self.ebits + self.mbits

    @property
    def precision(self) -> int:
        return self.mbits + 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number: 1 - bias."""
        return 1 - self.bias

    @functools.cached_property
    def max_code_magnitude(self) -> int:
        """Largest code (sign bit clear) that encodes a finite number."""
        body = self.ebits + self.mbits
        if self.specials_kind == "ieee":
            return (((1 << self.ebits) - 1) << self.mbits) - 1
        if self.specials_kind == "fn":
            return (1 << body) - 2
        return (1 << body) - 1

    @functools.cached_property
    def _max_fraction(self) -> Fraction:
        return self._code_magnitude_value(self.max_code_magnitude)

    @property
    def _max_exponent(self) -> int:
        return (self.max_code_magnitude >> self.mbits) - self.bias

    def _code_magnitude_value(self, c: int) -> Fraction:
        ef, mant = c >> self.mbits, c & ((1 << self.mbits) - 1)
        if ef == 0:
            if not self.subnormals:
                return Fraction(0)
            return Fraction(mant) * Fraction(2) ** (self.emin - self.mbits)
        return Fraction(mant + (1 << self.mbits)) * Fraction(2) ** (ef - self.bias - self.mbits)

    @property
    def max(self) -> float:
        return float(self._max_fraction)

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** self.emin

    @property
    def smallest_subnormal(self) -> float:
        if self.subnormals and self.mbits > 0:
            return 2.0 ** (self.emin - self.mbits)
        return self.smallest_normal

    @property
    def has_inf(self) -> bool:
        return self.specials_kind == "ieee"

    @property
    def has_nan(self) -> bool:
        if self.specials_kind == "ieee":
            return self.mbits > 0
        return self.specials_kind in ("fn", "fnuz")

    @property
    def has_negative_zero(self) -> bool:
        return self.specials_kind != "fnuz"

    @property
    def specials(self) -> str:
        text = {
            "ieee": "IEEE: Inf at exponent all-ones, NaN at all-ones with mantissa != 0"
                    if self.mbits else "IEEE: Inf at exponent all-ones, no NaN",
            "fn": "finite (fn): no Inf, NaN = S.1..1.1..1",
            "fnuz": "finite, unsigned zero (fnuz): no Inf, no -0, NaN = 1.0..0.0..0",
            "finite": "finite: no Inf, no NaN",
        }[self.specials_kind]
        over = {"inf": "overflow -> Inf", "nan": "overflow -> NaN",
                "saturate": "overflow saturates to +-max"}[self.overflow]
        flush = "" if self.subnormals else "; subnormals flushed to zero"
        return f"{text}; {over}{flush}"

    @functools.cached_property
    def carrier(self) -> np.dtype:
        lowest = self.emin - self.mbits  # exponent of the last bit of the smallest value
        for dt, p, emin, emax in ((np.float16, 11, -14, 15), (np.float32, 24, -126, 127),
                                  (np.float64, 53, -1022, 1023)):
            if self.precision <= p and self._max_exponent <= emax and lowest >= emin - (p - 1):
                return np.dtype(dt)
        raise AssertionError("unreachable: checked in __post_init__")

    @functools.cached_property
    def _native(self):
        """The NumPy dtype this format *is*, when IEEE conversion rules match exactly."""
        dt = _NATIVE.get((self.ebits, self.mbits, self.bias))
        if dt is not None and self.specials_kind == "ieee" and self.subnormals \
                and self.overflow == "inf":
            return dt
        return None

    # ---- rounding ----------------------------------------------------------
    def _work_for(self, a_dtype) -> _Work:
        if a_dtype == np.float64:
            return _W64
        if self.precision <= 24 and self._max_exponent <= 127 and self.emin >= -126:
            return _W32
        return _W64

    def _round_array(self, xp, a, mode, rng):
        if self._native is not None and mode is Rounding.NEAREST_EVEN:
            # NumPy's casts between its IEEE types are correctly rounded (RNE);
            # overflow to Inf is the intended result, not an error.
            with np.errstate(over="ignore"):
                return a.astype(self._native)
        return self._round_bits(xp, a, mode, rng).astype(self.carrier)

    @functools.lru_cache(maxsize=None)
    def _consts(self, work: _Work):
        """Bit-pattern constants of this format expressed in ``work``'s encoding."""
        u = work.uint_dtype.type
        mw = work.mant_bits
        s0 = mw - self.mbits
        emin_w = self.emin + work.bias  # biased exponent field of the smallest normal
        fmax = np.array(self.max, dtype=work.float_dtype).view(work.uint_dtype)
        minnorm = np.array(self.smallest_normal, dtype=work.float_dtype).view(work.uint_dtype)
        q = 2.0 ** (self.emin - self.mbits)  # quantum of the subnormal range
        q_bits = np.array(q, dtype=work.float_dtype).view(work.uint_dtype)
        half_q_bits = np.array(q / 2, dtype=work.float_dtype).view(work.uint_dtype)
        # For p = 1 "even" means an even code, i.e. an even exponent field of the
        # format, which differs from the work type's field by (work.bias - bias).
        parity = (work.bias - self.bias) & 1 if self.mbits == 0 else 0
        return dict(
            u=u, s0=s0, emin_w=emin_w, max_bits=u(fmax), minnorm_bits=u(minnorm),
            q=q, q_bits=u(q_bits), half_q_bits=u(half_q_bits), parity=u(parity),
            sign=u(1 << (8 * work.uint_dtype.itemsize - 1)),
            abs_mask=u((1 << (8 * work.uint_dtype.itemsize - 1)) - 1),
        )

    def _round_bits(self, xp, a, mode, rng):
        """Round ``a`` on its bit pattern in the work type; return work-type floats."""
        work = self._work_for(a.dtype)
        k = self._consts(work)
        u = k["u"]
        a = a.astype(work.float_dtype, copy=False)
        bits = a.view(work.uint_dtype)
        mag = bits & k["abs_mask"]
        words = None
        if mode is Rounding.STOCHASTIC:
            words = random_words(rng, a.shape, work.uint_dtype, xp)

        # Elements below the smallest normal need a larger, per-element shift.
        sub_idx = None
        if k["emin_w"] > 1:
            sub = (mag - u(1)) < (k["minnorm_bits"] - u(1))  # 0 < |a| < smallest normal
            if bool(sub.any()):
                sub_idx = xp.nonzero(sub)
                sub_mag = mag[sub_idx]
                sub_neg = bits[sub_idx] >= k["sign"]
                sub_words = None if words is None else words[sub_idx]

        negative = (bits >= k["sign"]) if mode in (Rounding.UP, Rounding.DOWN) else None
        if k["s0"] > 0:
            _round_mag(xp, mag, u(k["s0"]), mode, negative, words, k["parity"], u, in_place=True)

        if sub_idx is not None:
            mag[sub_idx] = self._round_subnormal(xp, work, k, sub_mag, sub_neg, mode, rng,
                                                 sub_words)

        # Overflow, Inf and NaN: everything whose rounded magnitude passed max.
        over = mag > k["max_bits"]
        bits_out = mag | (bits & k["sign"])
        out = bits_out.view(work.float_dtype)
        if bool(over.any()):
            idx = xp.nonzero(over)
            out[idx] = self._overflow_values(xp, a[idx], mode)
        if not self.subnormals:
            flush = xp.abs(out) < self.smallest_normal
            out[flush] = 0.0 * xp.sign(out[flush]) if self.has_negative_zero else 0.0
        if not self.has_negative_zero:
            out[out == 0] = 0.0  # turns -0 into +0
        return out

    def _round_subnormal(self, xp, work, k, mag, negative, mode, rng, words):
        """Round magnitudes in (0, smallest normal) to multiples of the quantum q."""
        u = k["u"]
        mw = work.mant_bits
        exp_field = mag >> u(mw)
        shift = (k["s0"] + k["emin_w"]) - xp.maximum(exp_field, u(1)).astype(np.int64)
        tiny = shift > mw  # |x| < q: the result is 0 or q
        out = mag.copy()
        reg = ~tiny
        if bool(reg.any()):
            s = shift[reg].astype(work.uint_dtype)
            out[reg] = _round_mag(xp, mag[reg], s, mode,
                                  None if negative is None else negative[reg],
                                  None if words is None else words[reg], u(0), u,
                                  in_place=False)
        if bool(tiny.any()):
            t = mag[tiny]
            neg = negative[tiny]
            if mode is Rounding.NEAREST_EVEN:
                up = t > k["half_q_bits"]
            elif mode is Rounding.NEAREST_AWAY:
                up = t >= k["half_q_bits"]
            elif mode is Rounding.TOWARD_ZERO:
                up = xp.zeros(t.shape, dtype=bool)
            elif mode is Rounding.UP:
                up = ~neg
            elif mode is Rounding.DOWN:
                up = neg
            elif mode is Rounding.TO_ODD:
                up = xp.ones(t.shape, dtype=bool)
            else:  # stochastic: P(up) = |x| / q, exact ratio, 53-bit uniform
                ratio = t.view(work.float_dtype).astype(np.float64) * (1.0 / k["q"])
                up = random_unit(rng, t.shape, xp) < ratio
            out[tiny] = xp.where(up, k["q_bits"], u(0))
        return out

    def _overflow_values(self, xp, x, mode):
        """Results for inputs whose rounded magnitude exceeds max (incl. Inf/NaN)."""
        neg = xp.signbit(x)
        fmax = self.max
        if self.overflow == "saturate":
            to_max = xp.ones(x.shape, dtype=bool)
        elif mode in (Rounding.TOWARD_ZERO, Rounding.TO_ODD):
            to_max = xp.ones(x.shape, dtype=bool)
        elif mode is Rounding.UP:
            to_max = neg
        elif mode is Rounding.DOWN:
            to_max = ~neg
        else:
            to_max = xp.zeros(x.shape, dtype=bool)
        over_value = np.inf if self.overflow == "inf" else np.nan
        mag = xp.where(to_max, fmax, over_value)
        inf_in = xp.isinf(x)
        if self.has_inf:
            mag = xp.where(inf_in, np.inf, mag)
        elif self.overflow != "saturate":
            mag = xp.where(inf_in, np.nan, mag)
        mag = xp.where(xp.isnan(x), np.nan, mag)
        return xp.where(neg, -mag, mag).astype(x.dtype)

    # ---- codes ---------------------------------------------------------------
    def _encode_values(self, xp, r):
        """Codes of values already in the format (``r`` from :meth:`round`)."""
        if not self.has_nan and bool(xp.isnan(r).any()):
            raise ValueError(f"{self.name} has no NaN code")
        v = r.astype(np.float64)
        b = v.view(np.uint64)
        neg = (b >> np.uint64(63)).astype(np.uint64)
        e_field = ((b >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
        frac = b & np.uint64((1 << 52) - 1)
        m = self.mbits
        # normal numbers of the format
        ef = e_field - 1023 + self.bias
        normal_code = (xp.maximum(ef, 0).astype(np.uint64) << np.uint64(m)) | (frac >> np.uint64(52 - m))
        # subnormals of the format: the value is mant * 2**(emin - m)
        shift = (52 - m) + (self.emin - (e_field - 1023))
        shift = xp.clip(shift, 0, 63).astype(np.uint64)
        sub_code = (frac | np.uint64(1 << 52)) >> shift
        code = xp.where(ef >= 1, normal_code, sub_code)
        code = xp.where(v == 0, np.uint64(0), code)
        sign_bit = np.uint64(1 << (self.bits - 1))
        code = code | (neg * sign_bit)
        if self.has_inf:
            inf_code = np.uint64(((1 << self.ebits) - 1) << m)
            code = xp.where(xp.isinf(v), inf_code | (neg * sign_bit), code)
        if self.has_nan:
            nan_code = {"ieee": (((1 << self.ebits) - 1) << m) | (1 << max(m - 1, 0)),
                        "fn": (1 << (self.bits - 1)) - 1,
                        "fnuz": 1 << (self.bits - 1)}[self.specials_kind]
            code = xp.where(xp.isnan(v), np.uint64(nan_code), code)
        if not self.has_negative_zero:
            code = xp.where(v == 0, np.uint64(0), code)
        return code.astype(self.code_dtype)

    @functools.cached_property
    def _decode_table(self):
        return self._decode_arith(np, np.arange(1 << self.bits, dtype=np.uint64))

    def _decode_codes(self, xp, c):
        if self.bits <= 16:
            table = self._decode_table
            if xp is not np:
                table = xp.asarray(table)
            return table[c.astype(np.int64)]
        return self._decode_arith(xp, c)

    def _decode_arith(self, xp, c):
        m = self.mbits
        sign = (c >> np.uint64(self.bits - 1)) & np.uint64(1)
        ef = ((c >> np.uint64(m)) & np.uint64((1 << self.ebits) - 1)).astype(np.int64)
        mant = (c & np.uint64((1 << m) - 1)).astype(np.float64)
        hidden = np.float64(1 << m)
        exp = xp.where(ef == 0, self.emin - m, ef - self.bias - m)
        sig = xp.where(ef == 0, mant if self.subnormals else 0.0 * mant, mant + hidden)
        v = xp.ldexp(sig, exp.astype(np.int32))
        mag_code = c & np.uint64((1 << (self.bits - 1)) - 1)
        if self.specials_kind == "ieee":
            top = ef == (1 << self.ebits) - 1
            v = xp.where(top, xp.where(mant == 0, np.inf, np.nan), v)
        elif self.specials_kind == "fn":
            v = xp.where(mag_code == np.uint64((1 << (self.bits - 1)) - 1), np.nan, v)
        elif self.specials_kind == "fnuz":
            v = xp.where(c == np.uint64(1 << (self.bits - 1)), np.nan, v)
        v = xp.where(sign == 1, -v, v)
        return v.astype(self.carrier)


def _round_mag(xp, mag, s, mode, negative, words, parity, u, in_place):
    """Round non-negative bit patterns ``mag`` by clearing their low ``s`` bits.

    ``s`` is a scalar or an array (all ``1 <= s <= mantissa bits`` of the work
    type), so the pattern stays linear in the value and a carry moves correctly
    into the exponent field. Returns the rounded patterns.
    """
    one = u(1)
    mask = (one << s) - one
    keep = ~mask
    out = mag if in_place else mag.copy()
    if mode is Rounding.NEAREST_EVEN:
        inc = out >> s
        inc &= one
        if parity:
            inc ^= parity
        inc += mask >> one  # half - 1 + lsb: ties go to the even neighbour
        out += inc
        out &= keep
    elif mode is Rounding.NEAREST_AWAY:
        out += (mask >> one) + one
        out &= keep
    elif mode is Rounding.TOWARD_ZERO:
        out &= keep
    elif mode in (Rounding.UP, Rounding.DOWN):
        away = ~negative if mode is Rounding.UP else negative
        out += xp.where(away, mask, u(0))
        out &= keep
    elif mode is Rounding.TO_ODD:
        inexact = (out & mask) != 0
        out &= keep
        lsb = ((out >> s) & one) ^ parity
        out += (inexact & (lsb == 0)).astype(out.dtype) << s
    else:  # stochastic: add uniform bits below the kept part, then truncate
        out += words & mask
        out &= keep
    return out
