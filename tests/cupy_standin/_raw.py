"""``cupy.RawModule`` / ``cupy.RawKernel`` for the stand-in: minifp's two CUDA entry
points (``minifp/kernels/src/device.cu``) run as their host builds
(``minifp.kernels.library()``), under CuPy's launch convention, checked strictly.

The code is not compiled.  ``get_function`` knows the names of
``minifp.kernels.device_signatures.DEVICE_ENTRY_POINTS`` (and they must occur in
``code``); any other name raises CUDADriverError (CUDA_ERROR_NOT_FOUND), as CuPy does for
a symbol that the module lacks.  A launch ``kernel(grid, block, args, shared_mem=0)``:

* ``grid`` and ``block`` must be tuples (CuPy's Function takes ``tuple grid, tuple
  block``: an int raises TypeError there too) of at most 3 ints; entries below 1 count as
  1 and entries past the third are dropped, as CuPy does; CUDA's limits (block x, y <= 1024,
  z <= 64, x*y*z <= 1024; grid x < 2**31, y, z <= 65535) raise CUDA_ERROR_INVALID_VALUE.
* the kernels index threads by ``blockIdx.x * blockDim.x + threadIdx.x`` alone, so the
  threads that exist are ``grid[0] * block[0]`` (y and z only repeat them); one thread per
  element (rounding) or per output row (matmul), threads past the end return.
* ``args`` must be a tuple of the table's length; ``f64*`` / ``i64*`` arguments stand-in
  arrays, C-contiguous, of dtype float64 / int64, large enough for what the launch reads
  and writes (writable where it writes); ``i64`` scalars ``numpy.int64``, ``u64`` scalars
  ``numpy.uint64``.  Real CuPy passes any array's pointer and any scalar by its own size
  (a Python int as int64, one of 2**63 or more is an OverflowError, a float as a double,
  a numpy.int32 as 4 bytes), so a wrong type there is garbage or a crash on a GPU.
* the matmul ``scratch`` must hold ``device_signatures.scratch_doubles(order, n, r0, r1)``
  doubles; ``ytrans != 0`` (a host-only layout) fills the launched rows of ``out`` with
  NaN, as the device kernel does.

Each launch is appended to ``launches`` (module-wide) and to the kernel's ``launches``:
``Launch(name, grid, block, shared_mem, threads)``.
"""
from __future__ import annotations

import collections
import os
import re

import numpy as _np

from ._core import ndarray
from ._cuda import CUDADriverError, Stream, _get_device_count

Launch = collections.namedtuple("Launch", "name grid block shared_mem threads")

#: every launch of this process, oldest first (tests clear it)
launches: list = []

_NAN_BITS = _np.uint64(0x7FF8000000000000)   # mf_port.h MF_NAN_BITS


def _tables():
    from minifp.kernels import device_signatures
    return device_signatures


class RawModule:
    """``cupy.RawModule(*, code=None, path=None, options=(), backend='nvrtc', ...)``."""

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, jitify=False):
        for arg, value, kind in (("code", code, str), ("path", path, str),
                                 ("backend", backend, str)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"Argument '{arg}' has incorrect type (expected "
                                f"{kind.__name__}, got {type(value).__name__})")
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got "
                            f"{type(options).__name__})")
        for o in options:
            if not isinstance(o, str):
                raise TypeError(f"compile option {o!r} is not a str")
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be "
                            "given.")
        if backend not in ("nvrtc", "nvcc"):
            raise ValueError(f"Invalid backend {backend}")
        if name_expressions is not None:
            if code is None:
                raise ValueError("need CUDA C++ code for the requested kernels")
            if backend != "nvrtc":
                raise ValueError("only nvrtc supports retrieving the mangled names for the "
                                 "given name expressions")
            name_expressions = tuple(name_expressions)
        if jitify:
            if code is None:
                raise ValueError("Jitify does not support precompiled objects")
            if backend != "nvrtc":
                raise ValueError("Jitify only supports NVRTC")
        self.code, self.file_path, self.options, self.backend = code, path, options, backend
        self.name_expressions, self.jitify = name_expressions, bool(jitify)
        self.enable_cooperative_groups = bool(enable_cooperative_groups)

    def _has_symbol(self, name: str) -> bool:
        if self.code is not None:
            return re.search(r"\b" + re.escape(name) + r"\s*\(", self.code) is not None
        if not os.path.exists(self.file_path):
            raise CUDADriverError(301, self.file_path)
        with open(self.file_path, "rb") as f:
            return name.encode() in f.read()

    def get_function(self, name):
        """The kernel ``name`` (CUDADriverError CUDA_ERROR_NOT_FOUND if there is none)."""
        if isinstance(name, bytes):
            name = name.decode()
        if not isinstance(name, str):
            raise TypeError(f"kernel name must be a str, got {type(name).__name__}")
        _get_device_count()                       # no device: cudaErrorNoDevice
        table = _tables().DEVICE_ENTRY_POINTS.get(name)
        if table is None or not self._has_symbol(name):
            raise CUDADriverError(500, name)
        return RawKernel._from_module(self, name, table)


