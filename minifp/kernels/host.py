"""Calling the host kernels on NumPy arrays: elementwise rounding and the orders."""
from __future__ import annotations

import numpy as np

from . import library, run_rows
from .params import MODES, format_block
from .signatures import ORDERS


def round_array(fmt, x, mode, key=0, event=0, index0=0):
    """float64 ``x`` rounded to ``fmt`` (float64 result), stochastic words from
    ``key``/``event`` and the elements' C-order index (plus ``index0``)."""
    lib = library()
    a = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(a)
    F = format_block(fmt)
    lib.mf_round_array(a.ctypes.data, out.ctypes.data, a.size, F.ctypes.data, MODES[mode],
                       int(key), int(event), int(index0))
    return out


def matmul_order(acc, x, y, key=0, wide=False, direct=False):
    """The accumulator values of x (B, m, K) @ y (B, K, n), float64, under the explicit
    order of ``acc``: ``value`` or, for ``exact``, ``(odd, nearest)``."""
    lib = library()
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    B, m, K = x.shape
    n = y.shape[-1]
    kind = acc.order.kind
    out = np.empty((B, m, n))
    out2 = np.empty((B, m, n)) if kind == "exact" else out
    F = format_block(acc.format)
    args = (x.ctypes.data, y.ctypes.data, out.ctypes.data, out2.ctypes.data, B, m, K, n,
            F.ctypes.data, ORDERS[kind], acc.order.block or 0, int(acc.fma),
            MODES[acc.rounding], int(wide), int(direct), int(key))

    def call(r0, r1):
        return lib.mf_matmul_rows(*args, r0, r1)

    run_rows(call, B * m, K * n)
    return (out, out2) if kind == "exact" else out
