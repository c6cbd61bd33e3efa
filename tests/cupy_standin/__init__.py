"""A CuPy stand-in for CI machines without a GPU (in the manner of GPAW's ``cpupy``):
a NumPy-backed fake of the ``cupy`` module that fails where real CuPy fails, so that
minifp's GPU path runs on CPU-only CI and then unchanged on a GPU.

Use::

    import cupy_standin as cp          # tests/ is on sys.path under pytest
    with cp.installed():               # minifp.backend now takes cp for CuPy
        x = cp.asarray(numpy_array)    # the explicit host -> "device" copy
        ...                            # minifp code on x takes the CuPy path
        host = cp.asnumpy(y)           # the explicit device -> host copy

``install()`` / ``uninstall(previous)`` do the same without a ``with``.

What it emulates (CuPy 14, NumPy 2):

* **Names**: ``cupy.<name>`` exists only where real CuPy's top-level namespace has it
  (``cupy_names.txt``, read from the CuPy wheel; its version is ``CUPY_VERSION``).
  NumPy functions under those names work on stand-in arrays; a NumPy name that CuPy
  lacks raises ``AttributeError: module 'cupy' has no attribute ...``.  Likewise for
  ``ndarray`` methods, ``cupy.random.Generator`` methods and ``cupyx.scipy.special``.
* **No implicit conversion**: ``numpy.asarray(a)``, ``numpy.array(a)`` raise CuPy's
  TypeError ("Implicit conversion to a NumPy array is not allowed. ...").  NumPy functions
  and ufuncs called on stand-in arrays (``numpy.sum(a)``, ``numpy.exp(a)``) raise it too:
  this is stricter than CuPy, which dispatches those to ``cupy.<name>`` where it has one
  (``_core.dispatch_numpy_functions = True`` does the same here); NumPy functions that only
  read shapes and dtypes (``numpy.shape``, ``numpy.ndim``, ``numpy.result_type``, ...)
  pass.  Use ``.get()`` / ``asnumpy`` and ``asarray`` to move data.
* **No NumPy arrays in device expressions**: ``a + numpy_array``, ``numpy_array + a``,
  ``cupy.where(mask, numpy_array, b)``, ``a[numpy_index_array]``, ``a[i] =
  numpy_array``, a NumPy array as a kernel argument all raise ``TypeError("Unsupported
  type <class 'numpy.ndarray'>")``.  0-d NumPy arrays are refused too (CuPy refuses them
  in arithmetic; it converts them only in comparisons, and copies NumPy *index* arrays
  to the device silently: the stand-in refuses both for one rule).  Python scalars and
  NumPy scalars (``numpy.float64(2)``, ``numpy.uint64(3)``) are fine, with NumPy 2 (NEP 50)
  promotion: Python scalars stay weak.
* **0-d arrays, not scalars**: reductions (``a.sum()``, ``cupy.max(a)``, ``(a == b).all()``)
  and single-element indexing give 0-d arrays; ``bool()``, ``float()``, ``int()``,
  ``.item()`` on them work (a synchronisation on a GPU).  There is no ``__index__``, as on
  CuPy 14: ``range(a)``, ``seq[a]`` and ``operator.index(a)`` raise TypeError.
* **Float -> int casts** of NaN, +-Inf or out-of-range values (``astype``,
  ``asarray``/``array``/``ascontiguousarray`` with an integer dtype, setting into an
  integer array, ``fill``, ``full``, ``copyto``) raise ValueError: x86 and CUDA convert
  them differently.
* **Kernels**: ``RawModule`` / ``RawKernel`` run minifp's CUDA entry points as their host
  builds under CuPy's launch convention, strictly checked (``_raw``); every launch is
  appended to ``launches``.
* **Devices**: ``cuda.runtime.getDeviceCount()`` is 1 (``cuda.device_count_override`` or
  ``$MINIFP_CUPY_STANDIN_DEVICES`` change it; with 0 it raises cudaErrorNoDevice as CuPy
  does, and so do host -> device copies); ``cuda.Device``, streams and events are there.

Not emulated: CuPy's numerics where they differ from NumPy's (reduction orders, cuBLAS
matmul, wrapped-around out-of-bounds integer indices, undefined values for repeated
indices in assignments); NumPy's RuntimeWarnings (CuPy raises none) are left as they are.
The overhead is one Python call per operation (about a microsecond).
"""
from __future__ import annotations

