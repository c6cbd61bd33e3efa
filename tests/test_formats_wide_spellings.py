"""Spelled formats with a wide exponent field and a small (or negative) bias: issue 12,
defect 1 (the by-addition nearest-even path built a constant 2**(emax + M - m) that
overflowed its work type, giving NaN or the unrounded input) treated as a class.

* Hypothesis over format parameters (ebits 1..11, mbits 0..50, any bias the registry
  accepts, small and negative ones favoured; ieee/fn/fnuz/finite; :sat, :ftz; and the
  float64 variants) and over float16/float32/float64 inputs (log-uniform magnitudes from
  below the smallest subnormal to beyond max, max and its neighbours, the overflow
  threshold, code midpoints and their neighbours, the edges of the subnormal range,
  zeros, Inf, NaN): ``round`` in every deterministic mode equals the exact reference
  (tests/exact_reference.py), and ``decode(encode(x, mode)) == round(x, mode)``; a
  seeded sweep of 400 more spellings drawn the same way adds breadth (Hypothesis keeps a
  format for several examples).
* Exhaustive over every code of the formats of at most 12 bits with 6 to 11 exponent
  bits (several biases from the smallest to the largest the registry accepts, every
  special-value convention, :sat and :ftz) and of the issue's own spellings:
  ``decode`` equals the bit-field reference, ``encode(decode(c)) == c``, and every
  value, every midpoint between neighbours and the floats next to the midpoints round
  as the code arithmetic says, in each input dtype that holds them.
* The issue's reproducers, literally, including the accumulation orders.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exact_reference import MODES, assert_same_values, float_decode, reference_round
from minifp.formats import FloatFormat, get_format

SPECIALS = ("ieee", "fn", "fnuz", "finite")
DTYPES = (np.float16, np.float32, np.float64)
# exponents of the smallest subnormal and of the top binade of each input dtype
DTYPE_RANGE = {np.float16: (-24, 15), np.float32: (-149, 127), np.float64: (-1074, 1023)}

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def default_bias(e: int, specials: str) -> int:
    return (1 << (e - 1)) - (0 if specials == "fnuz" else 1)


def top_field(e: int, m: int, specials: str) -> int:
    """Exponent field of the largest finite code."""
    if specials == "ieee" or (specials == "fn" and m == 0):
        return (1 << e) - 2
    return (1 << e) - 1


def bias_range(e: int, m: int, specials: str) -> tuple[int, int]:
    """Biases the registry accepts: max exponent <= 1023 and emin = 1 - bias >= -1022."""
    return top_field(e, m, specials) - 1023, 1023


def spelling(e, m, bias, specials, sat=False, ftz=False) -> str:
    return (f"e{e}m{m}b{bias}{specials}" + (":sat" if sat else "")
            + (":ftz" if ftz else ""))


# ---- Hypothesis: format parameters x inputs x modes --------------------------------------
@st.composite
def spelled_format(draw):
    if draw(st.integers(0, 19)) == 0:
        return get_format(draw(st.sampled_from(["float64", "float64:ftz", "float64:sat",
                                                "float64:sat:ftz"])))
    e = draw(st.integers(1, 11))
    m = draw(st.integers(0, 50))            # 51 and 52: only float64 (test_formats_errors)
    specials = draw(st.sampled_from(SPECIALS))
    lo, hi = bias_range(e, m, specials)
    if lo > hi:                              # e11 without an all-ones reserve: none fits
        specials = "ieee"
        lo, hi = bias_range(e, m, specials)
    d = min(max(default_bias(e, specials), lo), hi)
    choices = [st.just(d),
               st.integers(max(lo, -12), max(min(hi, 16), max(lo, -12))),   # small, negative
               st.integers(max(lo, d - 12), min(hi, d + 12)),
               st.integers(lo, hi)]
    # biases that put the top binade emax within M - m of the work type's emax (M = 23,
    # emax 127 for float32 work; 52, 1023 for float64): where 2**(emax + M - m) overflows
    top = top_field(e, m, specials)
    for w_max, w_mant in ((127, 23), (1023, 52)):
        b_lo, b_hi = max(lo, top - w_max), min(hi, top - (w_max - w_mant + m))
        if b_lo <= b_hi:
            choices += [st.integers(b_lo, b_hi)] * 2
    bias = draw(st.one_of(*choices))
    name = spelling(e, m, bias, specials, draw(st.booleans()), draw(st.booleans()))
    try:
        return get_format(name)
    except ValueError as err:                # no normal number, no finite value
        assert "normal" in str(err) or "finite" in str(err), (name, err)
        return None


def _code_value(fmt, c: int) -> float:
    return float(fmt.decode(np.array([c], dtype=np.uint64).astype(fmt.code_dtype))[0])


def overflow_inputs(fmt) -> list[float]:
    """max, its neighbours, the overflow threshold and its neighbours, Inf and NaN."""
    mx = Fraction(fmt.max)
    ulp = Fraction(2) ** (math.frexp(fmt.max)[1] - 1 - fmt.mbits)
    vals = [fmt.max, math.nextafter(fmt.max, 0), math.nextafter(fmt.max, math.inf)]
    thr = mx + ulp / 2
    if thr <= Fraction(np.finfo(np.float64).max):
        t = float(thr)
        vals += [t, math.nextafter(t, 0), math.nextafter(t, math.inf)]
    return vals + [-v for v in vals] + [math.inf, -math.inf, math.nan]


def fixed_inputs(fmt) -> list[float]:
    """max, its neighbours and the overflow threshold, the edges of the subnormal range,
    zeros and the non-finite values (as exact float64s; cast to the input dtype later)."""
    mx = Fraction(fmt.max)
    ulp = Fraction(2) ** (math.frexp(fmt.max)[1] - 1 - fmt.mbits)
    vals = [fmt.max, math.nextafter(fmt.max, math.inf), math.nextafter(fmt.max, 0),
            float(mx - ulp / 2), 2 * fmt.max if fmt.max < 2.0 ** 1023 else math.inf]
    thr = mx + ulp / 2                       # ties here go to the overflow value
    if thr <= Fraction(np.finfo(np.float64).max):   # (float64 itself: beyond float64)
        t = float(thr)
        vals += [t, math.nextafter(t, 0), math.nextafter(t, math.inf)]
    for v in (fmt.smallest_subnormal, fmt.smallest_normal):
        vals += [v, v / 2, 1.5 * v, math.nextafter(v, 0), math.nextafter(v, math.inf),
                 math.nextafter(v / 2, 0), math.nextafter(v / 2, math.inf)]
    vals = vals + [-v for v in vals]
    return vals + [0.0, -0.0, math.inf, -math.inf, math.nan]


def drawn_inputs(draw, fmt) -> list[float]:
    lo = math.floor(math.log2(fmt.smallest_subnormal)) - 4
    hi = min(math.ceil(math.log2(fmt.max)) + 2, 1023)
    magnitudes = st.builds(lambda f, k, s: s * math.ldexp(f, k), st.floats(1.0, 2.0,
                           exclude_max=True), st.integers(lo, hi), st.sampled_from([-1, 1]))
    top = fmt.max_code_magnitude

    def around_code(c, where, s):
        a, b = _code_value(fmt, c), _code_value(fmt, c + 1)
        mid = a / 2 + b / 2                  # exact: both have <= 51 bits
        return s * [a, mid, math.nextafter(mid, 0), math.nextafter(mid, math.inf),
                    math.nextafter(a, math.inf)][where]

    codes = st.builds(around_code, st.integers(0, max(top - 1, 0)), st.integers(0, 4),
                      st.sampled_from([-1, 1]))
    return draw(st.lists(st.one_of(magnitudes, codes), min_size=10, max_size=30))


def in_dtype(values, dtype):
    with np.errstate(over="ignore", under="ignore"):
        return np.array(values, dtype=np.float64).astype(dtype)


@st.composite
def format_and_inputs(draw):
    fmt = draw(spelled_format())
    if fmt is None:
        return None
    return fmt, drawn_inputs(draw, fmt) + fixed_inputs(fmt)


def check_against_reference(fmt, values, dtypes=DTYPES):
    """Every dtype x every deterministic mode: round == reference, and the codes of the
    rounded values decode back to them."""
    checked = 0
    for dtype in dtypes:
        x = in_dtype(values, dtype)
        # NaN rounds to NaN in every format, but has a code only where the format has one
        xe = x if fmt.has_nan else x[~np.isnan(x)]
        for mode in MODES:
            got = fmt.round(x, mode, dtype=np.float64)
            want = [reference_round(fmt, v, mode) for v in x.tolist()]
            assert_same_values(got, want, x, f"{fmt.name} {dtype.__name__} {mode}")
            assert fmt.round(x, mode).dtype == fmt.carrier
            back = fmt.decode(fmt.encode(xe, mode)).astype(np.float64)
            assert_same_values(back, fmt.round(xe, mode, dtype=np.float64), xe,
                               f"decode(encode) {fmt.name} {mode}")
            checked += x.size
    return checked


@SETTINGS
@given(format_and_inputs())
def test_round_matches_reference_over_format_parameters(case):
    if case is None:
        return
    fmt, values = case
    check_against_reference(fmt, values)


# Hypothesis keeps a format for several examples while it varies the inputs (150 examples
# see about 30 formats), so a seeded sweep adds breadth: 400 more spellings drawn the same
# way, each checked on its fixed inputs plus 20 drawn ones in one input dtype (in turn).
def random_spelling(r) -> str:
    if r.random() < 0.05:
        return r.choice(["float64", "float64:ftz", "float64:sat"])
    e, m, sp = r.randint(1, 11), r.randint(0, 50), r.choice(SPECIALS)
    lo, hi = bias_range(e, m, sp)
    if lo > hi:
        sp = "ieee"
        lo, hi = bias_range(e, m, sp)
    top = top_field(e, m, sp)
    ranges = [(lo, hi), (max(lo, -12), max(lo, min(hi, 16)))]
    for w_max, w_mant in ((127, 23), (1023, 52)):
        if max(lo, top - w_max) <= min(hi, top - (w_max - w_mant + m)):
            ranges += [(max(lo, top - w_max), min(hi, top - (w_max - w_mant + m)))] * 2
    b_lo, b_hi = r.choice(ranges)
    return spelling(e, m, r.randint(b_lo, b_hi), sp, r.random() < 0.3, r.random() < 0.3)


def seeded_cases(count=400, seed=12):
    import random
    r = random.Random(seed)
    cases = []
    while len(cases) < count:
        name = random_spelling(r)
        try:
            fmt = get_format(name)
        except ValueError:
            continue
        lo = math.floor(math.log2(fmt.smallest_subnormal)) - 4
        hi = min(math.ceil(math.log2(fmt.max)) + 2, 1023)
        vals = [r.choice([-1, 1]) * math.ldexp(1 + r.random(), r.randint(lo, hi))
                for _ in range(12)]
        for _ in range(4):
            c = r.randint(0, max(fmt.max_code_magnitude - 1, 0))
            a, b = _code_value(fmt, c), _code_value(fmt, c + 1)
            mid = a / 2 + b / 2
            vals += [mid, math.nextafter(mid, 0) if r.random() < .5 else
                     math.nextafter(mid, math.inf)]
        cases.append((name, vals + fixed_inputs(fmt), DTYPES[len(cases) % 3]))
    return cases


SEEDED = seeded_cases()


@pytest.mark.parametrize("part", range(8))
def test_round_matches_reference_on_seeded_spellings(part):
    for name, vals, dtype in SEEDED[part::8]:
        check_against_reference(get_format(name), vals, (dtype,))


def test_hypothesis_reaches_wide_exponents_with_small_biases():
    """The strategy draws what defect 1 needs: a top binade that leaves less than the
    work type's mantissa width of room above it (emax + M - m >= the work emax)."""
    seen = []

    @SETTINGS
    @given(spelled_format())
    def collect(fmt):
        if fmt is not None:
            seen.append(fmt)

    collect()
    names = {f.name for f in seen}
    assert len(names) > 100
    tight32 = [f for f in seen if f.precision <= 24 and f.emin >= -126
               and f._max_exponent <= 127 and f._max_exponent + 23 - f.mbits >= 127]
    tight64 = [f for f in seen if f._max_exponent + 52 - f.mbits >= 1023]
    assert len(tight32) >= 5 and len(tight64) >= 5
    assert any(f.bias <= 2 for f in seen) and any(f.bias < 0 for f in seen)
    assert {f.specials_kind for f in seen} == set(SPECIALS)
    assert any(not f.subnormals for f in seen) and any(f.overflow == "saturate"
                                                      and f.has_inf for f in seen)


