"""Accumulation with wide operands (issue 12, defect 2): posit32 values have up to 28
significant bits and eXmY spellings up to 51, so their products are not exact in float64.
Every order must still round each sum once (fma on) or each product and each sum once
(fma off), exactly as the scalar Fraction references of test_accumulate_reference.py
define them, bit for bit."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minifp.accumulate import Accumulation, dot, matmul
from minifp.accumulate import sum as acc_sum
from minifp.formats import get_format
from test_accumulate_reference import (_seed, assert_bitwise, orders_for_tests, ref_matmul,
                                       ref_sum, values_in)

# every test against the exact reference, for the NumPy orders and for the C kernels
pytestmark = pytest.mark.usefixtures("both_engines")

WIDE = ["posit32", "posit(32,3)", "e8m30", "e11m40", "e5m27", "e6m50"]
MODES = ["nearest_even", "toward_zero", "up", "to_odd", "nearest_away"]


def near_midpoints(fmt_name, shape, rng):
    """Operands 1 + a 2^-27 and their products next to a midpoint of a ~28-bit format,
    mixed with values from every code (all exponents) and some negatives."""
    fmt = get_format(fmt_name)
    a = rng.integers(1, 1 << 26, size=shape)
    v = 1.0 + a * 2.0 ** -27
    v = np.where(rng.random(shape) < 0.3, values_in(fmt_name, shape, rng, extreme=0.5), v)
    v = np.where(rng.random(shape) < 0.3, -v, v)
    return fmt.round(v.astype(np.float64)).astype(np.float64)


def test_issue_reproducer_posit32():
    x = np.array([1 + 5 * 2.0 ** -27])
    y = np.array([1 + 13421773 * 2.0 ** -27])
    for order in ("sequential", "pairwise", "exact"):
        for fma in (True, False):
            got = float(dot(x, y, Accumulation("posit32", order, fma=fma)))
            assert got.hex() == "0x1.19999a6000000p+0", (order, fma, got.hex())


@pytest.mark.parametrize("fmt_name", WIDE)
def test_every_order_and_mode_matches_reference(fmt_name):
    rng = np.random.default_rng(_seed("wide", fmt_name))
    x = near_midpoints(fmt_name, (3, 7), rng)
    y = near_midpoints(fmt_name, (7, 2), rng)
    for base in orders_for_tests(fmt_name):
        for mode in MODES:
            acc = Accumulation(fmt_name, str(base.order), base.fma, mode)
            got = matmul(x, y, acc)
            assert_bitwise(got, ref_matmul(x, y, acc), f"{fmt_name} {acc}")


@pytest.mark.parametrize("fmt_name", ["posit32", "e8m30"])
def test_sum_and_lengths(fmt_name):
    rng = np.random.default_rng(_seed("wide-sum", fmt_name))
    for k in (1, 2, 3, 5, 8, 9):
        x = near_midpoints(fmt_name, (2, k), rng)
        y = near_midpoints(fmt_name, (k, 3), rng)
        for acc in orders_for_tests(fmt_name):
            assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), f"K={k} {acc}")
    t = near_midpoints(fmt_name, (4, 6), rng)
    for acc in orders_for_tests(fmt_name):
        assert_bitwise(acc_sum(t, 1, acc), ref_sum(t, 1, acc), f"sum {acc}")


def test_products_beyond_two_product_range_are_exact():
    """Huge and tiny operands (TwoProduct would overflow or underflow): the exact kernel."""
    fmt = "e11m30"
    big = get_format(fmt).round(np.array([1.7e300, -1.3e299, 3.1e-300, 1 + 3 * 2.0 ** -30]))
    x = np.array([[big[0], big[2], big[3]], [big[1], big[3], big[2]]], dtype=np.float64)
    y = np.array([[2.0 ** -280, 1.0], [2.0 ** 250, 1 + 2.0 ** -29], [1 + 2.0 ** -30, 2.0]])
    y = get_format(fmt).round(y).astype(np.float64)
    for acc in orders_for_tests(fmt):
        assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), str(acc))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), fmt_name=st.sampled_from(WIDE),
       k=st.integers(1, 9), mode=st.sampled_from(MODES),
       order=st.sampled_from(["sequential", "pairwise", "blocked:2", "exact"]),
       fma=st.booleans())
def test_property_wide_orders(seed, fmt_name, k, mode, order, fma):
    rng = np.random.default_rng(seed)
    x = near_midpoints(fmt_name, (2, k), rng)
    y = near_midpoints(fmt_name, (k, 2), rng)
    acc = Accumulation(fmt_name, order, fma, mode)
    assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), str(acc))


def test_narrow_operands_keep_the_fast_paths_bit_identical():
    """float16 and posit16 operands (products exact) take the same paths as before: the
    engine result equals the reference, and wide detection is off."""
    from minifp.accumulate.orders import significant_bits, wide
    rng = np.random.default_rng(3)
    for fmt_name in ("float16", "bfloat16", "posit16"):
        x = values_in(fmt_name, (3, 9), rng).astype(np.float64)
        y = values_in(fmt_name, (9, 2), rng).astype(np.float64)
        assert not wide((significant_bits(x), significant_bits(y)))
        for acc in orders_for_tests("float32"):
            assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), f"{fmt_name} {acc}")


@pytest.mark.parametrize("mode", ["toward_zero", "up", "down", "to_odd"])
def test_exact_order_uses_the_accumulation_rounding(mode):
    """Issue 12, defect 5: the quire's one rounding into the accumulator format follows
    Accumulation.rounding; an explicit output format takes out_rounding."""
    x = np.array([1.0, 2.0 ** -30, -(2.0 ** -31)])
    acc = Accumulation("float16", "exact", rounding=mode)
    want = get_format("float16").round(np.array([1.0 + 2.0 ** -31]), mode)[0]
    assert float(dot(x, np.ones(3), acc)) == float(want)
    near = float(dot(x, np.ones(3), acc, out="float16", out_rounding="nearest_even"))
    assert near == 1.0


@pytest.mark.parametrize("fmt_name", ["posit32", "e8m30", "e11m50"])
def test_mean_divides_once_for_wide_outputs(fmt_name):
    from fractions import Fraction

    from exact_reference import reference_round
    from minifp.accumulate import mean
    rng = np.random.default_rng(_seed("mean", fmt_name))
    fmt = get_format(fmt_name)
    for n in (3, 5, 7, 11):
        t = near_midpoints(fmt_name, (6, n), rng)
        acc = Accumulation(fmt_name, "exact")
        s = ref_sum(t, 1, acc)
        want = [reference_round(fmt, Fraction(v) / n) for v in s]
        assert_bitwise(mean(t, 1, acc), np.array(want), f"{fmt_name} n={n}")


def test_exact_order_keeps_terms_over_the_whole_float64_range():
    """Terms more than ~1000 binades below the largest one of a row used to underflow in
    the scaling of the exact kernel and vanish (dot([2^600, 2^-600, -2^600], 1) was 0)."""
    from fractions import Fraction

    from minifp.accumulate.exactsum import exact_matmul_odd
    from minifp.formats.exactparse import round_to_odd
    assert float(dot(np.array([2.0 ** 600, 2.0 ** -600, -2.0 ** 600]), np.ones(3),
                     Accumulation("float64", "exact"))) == 2.0 ** -600
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(120):
        k = int(rng.integers(1, 6))
        x = rng.standard_normal((1, 2, k)) * 2.0 ** rng.integers(-1000, 1000, (1, 2, k))
        y = rng.standard_normal((1, k, 2)) * 2.0 ** rng.integers(-1000, 1000, (1, k, 2))
        odd, _ = exact_matmul_odd(x, y)
        for i in range(2):
            for j in range(2):
                exact = sum(Fraction(float(x[0, i, t])) * Fraction(float(y[0, t, j]))
                            for t in range(k))
                if exact != 0 and not 2.0 ** -1000 < abs(exact) < 2.0 ** 1000:
                    continue                     # beyond float64: not a rounding to odd
                assert float(odd[0, i, j]) == round_to_odd(exact)
                checked += 1
    assert checked > 200


@pytest.mark.parametrize("order", ["sequential", "pairwise", "blocked:2", "exact"])
@pytest.mark.parametrize("fma", [True, False])
def test_float64_variants_as_accumulators(order, fma):
    """float64:ftz flushes subnormal results, :sat saturates a finite overflow, :nan makes
    it NaN (they used to act as plain float64)."""
    if order == "exact" and not fma:
        pytest.skip("exact has no fma variant")
    tiny, big = np.array([1e-310]), np.array([1e308, 1e308])
    with np.errstate(all="ignore"):
        assert float(dot(tiny, np.ones(1), Accumulation("float64:ftz", order, fma))) == 0.0
        assert float(dot(tiny, np.ones(1), Accumulation("float64", order, fma))) == 1e-310
        sat = float(dot(big, np.ones(2), Accumulation("float64:sat", order, fma)))
        nan = float(dot(big, np.ones(2), Accumulation("float64:nan", order, fma)))
        plain = float(dot(big, np.ones(2), Accumulation("float64", order, fma)))
    assert sat == np.finfo(np.float64).max and np.isnan(nan) and plain == np.inf


def test_sums_of_float64_data_are_not_wide():
    """A sum multiplies by ones (1 significant bit): its products are exact whatever the
    data's width, so it keeps the narrow paths (and agrees with the reference)."""
    from minifp.accumulate.orders import wide
    assert not wide((53, 1)) and wide((28, 28)) and not wide((26, 27))
    rng = np.random.default_rng(5)
    t = rng.standard_normal((3, 9))
    for acc in orders_for_tests("float16"):
        assert_bitwise(acc_sum(t, 1, acc), ref_sum(t, 1, acc), str(acc))