class RawKernel:
    """``cupy.RawKernel(code, name, options=(), backend='nvrtc', ...)``: one kernel;
    the symbol is looked up at the first launch, as CuPy compiles there."""

    def __init__(self, code, name, options=(), backend="nvrtc", *,
                 translate_cucomplex=False, enable_cooperative_groups=False, jitify=False):
        if not isinstance(code, str) or not isinstance(name, str):
            raise TypeError("RawKernel(code, name): both must be str")
        self._module = RawModule(code=code, options=options, backend=backend,
                                 enable_cooperative_groups=enable_cooperative_groups,
                                 jitify=jitify)
        self.code, self.name, self.options, self.backend = code, name, options, backend
        self.__name__ = name
        self._table = None
        self.launches = []

    @classmethod
    def _from_module(cls, module, name, table):
        k = cls.__new__(cls)
        k._module, k.code, k.name, k.options = module, module.code, name, module.options
        k.backend, k.__name__, k._table, k.launches = module.backend, name, table, []
        return k

    def __call__(self, grid, block, args, **kwargs):
        """Launch: ``kernel(grid, block, args, shared_mem=0, stream=None)``."""
        unknown = set(kwargs) - {"shared_mem", "stream", "enable_cooperative_groups"}
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        if self._table is None:
            self._table = self._module.get_function(self.name)._table
        shared_mem = kwargs.get("shared_mem", 0)
        stream = kwargs.get("stream")
        if stream is not None and not isinstance(stream, Stream):
            raise TypeError(f"stream must be a cupy.cuda.Stream, got {type(stream).__name__}")
        g = _dims("grid", grid)
        b = _dims("block", block)
        if not isinstance(shared_mem, int) or isinstance(shared_mem, bool) or shared_mem < 0:
            raise TypeError(f"shared_mem must be a non-negative int, got {shared_mem!r}")
        if b[0] > 1024 or b[1] > 1024 or b[2] > 64 or b[0] * b[1] * b[2] > 1024:
            raise CUDADriverError(1, f"block {b}: at most (1024, 1024, 64) and 1024 threads")
        if g[0] > 2**31 - 1 or g[1] > 65535 or g[2] > 65535:
            raise CUDADriverError(1, f"grid {g} is over CUDA's limits")
        if shared_mem > 49152:
            raise CUDADriverError(1, f"shared_mem {shared_mem} is over 48 KiB")
        values = _check_args(self.name, self._table, args)
        threads = g[0] * b[0]
        _run(self.name, values, threads)
        launch = Launch(self.name, g, b, shared_mem, threads)
        launches.append(launch)
        self.launches.append(launch)

    def __repr__(self):
        return f"<RawKernel {self.name} (CuPy stand-in)>"


def _dims(what, value):
    if not isinstance(value, tuple):
        raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got "
                        f"{type(value).__name__})")
    out = []
    for v in (value + (1, 1))[:3]:
        if isinstance(v, bool) or not isinstance(v, (int, _np.integer)):
            raise TypeError(f"{what} {value!r}: every entry must be an int, got "
                            f"{type(v).__name__}")
        out.append(max(1, int(v)))
    return tuple(out)


_WRITES = {"mf_round_array_kernel": {"out"},
           "mf_matmul_rows_kernel": {"out", "out2", "scratch"}}


def _check_args(kname, table, args):
    if not isinstance(args, tuple):
        raise TypeError(f"{kname}: args must be a tuple, got {type(args).__name__}")
    if len(args) != len(table):
        raise TypeError(f"{kname}: {len(args)} arguments, the kernel takes {len(table)} "
                        f"({', '.join(n for n, _ in table)})")
    values = {}
    for (name, kind), x in zip(table, args):
        if kind in ("f64*", "i64*"):
            want = _np.float64 if kind == "f64*" else _np.int64
            if not isinstance(x, ndarray):
                extra = (" (a NumPy array: copy it to the device first)"
                         if isinstance(x, _np.ndarray) else "")
                got = f"{type(x).__module__}.{type(x).__name__}"
                raise TypeError(f"{kname}: argument {name} ({kind}) must be a cupy.ndarray "
                                f"of {want.__name__}, got {got}{extra}")
            a = x._a
            if a.dtype != want:
                raise TypeError(f"{kname}: argument {name} ({kind}) is a {a.dtype} array; "
                                f"the kernel reads {want.__name__} (CuPy would pass the "
                                "pointer and the kernel would read garbage)")
            if not a.flags.c_contiguous:
                raise ValueError(f"{kname}: argument {name} ({kind}) is not C-contiguous "
                                 "(the kernel reads it as a flat buffer)")
            if name in _WRITES[kname] and not a.flags.writeable:
                raise ValueError(f"{kname}: argument {name} is read-only (a broadcast view?) "
                                 "but the kernel writes it")
            values[name] = a
        elif kind == "i64":
            if not (isinstance(x, _np.signedinteger) and x.itemsize == 8):
                raise TypeError(_scalar_message(kname, name, kind, x))
            values[name] = int(x)
        elif kind == "u64":
            if not (isinstance(x, _np.unsignedinteger) and x.itemsize == 8):
                raise TypeError(_scalar_message(kname, name, kind, x))
            values[name] = int(x)
        else:  # pragma: no cover - the tables hold only these four
            raise TypeError(f"{kname}: argument {name} has the unknown type {kind!r}")
    return values


