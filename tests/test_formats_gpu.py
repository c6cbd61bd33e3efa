"""CuPy arrays round exactly as NumPy arrays do: on a GPU, and on the CI stand-in (the
``cupy`` fixture of conftest.py)."""
import numpy as np
import pytest

from minifp.formats import get_format

pytestmark = pytest.mark.gpu

FORMATS = ["float16", "bfloat16", "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz",
           "e2m1", "float16:ftz", "e4m3:sat", "posit8", "posit16", "posit32", "posit8_0"]
MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "to_odd", "stochastic"]


def _inputs(dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(4000) * s for s in (1e-9, 1e-4, 1.0, 1e3, 1e9)])
    x = np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, np.nan]])
    return x.astype(dtype)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_rounding_is_bit_identical_to_numpy(cupy, name, mode, dtype):
    fmt = get_format(name)
    x = _inputs(dtype)
    want = fmt.round(x, mode, np.random.default_rng(4))
    got = fmt.round(cupy.asarray(x), mode, np.random.default_rng(4))
    assert isinstance(got, cupy.ndarray) and got.dtype == want.dtype
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
    g, w = cupy.asnumpy(got), want
    same = (g.view(uint) == w.view(uint)) | (np.isnan(g) & np.isnan(w))
    assert same.all(), (name, mode, x[~same][:5], g[~same][:5], w[~same][:5])


@pytest.mark.parametrize("name", FORMATS)
def test_cupy_codes_round_trip(cupy, name):
    fmt = get_format(name)
    x = _inputs(np.float32)
    if not fmt.has_nan:          # (encoding NaN into a format without NaN is an error)
        x = x[~np.isnan(x)]
    codes = fmt.encode(cupy.asarray(x))
    assert np.array_equal(cupy.asnumpy(codes), fmt.encode(x))
    assert np.array_equal(cupy.asnumpy(fmt.decode(codes)), fmt.decode(fmt.encode(x)),
                          equal_nan=True)
