"""Exhaustive checks: every code of the small formats, every float16, every
posit8/posit16 code, and float16 round-to-nearest-even against NumPy's casts."""
from __future__ import annotations

import math

import numpy as np
import pytest
import softposit as sp

from exact_reference import (assert_same_values, float_decode, posit_decode, posit_values,
                             softposit_code)
from minifp.formats import PositFormat, Rounding, get_format, named_formats

MODES = [m.value for m in Rounding]
DETERMINISTIC = [m for m in MODES if m != "stochastic"]

SMALL_POSITS = [(2, 0), (3, 0), (3, 1), (4, 0), (4, 1), (5, 2), (6, 0), (6, 3), (7, 1),
                (8, 1), (8, 3), (8, 4), (10, 2)]
SMALL_FORMATS = ([name for name, fmt, _ in named_formats() if fmt.bits <= 8]
                 + ["e3m4", "e4m3ieee", "e5m0", "e4m0fn", "e3m1fnuz", "e2m0finite", "e1m2fnuz",
                    "e1m6fnuz", "e3m2b2fn", "e4m3:sat", "e5m2:sat"]
                 + [f"posit({n},{es})" for n, es in SMALL_POSITS])


def codes_of(fmt):
    return np.arange(1 << fmt.bits, dtype=np.uint64).astype(fmt.code_dtype)


def test_small_format_list_covers_registry():
    names = {name for name, fmt, _ in named_formats() if fmt.bits <= 8}
    assert {"e5m2", "e4m3", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz", "e3m2", "e2m3", "e2m1",
            "posit8", "posit8_0"} <= names


# --------------------------------------------------------------- every code, small formats
@pytest.mark.parametrize("name", SMALL_FORMATS)
def test_every_code_decodes_and_reencodes(name):
    fmt = get_format(name)
    codes = codes_of(fmt)
    vals = fmt.decode(codes)
    assert vals.dtype == fmt.carrier
    nan = np.isnan(vals)
    back = fmt.encode(vals)
    assert back.dtype == fmt.code_dtype
    # every number code is its own encoding
    assert np.array_equal(back[~nan], codes[~nan]), name
    # NaN codes: re-encode to canonical NaN codes (at most one per sign), which
    # decode to NaN and are their own encodings
    if nan.any():
        assert fmt.has_nan
        canonical = np.unique(back[nan])
        assert 1 <= canonical.size <= 2, (name, canonical)
        assert np.isnan(fmt.decode(canonical)).all()
        assert np.array_equal(fmt.encode(fmt.decode(canonical)), canonical), name
    # the number of NaN codes each convention promises
    if isinstance(fmt, PositFormat):
        expected_nans = 1
    else:
        expected_nans = {"ieee": 2 * ((1 << fmt.mbits) - 1), "fn": 2, "fnuz": 1,
                         "finite": 0}[fmt.specials_kind]
    assert int(nan.sum()) == expected_nans, name
    # values (with the sign of zero) are distinct: the code map is injective
    keyed = {(float(v), bool(np.signbit(v))) for v in vals[~nan]}
    assert len(keyed) == int((~nan).sum())


@pytest.mark.parametrize("name", SMALL_FORMATS)
def test_every_code_matches_independent_decode(name):
    fmt = get_format(name)
    vals = fmt.decode(codes_of(fmt)).astype(np.float64)
    if isinstance(fmt, PositFormat):
        want = [math.nan if (v := posit_decode(fmt.n, fmt.es, c)) is None else float(v)
                for c in range(1 << fmt.bits)]
    else:
        want = [float(float_decode(fmt, c)) for c in range(1 << fmt.bits)]
    assert_same_values(vals, want, np.arange(1 << fmt.bits), name)


