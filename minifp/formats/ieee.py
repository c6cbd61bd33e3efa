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
Formats of 52 or 53 significant bits other than float64 itself are refused
(``WIDE_REFUSAL``): values wider than the work type reach a format as their
float64 rounded to odd, one correct rounding only for at most 51 bits.
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
from .bitround import W32, W64, WorkType, round_pattern
from .modes import Rounding
from .stream import Stream, unit

SPECIALS = ("ieee", "fn", "fnuz", "finite")
OVERFLOWS = ("inf", "nan", "saturate")


# Rounding goes through float64, rounded to odd where the input is wider than the work
# type (the exact values of the CLI, the exact sums of the accumulation orders): that is a
# single correct rounding only for formats of at most 53 - 2 = 51 bits. Of the wider
# layouts only float64 itself is served (its values are the float64s).
WIDE_REFUSAL = ("{p} significant bits ({m} mantissa bits) are refused: minifp rounds "
                "through float64 with round-to-odd, a single correct rounding only up to 51 "
                "bits; of the formats with 51 or 52 mantissa bits only float64 itself is "
                "allowed (e11m52: bias 1023, IEEE specials; also float64:sat, float64:ftz)")

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
        if self.precision >= 52 and not self.is_float64_layout:
            raise ValueError(WIDE_REFUSAL.format(p=self.precision, m=self.mbits))
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
    @property
    def is_float64_layout(self) -> bool:
        """True for float64 and its variants (:sat, :ftz, :nan): the binary64 value set."""
        return (self.ebits, self.mbits, self.bias, self.specials_kind) == (11, 52, 1023, "ieee")

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
    def _work_for(self, a_dtype) -> WorkType:
        if a_dtype == np.float64:
            return W64
        if self.precision <= 24 and self._max_exponent <= 127 and self.emin >= -126:
            return W32
        return W64

    def _round_flat(self, xp, a, mode, rng, words):
        if self._native is not None and mode is Rounding.NEAREST_EVEN:
            # NumPy's casts between its IEEE types are correctly rounded (RNE);
            # overflow to Inf is the intended result, not an error.
            with np.errstate(over="ignore"):
                return a.astype(self._native)
        return self._round_bits(xp, a, mode, rng, words)

    @functools.lru_cache(maxsize=None)
    def _consts(self, work: WorkType):
        """Bit-pattern constants of this format expressed in ``work``'s encoding."""
        u = work.uint_dtype.type
        q = 2.0 ** (self.emin - self.mbits)  # quantum of the subnormal range
        # For p = 1 "even" means an even code, i.e. an even exponent field of the
        # format, which differs from the work type's field by (work.bias - bias).
        parity = (work.bias - self.bias) & 1 if self.mbits == 0 else 0
        return dict(
            u=u, s0=work.mant_bits - self.mbits, emin_w=self.emin + work.bias,
            max_bits=work.pattern(self.max), minnorm_bits=work.pattern(self.smallest_normal),
            q=q, q_bits=work.pattern(q), half_q_bits=work.pattern(q / 2), parity=parity,
            sign=work.sign_bit, abs_mask=work.abs_mask,
            # the constant 2**(e + s0) of _nearest_even_by_addition, and x + c, stay
            # finite in the work type for every binade e of the format's range
            c_fits=self._max_exponent + (work.mant_bits - self.mbits) < work.max_exp,
        )

    def _round_bits(self, xp, a, mode, rng, words=None):
        """Round ``a`` on its bit pattern in the work type; return work-type floats.

        One pass rounds every element at the input's own binade (the sign bit rides
        along); elements below the smallest normal, and those beyond ``max`` or
        non-finite, are then redone on their own (they are found with a compare
        pass and a min/max reduction, and are usually few).
        """
        work = self._work_for(a.dtype)
        k = self._consts(work)
        u = k["u"]
        a = a.astype(work.float_dtype, copy=False)
        bits = a.view(work.uint_dtype)
        if mode is Rounding.STOCHASTIC and words is None:
            words = Stream.from_rng(rng, xp).words_for_shape(a.shape)
        negative = (bits >= k["sign"]) if mode in (Rounding.UP, Rounding.DOWN) else None
        by_addition = (mode is Rounding.NEAREST_EVEN and self.mbits >= 1 and k["s0"] > 0
                       and k["emin_w"] > 1    # only pays off when subnormals need care
                       and k["c_fits"])
        if by_addition:
            out = self._nearest_even_by_addition(xp, work, k, a, bits)
        elif k["s0"] > 0:
            out = round_pattern(xp, bits, u(k["s0"]), mode, negative, words, k["parity"])
        else:
            out = bits.copy()

        if k["emin_w"] > 1 and a.size and not by_addition:
            # 0 < |x| < smallest normal: (2|x| - 2) < (2 min_normal - 2), unsigned.
            twice = bits << u(1)
            twice -= u(2)
            sub = twice < (k["minnorm_bits"] << u(1)) - u(2)
            if bool(sub.any()):
                idx = xp.nonzero(sub)
                b = bits[idx]
                r = self._round_subnormal(xp, work, k, b & k["abs_mask"], b >= k["sign"],
                                          mode, rng, None if words is None else words[idx])
                sign = b & k["sign"]
                if not self.has_negative_zero:
                    sign = xp.where(r == 0, u(0), sign)
                out[idx] = r | sign

        if a.size:
            hi, lo = a.max(), a.min()
            if not (hi <= self.max and lo >= -self.max):  # also true for NaN
                over = ~(xp.abs(a) <= self.max)
                idx = xp.nonzero(over)
                r = out[idx]
                x = a[idx]
                beyond = ((r & k["abs_mask"]) > k["max_bits"]) | ~xp.isfinite(x)
                special = self._overflow_values(xp, x, mode).view(work.uint_dtype)
                out[idx] = xp.where(beyond, special, r)
        if not self.subnormals:  # flush results below the smallest normal to zero
            out[(out & k["abs_mask"]) < k["minnorm_bits"]] &= k["sign"]
        if not self.has_negative_zero:
            out[out == k["sign"]] = 0  # -0 becomes +0
        return out.view(work.float_dtype)

    def _nearest_even_by_addition(self, xp, work, k, a, bits):
        """roundTiesToEven of every element by two hardware additions.

        With c = sign(x) * 2**(max(e, emin) + M - m), where 2**e <= |x| < 2**(e+1),
        M = work mantissa bits and m = format mantissa bits, the sum x + c lies in
        c's binade, whose spacing is the format's quantum at x (2**(e-m), or the
        subnormal quantum 2**(emin-m)); the hardware rounds it to nearest-even, and
        since c is an even multiple of that quantum the tie goes to the even code
        (m >= 1). (x + c) - c is then exact. The sign is OR-ed back so zeros keep
        it. Only used when c stays finite for every binade of the format
        (``c_fits``: emax + M - m < the work type's emax; e7m2b10 in float32 or
        e10m2b10 in float64 fail it and take the pattern path). Values beyond max get
        garbage here (whose magnitude exceeds max) and are redone by the caller.
        """
        u = k["u"]
        sign = bits & k["sign"]
        c = bits & u(((1 << (8 * work.uint_dtype.itemsize - 1 - work.mant_bits)) - 1)
                     << work.mant_bits)
        xp.maximum(c, k["minnorm_bits"], out=c)
        c += u(k["s0"]) << u(work.mant_bits)
        c |= sign
        cf = c.view(work.float_dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # only beyond max
            y = a + cf
            y -= cf
        out = y.view(work.uint_dtype)
        out |= sign
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
            # Where s is the whole mantissa (q <= |x| < 2q), bit s is the exponent
            # field's last bit, while the code (1 before rounding) is odd.
            parity = u((((k["emin_w"] - self.mbits) & 1) ^ 1) if self.mbits else 0)
            parity = xp.where(s == u(mw), parity, u(0))
            out[reg] = round_pattern(xp, mag[reg], s, mode, negative[reg],
                                     None if words is None else words[reg], parity)
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
            else:  # stochastic: P(up) = |x| / q (exact ratio), the word's top 53 bits
                qexp = self.emin - self.mbits
                ratio = xp.ldexp(t.view(work.float_dtype).astype(np.float64),
                                 xp.full(t.shape, -qexp, dtype=np.int32))
                up = unit(words[tiny]) < ratio
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
        # subnormals of the format: the value is mant * 2**(emin - m); float64
        # subnormals (e_field 0) have no hidden bit and the exponent of field 1.
        sig = xp.where(e_field == 0, frac, frac | np.uint64(1 << 52))
        shift = (52 - m) + (self.emin - (xp.maximum(e_field, 1) - 1023))
        shift = xp.clip(shift, 0, 63).astype(np.uint64)
        sub_code = sig >> shift
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
            nan_code = np.uint64(nan_code)
            if self.specials_kind != "fnuz":  # NaNs keep their sign where codes allow
                nan_code = nan_code | (neg * sign_bit)     # (an array from here on)
            code = xp.where(xp.isnan(v), nan_code, code)
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
        with np.errstate(over="ignore"):  # Inf/NaN codes, replaced below
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


