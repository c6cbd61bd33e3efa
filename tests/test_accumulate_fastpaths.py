"""The engine's fast paths against its general paths, on data chosen to hit their edges:
subnormal partial sums, exact cancellation, ties, overflow thresholds and block sums that
float64 cannot hold exactly."""
import numpy as np
import pytest

from minifp.accumulate import Accumulation, matmul
from minifp.accumulate import orders
from minifp.formats import get_format


def general_sequential(acc, x, y):
    """The definition, one TwoSum + round-to-odd + rounding per term (no fast path)."""
    x = np.asarray(x, np.float64)[None]
    y = np.asarray(y, np.float64)[None]
    s = np.zeros((1, x.shape[1], y.shape[2]))
    for k in range(x.shape[2]):
        s = orders.add_round(acc, s, x[:, :, k, None] * y[:, None, k, :], None)
    return s[0] + 0.0


@pytest.mark.parametrize("fmt", ["float16", "e4m3", "e5m2", "e5m2fnuz", "float32"])
def test_round_rne_inplace_matches_format_rounding(fmt):
    f = get_format(fmt)
    rng = np.random.default_rng(3)
    codes = np.arange(2 ** min(f.bits, 16), dtype=np.uint32).astype(f.code_dtype)
    vals = f.decode(codes).astype(np.float64)
    vals = vals[np.isfinite(vals) & (np.abs(vals) < f.max)]
    nxt = np.nextafter(vals, np.inf)
    # values, their neighbours' midpoints, and points a hair either side of them
    mids = (vals[:-1] + np.sort(vals)[1:]) / 2 if vals.size > 1 else vals
    pts = np.concatenate([vals, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
                          nxt, rng.standard_normal(20000) * f.smallest_normal * 4,
                          rng.standard_normal(20000)])
    pts = pts[np.abs(pts) < f.max]
    got = orders.round_rne_inplace(pts.copy(), orders.magic_constants(f), np.empty_like(pts))
    want = f.round(pts, dtype=np.float64)
    assert np.array_equal(got, want)


def _subnormal_heavy(rng, fmt, shape_x, shape_y):
    """Values whose products and partial sums fall into the subnormal range of fmt."""
    f = get_format(fmt)
    tiny = f.smallest_normal
    x = f.round(rng.standard_normal(shape_x) * np.sqrt(tiny) * rng.choice([1, 4, 0.25], shape_x))
    y = f.round(rng.standard_normal(shape_y) * np.sqrt(tiny) * rng.choice([1, 4, 0.25], shape_y))
    return x, y


@pytest.mark.parametrize("fmt", ["float16", "e4m3", "e5m2"])
def test_sequential_fast_path_equals_definition_near_underflow(fmt):
    rng = np.random.default_rng(7)
    acc = Accumulation(fmt, "sequential")
    x, y = _subnormal_heavy(rng, fmt, (9, 70), (70, 11))
    xs, ys = x.astype(np.float64)[None], y.astype(np.float64)[None]
    assert orders._fast_rounder(acc, xs, ys, (orders.significant_bits(xs),
                                              orders.significant_bits(ys))) is not None
    got = matmul(x, y, acc).astype(np.float64)
    assert np.array_equal(got, general_sequential(acc, x, y))


def test_sequential_fast_path_with_cancellation_and_ties():
    f = get_format("float16")
    acc = Accumulation("float16", "sequential")
    # 2048 + 1 is a tie (stays 2048); +1 -1 pairs cancel exactly to zero
    x = np.array([[2048.0, 1.0, 1.0, -2048.0, 3.0, -3.0, 2.0 ** -24, -(2.0 ** -24)] * 10],
                 dtype=np.float16)
    y = np.ones((80, 3), dtype=np.float16)
    got = matmul(x, y, acc).astype(np.float64)
    assert np.array_equal(got, general_sequential(acc, x, y))
    assert f.is_representable(got).all()


