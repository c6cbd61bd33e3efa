"""Launching the CUDA kernels (``src/device.cu``) on CuPy arrays.

The module is built by ``cupy.RawModule`` from the same sources as the host library, with
the fixed NVRTC options of :mod:`minifp.kernels.nvrtc` (no FMA contraction, no flush to
zero, IEEE division and square root), once per device.  Every launch packs its arguments
from the table of :mod:`minifp.kernels.device_signatures` (the table the PTX lint checks):
pointers must be C-contiguous CuPy arrays of the table's dtype, sizes are ``numpy.int64``
and keys ``numpy.uint64`` scalars, so no argument is ever passed with a width CuPy
guessed.  One thread per element (rounding) or per output row (matmul).

Under CI the CuPy module is the NumPy-backed stand-in of ``tests/cupy_standin``, whose
``RawModule`` runs the host build of the same kernels with this launch convention.
"""
from __future__ import annotations

import threading

import numpy as np

from ..backend import cupy_module
from . import nvrtc
from .device_signatures import DEVICE_ENTRY_POINTS, scratch_doubles, scratch_doubles_per_row
from .params import MODES, format_block
from .signatures import ORDERS

#: threads per block of every launch
THREADS = 128
#: at most this many doubles of matmul scratch per launch (rows are launched in groups)
SCRATCH_LIMIT = 1 << 23          # 64 MiB

_lock = threading.Lock()
_modules: dict = {}
_formats: dict = {}

_DTYPES = {"f64*": np.float64, "i64*": np.int64}
_SCALARS = {"i64": np.int64, "u64": np.uint64}


def options() -> tuple[str, ...]:
    """The RawModule options: nvrtc.OPTIONS and the include directory of the headers."""
    return tuple(nvrtc.OPTIONS) + nvrtc.include_options()


def _device_id(cp) -> int:
    return int(cp.cuda.Device().id)


def module():
    """The RawModule of ``device.cu`` for the current device (built once per device)."""
    cp = cupy_module()
    dev = _device_id(cp)
    with _lock:
        mod = _modules.get(dev)
        if mod is None:
            mod = cp.RawModule(code=nvrtc.device_source(), options=options(),
                               backend="nvrtc")
            _modules[dev] = mod
        return mod


def reset() -> None:
    """Forget the built modules and the formats' parameter blocks (tests)."""
    with _lock:
        _modules.clear()
        _formats.clear()


def pack(name: str, values: dict) -> tuple:
    """The argument tuple of kernel ``name`` from ``values`` (by argument name), checked
    and typed against DEVICE_ENTRY_POINTS."""
    cp = cupy_module()
    table = DEVICE_ENTRY_POINTS[name]
    missing = [a for a, _ in table if a not in values]
    extra = sorted(set(values) - {a for a, _ in table})
    if missing or extra:
        raise TypeError(f"{name}: missing arguments {missing}, unknown {extra}")
    args = []
    for arg, kind in table:
        v = values[arg]
        if kind in _DTYPES:
            if not isinstance(v, cp.ndarray) or v.dtype != _DTYPES[kind] \
                    or not v.flags.c_contiguous:
                raise TypeError(f"{name}: {arg} must be a C-contiguous CuPy "
                                f"{np.dtype(_DTYPES[kind])} array")
            args.append(v)
        else:
            iv = int(v)
            if kind == "u64":
                iv &= (1 << 64) - 1
            args.append(_SCALARS[kind](iv))
    return tuple(args)


def launch(name: str, threads: int, values: dict) -> None:
    """Launch kernel ``name`` with at least ``threads`` threads (blocks of THREADS)."""
    if threads <= 0:
        return
    args = pack(name, values)
    blocks = -(-int(threads) // THREADS)
    module().get_function(name)((blocks,), (THREADS,), args)


def _format_block(fmt):
    """The format's int64 parameter block on the current device (cached)."""
    cp = cupy_module()
    key = (fmt.name, _device_id(cp))
    with _lock:
        F = _formats.get(key)
    if F is None:
        F = cp.asarray(format_block(fmt))
        with _lock:
            _formats[key] = F
    return F


def round_array(fmt, x, mode, key=0, event=0, index0=0):
    """CuPy float64 ``x`` rounded to ``fmt`` (float64 result) by mf_round_array_kernel;
    stochastic words from ``key``/``event`` and the C-order index (plus ``index0``)."""
    cp = cupy_module()
    a = cp.ascontiguousarray(x, dtype=np.float64)
    out = cp.empty(a.shape, dtype=np.float64)
    launch("mf_round_array_kernel", a.size,
           dict(x=a, out=out, count=a.size, fmt=_format_block(fmt), mode=MODES[mode], key=key,
                event=event, index0=index0))
    return out


def matmul_order(acc, x, y, key=0, wide=False, direct=False):
    """The accumulator values of CuPy x (B, m, K) @ y (B, K, n) under the explicit order
    of ``acc``, as :func:`minifp.kernels.host.matmul_order` computes them: ``value``, or
    ``(odd, nearest)`` for ``exact``.  One thread per output row, rows launched in
    groups whose scratch fits SCRATCH_LIMIT."""
    cp = cupy_module()
    B, m, K = x.shape
    n = y.shape[-1]
    if y.shape[0] != B:
        y = cp.broadcast_to(y, (B, K, n))
    xk = cp.ascontiguousarray(x, dtype=np.float64)
    yk = cp.ascontiguousarray(y, dtype=np.float64)
    kind = acc.order.kind
    order = ORDERS[kind]
    out = cp.empty((B, m, n), dtype=np.float64)
    out2 = cp.empty((B, m, n), dtype=np.float64) if kind == "exact" else out
    rows = B * m
    per_row = scratch_doubles_per_row(order, n)
    group = max(1, min(rows, SCRATCH_LIMIT // per_row))
    scratch = cp.empty(scratch_doubles(order, n, 0, group), dtype=np.float64)
    common = dict(x=xk, y=yk, out=out, out2=out2, B=B, m=m, K=K, n=n,
                  fmt=_format_block(acc.format), order=order, block=acc.order.block or 0,
                  fma=int(acc.fma), mode=MODES[acc.rounding], wide=int(wide),
                  direct=int(direct), key=key, orow=n, ocol=1, ytrans=0, scratch=scratch)
    for r0 in range(0, rows, group):
        r1 = min(rows, r0 + group)
        launch("mf_matmul_rows_kernel", r1 - r0, dict(common, r0=r0, r1=r1))
    return (out, out2) if kind == "exact" else out
