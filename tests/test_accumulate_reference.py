"""The accumulation engine against scalar references written from the documented orders
(``minifp/accumulate/spec.py``), not from the engine.

Every reference value is exact: products and sums are ``fractions.Fraction`` (zeros are
kept as signed Python floats), and each rounding is ``exact_reference.reference_round``
applied to one exact value. Results are compared bit for bit, signed zeros included;
a zero result is +0 (the engine's documented convention: the sign of a zero sum depends
on the order and carries no information).

Orders (spec.py):
  sequential  s_1 = R(p_1), s_k = R(s_{k-1} + p_k); without fma p_k is R(x_k y_k) first
  pairwise    levels of neighbour pairs (0,1), (2,3), ... added and rounded; an odd last
              element moves up unchanged; the final value is in the accumulator format
  blocked:b   each block's exact sum -> float64 (nearest even) -> accumulator; blocks
              accumulated sequentially
  exact       the exact sum, rounded once to the output format: with the accumulation's
              rounding when no output format is given, else with ``out_rounding``
Then, for the non-exact orders, one rounding to ``out`` with ``out_rounding``.
"""
from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exact_reference import reference_round
from minifp.accumulate import Accumulation, dot, matmul
from minifp.accumulate import sum as acc_sum
from minifp.formats import get_format

# every test against the exact reference, for the NumPy orders and for the C kernels
pytestmark = pytest.mark.usefixtures("both_engines")

F64 = get_format("float64")
ACCUMULATORS = ("float16", "bfloat16", "float32", "e4m3", "e5m2", "posit8", "posit16")
INPUTS = ("float16", "bfloat16", "e4m3", "posit8")
DETERMINISTIC_MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "to_odd")


# ------------------------------------------------------------------ exact scalar algebra
def exact(v):
    """A finite non-zero value as a Fraction; zeros and non-finite values as floats."""
    f = float(v)
    return Fraction(f) if (f != 0 and math.isfinite(f)) else f


def _negative(v) -> bool:
    if isinstance(v, Fraction):
        return v < 0
    return math.copysign(1.0, v) < 0


def mul(a, b):
    """Exact product; a zero product keeps the IEEE sign."""
    if isinstance(a, float) or isinstance(b, float):
        if not (math.isfinite(a) and math.isfinite(b)):
            return float(a) * float(b)
        if a == 0 or b == 0:
            return -0.0 if _negative(a) != _negative(b) else 0.0
    return a * b


def add(a, b, mode="nearest_even"):
    """Exact sum; an exact zero from non-zero operands is +0 (-0 rounding down), the sum
    of two zeros of one sign keeps it (IEEE 754 6.3). Non-finite values propagate."""
    if (isinstance(a, float) and not math.isfinite(a)) or \
            (isinstance(b, float) and not math.isfinite(b)):
        return float(a) + float(b)
    s = Fraction(a) + Fraction(b)
    if s != 0:
        return s
    if a == 0 and b == 0 and _negative(a) == _negative(b):
        return a
    return -0.0 if mode == "down" else 0.0


def rnd(fmt, v, mode="nearest_even"):
    """One correct rounding of the exact value ``v`` onto ``fmt`` (exact result)."""
    return exact(reference_round(fmt, v, mode))


def exact_sum(terms, mode="nearest_even"):
    total = None
    for t in terms:
        total = t if total is None else add(total, t, mode)
    return 0.0 if total is None else total


# ------------------------------------------------------------------------- the orders
def _products(xs, ys, fmt, mode, fma):
    ps = [mul(exact(x), exact(y)) for x, y in zip(xs, ys)]
    return ps if fma else [rnd(fmt, p, mode) for p in ps]


def ref_sequential(xs, ys, fmt, mode="nearest_even", fma=True):
    s = None
    for p in _products(xs, ys, fmt, mode, fma):
        s = rnd(fmt, p if s is None else add(s, p, mode), mode)
    return 0.0 if s is None else s


