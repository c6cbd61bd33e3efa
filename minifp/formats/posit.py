"""Posit formats posit(n, es) (Gustafson; 2022 Standard for Posit Arithmetic).

A posit code is read as a two's-complement integer: 0 is zero, 100...0 is NaR
(not a real), and a positive code is sign 0, a regime run of k+1 ones then a 0
(scale k >= 0) or -k zeros then a 1 (k < 0), up to ``es`` exponent bits (bits
cut off by the end of the word are zeros) and the remaining fraction bits with a
hidden 1. The value is useed**k * 2**exponent * (1 + fraction), useed = 2**2**es,
maxpos = useed**(n-2), minpos = 1/maxpos.

Rounding follows the standard: the exact value's (unbounded) bit string is
rounded to n-1 bits after the sign, nearest-even on the bit string, so where the
cut falls in the regime or exponent bits the boundary between two neighbours is
their geometric rather than arithmetic midpoint. A finite non-zero value never
rounds to 0 or NaR: magnitudes are clamped to [minpos, maxpos] first. NaN and
±Inf become NaR (a NaN in the carrier). The other modes act on the same bit
string (toward zero = truncation of the string, etc.), keeping the clamp;
stochastic rounding picks the upper neighbour with probability
(|x| - lo) / (hi - lo), from the float64 value and one 64-bit word per element
(:mod:`minifp.formats.stream`): where the posit keeps a fraction bit the word's
low bits are added below the cut (exact probability), elsewhere the word's top 53
bits as a double in [0, 1) are compared with the ratio computed in float64.

The underflow variant ``posit(n,es):underflow`` (PositNN's fork of Universal,
UNDERFLOW_MODE = -1) treats 0 as the neighbour below minpos, with the bit-string
rounding point between them at t = minpos / useed = 2**(-2**es (n-1)): below minpos,
nearest-even gives 0 for |x| <= t (the tie goes to the even code, 0) and minpos
above; nearest-away 0 for |x| < t; toward zero 0; up and down 0 on the side of zero;
to-odd minpos (the odd code); stochastic minpos with probability |x| / minpos (the
word's top 53 bits in [0, 1) against |x| / minpos), else 0.  Elsewhere it is the
standard posit.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .base import Format
from .bitround import W32, W64, round_pattern
from .modes import Rounding
from .stream import Stream, unit


@dataclasses.dataclass(frozen=True)
class PositFormat(Format):
    """posit(n, es) with 2 <= n <= 32 and 0 <= es <= 4."""

    n: int
    es: int
    name: str = dataclasses.field(default="", compare=False)
    #: PositNN's underflow variant (``posit(n,es):underflow``): 0 is the neighbour below
    #: minpos, so magnitudes below minpos/useed round to 0 (see the module docstring)
    underflow: bool = False

    kind = "posit"

    def __post_init__(self):
        if not (isinstance(self.n, int) and 2 <= self.n <= 32):
            raise ValueError(f"posit width n must be an integer from 2 to 32, got {self.n!r}")
        if not (isinstance(self.es, int) and 0 <= self.es <= 4):
            raise ValueError(f"posit exponent size es must be an integer from 0 to 4, "
                             f"got {self.es!r} (too large)" if isinstance(self.es, int)
                             and self.es > 4 else
                             f"posit exponent size es must be an integer from 0 to 4, got {self.es!r}")
        if not self.name:
            object.__setattr__(self, "name", f"posit{self.n}_{self.es}")

    # ---- properties ------------------------------------------------------------
    @property
    def bits(self) -> int:
        return self.n

    @property
    def precision(self) -> int:
        """Significand bits next to 1.0: n - 3 - es fraction bits plus the hidden bit."""
        return max(self.n - 3 - self.es, 0) + 1

    @property
    def max_scale(self) -> int:
        """log2(maxpos) = (n - 2) * 2**es."""
        return (self.n - 2) << self.es

    @property
    def max(self) -> float:
        return 2.0 ** self.max_scale

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** -self.max_scale

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** -self.max_scale

    has_inf = False
    has_nan = True  # NaR
    has_negative_zero = False

    @property
    def specials(self) -> str:
        if self.underflow:
            return ("posit: one zero, NaR = 10..0 (NaN/Inf map to NaR); underflow variant: "
                    f"rounds to 0 below minpos/useed = 2^{-(self.max_scale + (1 << self.es))}")
        return "posit: one zero, NaR = 10..0 (NaN/Inf map to NaR); never rounds to 0 or NaR"

    @functools.cached_property
    def carrier(self) -> np.dtype:
        if self.n <= 16:
            _, vals = self._all_codes_values
            for dt in (np.float16, np.float32):
                with np.errstate(over="ignore"):
                    held = vals.astype(dt).astype(np.float64)
                if np.array_equal(held, vals, equal_nan=True):
                    return np.dtype(dt)
            return np.dtype(np.float64)
        if self.precision <= 24 and self.max_scale <= 126:
            return np.dtype(np.float32)
        return np.dtype(np.float64)

    # ---- tables --------------------------------------------------------------
    @functools.cached_property
    def _scale_tables(self):
        """For each scale E in [-max_scale, max_scale]: the regime+exponent bit
        string P(E) and the shift D(E) that leaves n-1 bits (see _codes)."""
        es, n = self.es, self.n
        frac_keep = max(n - 2 - es, 0)
        scales = range(-self.max_scale, self.max_scale + 1)
        prefix, shift = [], []
        for e in scales:
            k, ex = e >> es, e & ((1 << es) - 1)
            if k >= 0:
                regime, rlen = ((1 << (k + 1)) - 1) << 1, k + 2
            else:
                regime, rlen = 1, -k + 1
            prefix.append((regime << es) | ex)
            length = rlen + es + frac_keep + 1  # + 1 sticky bit
            shift.append(length - (n - 1))
        return (np.array(prefix, dtype=np.uint64), np.array(shift, dtype=np.uint64), frac_keep)

    @functools.cached_property
    def _all_codes_values(self):
        codes = np.arange(1 << self.n, dtype=np.uint64)
        return codes, self._decode_arith(np, codes)

    # ---- rounding ----------------------------------------------------------------
    def _codes(self, xp, a, mode, rng, rand=None):
        """Posit codes (uint64) of the values ``a`` rounded with ``mode``."""
        n = self.n
        v = a.astype(np.float64)
        bad = ~xp.isfinite(v)
        zero = v == 0
        neg = xp.signbit(v)
        mag = xp.abs(v)
        mag = xp.where(bad | zero, 1.0, mag)
        xp.clip(mag, self.smallest_normal, self.max, out=mag)
        b = mag.view(np.uint64)
        scale = (b >> np.uint64(52)).astype(np.int64) - (1023 - self.max_scale)
        prefix_t, shift_t, frac_keep = self._scale_tables
        if xp is not np:
            prefix_t, shift_t = xp.asarray(prefix_t), xp.asarray(shift_t)
        prefix = prefix_t[scale]
        shift = shift_t[scale]
        frac = b & np.uint64((1 << 52) - 1)
        drop = 52 - frac_keep
        sticky = (frac & np.uint64((1 << drop) - 1)) != 0
        s = prefix << np.uint64(frac_keep + 1)
        s |= (frac >> np.uint64(drop)) << np.uint64(1)
        s |= sticky.astype(np.uint64)
        one = np.uint64(1)
        c = s >> shift
        rem = s & ((one << shift) - one)
        half = one << (shift - one)
        if mode is Rounding.NEAREST_EVEN:
            up = (rem > half) | ((rem == half) & ((c & one) == one))
        elif mode is Rounding.NEAREST_AWAY:
            up = rem >= half
        elif mode is Rounding.TOWARD_ZERO:
            up = None
        elif mode is Rounding.UP:
            up = ~neg & (rem != 0)
        elif mode is Rounding.DOWN:
            up = neg & (rem != 0)
        elif mode is Rounding.TO_ODD:
            up = (rem != 0) & ((c & one) == 0)
        else:
            lo = self._decode_positive(xp, c)
            hi = self._decode_positive(xp, xp.minimum(c + one, np.uint64((1 << (n - 1)) - 1)))
            width = xp.where(hi > lo, hi - lo, 1.0)
            if rand is None:
                rand = unit(Stream.from_rng(rng, xp).words_for_shape(c.shape))
            up = (rem != 0) & (rand * width < mag - lo)
        if up is not None:
            c = c + up.astype(np.uint64)
        c = xp.clip(c, one, np.uint64((1 << (n - 1)) - 1))
        full = np.uint64((1 << n) - 1)
        c = xp.where(neg, ((full - c) + one) & full, c)
        c = xp.where(zero, np.uint64(0), c)
        c = xp.where(bad, np.uint64(1 << (n - 1)), c)
        return c

    def _work_for(self, a_dtype):
        return W32 if (a_dtype != np.float64 and self.carrier != np.float64) else W64

    def _round_flat(self, xp, a, mode, rng, words):
        work = self._work_for(a.dtype)
        if mode is Rounding.STOCHASTIC and words is None:
            words = Stream.from_rng(rng, xp).words_for_shape(a.shape)
        out = self._round_binades(xp, a.astype(work.float_dtype, copy=False), mode, work,
                                  words)
        if self.underflow:
            out = self._underflow_to_zero(xp, a, out, mode, words)
        return out

    @property
    def underflow_threshold(self) -> float:
        """t = minpos / useed: the rounding point between 0 and minpos of :underflow."""
        return 2.0 ** -(self.max_scale + (1 << self.es))

    def _underflow_to_zero(self, xp, a, out, mode, words):
        """The underflow variant's results below minpos (module docstring)."""
        v = a.astype(np.float64)
        mag = xp.abs(v)
        minpos = self.smallest_normal
        below = (mag < minpos) & (mag > 0)
        if not bool(below.any()):
            return out
        t = self.underflow_threshold
        if mode is Rounding.NEAREST_EVEN:
            zero = mag <= t
        elif mode is Rounding.NEAREST_AWAY:
            zero = mag < t
        elif mode is Rounding.TOWARD_ZERO:
            zero = below
        elif mode is Rounding.UP:
            zero = v < 0
        elif mode is Rounding.DOWN:
            zero = v > 0
        elif mode is Rounding.TO_ODD:
            return out
        else:
            zero = _unit_interval(words) * minpos >= mag
        return xp.where(below & zero, out.dtype.type(0), out)

    @functools.lru_cache(maxsize=None)
    def _binade_shifts(self, work):
        """For each exponent field of ``work``: how many mantissa bits the posit
        drops in that binade, or 0 where the binade is irregular (fewer than one
        fraction bit, at or beyond the posit's range, or zero/subnormal/Inf/NaN)."""
        n, es = self.n, self.es
        top = (1 << (8 * work.uint_dtype.itemsize - 1 - work.mant_bits)) - 1
        table = np.zeros(top + 1, dtype=work.uint_dtype)
        for ef in range(1, top):
            e = ef - work.bias
            if abs(e) >= self.max_scale or e >= work.max_exp:
                continue
            k = e >> es
            rlen = k + 2 if k >= 0 else -k + 1
            fraction_bits = n - 1 - rlen - es
            if fraction_bits >= 1:
                table[ef] = work.mant_bits - fraction_bits
        return table

    def _round_binades(self, xp, a, mode, work, words=None):
        """Deterministic modes, by rounding the input's bit pattern.

        In a binade where the posit keeps f >= 1 fraction bits, its values are the
        binary floats with f fraction bits, its codes increase with the pattern,
        and the code's last bit is the pattern's bit (mantissa bits - f): rounding
        the posit's bit string is rounding the float's pattern (see bitround). A
        carry into the next binade lands on a posit value (its exponent bits are
        all present). Irregular binades go through the bit-string path (_codes).
        Stochastic rounding adds the low bits of ``words`` in regular binades (exact
        probabilities); in irregular ones it compares ``words`` scaled to [0, 1)
        with (|x| - lo) / (hi - lo) (32 or 53 random bits).
        """
        u = work.uint_dtype.type
        bits = a.view(work.uint_dtype)
        table = self._binade_shifts(work)
        if xp is not np:
            table = xp.asarray(table)
        field = (bits >> u(work.mant_bits)) & u(len(table) - 1)
        shift = xp.take(table, field)
        negative = bits >= work.sign_bit if mode in (Rounding.UP, Rounding.DOWN) else None
        out = round_pattern(xp, bits, shift, mode, negative, words)
        irregular = shift == 0
        if bool(irregular.any()):
            irregular &= (bits << u(1)) != 0  # zeros are already right
            idx = xp.nonzero(irregular)
            if idx[0].size:
                u01 = None if words is None else _unit_interval(words[idx])
                vals = self._decode_codes(xp, self._codes(xp, a[idx], mode, None, u01))
                out[idx] = vals.astype(work.float_dtype).view(work.uint_dtype)
        out[out == work.sign_bit] = 0  # posits have one zero
        return out.view(work.float_dtype)

    def _encode_values(self, xp, r):
        return self._codes(xp, r, Rounding.TOWARD_ZERO, None).astype(self.code_dtype)

    # ---- decoding ------------------------------------------------------------------
    def _decode_codes(self, xp, c):
        if self.n <= 16:
            table = self._all_codes_values[1].astype(self.carrier)
            if xp is not np:
                table = xp.asarray(table)
            return table[c.astype(np.int64)]
        return self._decode_arith(xp, c).astype(self.carrier)

    def _decode_positive(self, xp, c):
        """float64 values of positive codes 1 .. 2**(n-1)-1 (no sign, zero or NaR)."""
        n, es = self.n, self.es
        body = c << np.uint64(64 - (n - 1))  # the n-1 bits after the sign, left-aligned
        first = (body >> np.uint64(63)) == 1
        lead = xp.where(first, ~body, body)
        top = (lead >> np.uint64(32)).astype(np.float64)
        run = 32 - xp.frexp(top)[1].astype(np.int64)  # leading run length (< 32 here)
        k = xp.where(first, run - 1, -run)
        rest = body << (run + 1).astype(np.uint64)
        rest = xp.where(run + 1 >= 64, np.uint64(0), rest)
        if es:
            ex = (rest >> np.uint64(64 - es)).astype(np.int64)
            rest = rest << np.uint64(es)
        else:
            ex = 0
        frac = (rest >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        return xp.ldexp(1.0 + frac, (k * (1 << es) + ex).astype(np.int32))

    def _decode_arith(self, xp, c):
        n = self.n
        full = np.uint64((1 << n) - 1)
        neg = ((c >> np.uint64(n - 1)) & np.uint64(1)) == 1
        mag = xp.where(neg, ((full - c) + np.uint64(1)) & full, c)
        safe = xp.where((mag == 0) | (mag >= np.uint64(1 << (n - 1))), np.uint64(1), mag)
        v = self._decode_positive(xp, safe)
        v = xp.where(mag == 0, 0.0, v)
        v = xp.where(c == np.uint64(1 << (n - 1)), np.nan, v)
        return xp.where(neg, -v, v)


def _unit_interval(words):
    """Uniform random words (uint32 or uint64) as doubles in [0, 1)."""
    if words.dtype == np.uint32:
        return words.astype(np.float64) * 2.0 ** -32
    return (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