# ---- exhaustive over the codes of small wide-exponent formats -------------------------
ISSUE_SPELLINGS = ["e7m2b10", "e7m7b2fn", "e7m4b1fnuz", "e7m1b13fn", "e10m2b10",
                   "e7m3b14fn:ftz", "e7m4b13fnuz"]   # the last two: found by the probe


def small_wide_spellings() -> list[str]:
    """Every (ebits 6..11, mbits with 1 + e + m <= 12) x special convention, at biases
    from the most negative to the largest the registry accepts (lowest, 1, 2, 10, the
    default, highest); :sat and :ftz at bias 2 (or the nearest accepted)."""
    names = []
    for e in range(6, 12):
        for m in range(0, 12 - e):
            for sp in SPECIALS:
                lo, hi = bias_range(e, m, sp)
                if lo > hi:
                    continue
                d = default_bias(e, sp)
                biases = sorted({b for b in (lo, 1, 2, 10, d, hi) if lo <= b <= hi})
                for b in biases:
                    names.append(spelling(e, m, b, sp))
                b = min(max(2, lo), hi)
                names += [spelling(e, m, b, sp, sat=True), spelling(e, m, b, sp, ftz=True)]
    out = []
    for n in dict.fromkeys(names + ISSUE_SPELLINGS):
        try:
            get_format(n)
        except ValueError:               # e.g. e6m0 ieee at a bias with no normal number
            continue
        out.append(n)
    return out


