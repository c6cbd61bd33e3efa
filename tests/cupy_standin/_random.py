"""``cupy.random`` for the stand-in: NumPy's generators behind CuPy's API (the numbers
differ from a GPU's: CuPy's default bit generator is XORWOW, not PCG64).

``default_rng(seed)`` returns a :class:`Generator` with only the methods that CuPy's
``cupy.random.Generator`` has (CuPy 14 has no ``normal``, ``permutation``, ``choice`` or
``shuffle`` there: they raise AttributeError, as on a GPU); the legacy module functions
(``seed``, ``rand``, ``normal``, ``permutation``, ``choice``, ...) and ``RandomState``
are those of ``numpy.random.RandomState``.  Every result is a stand-in array (0-d where
NumPy would give a scalar)."""
from __future__ import annotations

import numpy as _np

from . import _names
from ._core import _arg, wrap


class BitGenerator:
    """CuPy's bit generators (XORWOW, MRG32k3a, Philox4x3210): here NumPy's PCG64."""

    def __init__(self, seed=None):
        self._bg = _np.random.PCG64(seed)


class XORWOW(BitGenerator):
    pass


class MRG32k3a(BitGenerator):
    pass


class Philox4x3210(BitGenerator):
    pass


_FLOAT_DTYPES = (_np.dtype(_np.float32), _np.dtype(_np.float64))


class Generator:
    """``cupy.random.Generator`` (wrapping ``numpy.random.Generator``)."""

    def __init__(self, bit_generator):
        if not isinstance(bit_generator, BitGenerator):
            raise TypeError("bit_generator must be a cupy.random.BitGenerator")
        self._g = _np.random.Generator(bit_generator._bg)

    def integers(self, low, high=None, size=None, dtype=_np.int64, endpoint=False):
        return _array(self._g.integers(_arg(low), _arg(high), size, dtype=dtype,
                                       endpoint=endpoint), dtype)

    def random(self, size=None, dtype=_np.float64, out=None):
        return _fill(self._g.random(size, dtype=_float_dtype(dtype)), out)

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        return _fill(self._g.standard_normal(size, dtype=_float_dtype(dtype)), out)

    def standard_exponential(self, size=None, dtype=_np.float64, method="inv", out=None):
        return _fill(self._g.standard_exponential(size, dtype=_float_dtype(dtype)), out)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=_np.float64):
        return _array(self._g.uniform(_arg(low), _arg(high), size), dtype)

    def __getattr__(self, name):
        if name == "_g":
            raise AttributeError(name)
        if name not in _names.GENERATOR:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r} "
                                 f"(CuPy {_names.VERSION}'s Generator lacks it)")
        method = getattr(self._g, name)

        def f(*args, **kwargs):
            dtype = kwargs.pop("dtype", None)
            r = method(*_arg(args), **_arg(kwargs))
            return _array(r, dtype)
        f.__name__ = name
        return f


def _float_dtype(dtype):
    dt = _np.dtype(dtype)
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"Unsupported dtype {dt.name}")
    return dt


def _array(r, dtype=None):
    a = _np.asarray(r) if dtype is None else _np.asarray(r).astype(dtype, copy=False)
    return wrap(a)


def _fill(r, out):
    a = _np.asarray(r)
    if out is None:
        return wrap(a)
    _np.copyto(out._a, a)
    return out


def default_rng(seed=None):
    """``cupy.random.default_rng``: a Generator on XORWOW(seed)."""
    if isinstance(seed, BitGenerator):
        return Generator(seed)
    if isinstance(seed, Generator):
        return seed
    return Generator(XORWOW(seed))


class RandomState:
    """``cupy.random.RandomState`` (wrapping ``numpy.random.RandomState``); the methods
    take CuPy's extra ``dtype`` argument."""

    def __init__(self, seed=None, method=None):
        self._rs = _np.random.RandomState(seed)

    def seed(self, seed=None):
        self._rs.seed(seed)

    def shuffle(self, a):
        from ._core import ndarray
        if not isinstance(a, ndarray):
            raise TypeError("The array must be cupy.ndarray")
        self._rs.shuffle(a._a)

    def __getattr__(self, name):
        if name == "_rs":
            raise AttributeError(name)
        method = getattr(self._rs, name)
        if not callable(method):
            return method

        def f(*args, **kwargs):
            dtype = kwargs.get("dtype") if name in ("randint", "random_integers") else \
                kwargs.pop("dtype", None)
            if name in ("rand", "randn"):
                args = tuple(int(a) for a in args)
            r = method(*_arg(args), **_arg(kwargs))
            return _array(r, None if name in ("randint", "random_integers") else dtype)
        f.__name__ = name
        return f


_global = [RandomState()]


def get_random_state():
    return _global[0]


def set_random_state(rs):
    _global[0] = rs


def reset_states():
    _global[0] = RandomState()


def seed(seed=None):
    _global[0].seed(seed)


def shuffle(a):
    _global[0].shuffle(a)


def __getattr__(name):
    if name not in _names.RANDOM or name.startswith("_"):
        raise AttributeError(f"module 'cupy.random' has no attribute {name!r}")
    return getattr(_global[0], name)
