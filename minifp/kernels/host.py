"""Calling the host kernels on NumPy arrays: elementwise rounding and the orders."""
from __future__ import annotations

import numpy as np

from . import library, run_rows
from .params import MODES, format_block
from .signatures import ORDERS


#: below this many elements NumPy's own conversions are as fast as a kernel call
CONVERT_MIN = 1 << 14


def to_float16(a):
    """float64 ``a`` whose values are all float16 values (NaN, Inf included) as float16,
    exactly, by the kernels; other cases through NumPy."""
    lib = library()
    if lib is None or a.size < CONVERT_MIN or a.dtype != np.float64:
        return a.astype(np.float16, copy=False)
    src = np.ascontiguousarray(a)
    out = np.empty(a.shape, dtype=np.float16)
    lib.mf_float64_to_float16(src.ctypes.data, out.ctypes.data, a.size)
    return out


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


#: below this many outputs per row the problem is solved transposed when that makes the
#: rows longer (each output's sum is the same sequence either way)
TRANSPOSE_BELOW = 64


def matmul_order(acc, x, y, key=0, wide=False, direct=False):
    """The accumulator values of x (B, m, K) @ y (B, K, n), float64, under the explicit
    order of ``acc``: ``value`` or, for ``exact``, ``(odd, nearest)``.

    The kernels vectorise along a row of outputs; with few outputs per row and many rows
    (a convolution's forward pass) they compute the transposed product y^T @ x^T, which
    sums every output's terms in the same order and keeps its stochastic index."""
    lib = library()
    B, m, K = x.shape
    n = y.shape[-1]
    transpose = n < TRANSPOSE_BELOW and m > n
    if transpose:      # y^T @ x^T; the kernels read x^T from x itself (ytrans)
        xk = np.ascontiguousarray(np.swapaxes(y, 1, 2), dtype=np.float64)
        yk = np.ascontiguousarray(x, dtype=np.float64)
        rows, cols, orow, ocol = n, m, 1, n
    else:
        xk = np.ascontiguousarray(x, dtype=np.float64)
        yk = np.ascontiguousarray(y, dtype=np.float64)
        rows, cols, orow, ocol = m, n, n, 1
    kind = acc.order.kind
    out = np.empty((B, rows, cols))
    out2 = np.empty((B, rows, cols)) if kind == "exact" else out
    F = format_block(acc.format)
    args = (xk.ctypes.data, yk.ctypes.data, out.ctypes.data, out2.ctypes.data, B, rows, K,
            cols, F.ctypes.data, ORDERS[kind], acc.order.block or 0, int(acc.fma),
            MODES[acc.rounding], int(wide), int(direct), int(key))

    def call(r0, r1):
        return lib.mf_matmul_rows(*args, r0, r1, orow, ocol, int(transpose))

    run_rows(call, B * rows, K * cols)
    if transpose:
        out = np.ascontiguousarray(np.swapaxes(out, 1, 2))
        out2 = np.ascontiguousarray(np.swapaxes(out2, 1, 2)) if kind == "exact" else out
    return (out, out2) if kind == "exact" else out
