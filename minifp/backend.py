"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every numerical routine in minifp takes the array module from its data
(``xp = array_module(x)``), so one code path serves both backends.
"""
from __future__ import annotations

import numpy as np

try:  # CuPy is optional (the ``gpu`` extra).
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None


def array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


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
