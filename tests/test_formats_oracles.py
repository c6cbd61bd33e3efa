"""minifp's rounding against independent oracles: ml_dtypes casts, gfloat's
round_ndarray (every IEEE mode, saturating or not, stochastic with the same
random bits), SoftPosit, and the exact Fraction reference in exact_reference.py.

Known, deliberate differences that the inputs avoid (see the task notes):
ml_dtypes rounds float64 through float32, so it only sees float32 inputs;
gfloat saturates ±Inf to ±max, minifp keeps Inf in formats that have it, so
saturating comparisons on such formats use finite inputs; ml_dtypes' fp6/fp4
map NaN arbitrarily, so they never see NaN.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from gfloat import Domain, FormatInfo, RoundMode, Signedness, round_ndarray
from gfloat import formats as gf

from exact_reference import MODES as REF_MODES
from exact_reference import (assert_same_values, posit_decode, reference_round, same_float,
                             softposit_code)
from minifp.formats import FloatFormat, PositFormat, get_format

MAX_F32 = float(np.finfo(np.float32).max)


def finite_values(fmt):
    """Sorted distinct finite values of a format of at most 16 bits (float64)."""
    _, vals = fmt.code_table()
    v = np.unique(vals.astype(np.float64))
    return v[np.isfinite(v)]


def float32_inputs_for(fmt, seed, n_random=3000, with_nan=True):
    """float32 inputs probing a format: every value, every midpoint between
    neighbours and one float32 ulp either side, the overflow edge, the
    subnormal range, tiny values, signed zeros, Inf, NaN and random values."""
    rng = np.random.default_rng(seed)
    if fmt.bits <= 16:
        vals = finite_values(fmt)
        lo, hi = vals[:-1], vals[1:]
    else:                                   # neighbouring codes, sampled
        codes = rng.integers(0, fmt.max_code_magnitude, size=4000).astype(np.uint64)
        lo = fmt.decode(codes.astype(fmt.code_dtype)).astype(np.float64)
        hi = fmt.decode((codes + np.uint64(1)).astype(fmt.code_dtype)).astype(np.float64)
        vals = np.concatenate([lo, -lo])
    with np.errstate(over="ignore"):
        mids = ((lo + hi) / 2).astype(np.float32)
        vals = vals.astype(np.float32)
    inf = np.float32(np.inf)
    fmax = fmt.max
    top_ulp = 2.0 ** (math.floor(math.log2(fmax)) - fmt.mbits)
    q = 2.0 ** (fmt.emin - fmt.mbits)
    with np.errstate(over="ignore"):
        edges = np.array([fmax, fmax + top_ulp / 2, fmax + top_ulp, fmax + 1.5 * top_ulp,
                          2 * fmax, 1e30, MAX_F32, q, q / 2, 0.75 * q, q / 4, 1.5 * q, 2.5 * q,
                          fmt.smallest_normal, 1e-30, 1e-45, 0.0], dtype=np.float32)
        edges = np.concatenate([edges, np.nextafter(edges, inf), np.nextafter(edges, -inf)])
        logs = rng.uniform(math.log2(q) - 4, math.log2(fmax) + 3, n_random)
        rand = np.exp2(logs).astype(np.float32)
    sub = (rng.uniform(0, fmt.smallest_normal, 500)).astype(np.float32)
    patterns = rng.integers(0, 1 << 32, size=n_random, dtype=np.uint64).astype(np.uint32)
    patterns = patterns.view(np.float32)
    patterns = patterns[~np.isnan(patterns)]     # (signalling NaN payloads: one plain NaN below)
    x = np.concatenate([vals, mids, np.nextafter(mids, inf),
                        np.nextafter(mids, -inf), edges, rand, sub, [inf]])
    x = np.concatenate([x, -x, patterns])
    assert x.dtype == np.float32
    if with_nan:
        x = np.concatenate([x, np.array([np.nan], dtype=np.float32)])
    else:
        x = x[~np.isnan(x)]
    return x


# ------------------------------------------------------------------------------ ml_dtypes
ML_DTYPES = [
    ("bfloat16", ml_dtypes.bfloat16),
    ("e4m3", ml_dtypes.float8_e4m3fn),
    ("e5m2", ml_dtypes.float8_e5m2),
    ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz),
    ("e5m2fnuz", ml_dtypes.float8_e5m2fnuz),
    ("e4m3b11fnuz", ml_dtypes.float8_e4m3b11fnuz),
    ("e3m4", ml_dtypes.float8_e3m4),
    ("e4m3ieee", ml_dtypes.float8_e4m3),
    ("e3m2", ml_dtypes.float6_e3m2fn),
    ("e2m3", ml_dtypes.float6_e2m3fn),
    ("e2m1", ml_dtypes.float4_e2m1fn),
]
NAN_IS_ARBITRARY = {"e3m2", "e2m3", "e2m1"}   # ml_dtypes fp6/fp4: no NaN, mapped arbitrarily


@pytest.mark.parametrize("name,mdtype", ML_DTYPES, ids=[n for n, _ in ML_DTYPES])
def test_properties_match_ml_dtypes_finfo(name, mdtype):
    fmt = get_format(name)
    info = ml_dtypes.finfo(mdtype)
    assert fmt.max == float(info.max)
    assert fmt.smallest_normal == float(info.smallest_normal)
    assert fmt.smallest_subnormal == float(info.smallest_subnormal)
    assert fmt.bits == info.bits
    assert fmt.precision == info.nmant + 1


@pytest.mark.parametrize("name,mdtype", ML_DTYPES, ids=[n for n, _ in ML_DTYPES])
def test_round_nearest_even_matches_ml_dtypes(name, mdtype):
    fmt = get_format(name)
    x = float32_inputs_for(fmt, seed=sum(map(ord, name)), with_nan=name not in NAN_IS_ARBITRARY)
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(mdtype).astype(np.float32)
    assert_same_values(fmt.round(x), want, x, f"{name} from float32")
    # float64 inputs that are exactly float32 values: same single rounding
    assert_same_values(fmt.round(x.astype(np.float64)), want, x, f"{name} from float64")
    # and the codes are ml_dtypes' bit patterns (NaN codes aside: minifp has one canonical NaN)
    keep = ~np.isnan(want)
    codes = fmt.encode(x[keep])
    with np.errstate(over="ignore", invalid="ignore"):
        ml_codes = x[keep].astype(mdtype).view(np.uint16 if fmt.bits > 8 else np.uint8)
    assert np.array_equal(codes.astype(np.uint64), ml_codes.astype(np.uint64)), name


@pytest.mark.parametrize("name", sorted(NAN_IS_ARBITRARY))
def test_nan_stays_carrier_nan_in_formats_without_nan(name):
    fmt = get_format(name)
    assert not fmt.has_nan
    out = fmt.round(np.array([np.nan, -np.nan, 1.0], dtype=np.float32))
    assert np.isnan(out[:2]).all() and out[2] == 1.0
    assert out.dtype == fmt.carrier


@pytest.mark.parametrize("name,mdtype", ML_DTYPES, ids=[n for n, _ in ML_DTYPES])
def test_decode_matches_ml_dtypes(name, mdtype):
    fmt = get_format(name)
    codes, vals = fmt.code_table()
    view = np.uint16 if fmt.bits > 8 else np.uint8
    want = codes.astype(view).view(mdtype).astype(np.float32)
    assert_same_values(vals, want, codes, f"{name} decode")


# --------------------------------------------------------------------------------- gfloat
def _p3109(k, p):
    return gf.format_info_p3109(k, p, Signedness.Signed, Domain.Finite)


def gfloat_info(fmt):
    """A gfloat FormatInfo describing a minifp FloatFormat with subnormals."""
    assert fmt.subnormals
    kind = fmt.specials_kind
    return FormatInfo(
        name=f"minifp_{fmt.name}", k=fmt.bits, precision=fmt.precision, bias=fmt.bias,
        has_nz=kind != "fnuz",
        domain=Domain.Extended if kind == "ieee" else Domain.Finite,
        num_high_nans={"ieee": (1 << fmt.mbits) - 1, "fn": 1, "fnuz": 0, "finite": 0}[kind],
        has_subnormals=True, is_signed=True, is_twos_complement=False)


GFLOAT_FORMATS = [
    ("e4m3", gf.format_info_ocp_e4m3),
    ("e5m2", gf.format_info_ocp_e5m2),
    ("float16", gf.format_info_binary16),
    ("bfloat16", gf.format_info_bfloat16),
    ("e2m1", gf.format_info_ocp_e2m1),
    ("e2m3", gf.format_info_ocp_e2m3),
    ("e3m2", gf.format_info_ocp_e3m2),
    ("e4m3fnuz", _p3109(8, 4)),         # P3109 K8 P4 signed finite = E4M3 FNUZ (bias 8)
    ("e5m2fnuz", _p3109(8, 3)),         # P3109 K8 P3 signed finite = E5M2 FNUZ (bias 16)
    ("e1m6fnuz", _p3109(8, 7)),         # P3109 K8 P7 signed finite
    ("e1m1fnuz", _p3109(3, 2)),
    ("e2m1fnuz", _p3109(4, 2)),
    ("e3m2fnuz", _p3109(6, 3)),
    ("e2m3fnuz", _p3109(6, 4)),
    ("e4m3b11fnuz", None),              # described through gfloat_info()
    ("e3m4", None),
    ("e4m3ieee", None),
    ("e5m0", None),                     # p = 1: ties to the even exponent field
    ("e4m0fn", None),
    ("e3m2b2fn", None),
]
GFLOAT_IDS = [n for n, _ in GFLOAT_FORMATS]

GFLOAT_MODES = {
    "nearest_even": RoundMode.TiesToEven,
    "nearest_away": RoundMode.TiesToAway,
    "toward_zero": RoundMode.TowardZero,
    "up": RoundMode.TowardPositive,
    "down": RoundMode.TowardNegative,
}


def _gfloat_for(name, info):
    fmt = get_format(name)
    fi = info if info is not None else gfloat_info(fmt)
    return fmt, fi


@pytest.mark.parametrize("name,info", GFLOAT_FORMATS, ids=GFLOAT_IDS)
def test_gfloat_mapping_describes_the_same_format(name, info):
    fmt, fi = _gfloat_for(name, info)
    assert fi.k == fmt.bits and fi.precision == fmt.precision
    assert fi.max == fmt.max
    assert fi.smallest_normal == fmt.smallest_normal
    assert fi.smallest_subnormal == fmt.smallest_subnormal
    assert bool(fi.num_nans) == fmt.has_nan
    assert (fi.domain == Domain.Extended) == fmt.has_inf


@pytest.mark.parametrize("sat", [False, True])
@pytest.mark.parametrize("name,info", GFLOAT_FORMATS, ids=GFLOAT_IDS)
def test_directed_and_nearest_modes_match_gfloat(name, info, sat):
    fmt, fi = _gfloat_for(name, info)
    if not sat and fmt.overflow == "saturate":
        pytest.skip("finite formats always saturate (gfloat raises on their overflow)")
    if sat:
        fmt = get_format(name + ":sat")
        assert fmt.overflow == "saturate"
    x = float32_inputs_for(fmt, seed=len(name) + 17 * sat, n_random=1500)
    if sat and fmt.has_inf:
        x = x[np.isfinite(x)]          # gfloat saturates ±Inf, minifp keeps Inf
    x64 = x.astype(np.float64)
    for mode, rnd in GFLOAT_MODES.items():
        want = round_ndarray(fi, x64, rnd, sat=sat)
        assert_same_values(fmt.round(x, mode), want, x, f"{fmt.name} {mode} sat={sat} (f32)")
        assert_same_values(fmt.round(x64, mode), want, x, f"{fmt.name} {mode} sat={sat} (f64)")


def _stream_words(seed, count):
    """The documented stream (minifp.formats.stream), rebuilt with Python integers: one
    key from the generator, then SplitMix64's finaliser of event 0 and the index."""
    mask = (1 << 64) - 1

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    key = int(np.random.default_rng(seed).integers(0, 1 << 64, dtype=np.uint64))
    ek = mix((key + 0xD1B54A32D192ED03) & mask)
    return np.array([mix((ek + (i + 1) * 0x9E3779B97F4A7C15) & mask) for i in range(count)],
                    dtype=np.uint64)


