"""The a-priori bounds of ``minifp.theory.accumulation`` hold: for the scalar references of
test_accumulate_reference.py (independent of the engine) and for the engine itself,
|computed - exact| <= Bound.value(sum |x_i y_i|), measured exactly with Fractions.
Also: u, gamma_n, and the posit relative error checked value by value.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exact_reference import posit_values, reference_round
from minifp.accumulate import Accumulation, dot, matmul
from minifp.accumulate import sum as acc_sum
from minifp.theory.accumulation import (Bound, accumulation_bound, gamma, posit_relative_error,
                           unit_roundoff, underflow_error)
from minifp.formats import get_format
from test_accumulate_reference import _seed, ref_accumulate, values_in


# ------------------------------------------------------------------------ u and gamma
def test_unit_roundoff_by_mode():
    assert unit_roundoff("float16") == 2.0 ** -11
    assert unit_roundoff("bfloat16", "nearest_away") == 2.0 ** -8
    assert unit_roundoff("float32") == 2.0 ** -24
    assert unit_roundoff("e4m3") == 2.0 ** -4
    assert unit_roundoff("e5m2") == 2.0 ** -3
    for mode in ("toward_zero", "up", "down", "to_odd", "stochastic"):
        assert unit_roundoff("float16", mode) == 2.0 ** -10
    assert unit_roundoff(get_format("posit16")) == 2.0 ** -12     # best case, next to 1


def test_gamma():
    u = 2.0 ** -11
    assert gamma(0, u) == 0
    assert gamma(1, u) >= u / (1 - u)
    assert math.isclose(gamma(100, u), 100 * u / (1 - 100 * u), rel_tol=1e-14)
    assert gamma(2048, u) == math.inf and gamma(5000, u) == math.inf
    assert gamma(2047, u) < math.inf


def test_underflow_error():
    assert underflow_error("float16") == 2.0 ** -25
    assert underflow_error("float16", "up") == 2.0 ** -24
    assert underflow_error("float16:ftz") == 2.0 ** -14
    with pytest.raises(ValueError, match="posit"):
        underflow_error("posit8")


def test_bound_value_and_vacuous():
    b = Bound(0.5, 1.0, False, "test")
    assert b.value(4) >= 3.0 and b.value(4) < 3.0 + 1e-12
    assert Bound(math.inf, math.inf, True, "v").value(1.0) == math.inf
    assert Bound(0.1, 0.0, False, "p", valid_up_to=10).value(11) == math.inf


def test_formulas_per_order():
    u16, u32, u64 = 2.0 ** -11, 2.0 ** -24, 2.0 ** -53
    n = 100
    close = lambda a, b: math.isclose(a, b, rel_tol=1e-12)  # noqa: E731
    assert close(accumulation_bound(Accumulation("float16", "sequential"), n).relative,
                 gamma(n, u16))
    assert close(accumulation_bound(Accumulation("float16", "sequential", False), n).relative,
                 gamma(n, u16))
    assert close(accumulation_bound(Accumulation("float16", "pairwise"), n).relative,
                 gamma(7, u16))
    assert close(accumulation_bound(Accumulation("float16", "pairwise", False), n).relative,
                 gamma(8, u16))
    assert close(accumulation_bound(Accumulation("float32", "blocked:32"), n).relative,
                 (1 + gamma(4, u32)) * (1 + u64) - 1)
    b = accumulation_bound(Accumulation("float32", "exact"), n)
    assert close(b.relative, u32) and close(b.absolute, 2.0 ** -150)
    b = accumulation_bound(Accumulation("float16", "exact"), n, out="bfloat16",
                           out_rounding="up")
    assert close(b.relative, 2.0 ** -7)
    assert close(accumulation_bound(Accumulation("float32", "native"), n).relative,
                 gamma(n, u32))
    b = accumulation_bound(Accumulation("float32", "sequential"), n, out="float16")
    assert close(b.relative, (1 + gamma(n, u32)) * (1 + u16) - 1)
    assert accumulation_bound(Accumulation("float16", "sequential"), 4096).vacuous
    assert accumulation_bound(Accumulation("float16", "sequential"), 0).value(0) == 0
    assert "gamma_100" in accumulation_bound(Accumulation("float16", "sequential"), n).formula


def test_magnitude_beyond_max_is_vacuous():
    assert accumulation_bound(Accumulation("float16"), 10, magnitude=1e6).vacuous
    assert not accumulation_bound(Accumulation("float16"), 10, magnitude=1e3).vacuous
    assert accumulation_bound(Accumulation("posit8", "exact"), 10,
                              magnitude=2.0 ** 25).vacuous


def test_posit_bound_needs_magnitude():
    with pytest.raises(ValueError, match="magnitude"):
        accumulation_bound(Accumulation("posit16"), 10)
    b = accumulation_bound(Accumulation("posit16"), 10, magnitude=50.0)
    assert not b.vacuous and b.valid_up_to == 50.0 and b.value(51.0) == math.inf


# --------------------------------------------------------------- posit relative error
@pytest.mark.parametrize("name", ["posit8", "posit8_0", "posit(8,1)", "posit(6,2)"])
@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "toward_zero", "up"])
def test_posit_relative_error_exhaustive_small(name, mode):
    """Every gap between neighbouring positive posits, probed exactly next to both ends,
    next to the arithmetic and geometric midpoints and at random points; the bound is
    never exceeded and is reached to within a factor 2 somewhere in each binade."""
    fmt = get_format(name)
    vals = [v for v in posit_values(fmt.n, fmt.es) if v > 0]
    rng = np.random.default_rng(1)
    worst_seen = 0.0
    for lo, hi in zip(vals, vals[1:]):
        eps = (hi - lo) / 2 ** 20
        geo = Fraction(math.sqrt(lo * hi))
        probes = [lo + eps, hi - eps, (lo + hi) / 2 - eps, (lo + hi) / 2 + eps, geo - eps,
                  geo + eps] + [lo + (hi - lo) * Fraction(int(r), 2 ** 20)
                                for r in rng.integers(1, 2 ** 20, 4)]
        bound = posit_relative_error(fmt, float(lo), float(hi), mode)
        for x in probes:
            r = Fraction(reference_round(fmt, x, mode))
            rel = abs(r - x) / x
            assert rel <= Fraction(posit_relative_error(fmt, float(x), float(x), mode)), \
                (name, mode, float(lo), float(hi), float(x))
            worst_seen = max(worst_seen, float(rel))
        assert bound < math.inf
    overall = posit_relative_error(fmt, float(vals[0]), float(vals[-1]), mode)
    if mode != "toward_zero":     # truncation only errs downwards: (hi - lo) / hi at most
        assert worst_seen >= overall / 2


@pytest.mark.parametrize("name", ["posit16", "posit16_1"])
def test_posit_relative_error_posit16_vectorised(name):
    """posit16: every gap, probed next to its ends and midpoints (float64 probes,
    rounded by the format's own rounding, which the format tests check exactly)."""
    fmt = get_format(name)
    codes = np.arange(1, 1 << (fmt.n - 1), dtype=np.uint64).astype(fmt.code_dtype)
    v = fmt.decode(codes).astype(np.float64)
    lo, hi = v[:-1], v[1:]
    mid = (lo + hi) / 2
    geo = np.sqrt(lo * hi)
    for mode in ("nearest_even", "toward_zero", "up"):
        for probe in (np.nextafter(lo, hi), np.nextafter(hi, lo), np.nextafter(mid, lo),
                      np.nextafter(mid, hi), np.nextafter(geo, lo), np.nextafter(geo, hi)):
            r = fmt.round(probe, mode).astype(np.float64)
            rel = np.abs(r - probe) / probe
            binade = np.frexp(probe)[1] - 1          # exact floor(log2)
            table = {e: posit_relative_error(fmt, 2.0 ** e, 2.0 ** e, mode)
                     for e in np.unique(binade)}
            allowed = np.vectorize(table.__getitem__)(binade)
            assert np.all(rel <= allowed * (1 + 1e-12)), name


# -------------------------------------------------------------------- the bounds hold
def exact_terms(xs, ys):
    return [Fraction(float(a)) * Fraction(float(b)) for a, b in zip(xs, ys)]


def check_bound(xs, ys, got, acc, out=None, out_rounding="nearest_even", what=""):
    """|got - exact| <= bound; a non-finite result needs a vacuous bound. Returns the
    (error, bound value) pair."""
    ps = exact_terms(xs, ys)
    total = sum(ps, Fraction(0))
    s_abs = sum((abs(p) for p in ps), Fraction(0))
    n = len(ps)
    if s_abs == 0:
        assert float(got) == 0, what
        return 0.0, 0.0
    mag = math.nextafter(float(s_abs), math.inf)
    b = accumulation_bound(acc, n, out, out_rounding=out_rounding, magnitude=mag)
    got = float(got)
    if not math.isfinite(got):
        assert b.vacuous, f"{what}: result {got} but bound {b}"
        return math.inf, math.inf
    err = abs(Fraction(got) - total)
    v = b.value(mag)
    assert v == math.inf or err <= Fraction(v), \
        f"{what}: error {float(err)!r} > bound {v!r} ({b}); exact {float(total)!r}, got {got!r}"
    return float(err), v


def adversarial(kind, in_name, n, rng):
    """(x, y) of length n in the input format, by kind."""
    fmt = get_format(in_name)
    if kind == "random":
        return values_in(in_name, (n,), rng, extreme=0.0), values_in(in_name, (n,), rng,
                                                                     extreme=0.0)
    if kind == "wild":
        return values_in(in_name, (n,), rng, extreme=0.5), values_in(in_name, (n,), rng,
                                                                     extreme=0.5)
    if kind == "cancel":          # products p, -p, then a few small ones: ill-conditioned
        h = n // 2
        x = fmt.round(rng.normal(0, 8, h)).astype(np.float64)
        y = fmt.round(rng.normal(0, 8, h)).astype(np.float64)
        xs = np.concatenate([x, -x, fmt.round(rng.normal(0, 1e-2, n - 2 * h))])
        ys = np.concatenate([y, y, np.ones(n - 2 * h)])
        perm = rng.permutation(n)
        return xs[perm].astype(fmt.carrier), ys[perm].astype(fmt.carrier)
    if kind == "mixed":           # magnitudes 2**-12 .. 2**6
        x = fmt.round(rng.normal(0, 1, n) * 2.0 ** rng.integers(-12, 6, n))
        return x, fmt.round(rng.normal(0, 1, n))
    if kind == "tiny":            # products near and below the subnormal range
        x = fmt.round(rng.normal(0, 1, n) * 2.0 ** rng.integers(-14, -8, n))
        y = fmt.round(rng.normal(0, 1, n) * 2.0 ** rng.integers(-14, -8, n))
        return x, y
    raise AssertionError(kind)


ORDERS = ("sequential", "pairwise", "blocked:1", "blocked:4", "blocked:16", "exact")
ACCS = ("float16", "bfloat16", "float32", "e4m3", "e5m2", "posit8", "posit16")
KINDS = ("random", "wild", "cancel", "mixed", "tiny")


@settings(deadline=None, max_examples=150)
@given(acc_name=st.sampled_from(ACCS), order=st.sampled_from(ORDERS), fma=st.booleans(),
       mode=st.sampled_from(("nearest_even", "nearest_away", "toward_zero", "up", "to_odd")),
       in_name=st.sampled_from(("float16", "bfloat16", "e4m3", "posit8")),
       kind=st.sampled_from(KINDS), n=st.sampled_from((1, 2, 3, 7, 16, 33, 100)),
       seed=st.integers(0, 2 ** 32 - 1))
def test_bounds_hold_for_the_references(acc_name, order, fma, mode, in_name, kind, n, seed):
    """Engine-independent: the scalar references obey the bounds."""
    rng = np.random.default_rng(seed)
    x, y = adversarial(kind, in_name, n, rng)
    if order != "sequential":
        mode = "nearest_even" if mode == "to_odd" else mode
    acc = Accumulation(acc_name, order, fma, mode)
    got = ref_accumulate(x, y, acc)
    check_bound(x, y, got, acc, what=f"reference {acc} {in_name} {kind} n={n}")


@pytest.mark.parametrize("acc_name", ACCS)
@pytest.mark.parametrize("order", ORDERS + ("native",))
def test_bounds_hold_for_the_engine(acc_name, order):
    rng = np.random.default_rng(_seed("bounds", acc_name, order))
    finite_bounds = 0
    for kind in KINDS:
        for in_name in ("float16", "bfloat16", "e4m3", "posit8"):
            for n in (1, 5, 32, 100):
                x, y = adversarial(kind, in_name, n, rng)
                for fma in ((True,) if order == "native" else (True, False)):
                    acc = Accumulation(acc_name, order, fma)
                    with np.errstate(all="ignore"):
                        got = dot(x, y, acc)
                    err, v = check_bound(x, y, got, acc, what=f"{acc} {in_name} {kind} n={n}")
                    finite_bounds += v < math.inf
    assert finite_bounds > 0


@pytest.mark.parametrize("mode", ("nearest_even", "nearest_away", "toward_zero", "up", "down",
                                  "to_odd", "stochastic"))
def test_bounds_hold_for_every_rounding_mode(mode):
    rng = np.random.default_rng(_seed("modes", mode))
    for acc_name in ("float16", "bfloat16", "posit16"):
        for kind in KINDS:
            x = np.stack([adversarial(kind, "float16", 40, rng)[0] for _ in range(3)])
            y = adversarial("random", "float16", 40, rng)[1][:, None] * np.ones((1, 2))
            for fma in (True, False):
                acc = Accumulation(acc_name, "sequential", fma, mode)
                got = matmul(x, y.astype(np.float16), acc, rng=np.random.default_rng(0))
                for i in range(3):
                    for j in range(2):
                        check_bound(x[i], y[:, j], got[i, j], acc, what=f"{acc} {kind}")


def test_bounds_with_other_output_formats():
    rng = np.random.default_rng(9)
    for acc, out, om in ((Accumulation("float32", "sequential"), "float16", "nearest_even"),
                         (Accumulation("float32", "blocked:8"), "e4m3", "toward_zero"),
                         (Accumulation("posit16", "exact"), "posit8", "nearest_even"),
                         (Accumulation("float32", "pairwise"), "posit16", "up"),
                         (Accumulation("float16", "exact"), "bfloat16", "down")):
        for kind in KINDS:
            x, y = adversarial(kind, "bfloat16", 50, rng)
            with np.errstate(all="ignore"):
                got = dot(x, y, acc, out=out, out_rounding=om)
            check_bound(x, y, got, acc, out, om, what=f"{acc} -> {out} {om} {kind}")


def test_sum_bounds_over_axes():
    rng = np.random.default_rng(4)
    x = values_in("float16", (6, 50), rng, scale=10.0, extreme=0.0)
    for order in ORDERS:
        acc = Accumulation("float16", order)
        got = acc_sum(x, axis=1, acc=acc)
        for i in range(6):
            check_bound(x[i], np.ones(50), got[i], acc, what=f"sum {acc}")


def test_stagnation_needs_the_bound():
    """4096 ones summed sequentially in float16 stop at 2048: error 2048, the bound is
    gamma_4096(2**-11) -- vacuous (n u = 2 >= 1) -- so it is (trivially) respected; the
    pairwise tree is exact and its bound gamma_12 is finite."""
    ones = np.ones(4096, np.float16)
    seq = Accumulation("float16", "sequential")
    got = float(dot(ones, ones, seq))
    assert got == 2048.0
    b = accumulation_bound(seq, 4096)
    assert b.vacuous and abs(got - 4096) <= b.value(4096)
    # 2049 terms: the last one is lost already (error 1); still n u > 1
    assert float(dot(ones[:2049], ones[:2049], seq)) == 2048.0
    assert accumulation_bound(seq, 2049).vacuous
    # 2047 ones: exact, the bound is finite but large (gamma_2047 ~ 2047 / 1)
    assert float(dot(ones[:2047], ones[:2047], seq)) == 2047.0
    b = accumulation_bound(seq, 2047)
    assert not b.vacuous and b.value(2047) > 2047
    pw = Accumulation("float16", "pairwise")
    assert float(dot(ones, ones, pw)) == 4096.0
    bp = accumulation_bound(pw, 4096)
    assert not bp.vacuous and bp.relative == pytest.approx(gamma(12, 2.0 ** -11))
    # 3000 ones in blocks of 256 (float64 block sums): 12 blocks, each exact
    bl = Accumulation("float16", "blocked:256")
    assert float(dot(ones[:3000], ones[:3000], bl)) == 3000.0
    check_bound(ones[:3000], ones[:3000], dot(ones[:3000], ones[:3000], bl), bl)


def test_bound_is_attained_to_within_a_small_factor():
    """The sequential float16 bound is not absurdly loose: a sum of 1 + many terms just
    below half an ulp loses all of them; the error is a sizeable fraction of the bound."""
    n = 64
    x = np.full(n, 2.0 ** -12 * 0.9990234375, np.float16)   # just below u/2 at 1
    x[0] = 1.0
    acc = Accumulation("float16", "sequential")
    err, v = check_bound(x, np.ones(n, np.float16), dot(x, np.ones(n, np.float16), acc), acc)
    assert err > 0 and err / v > 0.005


def test_native_bounds():
    rng = np.random.default_rng(8)
    for acc_name in ("float16", "bfloat16", "float32", "e4m3"):
        acc = Accumulation(acc_name, "native")
        for kind in ("random", "cancel", "mixed"):
            x, y = adversarial(kind, "float16", 64, rng)
            with np.errstate(all="ignore"):
                got = dot(x, y, acc)
            check_bound(x, y, got, acc, what=f"{acc} {kind}")
