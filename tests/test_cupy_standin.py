"""The CuPy stand-in of tests/cupy_standin: it must fail where real CuPy fails (each test
here can fail: exact messages, exact refusals), run minifp's kernels under CuPy's launch
convention, and plug into minifp.backend."""
from __future__ import annotations

import inspect
import operator
import re
import time
from pathlib import Path

import numpy as np
import pytest

import cupy_standin as cp
from cupy_standin import _core, _names, _random
from minifp import backend

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")
UNSUPPORTED = "Unsupported type <class 'numpy.ndarray'>"
MINIFP = Path(__file__).resolve().parents[1] / "minifp"

#: ``xp.<name>`` attributes used in minifp/ that real CuPy lacks (to be fixed in minifp,
#: not here); the test fails both for a new one and for a stale entry
KNOWN_MISSING: set[str] = set()


def a64(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape or (5,))


# ---- the name list ------------------------------------------------------------------------
def test_the_name_list_is_real_cupys():
    assert re.fullmatch(r"\d+\.\d+\.\d+", cp.CUPY_VERSION)
    first = _names.PATH.read_text().splitlines()[0]
    assert first.startswith(f"# CuPy {cp.CUPY_VERSION}:")
    for name in ("asarray", "asnumpy", "ndarray", "RawModule", "cuda", "random", "float16",
                 "uint64", "inf", "nan", "pi", "newaxis", "where", "frexp", "nextafter"):
        assert name in cp.CUPY_NAMES, name
    for name in ("errstate", "spacing", "seterr", "longdouble"):   # NumPy's, not CuPy's
        assert name not in cp.CUPY_NAMES, name
    assert "normal" not in _names.GENERATOR and "integers" in _names.GENERATOR
    assert "erf" in _names.SPECIAL
    # every recorded parameter list parses and prints back the same
    for table in (_names.SIGNATURES, _names.NDARRAY_SIGNATURES, _names.GENERATOR_SIGNATURES):
        for name, text in table.items():
            assert _names.format_parameters(_names.parse_parameters(text)) == text, name


def _minifp_xp_names() -> set[str]:
    pattern = re.compile(r"\bxp\.([a-zA-Z_][a-zA-Z0-9_]*)")
    names = set()
    for path in MINIFP.rglob("*.py"):
        names |= set(pattern.findall(path.read_text()))
    return names


def test_every_xp_name_in_minifp_is_a_cupy_name():
    used = _minifp_xp_names()
    assert {"where", "asarray", "frexp", "ldexp"} <= used      # the scan sees minifp
    missing = used - cp.CUPY_NAMES
    assert missing == KNOWN_MISSING, (
        f"minifp calls xp.{sorted(missing - KNOWN_MISSING)} that CuPy "
        f"{cp.CUPY_VERSION} lacks; stale KNOWN_MISSING: {sorted(KNOWN_MISSING - missing)}")
    for name in used - KNOWN_MISSING:
        getattr(cp, name)                     # and the stand-in serves each one


@pytest.mark.parametrize("name", ["errstate", "spacing", "seterr", "unstack", "longdouble"])
def test_a_numpy_name_that_cupy_lacks_raises(name):
    assert hasattr(np, name)
    with pytest.raises(AttributeError, match=rf"^module 'cupy' has no attribute '{name}'$"):
        getattr(cp, name)


def test_methods_and_submodules_follow_cupys_names():
    a = cp.arange(4.0)
    with pytest.raises(AttributeError, match="'cupy.ndarray' object has no attribute "
                                             "'itemset'"):
        a.itemset                              # NumPy's, not CuPy's
    with pytest.raises(AttributeError, match="has no attribute 'ctypes'"):
        a.ctypes
    assert float(a.searchsorted(2.5)) == 3     # a CuPy method served from NumPy
    with pytest.raises(AttributeError, match="'cupy.random.Generator' object has no "
                                             "attribute 'normal'"):
        cp.random.default_rng(0).normal(0.0, 1.0, 3)
    with pytest.raises(AttributeError, match="cupyx.scipy.special' has no attribute "
                                             "'airy'"):
        cp.cupyx_scipy_special.airy


# ---- the signatures ------------------------------------------------------------------------
def _params(f):
    return _names.format_parameters(inspect.signature(f))


