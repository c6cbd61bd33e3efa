"""The int64 parameter block that describes a format to the kernels (``mf_round.h``:
the ``F_*`` indices), built from a :class:`~minifp.formats.Format`."""
from __future__ import annotations

import functools
import math

import numpy as np

from ..formats import FloatFormat, PositFormat, Rounding
from ..formats.bitround import W64

F_LEN = 24
_FIELDS = ("kind", "mbits", "s0", "emin_w", "max_bits", "minnorm_bits", "q_bits",
           "half_q_bits", "qexp", "parity", "subnormals", "has_inf", "negzero",
           "overflow", "magic", "magic_add", "n", "es", "max_scale", "frac_keep",
           "precision", "plain64", "f32", "underflow")
INDEX = {name: i for i, name in enumerate(_FIELDS)}
_OVERFLOW = {"inf": 0, "nan": 1, "saturate": 2}

#: kernel mode numbers: the declaration order of :class:`Rounding`
MODES = {mode: i for i, mode in enumerate(Rounding)}


def _pattern(value: float) -> int:
    return int(np.array(value, dtype=np.float64).view(np.uint64))


@functools.lru_cache(maxsize=None)
def _block(fmt) -> tuple:
    v = dict.fromkeys(_FIELDS, 0)
    v["precision"] = fmt.precision
    if isinstance(fmt, PositFormat):
        v.update(kind=1, n=fmt.n, es=fmt.es, max_scale=fmt.max_scale,
                 frac_keep=max(fmt.n - 2 - fmt.es, 0), negzero=0,
                 underflow=int(fmt.underflow))
    elif isinstance(fmt, FloatFormat):
        k = fmt._consts(W64)
        emax = math.frexp(fmt.max)[1] - 1
        magic = (fmt.subnormals and fmt.mbits >= 1 and fmt.precision < 53
                 and emax + 53 - fmt.precision <= 1023)
        v.update(kind=0, mbits=fmt.mbits, s0=k["s0"], emin_w=k["emin_w"],
                 max_bits=int(k["max_bits"]), minnorm_bits=int(k["minnorm_bits"]),
                 q_bits=int(k["q_bits"]), half_q_bits=int(k["half_q_bits"]),
                 qexp=fmt.emin - fmt.mbits, parity=int(k["parity"]),
                 subnormals=int(fmt.subnormals), has_inf=int(fmt.has_inf),
                 negzero=int(fmt.has_negative_zero), overflow=_OVERFLOW[fmt.overflow],
                 magic=int(magic),
                 magic_add=((52 - (fmt.precision - 1)) << 52) | (1 << 51),
                 plain64=int(fmt.precision >= 53 and fmt.subnormals
                             and fmt.overflow == "inf"),
                 f32=int(fmt._native == np.dtype(np.float32)))
    else:
        raise ValueError(f"the kernels do not know the format {fmt!r}")
    out = [0] * F_LEN
    for name, val in v.items():
        out[INDEX[name]] = int(val)
    return tuple(out)


def format_block(fmt) -> np.ndarray:
    """The parameter block of ``fmt`` as a C-contiguous int64 array (patterns above
    2**63 are stored as their two's-complement int64)."""
    return np.array([x - (1 << 64) if x >= 1 << 63 else x for x in _block(fmt)],
                    dtype=np.int64)