def ref_pairwise(xs, ys, fmt, mode="nearest_even", fma=True):
    level = _products(xs, ys, fmt, mode, fma)
    if not level:
        return 0.0
    while len(level) > 1:
        nxt = [rnd(fmt, add(level[i], level[i + 1], mode), mode)
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return rnd(fmt, level[0], mode)


def ref_blocked(xs, ys, fmt, b, mode="nearest_even", fma=True):
    ps = _products(xs, ys, fmt, mode, fma)
    s = None
    for j in range(0, len(ps), b):
        block = exact_sum(ps[j:j + b], mode)
        t = rnd(fmt, rnd(F64, block, "nearest_even"), mode)
        s = t if s is None else rnd(fmt, add(s, t, mode), mode)
    return 0.0 if s is None else s


def ref_exact(xs, ys, out_fmt, out_mode="nearest_even"):
    ps = [mul(exact(x), exact(y)) for x, y in zip(xs, ys)]
    return rnd(out_fmt, exact_sum(ps, out_mode), out_mode)


def ref_accumulate(xs, ys, acc: Accumulation, out=None, out_rounding="nearest_even"):
    """One output element under ``acc``, rounded to ``out``: a Python float."""
    fmt, mode, fma = acc.format, acc.rounding.value, acc.fma
    kind = acc.order.kind
    out_fmt = fmt if out is None else get_format(out)
    if kind == "exact":
        v = ref_exact(xs, ys, out_fmt, mode if out is None else out_rounding)
    else:
        if kind == "sequential":
            v = ref_sequential(xs, ys, fmt, mode, fma)
        elif kind == "pairwise":
            v = ref_pairwise(xs, ys, fmt, mode, fma)
        elif kind == "blocked":
            v = ref_blocked(xs, ys, fmt, acc.order.block, mode, fma)
        else:
            raise ValueError(f"no reference for order {kind}")
        v = rnd(out_fmt, v, out_rounding)
    v = float(v)
    return 0.0 if v == 0 else v          # zero results are +0 (engine convention)


def ref_matmul(x, y, acc, out=None, out_rounding="nearest_even"):
    """numpy.matmul semantics (batched, broadcasting, 1-D) with the scalar reference."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xv = x[None, :] if x.ndim == 1 else x
    yv = y[:, None] if y.ndim == 1 else y
    lead = np.broadcast_shapes(xv.shape[:-2], yv.shape[:-2])
    xb = np.broadcast_to(xv, lead + xv.shape[-2:])
    yb = np.broadcast_to(yv, lead + yv.shape[-2:])
    res = np.empty(lead + (xv.shape[-2], yv.shape[-1]))
    for idx in np.ndindex(*lead):
        for i in range(xv.shape[-2]):
            for j in range(yv.shape[-1]):
                res[idx + (i, j)] = ref_accumulate(xb[idx + (i,)], yb[idx][:, j], acc, out,
                                                   out_rounding)
    if x.ndim == 1:
        res = res[..., 0, :]
    if y.ndim == 1:
        res = res[..., 0]
    return res


def ref_sum(x, axis, acc, out=None, out_rounding="nearest_even"):
    """Sum over ``axis`` with terms in C index order of the reduced axes."""
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(x.ndim)) if axis is None else \
        tuple(sorted(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)))
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    moved = np.transpose(x, kept + axes)
    rows = moved.reshape(int(np.prod([x.shape[i] for i in kept], dtype=int)), -1)
    res = [ref_accumulate(r, np.ones(r.shape), acc, out, out_rounding) for r in rows]
    return np.array(res).reshape(tuple(x.shape[i] for i in kept))


def assert_bitwise(got, want, what=""):
    """Same values, same signs of zero (as float64), NaN == NaN."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    same = ((got == want) & (np.signbit(got) == np.signbit(want))) | \
        (np.isnan(got) & np.isnan(want))
    if not same.all():
        idx = [tuple(int(i) for i in t) for t in np.argwhere(~same)[:5]]
        shown = [(i, got[i].item(), want[i].item()) for i in idx]
        raise AssertionError(f"{what}: {int((~same).sum())} of {same.size} differ "
                             f"(index, engine, reference): {shown}")


# ------------------------------------------------------------------------------ data
def values_in(fmt_name, shape, rng, scale=1.0, extreme=0.1):
    """Random values of a format: mostly normal(0, scale) rounded, a fraction ``extreme``
    drawn from all finite codes (every exponent), a few zeros and exact negatives."""
    fmt = get_format(fmt_name)
    v = fmt.round(rng.normal(0.0, scale, size=shape)).astype(np.float64)
    codes = rng.integers(0, 1 << fmt.bits, size=shape).astype(fmt.code_dtype)
    wild = fmt.decode(codes).astype(np.float64)
    wild = np.where(np.isfinite(wild), wild, 1.0)
    pick = rng.random(shape) < extreme
    v = np.where(pick, wild, v)
    v = np.where(rng.random(shape) < 0.05, 0.0, v)
    assert fmt.is_representable(v).all()
    return v.astype(fmt.carrier)


def orders_for_tests(fmt):
    return [Accumulation(fmt, "sequential", True), Accumulation(fmt, "sequential", False),
            Accumulation(fmt, "pairwise", True), Accumulation(fmt, "pairwise", False),
            Accumulation(fmt, "blocked:1"), Accumulation(fmt, "blocked:3"),
            Accumulation(fmt, "blocked:4", False), Accumulation(fmt, "exact")]


def _seed(*parts):
    return zlib.crc32("|".join(map(str, parts)).encode())


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("acc_name", ACCUMULATORS)
@pytest.mark.parametrize("in_name", INPUTS)
def test_matmul_every_order_matches_reference(acc_name, in_name):
    rng = np.random.default_rng(_seed("mm", acc_name, in_name))
    extreme = 0.0 if acc_name in ("e4m3", "e5m2") else 0.1
    x = values_in(in_name, (3, 7), rng, extreme=extreme)
    y = values_in(in_name, (7, 2), rng, extreme=extreme)
    for acc in orders_for_tests(acc_name):
        assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), f"{acc} {in_name}")