def test_the_stand_ins_own_functions_have_cupys_parameters():
    checked = 0
    for name, text in _names.NDARRAY_SIGNATURES.items():
        f = _core.ndarray.__dict__.get(name)
        if callable(f):
            assert _params(f) == text, f"ndarray.{name}"
            checked += 1
    for name, text in _names.GENERATOR_SIGNATURES.items():
        f = _random.Generator.__dict__.get(name)
        if f is not None:
            assert _params(f) == text, f"Generator.{name}"
            checked += 1
    for name in ("asarray", "asanyarray", "array", "ascontiguousarray", "asfortranarray",
                 "asnumpy", "copyto", "full", "full_like", "get_array_module"):
        assert _params(getattr(cp, name)) == _names.SIGNATURES[name], name
        checked += 1
    assert checked > 40


def test_calls_are_checked_against_cupys_signatures():
    a = cp.arange(6.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'initial'"):
        cp.max(a, initial=0.0)                 # numpy.max takes it, cupy.max does not
    with pytest.raises(TypeError, match="unexpected keyword argument 'initial'"):
        a.max(initial=0.0)
    with pytest.raises(TypeError, match="'newshape'"):
        cp.reshape(a, shape=(2, 3))            # NumPy 2's keyword, not CuPy's
    with pytest.raises(TypeError, match=r"Wrong arguments \['where'\]"):
        cp.add(a, 1.0, where=a > 2)            # CuPy's ufuncs take out, dtype, casting
    assert cp.reshape(a, (2, 3)).shape == (2, 3)
    assert float(cp.max(a, axis=0, keepdims=False)) == 5.0
    assert cp.add(a, 1.0, dtype=np.float32).dtype == np.float32


# ---- 1. no implicit conversion to NumPy ---------------------------------------------------
@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda a: np.array([a, a]),
                                     np.ascontiguousarray, lambda a: np.asarray(a, float)])
def test_implicit_conversion_raises_cupys_type_error(convert):
    a = cp.asarray(a64())
    with pytest.raises(TypeError) as e:
        convert(a)
    assert str(e.value) == IMPLICIT


@pytest.mark.parametrize("call", [lambda a: float(np.sum(a)), lambda a: np.exp(a),
                                  lambda a: np.concatenate([a, a]), lambda a: np.where(a > 0, a, 0),
                                  lambda a: np.add(a, 1.0), lambda a: np.max(a)])
def test_numpy_functions_on_device_arrays_raise(call):
    a = cp.asarray(a64())
    with pytest.raises(TypeError) as e:
        call(a)
    assert str(e.value).startswith(IMPLICIT)


def test_metadata_functions_and_the_dispatch_mode(monkeypatch):
    a = cp.asarray(a64(2, 3))
    assert np.shape(a) == (2, 3) and np.ndim(a) == 2 and np.result_type(a) == np.float64
    monkeypatch.setattr(_core, "dispatch_numpy_functions", True)   # CuPy's own behaviour
    s = np.sum(a)
    assert isinstance(s, cp.ndarray) and s.shape == ()
    assert isinstance(np.exp(a), cp.ndarray)
    with pytest.raises(TypeError, match=re.escape(UNSUPPORTED)):
        np.add(a, np.ones(3))


# ---- 2. NumPy arrays are not device operands ----------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda a: a + np.ones(3), lambda a: np.ones(3) + a, lambda a: a * np.array(2.0),
    lambda a: np.array(2.0) - a, lambda a: a < np.ones(3), lambda a: a @ np.ones(3),
    lambda a: a[np.array([0, 1])], lambda a: a[np.array([True, False, True])],
    lambda a: cp.where(a > 0, np.ones(3), a), lambda a: cp.maximum(a, np.zeros(3)),
    lambda a: cp.concatenate([a, np.ones(3)]), lambda a: cp.ascontiguousarray(np.ones(3)),
    lambda a: a.__setitem__(0, np.ones(())), lambda a: a.__iadd__(np.ones(3)),
    lambda a: cp.sum(a, out=np.zeros(())), lambda a: cp.copyto(a, np.ones(3))])