import contextlib as _contextlib
import sys as _sys

import numpy as _np

from . import _core, _cuda, _names, _random, _raw, _special  # noqa: F401
from ._core import (array, asanyarray, asarray, ascontiguousarray, asfortranarray,  # noqa: F401
                    asnumpy, copyto, full, full_like, get_array_module, ndarray)
from ._raw import Launch, RawKernel, RawModule, launches  # noqa: F401

cuda = _cuda
random = _random
#: stands for ``cupyx.scipy.special`` (what ``install`` hands minifp.backend)
cupyx_scipy_special = _special.special
CUPY_VERSION = _names.VERSION
#: the public top-level names of real CuPy (``cupy_names.txt``)
CUPY_NAMES = _names.TOP

__all__ = ["install", "uninstall", "installed", "ndarray", "asarray", "array", "asnumpy",
           "ascontiguousarray", "RawModule", "RawKernel", "launches", "Launch", "cuda",
           "random", "cupyx_scipy_special", "CUPY_VERSION", "CUPY_NAMES"]


def install():
    """Make this stand-in minifp's CuPy (``minifp.backend.install_cupy``); returns the
    previous (module, special) pair for :func:`uninstall`."""
    from minifp import backend
    return backend.install_cupy(_sys.modules[__name__], cupyx_scipy_special)


def uninstall(previous):
    """Restore the pair that :func:`install` returned."""
    from minifp import backend
    backend.install_cupy(*previous)


@_contextlib.contextmanager
def installed():
    """``with installed() as cp:`` -- the stand-in is minifp's CuPy inside the block."""
    previous = install()
    try:
        yield _sys.modules[__name__]
    finally:
        uninstall(previous)


def is_available() -> bool:
    return _cuda.is_available()


def fuse(*args, **kwargs):
    """``cupy.fuse``: no fusion here, the function runs as it is."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_pool, _pinned_pool = _MemoryPool(), _MemoryPool()


def get_default_memory_pool():
    return _pool


def get_default_pinned_memory_pool():
    return _pinned_pool


def _not_emulated(name):
    def f(*args, **kwargs):
        raise NotImplementedError(f"cupy.{name} is not emulated by the CuPy stand-in")
    f.__name__ = name
    return f


ElementwiseKernel = _not_emulated("ElementwiseKernel")
ReductionKernel = _not_emulated("ReductionKernel")


class _SubModule(type(_sys)):
    """``cupy.linalg``, ``cupy.fft``, ``cupy.testing``, ...: NumPy's submodule with the
    stand-in's argument wrapping."""

    def __init__(self, name, numpy_module):
        super().__init__(name)
        self._numpy_module = numpy_module

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        obj = getattr(self._numpy_module, name, None)
        if obj is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = _core.wrap_numpy(obj, name, check=False)
        setattr(self, name, value)
        return value


_MISSING = object()


def __getattr__(name):
    """``cupy.<name>`` for the names of real CuPy that are NumPy's too, made on first use
    (then cached in the module)."""
    if name.startswith("__") or name not in _names.TOP:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    obj = getattr(_np, name, _MISSING)
    if obj is _MISSING:
        raise AttributeError(f"module 'cupy' has no attribute {name!r} (CuPy "
                             f"{_names.VERSION} has it; NumPy {_np.__version__} does not, so "
                             "the stand-in does not emulate it)")
    if isinstance(obj, type(_sys)):
        if name in ("exceptions", "typing"):
            value = obj
        else:
            value = _SubModule(f"cupy.{name}", obj)
    else:
        value = _core.wrap_numpy(obj, name)
    globals()[name] = value
    return value
