"""``cupyx.scipy.special`` for the stand-in: SciPy's functions on unwrapped arrays,
only under the names that CuPy's module has."""
from __future__ import annotations

import types

from . import _names
from ._core import wrap_numpy


class _Special(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") or name not in _names.SPECIAL:
            raise AttributeError(f"module 'cupyx.scipy.special' has no attribute {name!r}")
        import scipy.special
        obj = getattr(scipy.special, name, None)
        if obj is None:
            raise AttributeError(f"module 'cupyx.scipy.special' has no attribute {name!r} "
                                 "(CuPy has it; SciPy does not, so the stand-in cannot "
                                 "emulate it)")
        value = wrap_numpy(obj, name, check=False)
        setattr(self, name, value)
        return value


special = _Special("cupyx.scipy.special", "cupyx.scipy.special, emulated on SciPy")