@pytest.mark.parametrize("acc_name", ("float16", "bfloat16", "e4m3", "posit8"))
def test_dot_lengths_and_output_formats(acc_name):
    """Lengths 0..9 (odd tree levels, partial blocks) and outputs other than the
    accumulator, with directed output rounding."""
    rng = np.random.default_rng(_seed("dot", acc_name))
    for n in range(0, 10):
        x = values_in("float16", (n,), rng, scale=2.0, extreme=0.0)
        y = values_in("bfloat16", (n,), rng, scale=2.0, extreme=0.0)
        for acc in orders_for_tests(acc_name):
            for out, mode in ((None, "nearest_even"), ("e5m2", "up"), ("posit8", "down")):
                got = dot(x, y, acc, out=out, out_rounding=mode)
                assert np.asarray(got).shape == ()
                assert_bitwise(got, ref_accumulate(x, y, acc, out, mode),
                               f"n={n} {acc} -> {out} {mode}")


@pytest.mark.parametrize("acc_name", ACCUMULATORS)
def test_sequential_every_deterministic_mode(acc_name):
    rng = np.random.default_rng(_seed("modes", acc_name))
    x = values_in("bfloat16", (2, 9), rng, extreme=0.0)
    y = values_in("e4m3", (9, 3), rng, extreme=0.0)
    for mode in DETERMINISTIC_MODES:
        for fma in (True, False):
            acc = Accumulation(acc_name, "sequential", fma, mode)
            assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), str(acc))


@pytest.mark.parametrize("order", ("pairwise", "blocked:2"))
@pytest.mark.parametrize("mode", ("toward_zero", "up", "to_odd"))
def test_pairwise_blocked_directed_modes(order, mode):
    rng = np.random.default_rng(_seed("dir", order, mode))
    x = values_in("float16", (2, 11), rng, extreme=0.0)
    y = values_in("float16", (11, 2), rng, extreme=0.0)
    for acc_name in ("float16", "e5m2", "posit16"):
        acc = Accumulation(acc_name, order, True, mode)
        assert_bitwise(matmul(x, y, acc), ref_matmul(x, y, acc), str(acc))