SMALL_WIDE = small_wide_spellings()


def test_small_wide_spellings_cover_the_class():
    assert len(SMALL_WIDE) > 500
    fmts = [get_format(n) for n in SMALL_WIDE]
    # the formats defect 1 broke: the by-addition constant leaves the work type
    assert sum(f._max_exponent + 52 - f.mbits >= 1023 for f in fmts) >= 50
    assert sum(f._work_for(np.dtype(np.float32)).bias == 127
               and f._max_exponent + 23 - f.mbits >= 127 for f in fmts) >= 50


def _expected_at_midpoints(values, lo_codes, sign, mode, below, above):
    """Results of rounding sign * (midpoint between codes c and c+1, or the float just
    below/above it) by the code arithmetic: ties go to the even code, to_odd to the odd
    one, directed modes by the sign."""
    c = lo_codes
    lo, hi = values[c], values[c + 1]
    even = np.where(c % 2 == 0, lo, hi)
    odd = np.where(c % 2 == 1, lo, hi)
    away = {"up": sign > 0, "down": sign < 0}
    if mode == "nearest_even":
        r = lo if below else hi if above else even
    elif mode == "nearest_away":
        r = lo if below else hi
    elif mode == "toward_zero":
        r = lo
    elif mode in away:
        r = hi if away[mode] else lo
    else:
        r = odd
    return np.broadcast_to(r, c.shape)