@pytest.mark.parametrize("name", SMALL_FORMATS)
def test_values_are_ordered_by_code(name):
    """Sign-magnitude codes (floats) / two's-complement codes (posits) are monotone."""
    fmt = get_format(name)
    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    vals = fmt.decode(codes.astype(fmt.code_dtype)).astype(np.float64)
    half = 1 << (fmt.bits - 1)
    if isinstance(fmt, PositFormat):
        order = np.where(codes >= half, codes - (1 << fmt.bits), codes)
        keep = codes != half
        v = vals[keep][np.argsort(order[keep])]
        assert np.all(np.diff(v) > 0)
    else:
        pos = vals[:half]
        pos = pos[~np.isnan(pos)]
        assert np.all(np.diff(pos) > 0)
        neg = vals[half:]
        neg = neg[~np.isnan(neg)]
        assert np.all(np.diff(neg) < 0)


@pytest.mark.parametrize("name", SMALL_FORMATS)
def test_every_value_rounds_to_itself_in_every_mode(name):
    fmt = get_format(name)
    vals = fmt.decode(codes_of(fmt))
    assert fmt.is_representable(vals).all()
    for dtype in (np.float32, np.float64):
        x = vals.astype(dtype)
        for mode in MODES:
            rng = np.random.default_rng(7)
            out = fmt.round(x, mode, rng)
            assert out.dtype == fmt.carrier
            assert_same_values(out, vals, x, f"{name} {mode} {np.dtype(dtype)}")


@pytest.mark.parametrize("name", ["e4m3", "e5m2", "e2m1", "posit8", "posit(6,1)"])
def test_extreme_codes_match_properties(name):
    fmt = get_format(name)
    vals = fmt.decode(codes_of(fmt)).astype(np.float64)
    finite = vals[np.isfinite(vals)]
    assert finite.max() == fmt.max
    assert finite.min() == -fmt.max
    assert finite[finite > 0].min() == fmt.smallest_subnormal
    assert fmt.has_inf == bool(np.isinf(vals).any())
    assert fmt.has_nan == bool(np.isnan(vals).any())
    assert fmt.has_negative_zero == bool(((vals == 0) & np.signbit(vals)).any())


# --------------------------------------------------------------------- float16: every value
def all_float16():
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


def test_all_float16_values_round_to_themselves_in_every_mode():
    fmt = get_format("float16")
    x16 = all_float16()
    for x in (x16, x16.astype(np.float32), x16.astype(np.float64)):
        for mode in MODES:
            out = fmt.round(x, mode, np.random.default_rng(3))
            assert out.dtype == np.float16
            assert_same_values(out, x16, x, f"float16 {mode} from {x.dtype}")
    assert fmt.is_representable(x16).all()
    codes = fmt.encode(x16)
    finite = ~np.isnan(x16)
    assert np.array_equal(codes[finite], x16.view(np.uint16)[finite])


def test_float16_codes_are_the_ieee_bit_patterns():
    fmt = get_format("float16")
    x16 = all_float16()
    assert_same_values(fmt.decode(x16.view(np.uint16)), x16, None, "float16 decode")


# --------------------------------------------- float16 round-to-nearest-even vs NumPy casts
def float16_boundary_inputs(dtype):
    """Every float16 value, every midpoint between neighbours, one ulp (of dtype)
    either side of each midpoint, and the overflow / underflow edges."""
    x16 = all_float16()
    finite = np.sort(np.unique(x16[np.isfinite(x16)].astype(np.float64)))
    mids = (finite[1:] + finite[:-1]) / 2          # exact in float32 and float64
    mids = mids.astype(dtype)
    inf = dtype(np.inf)
    edges = np.array([65504, 65519, 65520, 65521, 2.0 ** 16, 1e5, 2.0 ** -24, 2.0 ** -25,
                      2.0 ** -26, 3 * 2.0 ** -26, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25,
                      np.finfo(dtype).max, np.finfo(dtype).tiny, np.finfo(dtype).smallest_subnormal,
                      np.inf, np.nan, 0.0], dtype=dtype)
    with np.errstate(over="ignore"):
        edges = np.concatenate([edges, np.nextafter(edges, inf), np.nextafter(edges, -inf)])
    parts = [finite.astype(dtype), mids, np.nextafter(mids, inf), np.nextafter(mids, -inf), edges]
    x = np.concatenate(parts)
    return np.concatenate([x, -x])


