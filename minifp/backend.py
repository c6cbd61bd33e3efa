"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every numerical routine in minifp takes the array module from its data
(``xp = array_module(x)``), so one code path serves both backends.
"""
from __future__ import annotations

import numpy as np

import os

# CuPy reads CUPY_TF32 when it is imported: keep TensorFloat-32 off unless asked for, so
# float32 products on the GPU (the `native` order) are float32 products
os.environ.setdefault("CUPY_TF32", "0")

try:  # CuPy is optional (the ``gpu`` extra).
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None
_cupy_special = None     # cupyx.scipy.special, imported when first needed


def install_cupy(module, special=None):
    """Use ``module`` as CuPy (the CI stand-in in tests/cupy_standin, or None for none);
    ``special`` stands for ``cupyx.scipy.special``.  Returns the previous pair."""
    global _cupy, _cupy_special
    previous = (_cupy, _cupy_special)
    _cupy, _cupy_special = module, special
    return previous


def cupy_module():
    """The CuPy module in use (a clear error where there is none)."""
    if _cupy is None:
        raise RuntimeError("CuPy is not installed (pip install 'minifp[gpu]')")
    return _cupy


def special_functions(xp):
    """``scipy.special`` for NumPy arrays, ``cupyx.scipy.special`` for CuPy arrays."""
    global _cupy_special
    if xp is np:
        import scipy.special  # noqa: PLC0415
        return scipy.special
    if _cupy_special is None:  # pragma: no cover - GPU only
        import cupyx.scipy.special  # noqa: PLC0415
        _cupy_special = cupyx.scipy.special
    return _cupy_special


def array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_device_array(a) -> bool:
    """True for a CuPy array."""
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def asnumpy(a) -> np.ndarray:
    """Copy a CuPy array to the host; return NumPy arrays (and scalars) as arrays."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover - depends on the machine
        return False