def test_numpy_arrays_in_device_expressions_raise(expr):
    a = cp.asarray(np.array([1.0, -2.0, 3.0]))
    with pytest.raises(TypeError) as e:
        expr(a)
    assert UNSUPPORTED in str(e.value) or "incorrect type" in str(e.value)


def test_scalars_are_fine_and_promote_as_numpy_2():
    a = cp.asarray(np.array([1.0, 2.0], dtype=np.float32))
    assert (a + 2.0).dtype == np.float32                    # Python scalars are weak
    assert (2 * a).dtype == np.float32
    assert (a + np.float64(2.0)).dtype == np.float64        # NumPy scalars are not
    assert (np.float64(2.0) * a).dtype == np.float64
    assert (np.float32(3.0) - a).get().tolist() == [2.0, 1.0]
    assert bool((np.float64(1.5) < a).any())
    u = cp.arange(3, dtype=np.uint64)
    assert (np.uint64(3) << u).get().tolist() == [3, 6, 12]
    assert (u >> np.uint64(1)).dtype == np.uint64
    assert (u & 1).dtype == np.uint64


def test_operators_in_place_and_reflected():
    x = np.array([1.0, 2.0, 4.0])
    a = cp.asarray(x)
    same = a
    a += 1.0
    a *= cp.asarray(x)
    assert a is same and a.get().tolist() == ((x + 1) * x).tolist()
    b = cp.asarray(x)
    for got, want in [(1.0 / b, 1.0 / x), (2.0 ** b, 2.0 ** x), (b // 3, x // 3), (-b, -x),
                      (abs(-b), x), (7 % b, 7 % x), (b ** 2, x ** 2), (b - b, x - x)]:
        assert isinstance(got, cp.ndarray) and got.get().tolist() == want.tolist()
    i = cp.arange(4, dtype=np.int64)
    assert (~i).get().tolist() == [-1, -2, -3, -4]
    assert (i ^ 1).get().tolist() == [1, 0, 3, 2] and (i | 4).get().tolist() == [4, 5, 6, 7]
    q, r = divmod(i, 3)
    assert q.get().tolist() == [0, 0, 0, 1] and r.get().tolist() == [0, 1, 2, 0]


# ---- 3. 0-d arrays, never NumPy scalars -----------------------------------------------------
def test_reductions_and_elements_are_0d_arrays():
    x = a64(3, 4)
    a, b = cp.asarray(x), cp.asarray(x)
    for r in (a.sum(), cp.max(a), a.min(), a.mean(), a.any(), (a == b).all(), a.argmax(),
              cp.sum(a), a.prod(), a[1, 2], a[1][2], cp.isfinite(a).all()):
        assert type(r) is cp.ndarray and r.shape == (), r
    assert float(a.sum()) == x.sum() and int(a.argmax()) == x.argmax()
    assert bool((a == b).all()) is True and a[1, 2].item() == x[1, 2]
    assert a.sum(axis=0, keepdims=True).shape == (1, 4)
    assert a.cumsum(axis=1).get().tolist() == x.cumsum(axis=1).tolist()
    e = a[1, 2]
    e[...] = 7.0                                  # a 0-d view, as on CuPy
    assert float(a[1, 2]) == 7.0


def test_no_index_protocol_on_device_scalars():
    i = cp.asarray(np.int64(3))
    with pytest.raises(TypeError):
        operator.index(i)                         # CuPy 14's ndarray has no __index__
    with pytest.raises(TypeError):
        range(i)
    assert int(i) == 3                            # __int__ is there (a synchronisation)
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        iter(i)
    with pytest.raises(TypeError, match="len\\(\\) of unsized object"):
        len(i)
    with pytest.raises(ValueError):
        bool(cp.arange(3))


# ---- 4. float -> int casts --------------------------------------------------------------------
@pytest.mark.parametrize("value,dtype", [
    (np.nan, np.int64), (np.inf, np.int32), (-np.inf, np.uint64), (2.0 ** 63, np.int64),
    (-(2.0 ** 63) - 2048, np.int64), (2.0 ** 64, np.uint64), (256.0, np.uint8),
    (-1.0, np.uint8), (128.0, np.int8), (2.0 ** 31, np.int32), (-(2.0 ** 31) - 1, np.int32)])
def test_float_to_int_casts_of_nan_inf_and_out_of_range_raise(value, dtype):
    x = np.array([1.0, value, 3.0])
    a = cp.asarray(x)
    with pytest.raises(ValueError, match="x86 and CUDA convert those differently"):
        a.astype(dtype)
    with pytest.raises(ValueError, match="x86 and CUDA"):
        cp.floor(a).astype(dtype)
    with pytest.raises(ValueError, match="x86 and CUDA"):
        cp.asarray(x, dtype=dtype)
    with pytest.raises(ValueError, match="x86 and CUDA"):
        cp.zeros(3, dtype=dtype)[...] = a
    with pytest.raises(ValueError, match="x86 and CUDA"):
        cp.full(3, value, dtype=dtype)


@pytest.mark.parametrize("value,dtype,want", [
    (2.0 ** 63 - 1024, np.int64, 2 ** 63 - 1024), (-(2.0 ** 63), np.int64, -(2 ** 63)),
    (2.0 ** 64 - 2048, np.uint64, 2 ** 64 - 2048), (-0.75, np.uint8, 0), (255.9, np.uint8, 255),
    (-128.9, np.int8, -128), (-2.5, np.int32, -2)])
def test_float_to_int_casts_in_range_work(value, dtype, want):
    a = cp.asarray(np.array([value]))
    assert a.astype(dtype).item() == want


def test_views_and_float_casts_are_not_checked():
    a = cp.asarray(np.array([np.nan, np.inf, 1e300]))
    assert a.view(np.int64).dtype == np.int64
    assert a.view(np.uint64).get()[0] == np.array(np.nan).view(np.uint64)
    with np.errstate(over="ignore"):
        assert a.astype(np.float16).get()[2] == np.inf
    assert a.astype(np.bool_).get().tolist() == [True, True, True]
    with pytest.raises(ValueError, match="float32 to int32"):
        cp.asarray(np.array([np.nan], dtype=np.float32)).astype(np.int32)


# ---- the ndarray API ---------------------------------------------------------------------------
def test_the_ndarray_api():
    x = np.arange(24.0).reshape(2, 3, 4)
    a = cp.asarray(x)
    assert (a.shape, a.dtype, a.ndim, a.size, a.itemsize, a.nbytes, a.strides) == \
        (x.shape, x.dtype, x.ndim, x.size, x.itemsize, x.nbytes, x.strides)
    assert a.flags.c_contiguous and not a.T.flags.c_contiguous and a.flags["C_CONTIGUOUS"]
    assert a.T.shape == (4, 3, 2) and a.base is None and a.reshape(6, 4).base is not None
    assert a.astype(np.float64, copy=False) is a and a.astype(np.float64) is not a
    for got, want in [(a.reshape(6, 4), x.reshape(6, 4)), (a.ravel(), x.ravel()),
                      (a.transpose(2, 0, 1), x.transpose(2, 0, 1)),
                      (a.swapaxes(0, 2), x.swapaxes(0, 2)), (a[:1].squeeze(), x[:1].squeeze()),
                      (a.copy(), x.copy()), (a.view(np.int64), x.view(np.int64)),
                      (a[..., 1:3], x[..., 1:3]), (a[a > 10], x[x > 10]),
                      (a[cp.asarray(np.array([1, 0]))], x[[1, 0]]), (a[np.int64(1)], x[1]),
                      (a[[1, 0]], x[[1, 0]]), (a[None, 0], x[None, 0])]:
        assert isinstance(got, cp.ndarray) and np.array_equal(got.get(), want)
    assert len(a) == 2 and [r.shape for r in a] == [(3, 4), (3, 4)]
    assert a.tolist() == x.tolist()
    assert a.data.ptr == a._a.ctypes.data and a[1].data.ptr == a._a.ctypes.data + 96
    h = a.get()
    h[0, 0, 0] = -1.0                      # a copy, not a view
    assert float(a[0, 0, 0]) == 0.0 and cp.asnumpy(a)[0, 0, 0] == 0.0
    assert cp.asnumpy(x) is x or np.shares_memory(cp.asnumpy(x), x)
    b = cp.zeros((2, 3))
    b[0] = cp.asarray(np.array([1.0, 2.0, 3.0]))
    b[1, cp.asarray(np.array([0, 2]))] = 5.0
    b[:, 1] += 1.0
    assert b.get().tolist() == [[1.0, 3.0, 3.0], [5.0, 1.0, 5.0]]
    c = cp.empty(3, dtype=np.int64)
    c.fill(4)
    assert c.get().tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="x86 and CUDA"):
        c.fill(np.nan)
    assert repr(cp.arange(2.0)) == repr(np.arange(2.0)) and f"{cp.asarray(1.5):.2f}" == "1.50"