def test_sequential_near_overflow_falls_back_and_matches():
    acc = Accumulation("float16", "sequential")
    x = np.full((2, 40), 60000.0, dtype=np.float16)
    x[:, 1::2] = -60000.0
    y = np.ones((40, 2), dtype=np.float16)
    y[0, 0] = 2.0   # first partial sum overflows to inf: inf - 60000 stays inf
    got = matmul(x, y, acc).astype(np.float64)
    want = general_sequential(acc, x, y)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isinf(got[:, 0]).all() and (got[:, 1] == 0).all()


@pytest.mark.parametrize("fmt,provable", [("float16", True), ("bfloat16", True),
                                          ("float32", False)])
def test_blocked_fast_path_equals_per_block_path(fmt, provable):
    """float16/bfloat16 products (<= 22 bits) of ordinary data sum exactly in float64, so
    the whole-row test admits BLAS block sums; float32 products (48 bits) do not, and the
    engine tests block by block and sums the blocks that fail exactly.  Either way the
    result is the per-block path's."""
    rng = np.random.default_rng(11)
    f = get_format(fmt)
    acc = Accumulation(fmt, "blocked:8")
    x = f.round(rng.standard_normal((6, 50)))
    y = f.round(rng.standard_normal((50, 7)) / 8)
    xs, ys = x.astype(np.float64)[None], y.astype(np.float64)[None]
    bits = (orders.significant_bits(xs), orders.significant_bits(ys))
    quanta = (-24, -24) if fmt == "float16" else (-149, -149)
    total, sums = orders._blas_block_sums(xs, ys, 8, bits, quanta)
    assert sums is not None
    whole_row = orders._abs_sum_bound(np.abs(xs), np.abs(ys), False)
    lo = (orders._row_low_exponent(np.abs(xs), -1) - (bits[0] - 1)) + \
        (orders._row_low_exponent(np.abs(ys), -2) - (bits[1] - 1))
    assert bool((whole_row < np.ldexp(1.0, lo + 53)).all()) == provable
    got = matmul(x, y, acc).astype(np.float64)
    lx, ly = orders._lsb_exponents(xs), orders._lsb_exponents(ys)
    s = None
    for k0 in range(0, 50, 8):
        bs = orders.block_sum(xs[:, :, k0:k0 + 8], ys[:, k0:k0 + 8], lx[:, :, k0:k0 + 8],
                              ly[:, k0:k0 + 8])
        bs = orders.round_acc(acc, bs, None)
        s = bs if s is None else orders.add_round(acc, s, bs, None)
    assert np.array_equal(got, s[0] + 0.0)


def test_blocked_block_sums_beyond_float64_are_exact():
    """Products spanning more than 53 bits: float64 additions would lose 2**-30; the
    block sum is exact, then rounded once to float64."""
    x = np.array([[2.0 ** 40, 1.0, 2.0 ** -30, -(2.0 ** 40)]], dtype=np.float32)
    y = np.ones((4, 1), dtype=np.float32)
    got = matmul(x, y, Accumulation("float64", "blocked:4"))
    assert float(got[0, 0]) == 1 + 2.0 ** -30
    seq = matmul(x, y, Accumulation("float64", "sequential"))
    assert float(seq[0, 0]) == 1.0


@pytest.mark.parametrize("scale16", [False, True])
def test_float32_sequential_path_equals_definition(scale16):
    """float32 data (48-bit products): the float32 loop, with its tie repair, against the
    definition; float16-valued data make float64 sums land on float32 midpoints often."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 90)).astype(np.float32)
    y = (rng.standard_normal((90, 10)) / 9).astype(np.float32)
    if scale16:
        x = x.astype(np.float16).astype(np.float32)
        y = (y * 64).astype(np.float16).astype(np.float32) * np.float32(2.0 ** -30)
    acc = Accumulation("float32", "sequential")
    xs, ys = x.astype(np.float64)[None], y.astype(np.float64)[None]
    bits = (orders.significant_bits(xs), orders.significant_bits(ys))
    assert orders._float32_fast_ok(acc, xs, ys, bits)
    assert np.array_equal(orders._sequential_float32(xs, ys)[0], general_sequential(acc, x, y))
    assert np.array_equal(matmul(x, y, acc).astype(np.float64), general_sequential(acc, x, y))