def _stochastic_expectation(fmt, fi, x, seed, sat):
    """What stochastic rounding must give, rebuilt from the documented random
    stream: one 64-bit word per element whatever the input dtype, its low s bits
    added to the s dropped bits of the float64 pattern; gfloat's RoundMode.Stochastic
    with srnumbits = s and srbits = word & (2**s - 1) computes the same. Elements
    below the smallest subnormal q go to q iff (word >> 11) * 2**-53 < |x| / q."""
    words = _stream_words(seed, x.size).reshape(x.shape)
    mw, min_exp = 52, -1022
    x64 = x.astype(np.float64)
    ax = np.abs(x64)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where((ax > 0) & np.isfinite(ax), ax, 1.0))).astype(np.int64)
    e = np.maximum(e, min_exp)
    s = np.where(ax < fmt.smallest_normal, mw - fmt.mbits + fmt.emin - e, mw - fmt.mbits)
    q = 2.0 ** (fmt.emin - fmt.mbits)
    tiny = (ax > 0) & (s > mw)
    s = np.where(tiny | (ax == 0) | ~np.isfinite(ax), mw - fmt.mbits, s)
    want = np.empty(x.shape, dtype=np.float64)
    for shift in np.unique(s):
        sel = (s == shift) & ~tiny
        bits = (words[sel] & np.uint64((1 << int(shift)) - 1)).astype(np.int64) \
            if shift < 63 else None
        if bits is None:
            raise AssertionError("shift too large for this check")
        want[sel] = round_ndarray(fi, x64[sel], RoundMode.Stochastic, sat=sat,
                                  srbits=bits, srnumbits=int(shift))
    if tiny.any():
        u = (words[tiny] >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        up = u < ax[tiny] / q
        mag = np.where(up, q, 0.0)
        neg = np.signbit(x64[tiny])
        want[tiny] = np.where(neg, -mag, mag)
        if not fmt.has_negative_zero:
            want[tiny] = np.where(want[tiny] == 0, 0.0, want[tiny])
    return want


STOCHASTIC_FORMATS = ([f for f in GFLOAT_FORMATS if f[0] not in ("e5m0", "e4m0fn")]
                      + [("e8m3", None), ("e9m3", None), ("e4m30", None), ("e6m20", None)])


@pytest.mark.parametrize("sat", [False, True])
@pytest.mark.parametrize("name,info", STOCHASTIC_FORMATS,
                         ids=[n for n, _ in STOCHASTIC_FORMATS])
def test_stochastic_matches_gfloat_with_the_same_random_bits(name, info, sat):
    fmt, fi = _gfloat_for(name, info)
    if not sat and fmt.overflow == "saturate":
        pytest.skip("finite formats always saturate")
    if sat:
        fmt = get_format(name + ":sat")
    x32 = float32_inputs_for(fmt, seed=99 + len(name), n_random=1500)
    if sat and fmt.has_inf:
        x32 = x32[np.isfinite(x32)]
    for x, seed in ((x32, 1234), (x32.astype(np.float64), 4321)):
        want = _stochastic_expectation(fmt, fi, x, seed, sat)
        got = fmt.round(x, "stochastic", np.random.default_rng(seed))
        assert_same_values(got, want, x, f"{fmt.name} stochastic sat={sat} from {x.dtype}")


@pytest.mark.parametrize("name", ["e4m3", "bfloat16", "e5m2fnuz"])
def test_stochastic_on_large_arrays_uses_one_stream(name):
    """Arrays larger than the rounding block size take the words of their elements'
    C-order positions, as small ones do."""
    fmt = get_format(name)
    fi = gfloat_info(fmt)
    rng = np.random.default_rng(64)
    n = 150_000
    q = fmt.smallest_subnormal
    x = np.exp2(rng.uniform(math.log2(q) - 3, math.log2(fmt.max), n)) * rng.choice([-1, 1], n)
    x = x.astype(np.float32)
    assert (np.abs(x) < q).sum() > 1000
    for xx, seed in ((x, 5), (x.astype(np.float64), 6), (x.reshape(300, 500), 7)):
        want = _stochastic_expectation(fmt, fi, xx.ravel(), seed, sat=False).reshape(xx.shape)
        got = fmt.round(xx, "stochastic", np.random.default_rng(seed))
        assert_same_values(got, want, xx, f"{name} stochastic, {xx.shape} {xx.dtype}")


def test_stochastic_words_do_not_depend_on_the_input_dtype():
    """float32 and float64 copies of the same values draw the same 64-bit words and
    round alike: the dropped bits of the float64 pattern meet the word's low bits."""
    fmt = get_format("bfloat16")
    x = np.full(64, 1 + 2.0 ** -9, dtype=np.float32)       # dropped bits: 2**(s-2) of 2**s
    words = _stream_words(8, 64)
    s = 52 - 7
    up = (words & np.uint64((1 << s) - 1)) + np.uint64(1 << (s - 2)) >= np.uint64(1 << s)
    want = np.where(up, 1 + 2.0 ** -7, 1.0)
    assert 0 < up.sum() < 64
    assert_same_values(fmt.round(x, "stochastic", np.random.default_rng(8)), want, x, "f32")
    x64 = x.astype(np.float64)
    assert_same_values(fmt.round(x64, "stochastic", np.random.default_rng(8)), want, x, "f64")


# ------------------------------------------------------------------------------- SoftPosit
def posit_boundary_inputs(fmt, rng, fraction=1.0):
    """Every posit value, the arithmetic and geometric midpoints between
    neighbours and one float64 ulp either side of both (a random ``fraction`` of
    them), values beyond maxpos and below minpos, zero, Inf and NaN."""
    vals = finite_values(fmt)
    pos = vals[vals > 0]
    lo, hi = pos[:-1], pos[1:]
    if fraction < 1:
        pick = rng.random(lo.size) < fraction
        lo, hi = lo[pick], hi[pick]
    mids = (lo + hi) / 2
    geo = np.sqrt(lo * hi)
    inner = np.concatenate([mids, geo])
    inner = np.concatenate([inner, np.nextafter(inner, np.inf), np.nextafter(inner, -np.inf)])
    edges = np.array([fmt.max * 1.5, fmt.max * 2, fmt.max * 4, 1e300, fmt.smallest_normal / 2,
                      fmt.smallest_normal * 0.75, fmt.smallest_normal / 3, 1e-300, 5e-324, 0.0,
                      np.inf])
    x = np.concatenate([vals, inner, edges])
    return np.concatenate([x, -x, [np.nan]])


@pytest.mark.parametrize("name,n,es", [("posit8_0", 8, 0), ("posit8", 8, 2),
                                       ("posit16_1", 16, 1), ("posit16", 16, 2)])
def test_posit_rounding_at_every_boundary_matches_softposit(name, n, es):
    fmt = get_format(name)
    rng = np.random.default_rng(n * 10 + es)
    x = posit_boundary_inputs(fmt, rng, fraction=1.0 if n == 8 else 0.3)
    want = np.array([softposit_code(n, es, float(v)) for v in x], dtype=np.uint64)
    got = fmt.encode(x)
    bad = np.flatnonzero(got.astype(np.uint64) != want)
    assert bad.size == 0, [(x[i], int(got[i]), int(want[i])) for i in bad[:8]]
    assert_same_values(fmt.round(x), fmt.decode(want.astype(fmt.code_dtype)), x, name)


@pytest.mark.parametrize("name", ["posit32", "posit32_2"])
def test_posit32_rounding_of_random_values_matches_softposit(name):
    fmt = get_format(name)
    rng = np.random.default_rng(3232)
    m = 3000
    x = np.exp2(rng.uniform(-125, 125, m)) * rng.choice([-1.0, 1.0], m)
    # midpoints (arithmetic and geometric) between neighbouring posit32 values
    codes = rng.integers(1, (1 << 31) - 1, size=1500)
    a = np.array([float(posit_decode(32, 2, int(c))) for c in codes])
    b = np.array([float(posit_decode(32, 2, int(c) + 1)) for c in codes])
    inner = np.concatenate([(a + b) / 2, np.sqrt(a * b)])
    inner = np.concatenate([inner, np.nextafter(inner, np.inf), np.nextafter(inner, -np.inf)])
    x = np.concatenate([x, inner, -inner, [2.0 ** 120 * 1.5, 2.0 ** -120 / 1.5, 1e300, 1e-300]])
    want = np.array([softposit_code(32, 2, float(v)) for v in x], dtype=np.uint64)
    got = fmt.encode(x)
    bad = np.flatnonzero(got.astype(np.uint64) != want)
    assert bad.size == 0, [(x[i], int(got[i]), int(want[i])) for i in bad[:8]]
    assert_same_values(fmt.round(x), fmt.decode(want.astype(np.uint32)), x, name)


# -------------------------------------------------------------------- the exact reference
REFERENCE_FORMATS = [
    "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz", "e3m2", "e2m3", "e2m1", "e3m4",
    "e4m3ieee", "float16", "bfloat16", "tf32", "e8m3", "e6m20",
    "e4m3:sat", "e5m2:sat", "float16:sat", "bfloat16:sat", "e4m3fnuz:sat", "e4m3ieee:nan",
    "e4m3:ftz", "e5m2:ftz", "e2m1:ftz", "e5m2fnuz:ftz", "e5m2:ftz:sat", "e3m4:ftz",
    "float16:ftz", "bfloat16:ftz", "float32:ftz", "float32", "float64:ftz",
    "e5m0", "e4m0fn", "e3m0fnuz", "e2m0finite", "e1m2fnuz", "e1m0finite", "e3m2b2fn",
    "e4m3b4", "e5m7b20fn", "e9m3", "e4m30", "e11m52:ftz",
    "posit8", "posit16", "posit32", "posit8_0", "posit16_1",
    "posit(2,0)", "posit(3,1)", "posit(4,0)", "posit(5,1)", "posit(6,3)", "posit(7,4)",
    "posit(10,1)", "posit(12,2)", "posit(20,3)", "posit(24,0)", "posit(31,4)", "posit(32,0)",
]
# formats the parser does not spell (exponent field wider than 8 bits): float64 work type
REFERENCE_FORMATS_DIRECT = [FloatFormat(11, 4), FloatFormat(10, 20, specials_kind="fn"),
                            FloatFormat(9, 30, subnormals=False)]


def _code_value(fmt, code):
    return float(fmt.decode(np.array([code], dtype=np.uint64).astype(fmt.code_dtype))[0])


def reference_inputs(fmt, rng, n_codes=32, n_random=100):
    """float64 inputs probing ``fmt``: values at and around (midpoints, geometric
    means, one ulp either side) randomly chosen neighbouring codes, all of them
    for formats of up to 6 bits; edges of the range, specials, random values."""
    if isinstance(fmt, PositFormat):
        top = (1 << (fmt.bits - 1)) - 1
    else:
        top = fmt.max_code_magnitude
    if fmt.bits <= 6:
        codes = np.arange(0, top)
    else:
        codes = rng.integers(0, top, size=n_codes)
        codes = np.concatenate([codes, [0, 1, 2, top - 1, top - 2]])
        if not isinstance(fmt, PositFormat):
            normal = 1 << fmt.mbits
            codes = np.concatenate([codes, [normal - 1, normal, normal + 1]])
        codes = codes[(codes >= 0) & (codes < top)]
    a = np.array([_code_value(fmt, int(c)) for c in codes])
    b = np.array([_code_value(fmt, int(c) + 1) for c in codes])
    with np.errstate(over="ignore", invalid="ignore"):
        mids = (a + b) / 2
        mids = np.where(np.isfinite(mids), mids, a / 2 + b / 2)
        geo = np.sqrt(a * b)
    inner = np.concatenate([a, mids, geo[geo > 0]])
    inner = np.concatenate([inner, np.nextafter(inner, np.inf), np.nextafter(inner, -np.inf)])
    fmax, q = fmt.max, fmt.smallest_subnormal
    edges = [fmax, fmax * (1 + 2.0 ** -fmt.precision), fmax * 1.25, fmax * 2, 1e300,
             q, q / 2, q * 0.75, q / 4, q * 1.5, fmt.smallest_normal, 1e-300, 5e-324, 0.0]
    with np.errstate(over="ignore"):
        edges = np.array(edges)
        edges = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    lo = math.log2(q) - 4
    hi = min(math.log2(fmax) + 3, 1023)
    rand = np.exp2(rng.uniform(lo, hi, n_random))
    x = np.concatenate([inner, edges, rand])
    x = x[np.isfinite(x)]
    return np.concatenate([x, -x, [np.inf, -np.inf, np.nan]])


def _check_against_reference(fmt, seed):
    rng = np.random.default_rng(seed)
    x64 = reference_inputs(fmt, rng)
    inputs = [x64]
    if fmt.carrier != np.float64 or isinstance(fmt, PositFormat):
        with np.errstate(over="ignore"):
            inputs.append(x64.astype(np.float32))
    failures = []
    for mode in REF_MODES:
        for x in inputs:
            got = fmt.round(x, mode)
            assert got.dtype == fmt.carrier
            for xi, gi in zip(x.tolist(), got.tolist()):
                want = reference_round(fmt, xi, mode)
                if not same_float(gi, want):
                    failures.append((mode, str(x.dtype), xi, gi, want))
    assert not failures, (f"{fmt.name}: {len(failures)} mismatches "
                          f"(mode, input dtype, input, got, want): {failures[:10]}")


@pytest.mark.parametrize("name", REFERENCE_FORMATS)
def test_every_deterministic_mode_matches_exact_reference(name):
    _check_against_reference(get_format(name), seed=sum(map(ord, name)))


@pytest.mark.parametrize("fmt", REFERENCE_FORMATS_DIRECT, ids=lambda f: f.name)
def test_wide_formats_match_exact_reference(fmt):
    _check_against_reference(fmt, seed=fmt.bits)


@pytest.mark.parametrize("name", ["e4m3", "e5m2fnuz", "e2m1", "float16", "posit8", "posit(6,1)"])
def test_encode_gives_the_code_of_the_reference_value(name):
    fmt = get_format(name)
    x = reference_inputs(fmt, np.random.default_rng(4))
    if not fmt.has_nan:
        x = x[~np.isnan(x)]
    for mode in REF_MODES:
        codes = fmt.encode(x, mode)
        assert_same_values(fmt.decode(codes), [reference_round(fmt, v, mode) for v in x.tolist()],
                           x, f"{name} {mode}")


# -------------------------------------------------------- hand-checked cases (documented)
HAND_CASES = [
    # (format, mode, input, expected)
    ("e4m3", "nearest_even", 464.0, 448.0),          # tie between 448 and (NaN) 480: even
    ("e4m3", "nearest_even", 465.0, math.nan),       # beyond: OCP E4M3 overflows to NaN
    ("e4m3:sat", "nearest_even", 1e6, 448.0),
    ("e4m3:sat", "nearest_even", -math.inf, -448.0),  # no Inf in E4M3: saturates
    ("e5m2:sat", "nearest_even", math.inf, math.inf),  # has Inf: stays Inf
    ("e5m2", "toward_zero", 1e6, 57344.0),
    ("e5m2", "up", 1e6, math.inf),
    ("e5m2", "down", 1e6, 57344.0),
    ("e5m2", "up", -1e6, -57344.0),
    ("e5m2", "down", -1e6, -math.inf),
    ("e4m3", "up", 449.0, math.nan),                 # rounds up past max: overflow value
    ("e4m3", "down", -449.0, math.nan),
    ("e4m3", "to_odd", 1e6, 448.0),
    ("e4m3", "nearest_even", 1.5 * 2.0 ** -9, 2.0 ** -8),   # tie at the first subnormal
    ("e4m3", "nearest_even", 2.5 * 2.0 ** -9, 2.0 ** -8),
    ("e4m3", "nearest_even", 2.0 ** -10, 0.0),       # tie between 0 and q: even (0)
    ("e4m3", "nearest_away", 2.0 ** -10, 2.0 ** -9),
    ("e4m3", "to_odd", 1.25 * 2.0 ** -9, 2.0 ** -9),  # q has the odd code 1
    ("e4m3", "to_odd", 2.0 ** -12, 2.0 ** -9),
    ("e4m3", "to_odd", -2.0 ** -12, -2.0 ** -9),
    ("e4m3fnuz", "nearest_even", -2.0 ** -12, 0.0),  # no -0
    ("e4m3fnuz", "nearest_even", -0.0, 0.0),
    ("e4m3", "nearest_even", -0.0, -0.0),
    ("e4m3:ftz", "nearest_even", -0.0, -0.0),
    ("e4m3:ftz", "nearest_even", 2.0 ** -7, 0.0),    # subnormal result flushed
    ("e4m3:ftz", "nearest_even", -2.0 ** -7, -0.0),
    ("e4m3:ftz", "nearest_even", 0.99 * 2.0 ** -6, 2.0 ** -6),  # rounds up to normal: kept
    ("e2m1", "nearest_even", 7.0, 6.0),              # finite format: saturates
    ("e2m1", "nearest_even", 0.25, 0.0),
    ("e2m1", "nearest_even", 0.75, 1.0),             # tie 0.5 (code 1) / 1.0 (code 2)
    ("e2m1", "nearest_even", 2.5, 2.0),
    ("e2m1", "nearest_even", 5.0, 4.0),
    ("e5m0", "nearest_even", 3.0, 2.0),              # p = 1: tie 2 (field 16) / 4 (field 17)
    ("e5m0", "nearest_even", 6.0, 8.0),              # tie 4 (field 17) / 8 (field 18)
    ("e5m0", "to_odd", 5.0, 4.0),                    # 4 has the odd field 17
    ("float16", "nearest_even", 65520.0, math.inf),
    ("float16", "nearest_even", 65519.99, 65504.0),
    ("float16", "toward_zero", math.inf, math.inf),
    ("float16:ftz", "nearest_even", 2.0 ** -20, 0.0),
    ("float32:ftz", "nearest_even", 2.0 ** -130, 0.0),
    ("float32:ftz", "toward_zero", -(2.0 ** -130), -0.0),
    ("float64:ftz", "nearest_even", 2.0 ** -1030, 0.0),
    ("posit8", "nearest_even", 1e-30, 2.0 ** -24),   # never rounds to zero
    ("posit8", "down", 1e-30, 2.0 ** -24),
    ("posit8", "up", -1e-30, -(2.0 ** -24)),
    ("posit8", "nearest_even", 1e30, 2.0 ** 24),     # never overflows
    ("posit8", "up", 1e30, 2.0 ** 24),
    ("posit8", "toward_zero", 1e-30, 2.0 ** -24),
    ("posit8", "toward_zero", -1e-30, -(2.0 ** -24)),
    ("posit8", "to_odd", 1e-30, 2.0 ** -24),
    ("posit16", "down", -1e30, -(2.0 ** 56)),
    ("posit8", "nearest_even", math.inf, math.nan),  # NaR
    ("posit8", "nearest_even", -0.0, 0.0),
]


@pytest.mark.parametrize("name,mode,x,expected", HAND_CASES)
def test_hand_checked_cases(name, mode, x, expected):
    fmt = get_format(name)
    for dtype in (np.float64, np.float32):
        with np.errstate(over="ignore"):
            xa = np.array([x], dtype=dtype)
        if dtype == np.float32 and float(xa[0]) != x:
            continue
        got = float(fmt.round(xa, mode)[0])
        assert same_float(got, expected), (name, mode, x, dtype, got, expected)
    assert same_float(reference_round(fmt, x, mode), expected), "reference disagrees"