def _signed(fmt, mags, sign):
    out = sign * mags
    if sign < 0 and not fmt.has_negative_zero:
        out = np.where(out == 0, 0.0, out)
    return out


@pytest.mark.parametrize("name", SMALL_WIDE)
def test_every_code_and_midpoint_of_small_wide_formats(name):
    fmt = get_format(name)
    codes = np.arange(1 << fmt.bits, dtype=np.uint64).astype(fmt.code_dtype)
    vals = fmt.decode(codes).astype(np.float64)
    ref = np.array([float(float_decode(fmt, int(c))) for c in codes.tolist()])
    body = codes.astype(np.int64) & ((1 << (fmt.bits - 1)) - 1)
    subnormal = (body >> fmt.mbits == 0) & (body != 0)
    keep = ~subnormal if not fmt.subnormals else np.ones(codes.shape, bool)
    assert_same_values(vals[keep], ref[keep], codes[keep], f"decode {name}")
    if not fmt.subnormals:
        assert np.all(vals[subnormal] == 0)
    enc = fmt.encode(vals).astype(np.int64)
    nan = np.isnan(vals)
    exact = keep & ~nan
    assert np.array_equal(enc[exact], codes.astype(np.int64)[exact]), name
    assert np.isnan(fmt.decode(enc[nan].astype(fmt.code_dtype)).astype(float)).all()

    # every value rounds to itself, in every mode and every dtype that holds it
    for dtype in DTYPES if not fmt.subnormals else ():
        x = vals[exact]
        x = x[in_dtype(x, dtype).astype(np.float64) == x]
        for mode in MODES:
            got = fmt.round(x.astype(dtype), mode, dtype=np.float64)
            assert_same_values(got, x, x, f"{name} {mode} values")
    if not fmt.subnormals:
        return   # midpoints next to flushed codes: covered by the Hypothesis test

    top = fmt.max_code_magnitude
    pos = ref[:top + 1]                      # the positive values, code by code
    c = np.arange(top)
    mids = pos[c] / 2 + pos[c + 1] / 2
    for dtype in DTYPES:
        m = in_dtype(mids, dtype)
        ok = (m.astype(np.float64) == mids) & np.isfinite(m)
        cc, md = c[ok], m[ok]
        below = np.nextafter(md, np.zeros_like(md))
        above = np.nextafter(md, np.full_like(md, np.inf))
        # the dtype's neighbours of a midpoint, where they lie strictly inside (lo, hi)
        low = below.astype(np.float64) > pos[cc]
        high = above.astype(np.float64) < pos[cc + 1]
        parts = [(sign, pts, b, a, sel) for sign in (1.0, -1.0)
                 for pts, b, a, sel in ((md, False, False, slice(None)),
                                        (below, True, False, low), (above, False, True, high))]
        v = vals[exact]                      # every value rounds to itself, every mode
        v = v[in_dtype(v, dtype).astype(np.float64) == v]
        xs = np.concatenate([(sign * pts[sel]).astype(dtype)
                             for sign, pts, b, a, sel in parts] + [v.astype(dtype)])
        for mode in MODES:
            want = np.concatenate([
                _signed(fmt, _expected_at_midpoints(pos, cc[sel], sign, mode, b, a), sign)
                for sign, pts, b, a, sel in parts] + [v])
            got = fmt.round(xs, mode, dtype=np.float64)
            assert_same_values(got, want, xs, f"{name} {dtype.__name__} {mode}")
            back = fmt.decode(fmt.encode(xs, mode)).astype(np.float64)
            assert_same_values(back, got, xs, f"{name} decode(encode) {mode}")
    # at max, beyond it and non-finite: the reference (one input dtype per format, in turn)
    dtype = DTYPES[SMALL_WIDE.index(name) % len(DTYPES)]
    check_against_reference(fmt, overflow_inputs(fmt), (dtype,))