def dense_random(dtype, n, seed):
    """Random bit patterns (all exponents, NaNs included) plus random values
    whose exponents lie in and around the float16 range."""
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        u, mant_bits, bias = np.uint32, 23, 127
    else:
        u, mant_bits, bias = np.uint64, 52, 1023
    width = 8 * np.dtype(u).itemsize
    patterns = rng.integers(0, 1 << width, size=n, dtype=u, endpoint=False)
    exps = rng.integers(bias - 27, bias + 18, size=n).astype(u)
    mant = rng.integers(0, 1 << mant_bits, size=n, dtype=u, endpoint=False)
    sign = rng.integers(0, 2, size=n).astype(u) << u(width - 1)
    near = sign | (exps << u(mant_bits)) | mant
    return np.concatenate([patterns, near]).view(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float16_rne_matches_numpy_cast(dtype):
    fmt = get_format("float16")
    x = np.concatenate([float16_boundary_inputs(dtype), dense_random(dtype, 1 << 16, 11)])
    assert x.dtype == dtype
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(np.float16)
        got = fmt.round(x)
    assert_same_values(got, want, x, f"float16 round from {np.dtype(dtype)}")
    generic = fmt._round_bits(np, x, Rounding.NEAREST_EVEN, None)
    assert_same_values(np.asarray(generic).astype(np.float16), want, x,
                       f"float16 _round_bits from {np.dtype(dtype)}")


def test_float32_rne_from_float64_matches_numpy_cast():
    fmt = get_format("float32")
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.integers(0, 1 << 64, size=1 << 15, dtype=np.uint64).view(np.float64),
                        rng.standard_normal(1 << 14) * 2.0 ** rng.integers(-160, 140, 1 << 14)])
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x.astype(np.float32)
    f32 = np.unique(x32[np.isfinite(x32)]).astype(np.float64)
    mids = (f32[1:] + f32[:-1]) / 2
    x = np.concatenate([x, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
                        [3.4028235677973366e38, 3.4028235677973362e38, 2.0 ** -150,
                         3 * 2.0 ** -151, 2.0 ** -151, np.inf, -np.inf, np.nan, -0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(np.float32)
        got = fmt.round(x)
    assert_same_values(got, want, x, "float32 round")
    generic = fmt._round_bits(np, x, Rounding.NEAREST_EVEN, None)
    assert_same_values(np.asarray(generic).astype(np.float32), want, x, "float32 _round_bits")


def test_round_does_not_modify_its_input():
    fmt = get_format("float16")
    x = dense_random(np.float32, 4096, 2)
    keep = x.copy()
    for mode in MODES:
        fmt.round(x, mode, np.random.default_rng(0))
        fmt._round_bits(np, x, Rounding(mode), np.random.default_rng(0))
    assert np.array_equal(x.view(np.uint32), keep.view(np.uint32))


# ------------------------------------------------------------ posits: every code vs SoftPosit
def softposit_value(n, es, code):
    """float value of a posit code according to SoftPosit (NaN for NaR)."""
    if (n, es) == (8, 0):
        p = sp.posit8(bits=code)
    elif (n, es) == (16, 1):
        p = sp.posit16(bits=code)
    elif (n, es) == (32, 2) and code % 2 == 0:   # exercise both SoftPosit types for posit32
        p = sp.posit32(bits=code)
    else:
        assert es == 2
        p = sp.posit_2(x=n, bits=code)        # stored left-aligned in 32 bits
    return math.nan if p.isNaR() else float(p)


POSIT_STANDARDS = [("posit8_0", 8, 0), ("posit8", 8, 2), ("posit16_1", 16, 1),
                   ("posit16", 16, 2)]


def test_softposit_storage_conventions():
    # posit8/16/32 store the code right-aligned, posit_2 left-aligned in 32 bits
    assert sp.posit8(1.0).v.v == 0x40
    assert sp.posit16(1.0).v.v == 0x4000
    assert sp.posit32(1.0).v.v == 0x40000000
    assert sp.posit_2(1.0, 8).v.v == 0x40000000
    assert sp.posit_2(x=8, bits=0x44).v.v == 0x44000000
    assert float(sp.posit_2(x=8, bits=0x44)) == 1.5        # es = 2: 0 10 00 100
    assert float(sp.posit8(bits=0x44)) == 1.125            # es = 0: 0 10 00100
    assert float(sp.posit16(bits=0x4400)) == 1.25          # es = 1: 0 10 0 0100..


@pytest.mark.parametrize("name,n,es", POSIT_STANDARDS)
def test_every_posit_code_matches_softposit_decode(name, n, es):
    fmt = get_format(name)
    assert (fmt.n, fmt.es) == (n, es)
    codes = np.arange(1 << n, dtype=np.uint64)
    got = fmt.decode(codes.astype(fmt.code_dtype))
    want = [softposit_value(n, es, c) for c in range(1 << n)]
    assert_same_values(got, want, codes, f"{name} decode")
    # ... and every code is its own encoding, in every mode
    for mode in DETERMINISTIC:
        back = fmt.encode(got, mode)
        assert np.array_equal(back, codes.astype(fmt.code_dtype)), (name, mode)


@pytest.mark.parametrize("name", ["posit32", "posit32_2"])
def test_random_posit32_codes_match_softposit_decode(name):
    fmt = get_format(name)
    rng = np.random.default_rng(32)
    codes = np.concatenate([rng.integers(0, 1 << 32, size=6000, dtype=np.uint64),
                            np.array([0, 1, 2, 3, 0x7FFFFFFF, 0x7FFFFFFE, 0x80000000, 0x80000001,
                                      0xFFFFFFFF, 0x40000000, 0x3FFFFFFF, 0x40000001, 0xC0000000,
                                      0x00000100, 0x7FFFFF00], dtype=np.uint64)])
    got = fmt.decode(codes.astype(np.uint32))
    assert got.dtype == fmt.carrier
    want = [softposit_value(32, 2, int(c)) for c in codes]
    assert_same_values(got, want, codes, f"{name} decode")
    assert np.array_equal(fmt.encode(got), codes.astype(np.uint32))


@pytest.mark.parametrize("name,n,es", POSIT_STANDARDS + [("posit32", 32, 2)])
def test_posit_rounding_of_random_values_matches_softposit(name, n, es):
    fmt = get_format(name)
    rng = np.random.default_rng(100 + n + es)
    top = math.log2(fmt.max)
    m = 4000
    x = np.exp2(rng.uniform(-top - 3, top + 3, m)) * rng.choice([-1.0, 1.0], m)
    x = np.concatenate([x, rng.standard_normal(1000), [0.0, -0.0, np.inf, -np.inf, np.nan,
                                                       1e300, -1e-300, 5e-324]])
    want = np.array([softposit_code(n, es, float(v)) for v in x], dtype=np.uint64)
    got = fmt.encode(x)
    bad = np.flatnonzero(got.astype(np.uint64) != want)
    assert bad.size == 0, [(x[i], int(got[i]), int(want[i])) for i in bad[:8]]
    # values through round() (float64 and float32 inputs) agree with the codes
    vals = fmt.decode(want.astype(fmt.code_dtype))
    assert_same_values(fmt.round(x), vals, x, f"{name} round")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    want32 = np.array([softposit_code(n, es, float(v)) for v in x32], dtype=np.uint64)
    assert_same_values(fmt.round(x32), fmt.decode(want32.astype(fmt.code_dtype)), x32,
                       f"{name} round from float32")


@pytest.mark.parametrize("n,es", [(8, 0), (8, 2), (6, 1), (5, 3)])
def test_posit_value_list_is_complete(n, es):
    fmt = get_format(f"posit({n},{es})")
    vals = fmt.decode(codes_of(fmt)).astype(np.float64)
    finite = np.sort(vals[~np.isnan(vals)])
    assert np.array_equal(finite, np.array([float(v) for v in posit_values(n, es)]))
    assert finite[-1] == fmt.max == 2.0 ** ((n - 2) << es)
    assert finite[finite > 0][0] == fmt.smallest_normal == 2.0 ** -((n - 2) << es)


# ------------------------------------------- the input dtype does not change the result
@pytest.mark.parametrize("name", ["e4m3", "e5m2", "e4m3fnuz", "e2m1", "e3m4", "bfloat16",
                                  "e5m2:ftz", "e4m3:sat", "tf32", "posit8", "posit16_1"])
def test_every_float16_rounds_the_same_from_any_input_dtype(name):
    """float16, float32 and float64 copies of all 65536 float16 values round
    alike in every mode; stochastic rounding takes one 64-bit word per element
    whatever the input dtype, so its results agree too."""
    fmt = get_format(name)
    x16 = all_float16()
    with np.errstate(invalid="ignore"):        # signalling NaNs among the float16 patterns
        x32, x64 = x16.astype(np.float32), x16.astype(np.float64)
    for mode in MODES:
        with np.errstate(invalid="ignore"):
            r16 = fmt.round(x16, mode, np.random.default_rng(21))
            r32 = fmt.round(x32, mode, np.random.default_rng(21))
            r64 = fmt.round(x64, mode, np.random.default_rng(21))
        assert_same_values(r16, r32, x16, f"{name} {mode}: float16 vs float32 input")
        assert_same_values(r16, r64, x16, f"{name} {mode}: float16 vs float64 input")


# --------------------------------------- large arrays (rounded in blocks) = small ones
@pytest.mark.parametrize("name", ["e4m3", "bfloat16", "float16", "e2m1:ftz", "posit16",
                                  "posit32"])
def test_large_arrays_round_like_their_pieces(name):
    fmt = get_format(name)
    x = dense_random(np.float32, 50_000, 77)
    x = x[~np.isnan(x)]
    x = x[: x.size // 10 * 10].reshape(-1, 10)[:, ::-1]    # 2-D, not contiguous
    for mode in MODES:
        whole = fmt.round(x, mode, np.random.default_rng(5))
        assert whole.shape == x.shape
        if mode == "stochastic":
            again = fmt.round(np.ascontiguousarray(x), mode, np.random.default_rng(5))
            assert_same_values(whole, again, x, f"{name} stochastic, contiguous copy")
            continue
        flat = x.ravel()
        pieces = np.concatenate([fmt.round(flat[i:i + 999], mode)
                                 for i in range(0, flat.size, 999)])
        assert_same_values(whole.ravel(), pieces, flat, f"{name} {mode}")


@pytest.mark.parametrize("name", ["e4m3", "float16", "bfloat16", "float32", "float64", "posit8",
                                  "posit32"])
def test_any_real_input_kind_gives_carrier_arrays_of_the_same_shape(name):
    fmt = get_format(name)
    kinds = [3, 1.1, np.float32(1.1), np.array(1.1), [1, 2, 3], np.arange(5),
             np.array([True, False]), np.array([], dtype=np.float32), np.zeros((2, 0, 3)),
             np.array([[1.5, 2.5]], dtype=np.float16), np.arange(6, dtype=np.int8).reshape(2, 3)]
    for x in kinds:
        for mode in MODES:
            r = fmt.round(x, mode, np.random.default_rng(0))
            assert r.dtype == fmt.carrier and r.shape == np.shape(x), (name, x, mode)
            # non-float inputs are converted to float64 first
            xf = np.asarray(x)
            xf = xf if xf.dtype.kind == "f" else xf.astype(np.float64)
            assert_same_values(r, fmt.round(xf, mode, np.random.default_rng(0)), xf, name)
    assert fmt.encode(3).shape == () and float(fmt.decode(fmt.encode(3))) == 3.0
