"""The C kernels against the NumPy reference, bit for bit (NaN matches NaN).

The NumPy orders are the spec; a difference is a bug in one of them, to be found against
the exact Fraction reference (tests/test_accumulate_reference.py holds the orders to it).
Every test here skips where the kernels cannot be built (no C compiler)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minifp import kernels
from minifp.accumulate import Accumulation, engine
from minifp.formats import Rounding, get_format
from minifp.formats.stream import draw_key

MODES = [m.value for m in Rounding]
ACC_FORMATS = ["float32", "tf32", "float16", "bfloat16", "e5m2", "e4m3", "e4m3fnuz",
               "posit8", "posit16", "posit32", "e6m9b20", "e3m4:ftz", "e7m12fn:sat",
               "e5m0", "float64", "float64:sat", "float64:ftz"]
ORDERS = ["sequential", "pairwise", "blocked:3", "blocked:32", "exact"]


pytestmark = pytest.mark.usefixtures("kernels_built")


def same_bits(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(
        ((a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))).all())


def both(monkeypatch, fn):
    """fn() under the NumPy reference and under the kernels (or the errors they raise)."""
    out = []
    for backend in ("numpy", "c"):
        monkeypatch.setenv("MINIFP_KERNELS", backend)
        try:
            out.append(fn())
        except ValueError as e:
            out.append(f"ValueError: {e}")
    return out


def assert_same(monkeypatch, fn, what):
    ref, got = both(monkeypatch, fn)
    if isinstance(ref, str) or isinstance(got, str):
        assert ref == got, f"{what}: {ref!r} vs {got!r}"
        return
    if not same_bits(ref, got):
        r, g = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        bad = ~((r == g) | (np.isnan(r) & np.isnan(g)))
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} differ, e.g. "
                             f"numpy {r[bad][:3]} vs kernels {g[bad][:3]}")


# ---------------------------------------------------------------------- rounding

def _rounding_inputs(rng, count):
    with np.errstate(invalid="ignore", over="ignore"):
        codes16 = np.arange(1 << 16, dtype=np.uint16)
        f16 = codes16.view(np.float16).astype(np.float64)
        bf16 = (codes16.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        f32 = rng.integers(0, 1 << 32, count, dtype=np.uint64).astype(np.uint32) \
            .view(np.float32).astype(np.float64)
        f64 = rng.integers(0, 1 << 63, count, dtype=np.uint64).view(np.float64) \
            * rng.choice([-1.0, 1.0], count)
    return np.concatenate([f16, bf16, f32, f64])


ROUND_FORMATS = ["float16", "bfloat16", "e5m2", "e4m3", "e4m3fnuz", "e5m2fnuz",
                 "e4m3b11fnuz", "e3m2", "e2m3", "e2m1", "posit8", "posit16", "posit8_0",
                 "posit16_1", "e5m2:ftz", "e4m3:sat", "float16:sat", "e5m0", "tf32",
                 "posit32", "e8m20", "e11m40", "posit(12,2)", "e10m2b10", "float64:ftz"]


@pytest.mark.parametrize("name", ROUND_FORMATS)
def test_rounding_kernel_matches_numpy_in_every_mode(name):
    """Every float16 and bfloat16 code and ~10**7 random float32/float64 patterns in all,
    spread over the 8- and 16-bit formats and modes (and a few wider spellings)."""
    from minifp.kernels.host import round_array
    fmt = get_format(name)
    rng = np.random.default_rng(len(name))
    x = _rounding_inputs(rng, 80_000 if fmt.bits <= 16 else 20_000)
    for mode in MODES:
        if fmt.precision >= 53 and mode != "nearest_even":
            continue
        want = fmt.round(x, mode, np.random.default_rng(3), dtype=np.float64)
        got = round_array(fmt, x, Rounding(mode), key=draw_key(np.random.default_rng(3)))
        assert same_bits(want, got), f"{name} {mode}"


# ------------------------------------------------------------------------ orders

def _data(kind, shape, seed):
    r = np.random.default_rng(seed)
    if kind == "f16":
        return r.standard_normal(shape).astype(np.float16)
    if kind == "f32":
        return r.standard_normal(shape).astype(np.float32)
    if kind == "f64":
        return r.standard_normal(shape)
    if kind == "mixed":          # mixed magnitudes, zeros, subnormal-range products
        a = r.standard_normal(shape) * np.exp2(r.integers(-40, 30, shape))
        a.flat[::7] = 0
        return a.astype(np.float32)
    if kind == "special":        # Inf, NaN and overflow mid-sum
        a = r.standard_normal(shape) * 1e4
        flat = a.reshape(-1)
        for i, v in zip((3, 11, 17), (np.inf, np.nan, -np.inf)):
            if i < flat.size:
                flat[i] = v
        return a.astype(np.float32)
    if kind == "ties":           # terms whose sums land on midpoints of narrow formats
        return (r.integers(-8, 9, shape) * 2.0 ** r.integers(-12, 4, shape))
    if kind == "cancel":
        a = r.standard_normal(shape)
        return np.concatenate([a, -a], axis=-1) if len(shape) == 1 else a
    raise AssertionError(kind)


CASES = [("f16", (3, 37, 5)), ("f32", (2, 64, 3)), ("mixed", (4, 29, 6)),
         ("f64", (2, 17, 3)), ("special", (3, 21, 4)), ("ties", (3, 33, 4)),
         ("f32", (1, 1, 1)), ("f32", (2, 2, 2)), ("f32", (2, 3, 1)),
         ("f16", (9, 13, 2)),            # more rows than outputs per row: transposed
         ("special", (9, 21, 2))]        # transposed, with Inf, NaN and overflow


def accumulations(acc_name, order):
    """The Accumulations of ``order`` in ``acc_name`` checked for parity: fma on and off
    (exact is fma only) in every rounding mode (float64 accumulators: nearest_even, and up,
    whose refusal is the same one line)."""
    for fma, mode in itertools.product([True, False], MODES):
        if order == "exact" and not fma:
            continue
        if acc_name.startswith("float64") and mode not in ("nearest_even", "up"):
            continue
        yield Accumulation(acc_name, order, fma, mode)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("acc_name", ACC_FORMATS)
def test_orders_match_numpy(monkeypatch, acc_name, order):
    """Every order x accumulator x fma x rounding mode, on adversarial data."""
    for acc in accumulations(acc_name, order):
        for c, (kind, (m, K, n)) in enumerate(CASES):
            x = _data(kind, (m, K), c)
            y = _data(kind, (K, n), c + 100)
            assert_same(monkeypatch, lambda: engine.matmul(x, y, acc,
                                                           rng=np.random.default_rng(5)),
                        f"{acc} {kind} {(m, K, n)}")


@pytest.mark.parametrize("acc_name", ["float16", "e5m0", "bfloat16"])
@pytest.mark.parametrize("order", ORDERS)
def test_long_sums_match_numpy(monkeypatch, acc_name, order):
    """K = 2500 products: blocked's block-by-block exactness test, long fast loops, and
    growth bounds of formats with few bits."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2500)).astype(np.float16)
    y = (rng.standard_normal((2500, 3)) / 50).astype(np.float16)
    for mode in ("nearest_even", "toward_zero"):
        acc = Accumulation(acc_name, order, True, mode)
        assert_same(monkeypatch, lambda: engine.matmul(x, y, acc), f"{acc} K=2500")