@pytest.mark.parametrize("acc_name", ("float16", "e4m3", "posit8", "posit16"))
def test_batched_broadcast_and_vector_matmul(acc_name):
    rng = np.random.default_rng(_seed("batch", acc_name))
    x = values_in("float16", (2, 1, 3, 5), rng, extreme=0.0)
    y = values_in("posit8", (3, 5, 2), rng, extreme=0.0)
    v = values_in("e4m3", (5,), rng, extreme=0.0)
    for acc in (Accumulation(acc_name, "sequential"), Accumulation(acc_name, "pairwise"),
                Accumulation(acc_name, "blocked:2"), Accumulation(acc_name, "exact")):
        got = matmul(x, y, acc)
        assert got.shape == (2, 3, 3, 2)
        assert_bitwise(got, ref_matmul(x, y, acc), f"batched {acc}")
        assert_bitwise(matmul(v, y, acc), ref_matmul(v, y, acc), f"vector @ batch {acc}")
        assert_bitwise(matmul(x, v, acc), ref_matmul(x, v, acc), f"batch @ vector {acc}")


@pytest.mark.parametrize("acc_name", ACCUMULATORS)
def test_sum_over_axes(acc_name):
    rng = np.random.default_rng(_seed("sum", acc_name))
    x = values_in("bfloat16", (3, 4, 5), rng, extreme=0.0)
    for acc in (Accumulation(acc_name, "sequential"), Accumulation(acc_name, "pairwise"),
                Accumulation(acc_name, "blocked:3"), Accumulation(acc_name, "exact"),
                Accumulation(acc_name, "sequential", False, "toward_zero")):
        for axis in (None, 0, 2, -1, (0, 2), (1, 2)):
            got = acc_sum(x, axis=axis, acc=acc)
            assert_bitwise(got, ref_sum(x, axis, acc), f"{acc} axis={axis}")
        kd = acc_sum(x, axis=(0, 2), acc=acc, keepdims=True)
        assert kd.shape == (1, 4, 1)
        assert_bitwise(kd.reshape(4), ref_sum(x, (0, 2), acc), f"{acc} keepdims")