def _scalar_message(kname, name, kind, x):
    want = "numpy.int64" if kind == "i64" else "numpy.uint64"
    t = type(x)
    why = {int: "a Python int goes to the kernel as CuPy picks its width and sign "
                "(int64, or an OverflowError from 2**63 on)",
           float: "a Python float goes to the kernel as a double",
           bool: "a Python bool goes to the kernel as one byte"}.get(t)
    if why is None:
        if isinstance(x, _np.generic):
            why = f"a {t.__name__} goes to the kernel as {x.itemsize} byte(s) of its own type"
        elif isinstance(x, ndarray):
            why = "an array goes to the kernel as a pointer"
        else:
            why = "CuPy cannot pass it"
    return f"{kname}: argument {name} ({kind}) must be a {want}, got {t.__name__}: {why}"


def _need(kname, what, a, count):
    if a.size < count:
        raise ValueError(f"{kname}: {what} holds {a.size} elements, the launch touches "
                         f"{count} (the threads would run past its end)")


def _library():
    from minifp import kernels
    try:
        lib = kernels.library()
    except kernels.BuildError as e:
        lib, why = None, str(e)
    else:
        why = kernels.engine_info().get("why", "") if lib is None else ""
    if lib is None:
        raise RuntimeError("the CuPy stand-in runs the device kernels on their host build "
                           f"(minifp.kernels.library()), which is unavailable: {why}")
    return lib


def _run(kname, v, threads):
    if kname == "mf_round_array_kernel":
        from minifp.kernels.params import F_LEN
        n = max(0, min(v["count"], threads))
        _need(kname, "F", v["fmt"], F_LEN)
        if n == 0:
            return
        _need(kname, "x", v["x"], n)
        _need(kname, "out", v["out"], n)
        lib = _library()
        rc = lib.mf_round_array(v["x"].ctypes.data, v["out"].ctypes.data, n,
                                v["fmt"].ctypes.data, v["mode"], v["key"], v["event"],
                                v["index0"])
        if rc:
            raise MemoryError("the kernels could not allocate their scratch memory")
        return
    # mf_matmul_rows_kernel
    from minifp.kernels.params import F_LEN
    B, m, K, n, r0, r1 = v["B"], v["m"], v["K"], v["n"], v["r0"], v["r1"]
    order = v["order"]
    need = _tables().scratch_doubles(order, n, r0, r1)
    if v["scratch"].size < need:
        raise ValueError(f"{kname}: scratch holds {v['scratch'].size} doubles, the launch "
                         f"needs device_signatures.scratch_doubles(order={order}, n={n}, "
                         f"r0={r0}, r1={r1}) = {need} (the threads would write past its end)")
    _need(kname, "F", v["fmt"], F_LEN)
    r1t = min(r1, r0 + threads)
    if r1t <= r0:
        return
    if r0 < 0 or min(B, m, K, n) < 0 or m == 0:
        raise ValueError(f"{kname}: rows [{r0}, {r1}) with B={B}, m={m}, K={K}, n={n} are "
                         "not valid")
    if r1t > B * m:
        raise ValueError(f"{kname}: rows up to {r1t} of a (B*m = {B * m})-row result")
    out = v["out"]
    _need(kname, "out", out, r1t * n)
    if v["ytrans"]:
        out.reshape(-1)[r0 * n:r1t * n].view(_np.uint64)[...] = _NAN_BITS
        return
    exact = order not in (0, 1, 2)               # device.cu: the default case is exact
    _need(kname, "x", v["x"], r1t * K)
    _need(kname, "y", v["y"], ((r1t - 1) // m + 1) * K * n)
    if exact:
        _need(kname, "out2", v["out2"], r1t * n)
    lib = _library()
    from minifp.kernels import run_rows
    head = (v["x"].ctypes.data, v["y"].ctypes.data, out.ctypes.data, v["out2"].ctypes.data,
            B, m, K, n, v["fmt"].ctypes.data, order, v["block"], v["fma"], v["mode"],
            v["wide"], v["direct"], v["key"])

    def call(a, b):
        return lib.mf_matmul_rows(*head, r0 + a, r0 + b, v["orow"], v["ocol"], 0)

    run_rows(call, r1t - r0, K * max(n, 1))