@pytest.mark.parametrize("K", [0, 1, 2, 3, 7, 5000])
def test_lengths_and_sums(monkeypatch, K):
    rng = np.random.default_rng(K)
    v = rng.standard_normal((4, K)).astype(np.float16)
    for order, mode in itertools.product(ORDERS, ["nearest_even", "stochastic", "down"]):
        acc = Accumulation("float16", order, True, mode)
        assert_same(monkeypatch, lambda: engine.sum(v, axis=-1, acc=acc,
                                                    rng=np.random.default_rng(1)),
                    f"sum {acc} K={K}")
        assert_same(monkeypatch, lambda: engine.mean(v, axis=-1, acc=acc,
                                                     rng=np.random.default_rng(1)),
                    f"mean {acc} K={K}")


def test_batched_and_broadcast_shapes(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 9)).astype(np.float32)
    y = rng.standard_normal((3, 9, 5)).astype(np.float32)
    for order in ORDERS:
        for name in ("bfloat16", "posit16"):
            acc = Accumulation(name, order, True, "stochastic")
            assert_same(monkeypatch, lambda: engine.matmul(x, y, acc,
                                                           rng=np.random.default_rng(2)),
                        f"{acc} batched")
            assert_same(monkeypatch, lambda: engine.matmul(x[0, 0, 0], y[0], acc,
                                                           rng=np.random.default_rng(2)),
                        f"{acc} vector @ matrix")


_finite = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.function_scoped_fixture])
@given(data=st.data(), m=st.integers(1, 3), K=st.integers(1, 12), n=st.integers(1, 3),
       acc_name=st.sampled_from(["float16", "bfloat16", "e4m3", "posit8", "posit16",
                                 "float32", "e5m2fnuz"]),
       order=st.sampled_from(ORDERS), fma=st.booleans(), mode=st.sampled_from(MODES))
def test_hypothesis_inputs(monkeypatch, data, m, K, n, acc_name, order, fma, mode):
    x = np.array(data.draw(st.lists(_finite, min_size=m * K, max_size=m * K)),
                 dtype=np.float32).reshape(m, K)
    y = np.array(data.draw(st.lists(_finite, min_size=K * n, max_size=K * n)),
                 dtype=np.float32).reshape(K, n)
    if order == "exact":
        fma = True
    acc = Accumulation(acc_name, order, fma, mode)
    assert_same(monkeypatch, lambda: engine.matmul(x, y, acc, rng=np.random.default_rng(0)),
                f"{acc} hypothesis")


