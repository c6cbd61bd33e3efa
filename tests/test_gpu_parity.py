"""The CuPy path against the NumPy reference, bit for bit (NaN matches NaN), in the manner
of ``cupy.testing.numpy_cupy_array_equal``: every explicit order and accumulator of the
engine through the CUDA kernels.  Runs on a GPU, and in CI on the stand-in (whose
RawModule runs the host build of the same kernels with CuPy's launch convention)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from minifp.accumulate import Accumulation, engine
from minifp.formats import Rounding
from test_kernels_parity import _data, accumulations, same_bits

pytestmark = pytest.mark.gpu

MODES = [m.value for m in Rounding]
ACC_FORMATS = ["float32", "tf32", "float16", "bfloat16", "e5m2", "e4m3", "e4m3fnuz",
               "posit8", "posit16", "posit32", "e6m9b20", "e3m4:ftz", "e7m12fn:sat",
               "float64", "float64:sat"]
ORDERS = ["sequential", "pairwise", "blocked:3", "blocked:32", "exact"]


def numpy_cupy_equal(cupy, fn, *arrays, what=""):
    """fn(*numpy arrays) against fn(*cupy arrays), bit for bit; errors must agree."""
    def run(args):
        try:
            return fn(*args)
        except ValueError as e:
            return f"ValueError: {e}"
    want = run(arrays)
    got = run([cupy.asarray(a) for a in arrays])
    if isinstance(want, str) or isinstance(got, str):
        assert want == got, what
        return
    assert isinstance(got, cupy.ndarray), what
    g = cupy.asnumpy(got)
    assert g.dtype == want.dtype, what
    assert same_bits(want, g), f"{what}: numpy {want.ravel()[:4]} cupy {g.ravel()[:4]}"


CASES = [("f16", (3, 37, 5)), ("f32", (2, 64, 3)), ("mixed", (4, 29, 6)),
         ("special", (3, 21, 4)), ("ties", (3, 33, 4)), ("f32", (1, 1, 1)),
         ("f16", (9, 13, 2)), ("f16", (8, 40, 70))]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("acc_name", ACC_FORMATS)
def test_every_order_and_format(cupy, acc_name, order):
    for acc in accumulations(acc_name, order):
        for c, (kind, (m, K, n)) in enumerate(CASES):
            x, y = _data(kind, (m, K), c), _data(kind, (K, n), c + 100)
            numpy_cupy_equal(cupy, lambda a, b: engine.matmul(
                a, b, acc, rng=np.random.default_rng(5)), x, y,
                what=f"{acc} {kind} {(m, K, n)}")


@pytest.mark.parametrize("K", [0, 1, 2, 7, 300])
def test_sums_means_and_batches(cupy, K):
    rng = np.random.default_rng(K)
    v = rng.standard_normal((4, K)).astype(np.float16)
    x = rng.standard_normal((2, 3, 4, 9)).astype(np.float32)
    y = rng.standard_normal((3, 9, 5)).astype(np.float32)
    for order, mode in itertools.product(ORDERS, ["nearest_even", "stochastic", "down"]):
        acc = Accumulation("bfloat16", order, True, mode)
        for f in (engine.sum, engine.mean):
            numpy_cupy_equal(cupy, lambda a: f(a, axis=-1, acc=acc,
                                              rng=np.random.default_rng(1)), v,
                             what=f"{f.__name__} {acc} K={K}")
        numpy_cupy_equal(cupy, lambda a, b: engine.matmul(a, b, acc,
                                                          rng=np.random.default_rng(2)),
                         x, y, what=f"batched {acc}")


def test_results_stay_on_the_device_and_launch_kernels(cupy):
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float16)
    r = engine.matmul(cupy.asarray(x), cupy.asarray(x.T), Accumulation("float16", "pairwise"))
    assert isinstance(r, cupy.ndarray) and r.dtype == np.float16
    launches = getattr(cupy, "launches", None)
    if launches is not None:        # the stand-in records its launches
        assert any(name == "mf_matmul_rows_kernel" for name, *_ in launches)