def test_generic_module_functions_wrap_and_unwrap():
    x = a64(4, 3)
    a = cp.asarray(x)
    assert isinstance(cp.zeros((2, 2)), cp.ndarray) and cp.ones(3).dtype == np.float64
    assert cp.arange(5).get().tolist() == list(range(5))
    assert cp.linspace(0, 1, 3).get().tolist() == [0.0, 0.5, 1.0]
    assert np.array_equal(cp.stack([a, a]).get(), np.stack([x, x]))
    assert np.array_equal(cp.concatenate((a, a), axis=1).get(), np.concatenate((x, x), 1))
    nz = cp.nonzero(a > 0)
    assert isinstance(nz, tuple) and all(isinstance(i, cp.ndarray) for i in nz)
    m, e = cp.frexp(a)
    assert isinstance(m, cp.ndarray) and np.array_equal(cp.ldexp(m, e).get(), x)
    out = cp.empty_like(a)
    assert cp.multiply(a, 2.0, out=out) is out and np.array_equal(out.get(), 2 * x)
    assert cp.float64 is np.float64 and cp.inf == np.inf and cp.newaxis is None
    assert np.isnan(cp.nan) and cp.pi == np.pi
    assert isinstance(cp.maximum.reduce(a, axis=0), cp.ndarray)
    assert cp.get_array_module(a) is cp and cp.get_array_module(x) is np
    assert cp.asarray(a) is a and cp.array(a) is not a
    assert cp.asarray([cp.asarray(1.0), 2.0]).get().tolist() == [1.0, 2.0]