def test_thread_count_changes_no_bit(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 300)).astype(np.float16)
    y = rng.standard_normal((300, 70)).astype(np.float16)
    monkeypatch.setenv("MINIFP_KERNELS", "c")
    for order, (a, b) in itertools.product(ORDERS, [(x, y), (x, y[:, :5])]):
        acc = Accumulation("float16", order, True, "stochastic")
        runs = []
        for count in ("1", "2", "3", "7"):
            monkeypatch.setenv("MINIFP_THREADS", count)
            runs.append(engine.matmul(a, b, acc, rng=np.random.default_rng(9)))
        assert all(same_bits(runs[0], r) for r in runs[1:]), order


def test_float16_results_convert_exactly():
    """The kernels' float64 -> float16 conversion of results (every float16 value, NaN,
    Inf and both zeros) gives NumPy's codes."""
    from minifp.kernels.host import to_float16
    codes = np.arange(1 << 16, dtype=np.uint16)
    h = codes.view(np.float16)
    with np.errstate(invalid="ignore"):
        values = np.tile(h.astype(np.float64), 2)             # above the size threshold
    got = to_float16(values)
    assert got.dtype == np.float16
    nan = np.isnan(values)
    assert (got.view(np.uint16)[~nan] == np.tile(codes, 2)[~nan]).all()
    assert np.isnan(got[nan]).all()


# ------------------------------------------------- fast paths at realistic shapes

def _wide_case(kind, seed):
    """(x (8, K), y (K, 70)): four-row groups, column tiles, the bounded and checked loops."""
    r = np.random.default_rng(seed)
    K = 37 if seed % 2 else 40          # pairwise: groups of eight leaves and a remainder
    x = r.standard_normal((8, K))
    y = r.standard_normal((K, 70)) / np.sqrt(K)
    if kind == "big":                   # partial sums beyond float16's max, then back
        x[:4] = 3000.0
        y[:K // 2, ::3] = 20.0
        y[K // 2:, ::3] = -20.0
    elif kind == "bounce":              # pairs beyond float16's max that cancel at once
        x[:4] = 3000.0
        y[:, ::3] = np.where(np.arange(K) % 4 < 2, 20.0, -20.0)[:, None]
    elif kind == "f32-overflow":        # a float32 partial sum overflows mid-sum
        x[2, 5] = x[2, 6] = 3e38
        y[5, 3] = y[6, 3] = 1.0
        y[7:, 3] = 0.0
    elif kind == "nan":
        x[5, 9] = np.nan
        y[11, 40] = np.inf
    elif kind == "tiny":                # partial sums in the subnormal ranges
        x *= 2.0 ** -70
        y *= 2.0 ** -70
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("kind", ["plain", "big", "bounce", "f32-overflow", "nan", "tiny"])
@pytest.mark.parametrize("acc_name", ["float16", "float32", "bfloat16", "e5m2", "e4m3"])
def test_fast_paths_match_numpy(monkeypatch, kind, acc_name):
    """The vectorised loops (rows bounded by the column maxima or range-checked, float32's
    result test, pairwise's eight-leaf groups) on outputs wide enough to reach them."""
    for seed in (1, 2):
        x, y = _wide_case(kind, seed)
        for order, fma in itertools.product(["sequential", "pairwise"], [True, False]):
            acc = Accumulation(acc_name, order, fma, "nearest_even")
            for a, b in ((x, y), (x.astype(np.float16), y.astype(np.float16))):
                with np.errstate(over="ignore", invalid="ignore"):
                    assert_same(monkeypatch, lambda: engine.matmul(a, b, acc),
                                f"{acc} {kind} {a.dtype} seed {seed}")


@pytest.mark.parametrize("kind", ["f16", "f32", "mixed", "special", "ties", "f64"])
def test_kernel_exact_order_matches_reference(kind):
    """The kernels' exact order itself (the engine first tries one certified float64 BLAS
    product, so certifiable data would not reach it): odd and nearest sums as
    orders.exact gives them."""
    from minifp.accumulate import orders
    from minifp.kernels.host import matmul_order
    acc = Accumulation("float16", "exact")
    for seed, (m, K, n) in enumerate([(3, 37, 5), (6, 300, 9), (9, 13, 2)]):
        x = _data(kind, (m, K), seed).astype(np.float64)[None]
        y = _data(kind, (K, n), seed + 50).astype(np.float64)[None]
        with np.errstate(invalid="ignore", over="ignore"):
            want = orders.exact(x, y)
            got = matmul_order(acc, x, y, 0, False, False)
        assert same_bits(want[0], got[0]) and same_bits(want[1], got[1]), (kind, m, K, n)