def test_sum_without_fma_rounds_each_term_first():
    """float32 terms into a float16 accumulator: without fma each term is rounded to the
    accumulator before it is added (the 'product' of the term and 1)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 33)).astype(np.float32)
    for order in ("sequential", "pairwise", "blocked:4"):
        for fma in (True, False):
            acc = Accumulation("float16", order, fma)
            assert_bitwise(acc_sum(x, axis=1, acc=acc), ref_sum(x, 1, acc), str(acc))


def test_output_dtype_is_the_output_carrier():
    x = np.ones((2, 3), np.float16)
    assert matmul(x, x.T, Accumulation("float32")).dtype == np.float32
    assert matmul(x, x.T, Accumulation("float32"), out="float16").dtype == np.float16
    assert matmul(x, x.T, Accumulation("posit16", "exact")).dtype == \
        get_format("posit16").carrier


def test_empty_sum_is_positive_zero():
    x = np.zeros((2, 0), np.float16)
    y = np.zeros((0, 3), np.float16)
    for acc in orders_for_tests("float16"):
        got = matmul(x, y, acc)
        assert got.shape == (2, 3)
        assert_bitwise(got, np.zeros((2, 3)), f"empty {acc}")


def test_zero_results_are_positive_zero():
    """-0 products and exact cancellation all give +0 (documented engine convention)."""
    x = np.array([-0.0, -0.0, 1.0, -1.0], np.float16)
    y = np.array([1.0, 1.0, 3.0, 3.0], np.float16)
    for acc in orders_for_tests("float16") + [Accumulation("float16", "sequential", True, "down")]:
        assert_bitwise(dot(x[:2], y[:2], acc), 0.0, f"-0 products {acc}")
        assert_bitwise(dot(x, y, acc), 0.0, f"cancellation {acc}")


# -------------------------------------------------------- numpy float16 scalar loops
def numpy_sequential_float16(x, y, fma):
    s = None
    for a, b in zip(x, y):
        if fma:   # the float64 product of two float16 is exact; one rounding of s + p
            p = np.float64(a) * np.float64(b)
            s = np.float16(p if s is None else np.float64(s) + p)
        else:     # numpy float16 arithmetic is correctly rounded
            p = np.float16(a) * np.float16(b)
            s = p if s is None else np.float16(s + p)
    return np.float16(0.0) if s is None else s


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 300), scale=st.sampled_from([1e-6, 1e-2, 1.0, 30.0]),
       seed=st.integers(0, 2 ** 32 - 1), fma=st.booleans())
def test_sequential_float16_matches_numpy_scalar_loop(n, scale, seed, fma):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, scale, n).astype(np.float16)
    y = rng.normal(0, 1.0, n).astype(np.float16)
    want = numpy_sequential_float16(x, y, fma)
    with np.errstate(over="ignore", invalid="ignore"):
        got = dot(x, y, Accumulation("float16", "sequential", fma))
    assert_bitwise(got, float(want) + 0.0 if not np.isnan(want) else np.nan,
                   f"n={n} fma={fma}")


def test_sequential_float16_stagnates_like_numpy():
    ones = np.ones(4096, np.float16)
    for fma in (True, False):
        got = dot(ones, ones, Accumulation("float16", "sequential", fma))
        assert float(got) == 2048.0 == float(numpy_sequential_float16(ones, ones, fma))


# ------------------------------------------------------------------------------ native
@pytest.mark.parametrize("shape", [((7,), (7,)), ((5, 9), (9, 4)), ((3, 4, 16), (16, 2)),
                                   ((2, 1, 3, 8), (4, 8, 5))])
def test_native_float32_is_numpy_matmul(shape):
    rng = np.random.default_rng(_seed("native", shape))
    x = rng.normal(size=shape[0]).astype(np.float32)
    y = rng.normal(size=shape[1]).astype(np.float32)
    got = matmul(x, y, Accumulation("float32", "native"))
    assert got.dtype == np.float32
    assert_bitwise(got, np.matmul(x, y), f"native {shape}")
    if len(shape[0]) == 1:
        assert_bitwise(dot(x, y, Accumulation("float32", "native")), np.dot(x, y), "dot")


# --------------------------------------------------------------------------- stochastic
@pytest.mark.parametrize("order", ("sequential", "pairwise", "blocked:4"))
@pytest.mark.parametrize("acc_name", ("float16", "bfloat16", "e5m2", "posit8", "posit16"))
def test_stochastic_is_reproducible_and_representable(order, acc_name):
    rng = np.random.default_rng(11)
    x = values_in("float16", (4, 10), rng, extreme=0.0)
    y = values_in("bfloat16", (10, 3), rng, extreme=0.0)
    for fma in (True, False):
        acc = Accumulation(acc_name, order, fma, "stochastic")
        a = matmul(x, y, acc, rng=np.random.default_rng(1))
        b = matmul(x, y, acc, rng=np.random.default_rng(1))
        assert_bitwise(a, b, f"same seed {acc}")
        fmt = get_format(acc_name)
        assert fmt.is_representable(a).all(), f"{acc}: unrepresentable result"
        s1 = acc_sum(x, axis=1, acc=acc, rng=np.random.default_rng(3))
        s2 = acc_sum(x, axis=1, acc=acc, rng=np.random.default_rng(3))
        assert_bitwise(s1, s2, f"sum same seed {acc}")
    # the result lies between the round-down and round-up sequential references
    if order == "sequential":
        acc = Accumulation(acc_name, order, True, "stochastic")
        got = matmul(x, y, acc, rng=np.random.default_rng(2))
        lo = ref_matmul(x, y, Accumulation(acc_name, order, True, "down"))
        hi = ref_matmul(x, y, Accumulation(acc_name, order, True, "up"))
        assert np.all((lo <= got) & (got <= hi))


def test_stochastic_needs_rng():
    x = np.ones(3, np.float16)
    with pytest.raises(ValueError, match="(?i)generator|rng"):
        dot(x, x, Accumulation("float16", "sequential", True, "stochastic"))


# ------------------------------------------------------------- exact order, long vectors
def exact_scaled_sum(values: np.ndarray, mant_bits: int = 24) -> Fraction:
    """Exact sum of float values with at most ``mant_bits`` significant bits: each value is
    m * 2**e with an integer |m| < 2**mant_bits; int64 sums of m per exponent (no
    overflow for up to 2**(62 - mant_bits) terms), then Python ints across exponents."""
    v = np.asarray(values, dtype=np.float64).ravel()
    assert len(v) <= 2 ** (62 - mant_bits)
    frac, e = np.frexp(v)
    m = np.ldexp(frac, mant_bits)
    assert np.all(m == np.round(m)), "more significant bits than promised"
    m = m.astype(np.int64)
    e = e.astype(np.int64) - mant_bits
    exps, inv = np.unique(e, return_inverse=True)
    per = np.zeros(len(exps), dtype=np.int64)
    np.add.at(per, inv, m)
    emin = int(exps.min()) if len(exps) else 0
    total = sum(int(s) << (int(x) - emin) for s, x in zip(per, exps))
    return Fraction(total) * Fraction(2) ** emin


def long_terms(fmt_name, n, rng, mode):
    fmt = get_format(fmt_name)
    if mode == "codes":          # every finite value equally likely: all exponents
        codes = rng.integers(0, 1 << fmt.bits, size=n).astype(fmt.code_dtype)
        v = fmt.decode(codes).astype(np.float64)
        v = v[np.isfinite(v)]
    elif mode == "cancel":       # x, its negation, shuffled, plus a few tiny terms
        half = fmt.round(rng.normal(0, 1e3, size=n // 2 - 8)).astype(np.float64)
        tiny = fmt.decode(rng.integers(1, 8, size=16).astype(fmt.code_dtype)).astype(np.float64)
        v = np.concatenate([half, -half, tiny])
        rng.shuffle(v)
    else:                        # mixed magnitudes
        v = fmt.round(rng.normal(0, 1, n) * 2.0 ** rng.integers(-20, 12, n)).astype(np.float64)
    return v.astype(fmt.carrier)


@pytest.mark.parametrize("fmt_name,mode", [("float16", "codes"), ("float16", "cancel"),
                                           ("float16", "mixed"), ("bfloat16", "codes"),
                                           ("bfloat16", "cancel"), ("posit16", "codes"),
                                           ("posit16", "cancel")])
def test_exact_order_long_vectors(fmt_name, mode):
    n = 2 ** 20
    rng = np.random.default_rng(_seed("long", fmt_name, mode))
    x = long_terms(fmt_name, n, rng, mode)
    total = exact_scaled_sum(x)
    for out, out_mode in ((fmt_name, "nearest_even"), ("float32", "nearest_even"),
                          ("float16", "up"), ("bfloat16", "toward_zero")):
        with np.errstate(over="ignore"):
            got = acc_sum(x, acc=Accumulation(fmt_name, "exact"), out=out, out_rounding=out_mode)
        want = reference_round(get_format(out), total, out_mode) if total != 0 else 0.0
        assert_bitwise(got, want + 0.0, f"{fmt_name} {mode} -> {out} {out_mode} "
                       f"(exact sum {float(total)!r})")


def test_exact_order_long_dot_products():
    """2**16 float16 products with extreme exponents: exact sum of products via ints."""
    rng = np.random.default_rng(21)
    n = 2 ** 16
    f16 = get_format("float16")
    x = f16.decode(rng.integers(0, 1 << 16, n).astype(np.uint16)).astype(np.float64)
    y = f16.decode(rng.integers(0, 1 << 16, n).astype(np.uint16)).astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok].astype(np.float16), y[ok].astype(np.float16)
    # products are exact in float64 with <= 22 significant bits
    p = x.astype(np.float64) * y.astype(np.float64)
    total = exact_scaled_sum(p, 24)
    for out in ("float32", "float64", "bfloat16"):
        got = dot(x, y, Accumulation("float32", "exact"), out=out)
        want = reference_round(get_format(out), total) if total != 0 else 0.0
        assert_bitwise(got, want + 0.0, f"exact dot -> {out}")