# ---- RawModule: minifp's kernels under CuPy's launch convention -----------------------------
@pytest.fixture(scope="module")
def kernels():
    from minifp.kernels import library, nvrtc
    try:
        lib = library()
    except Exception as e:                           # MINIFP_KERNELS=c without a compiler
        pytest.skip(str(e))
    if lib is None:
        pytest.skip("the C kernels are unavailable here (the stand-in runs their host build)")
    return cp.RawModule(code=nvrtc.device_source(), options=nvrtc.OPTIONS
                        + nvrtc.include_options(), backend="nvrtc")


def _round_args(fmt, x, out, count=None, mode="nearest_even", key=0):
    from minifp.kernels.params import MODES, format_block
    return (x, out, np.int64(x.size if count is None else count),
            cp.asarray(format_block(fmt)), np.int64(MODES[mode]), np.uint64(key),
            np.int64(0), np.int64(0))


@pytest.mark.parametrize("mode", ["nearest_even", "to_odd", "stochastic"])
def test_round_kernel_launch_matches_the_host(kernels, mode):
    from minifp.formats import get_format
    from minifp.kernels import host
    fmt = get_format("e4m3")
    x = np.concatenate([a64(600) * 50, [np.inf, -np.inf, np.nan, 0.0, -0.0]])
    want = host.round_array(fmt, x, mode, key=77)
    k = kernels.get_function("mf_round_array_kernel")
    out = cp.full(x.shape, -1.0)
    cp.launches.clear()
    k((-(-x.size // 128),), (128,), _round_args(fmt, cp.asarray(x), out, mode=mode, key=77))
    g = out.get()
    assert ((g.view(np.uint64) == want.view(np.uint64)) | (np.isnan(g) & np.isnan(want))).all()
    assert cp.launches == [cp.Launch("mf_round_array_kernel", (5, 1, 1), (128, 1, 1), 0, 640)]
    assert k.launches == cp.launches


def test_a_too_small_grid_leaves_elements_unwritten(kernels):
    from minifp.formats import get_format
    from minifp.kernels import host
    fmt = get_format("float16")
    x = a64(1000) * 1e3
    want = host.round_array(fmt, x, "nearest_even")
    k = kernels.get_function("mf_round_array_kernel")
    out = cp.full(x.shape, -7.0)
    k((3,), (256,), _round_args(fmt, cp.asarray(x), out))          # 768 threads
    g = out.get()
    assert np.array_equal(g[:768], want[:768]) and (g[768:] == -7.0).all()
    out = cp.full(x.shape, -7.0)
    k((3, 4, 2), (256, 2, 2), _round_args(fmt, cp.asarray(x), out))  # y, z only repeat x
    assert (out.get()[768:] == -7.0).all()
    out = cp.full(x.shape, -7.0)
    k((1000,), (1,), _round_args(fmt, cp.asarray(x), out, count=10))   # count bounds it
    assert np.array_equal(out.get()[:10], want[:10]) and (out.get()[10:] == -7.0).all()


def test_launch_arguments_are_checked_strictly(kernels):
    from minifp.formats import get_format
    fmt = get_format("bfloat16")
    x, out = cp.asarray(a64(300)), cp.empty(300)
    good = _round_args(fmt, x, out)
    k = kernels.get_function("mf_round_array_kernel")
    grid, block = (3,), (128,)
    with pytest.raises(TypeError, match=r"argument count \(i64\) must be a numpy.int64, got int"):
        k(grid, block, good[:2] + (300,) + good[3:])
    with pytest.raises(TypeError, match=r"argument key \(u64\) must be a numpy.uint64, got "
                                        r"int64"):
        k(grid, block, good[:5] + (np.int64(0),) + good[6:])
    with pytest.raises(TypeError, match=r"argument mode \(i64\) must be a numpy.int64, got "
                                        r"int32"):
        k(grid, block, good[:4] + (np.int32(0),) + good[5:])
    with pytest.raises(TypeError, match=r"argument x \(f64\*\) is a float32 array"):
        k(grid, block, (x.astype(np.float32),) + good[1:])
    with pytest.raises(TypeError, match=r"argument fmt \(i64\*\) is a float64 array"):
        k(grid, block, good[:3] + (good[3].astype(np.float64),) + good[4:])
    with pytest.raises(TypeError, match=r"got numpy.ndarray \(a NumPy array"):
        k(grid, block, (x.get(),) + good[1:])
    with pytest.raises(ValueError, match="not C-contiguous"):
        k(grid, block, (cp.asarray(a64(600))[::2],) + good[1:])
    with pytest.raises(ValueError, match="out holds 100 elements"):
        k(grid, block, (x, cp.empty(100)) + good[2:])
    with pytest.raises(TypeError, match="args must be a tuple"):
        k(grid, block, list(good))
    with pytest.raises(TypeError, match="7 arguments, the kernel takes 8"):
        k(grid, block, good[:7])
    with pytest.raises(TypeError, match="Argument 'grid' has incorrect type "
                                        r"\(expected tuple, got int\)"):
        k(3, block, good)
    with pytest.raises(TypeError, match="Argument 'block' has incorrect type"):
        k(grid, [128], good)
    with pytest.raises(cp.cuda.driver.CUDADriverError, match="CUDA_ERROR_INVALID_VALUE"):
        k(grid, (2048,), good)
    with pytest.raises(cp.cuda.driver.CUDADriverError, match="CUDA_ERROR_NOT_FOUND"):
        kernels.get_function("mf_round_array")            # the host name, not a kernel
    with pytest.raises(TypeError, match="Exactly one of `code` and `path`"):
        cp.RawModule(options=())
    with pytest.raises(TypeError, match="Argument 'options' has incorrect type"):
        cp.RawModule(code="", options=["--fmad=false"])
    with pytest.raises(TypeError):
        cp.RawModule("extern \"C\" __global__ void f() {}")   # code is keyword-only
    cp.launches.clear()
    k(grid, block, good)                                  # the correct launch still runs
    assert len(cp.launches) == 1


def _matmul_args(acc, x, y, out, out2, scratch, r0, r1, ytrans=0):
    from minifp.kernels.params import MODES, format_block
    from minifp.kernels.signatures import ORDERS
    B, m, K = x.shape
    n = y.shape[-1]
    i = np.int64
    return (x, y, out, out2, i(B), i(m), i(K), i(n), cp.asarray(format_block(acc.format)),
            i(ORDERS[acc.order.kind]), i(acc.order.block or 0), i(int(acc.fma)),
            i(MODES[acc.rounding]), i(0), i(0), np.uint64(2 ** 63 + 5), i(r0), i(r1), i(n),
            i(1), i(ytrans), scratch)


@pytest.mark.parametrize("spec", ["float16:sequential", "bfloat16:pairwise",
                                  "e4m3:blocked:3", "float16:exact",
                                  "float32:sequential:stochastic"])
def test_matmul_kernel_launch_matches_the_host(kernels, spec):
    from minifp.accumulate import Accumulation
    from minifp.kernels import device_signatures as ds
    from minifp.kernels import host
    from minifp.kernels.signatures import ORDERS
    acc = Accumulation.parse(spec)
    B, m, K, n = 2, 65, 7, 70                       # n >= 64: the host does not transpose
    x, y = a64(B, m, K, seed=1), a64(B, K, n, seed=2)
    want = host.matmul_order(acc, x, y, key=2 ** 63 + 5)
    exact = acc.order.kind == "exact"
    out = cp.empty((B, m, n))
    out2 = cp.empty((B, m, n)) if exact else out
    k = kernels.get_function("mf_matmul_rows_kernel")
    rows = B * m
    scratch = cp.empty(ds.scratch_doubles(ORDERS[acc.order.kind], n, 0, rows))
    k((-(-rows // 32),), (32,), _matmul_args(acc, cp.asarray(x), cp.asarray(y), out, out2,
                                              scratch, 0, rows))
    if exact:
        assert np.array_equal(out.get(), want[0]) and np.array_equal(out2.get(), want[1])
    else:
        assert np.array_equal(out.get(), want)


def test_matmul_kernel_rows_threads_scratch_and_ytrans(kernels):
    from minifp.accumulate import Accumulation
    from minifp.kernels import device_signatures as ds
    from minifp.kernels import host
    from minifp.kernels.signatures import ORDERS
    acc = Accumulation.parse("float16:pairwise")
    B, m, K, n = 1, 80, 5, 64
    x, y = a64(B, m, K, seed=3), a64(B, K, n, seed=4)
    want = host.matmul_order(acc, x, y, key=2 ** 63 + 5)
    k = kernels.get_function("mf_matmul_rows_kernel")
    dx, dy = cp.asarray(x), cp.asarray(y)
    need = ds.scratch_doubles(ORDERS["pairwise"], n, 10, 50)
    out = cp.full((B, m, n), -1.0)
    # rows 10..50 asked, 32 threads: rows 10..42 written, the rest untouched
    k((1,), (32,), _matmul_args(acc, dx, dy, out, out, cp.empty(need), 10, 50))
    g = out.get()[0]
    assert np.array_equal(g[10:42], want[0, 10:42])
    assert (g[:10] == -1.0).all() and (g[42:] == -1.0).all()
    with pytest.raises(ValueError, match=r"scratch holds .* doubles, the launch needs "
                                         r"device_signatures.scratch_doubles"):
        k((2,), (32,), _matmul_args(acc, dx, dy, out, out, cp.empty(need - 1), 10, 50))
    with pytest.raises(TypeError, match=r"argument r1 \(i64\) must be a numpy.int64, got int"):
        k((2,), (32,), _matmul_args(acc, dx, dy, out, out, cp.empty(need), 10, 50)[:17]
          + (50,) + _matmul_args(acc, dx, dy, out, out, cp.empty(need), 10, 50)[18:])
    with pytest.raises(ValueError, match="rows up to 90"):
        k((4,), (32,), _matmul_args(acc, dx, dy, out, out,
                                    cp.empty(ds.scratch_doubles(1, n, 0, 90)), 0, 90))
    out = cp.full((B, m, n), -1.0)
    k((2,), (32,), _matmul_args(acc, dx, dy, out, out, cp.empty(need), 10, 50, ytrans=1))
    g = out.get()[0]
    assert np.isnan(g[10:50]).all() and (g[:10] == -1.0).all() and (g[50:] == -1.0).all()
    assert (g[10:50].view(np.uint64) == 0x7FF8000000000000).all()


# ---- minifp.backend ---------------------------------------------------------------------------
def test_install_and_uninstall_plug_into_minifp_backend():
    before = (backend._cupy, backend._cupy_special)
    a = cp.asarray(a64())
    previous = cp.install()
    try:
        assert previous == before
        assert backend.array_module(a) is cp and backend.array_module(a.get()) is np
        assert backend.gpu_available() and backend.is_device_array(a)
        assert backend.cupy_module() is cp
        assert backend.special_functions(cp) is cp.cupyx_scipy_special
        assert isinstance(backend.asnumpy(a), np.ndarray)
        erf = backend.special_functions(cp).erf(a)
        import scipy.special
        assert isinstance(erf, cp.ndarray) and np.array_equal(erf.get(),
                                                              scipy.special.erf(a.get()))
    finally:
        cp.uninstall(previous)
    assert (backend._cupy, backend._cupy_special) == before
    assert backend.array_module(a) is np or before[0] is not None
    with cp.installed() as mod:
        assert mod is cp and backend.array_module(a) is cp
    assert (backend._cupy, backend._cupy_special) == before


def test_no_device(monkeypatch):
    monkeypatch.setattr(cp.cuda, "device_count_override", 0)
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorNoDevice"):
        cp.cuda.runtime.getDeviceCount()
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
        cp.asarray(np.ones(2))
    assert not cp.cuda.is_available() and not cp.is_available()
    with cp.installed():
        assert not backend.gpu_available()
    monkeypatch.setattr(cp.cuda, "device_count_override", None)
    monkeypatch.setenv("MINIFP_CUPY_STANDIN_DEVICES", "2")
    assert cp.cuda.runtime.getDeviceCount() == 2


def test_cuda_devices_and_streams():
    d = cp.cuda.Device()
    assert d.id == 0 and d.compute_capability == "90"
    d.use()
    with cp.cuda.Device(0) as dev:
        assert dev.id == cp.cuda.runtime.getDevice() == 0
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorInvalidDevice"):
        cp.cuda.Device(3).use()
    cp.cuda.Stream.null.synchronize()
    cp.cuda.get_current_stream().synchronize()
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        assert cp.cuda.get_current_stream() is s
    assert cp.cuda.get_current_stream() is cp.cuda.Stream.null
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    e0.record()
    e1.record()
    e1.synchronize()
    assert cp.cuda.get_elapsed_time(e0, e1) >= 0.0
    assert issubclass(cp.cuda.driver.CUDADriverError, Exception)
    assert cp.cuda.runtime.getDeviceProperties(0)["major"] == 9


def test_random_generators():
    g = cp.random.default_rng(42)
    for r in (g.integers(0, 10, size=5), g.random(4), g.standard_normal((2, 3)),
              g.uniform(-1.0, 1.0, size=3), g.random(), g.poisson(3.0, size=2)):
        assert isinstance(r, cp.ndarray)
    assert g.integers(0, 10, size=5).dtype == np.int64
    assert g.random(3, dtype=np.float32).dtype == np.float32
    assert g.uniform(size=2, dtype=np.float32).dtype == np.float32
    x = cp.random.default_rng(1).standard_normal(4).get()
    assert np.array_equal(x, cp.random.default_rng(1).standard_normal(4).get())
    cp.random.seed(3)
    r1 = cp.random.normal(0.0, 1.0, 3).get()
    cp.random.seed(3)
    assert np.array_equal(r1, cp.random.normal(0.0, 1.0, 3).get())
    for r in (cp.random.rand(2, 2), cp.random.permutation(5), cp.random.choice(5, 2),
              cp.random.RandomState(0).normal(size=2), cp.random.randint(0, 3, 4)):
        assert isinstance(r, cp.ndarray)


def test_the_overhead_is_small():
    a = cp.asarray(np.ones(8))
    x = np.ones(8)

    def per_op(f):
        best = np.inf
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(2000):
                f()
            best = min(best, (time.perf_counter() - t) / 2000)
        return best
    over = per_op(lambda: cp.where(a > 0.5, a * 2.0, a)) - \
        per_op(lambda: np.where(x > 0.5, x * 2.0, x))
    assert over < 20e-6, f"{over * 1e6:.1f} us of stand-in overhead for three operations"
