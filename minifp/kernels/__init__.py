"""The C kernels: every explicit accumulation order and every rounding, compiled for the
CPU at first use (``build``), bit-identical to the NumPy reference in ``accumulate``.

``MINIFP_KERNELS`` chooses: ``auto`` (default: the kernels where they build, else the
NumPy engine with one warning line), ``c`` (the kernels or an error), ``numpy`` (the
NumPy reference).  ``MINIFP_THREADS`` caps the threads that split the output rows
(default: the CPUs this process may use); no result depends on it.
"""
from __future__ import annotations

import concurrent.futures
import os
import threading
import warnings

from .build import BuildError

CHOICES = ("auto", "c", "numpy")
_state: dict = {}
_lock = threading.Lock()


class KernelWarning(UserWarning):
    """The kernels are unavailable and the NumPy engine runs instead."""


def choice() -> str:
    value = os.environ.get("MINIFP_KERNELS", "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"MINIFP_KERNELS={value!r} is not one of {', '.join(CHOICES)}")
    return value


def library():
    """The loaded host library, or None (NumPy engine).  Builds at first call."""
    want = choice()
    if want == "numpy":
        return None
    with _lock:
        if "lib" not in _state:
            try:
                from .build import load
                _state["lib"], _state["error"] = load(), None
            except BuildError as e:
                _state["lib"], _state["error"] = None, str(e)
        lib, error = _state["lib"], _state["error"]
    if lib is None:
        if want == "c":
            raise BuildError(f"MINIFP_KERNELS=c but the kernels are unavailable: {error}")
        if not _state.get("warned"):
            _state["warned"] = True
            warnings.warn(f"C kernels unavailable ({error}); using the NumPy engine",
                          KernelWarning, stacklevel=3)
    return lib


def backend_name() -> str:
    """``c`` when the kernels compute the explicit orders, else ``numpy``."""
    return "c" if library() is not None else "numpy"


def engine_info() -> dict:
    """Which backend computes the explicit orders, for run records: ``explicit_orders``
    (``c`` or ``numpy``), the compiler and the thread count of the kernels."""
    lib = library()
    if lib is None:
        return {"explicit_orders": "numpy", "why": _state.get("error") or
                f"MINIFP_KERNELS={choice()}"}
    from .build import compiler, library_path
    return {"explicit_orders": "c", "compiler": compiler(), "threads": threads(),
            "library": library_path().parent.name}


def describe() -> str:
    """One line: ``C kernels (cc, 2 threads)`` or ``NumPy reference (why)``."""
    info = engine_info()
    if info["explicit_orders"] == "c":
        return f"C kernels ({info['compiler']}, {info['threads']} threads)"
    return f"NumPy reference ({info['why']})"


def reset():
    """Forget the loaded library (tests change ``CC`` and ``MINIFP_KERNELS``)."""
    with _lock:
        _state.clear()


def threads() -> int:
    env = os.environ.get("MINIFP_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"MINIFP_THREADS={env!r} is not a positive integer")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_pool: list = []


def _executor(count):
    if not _pool or _pool[0][0] != count:
        if _pool:
            _pool[0][1].shutdown(wait=False)
            _pool.clear()
        _pool.append((count, concurrent.futures.ThreadPoolExecutor(count)))
    return _pool[0][1]


def run_rows(call, rows: int, work_per_row: int):
    """Run ``call(r0, r1)`` over [0, rows), split over threads when the work is large
    enough to pay for them (each call releases the GIL)."""
    count = min(threads(), rows)
    if count <= 1 or rows * work_per_row < (1 << 16):
        _check(call(0, rows))
        return
    # pieces of whole groups of four rows (the kernels block four rows at a time)
    step = -(-rows // (count * 4)) if rows >= count * 16 else -(-rows // count)
    step = -(-step // 4) * 4 if rows >= 8 else step
    futures = [_executor(count).submit(call, r0, min(rows, r0 + step))
               for r0 in range(0, rows, step)]
    for f in futures:
        _check(f.result())


def _check(rc):
    if rc:
        raise MemoryError("the kernels could not allocate their scratch memory")


__all__ = ["library", "backend_name", "engine_info", "describe", "choice", "reset",
           "threads", "run_rows", "BuildError", "KernelWarning"]