# ---- the issue's reproducers, literally ---------------------------------------------------
def test_issue_12_e7m2b10_float32_inputs():
    fmt = get_format("e7m2b10")
    got = fmt.round(np.float32([1.3 * 2 ** 108, 1.3 * 2 ** 107]))
    assert got.tolist() == [1.25 * 2 ** 108, 1.25 * 2 ** 107]
    assert int(fmt.encode(fmt.decode(np.array([0x1D4], dtype=np.uint16)))[0]) == 0x1D4


@pytest.mark.parametrize("name", ["e7m7b2fn", "e7m4b1fnuz", "e7m1b13fn", "e7m2b10"])
def test_issue_12_every_code_round_trips(name):
    fmt = get_format(name)
    codes = np.arange(1 << fmt.bits, dtype=np.uint64).astype(fmt.code_dtype)
    v = fmt.decode(codes)
    finite = ~np.isnan(v.astype(np.float64))
    assert np.array_equal(fmt.encode(v)[finite], codes[finite])
    for dtype in (np.float32, np.float64):
        assert_same_values(fmt.round(v[finite].astype(dtype)), v[finite], None, name)


def test_issue_12_e10m2b10_float64_inputs():
    fmt = get_format("e10m2b10")
    x = np.array([1.3 * 2.0 ** 1000, 1.3 * 2.0 ** 999, -1.3 * 2.0 ** 1011, 1.375 * 2.0 ** 1000])
    assert fmt.round(x).tolist() == [1.25 * 2.0 ** 1000, 1.25 * 2.0 ** 999,
                                     -1.25 * 2.0 ** 1011, 1.5 * 2.0 ** 1000]


@pytest.mark.parametrize("order", ["sequential", "pairwise", "blocked:2", "exact", "native"])
@pytest.mark.parametrize("fma", [True, False])
def test_issue_12_e10m2b10_dot_every_order(order, fma):
    from minifp.accumulate import Accumulation, dot
    if order in ("exact", "native") and not fma:
        pytest.skip("fma does not apply")
    acc = Accumulation("e10m2b10", order, fma=fma)
    got = float(dot(np.array([2.0 ** 1000, 2.0 ** 998, 2.0 ** 997]), np.ones(3), acc))
    assert got == 1.5 * 2.0 ** 1000           # 1.375 * 2**1000 is a tie: to the even 1.5
    assert bool(get_format("e10m2b10").is_representable(np.array([got]))[0])


def test_float64_variants_keep_working():
    x = np.array([1e-310, -1e-310, 2.0 ** -1022, 1.5, np.inf, -np.inf, np.nan, 1.7e308])
    assert_same_values(get_format("float64").round(x), x, x, "float64")
    ftz = get_format("float64:ftz").round(x)
    assert_same_values(ftz, [0.0, -0.0, 2.0 ** -1022, 1.5, np.inf, -np.inf, np.nan, 1.7e308],
                       x, "float64:ftz")
    assert_same_values(get_format("float64:sat").round(x), x, x, "float64:sat")
    assert isinstance(get_format("float64:sat:ftz"), FloatFormat)
