"""``cupy.cuda`` for the stand-in: one simulated device (``device_count``), its runtime
and driver errors, streams and events that synchronise trivially."""
from __future__ import annotations

import os as _os
import time as _time
import types as _types

#: the number of simulated devices; None: $MINIFP_CUPY_STANDIN_DEVICES, else 1.  With 0,
#: ``runtime.getDeviceCount()`` raises cudaErrorNoDevice as CuPy does on a machine whose
#: driver sees no GPU (and the host -> device transfers raise it too)
device_count_override = None

_RUNTIME_ERRORS = {100: "cudaErrorNoDevice: no CUDA-capable device is detected",
                   101: "cudaErrorInvalidDevice: invalid device ordinal",
                   1: "cudaErrorInvalidValue: invalid argument"}
_DRIVER_ERRORS = {1: "CUDA_ERROR_INVALID_VALUE: invalid argument",
                  301: "CUDA_ERROR_FILE_NOT_FOUND: file not found",
                  500: "CUDA_ERROR_NOT_FOUND: named symbol not found",
                  701: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: too many resources requested "
                       "for launch"}


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError`` (``status``: the cudaError_t number)."""

    def __init__(self, status, detail=""):
        self.status = status
        msg = _RUNTIME_ERRORS.get(status, f"cudaError {status}")
        super().__init__(msg + (f" ({detail})" if detail else ""))


class CUDADriverError(RuntimeError):
    """``cupy.cuda.driver.CUDADriverError`` (``status``: the CUresult number)."""

    def __init__(self, status, detail=""):
        self.status = status
        msg = _DRIVER_ERRORS.get(status, f"CUresult {status}")
        super().__init__(msg + (f" ({detail})" if detail else ""))


def device_count() -> int:
    if device_count_override is not None:
        return int(device_count_override)
    env = _os.environ.get("MINIFP_CUPY_STANDIN_DEVICES", "").strip()
    return int(env) if env else 1


_current = [0]

_PROPERTIES = {"name": b"CuPy stand-in (NumPy on the host)", "major": 9, "minor": 0,
               "totalGlobalMem": 1 << 36, "multiProcessorCount": 132,
               "maxThreadsPerBlock": 1024, "warpSize": 32, "maxGridSize": (2**31 - 1, 65535,
                                                                           65535),
               "maxThreadsDim": (1024, 1024, 64), "sharedMemPerBlock": 49152}


def _check_device(i):
    n = device_count()
    if n == 0:
        raise CUDARuntimeError(100)
    if not 0 <= int(i) < n:
        raise CUDARuntimeError(101)


def _get_device_count():
    n = device_count()
    if n == 0:
        raise CUDARuntimeError(100)
    return n


def _get_device():
    _get_device_count()
    return _current[0]


def _set_device(i):
    _check_device(i)
    _current[0] = int(i)


def _device_properties(i):
    _check_device(i)
    return dict(_PROPERTIES)


def _mem_info():
    _get_device_count()
    return (_PROPERTIES["totalGlobalMem"], _PROPERTIES["totalGlobalMem"])


runtime = _types.SimpleNamespace(
    CUDARuntimeError=CUDARuntimeError, getDeviceCount=_get_device_count,
    getDevice=_get_device, setDevice=_set_device, deviceSynchronize=lambda: None,
    getDeviceProperties=_device_properties, runtimeGetVersion=lambda: 12080,
    driverGetVersion=lambda: 12080, memGetInfo=_mem_info, is_hip=False,
    cudaErrorNoDevice=100, cudaErrorInvalidDevice=101)
driver = _types.SimpleNamespace(CUDADriverError=CUDADriverError, CUDA_ERROR_NOT_FOUND=500,
                                CUDA_ERROR_INVALID_VALUE=1, get_build_version=lambda: 12080)


def is_available() -> bool:
    return device_count() > 0


def get_device_id() -> int:
    return _current[0]


class Device:
    """``cupy.cuda.Device``: ``id``, ``use()``, a context manager, compute capability 9.0."""

    def __init__(self, device=None):
        self.id = _current[0] if device is None else int(device)
        self._previous = []

    compute_capability = "90"

    @property
    def mem_info(self):
        _check_device(self.id)
        return _mem_info()

    @property
    def attributes(self):
        _check_device(self.id)
        return {"MaxThreadsPerBlock": 1024, "MultiProcessorCount": 132, "WarpSize": 32,
                "ComputeCapabilityMajor": 9, "ComputeCapabilityMinor": 0}

    def use(self):
        _set_device(self.id)

    def synchronize(self):
        _check_device(self.id)

    def __enter__(self):
        self._previous.append(_current[0])
        _set_device(self.id)
        return self

    def __exit__(self, *exc):
        _current[0] = self._previous.pop()
        return False

    def __int__(self):
        return self.id

    def __index__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class Event:
    """``cupy.cuda.Event``: records host time (everything is synchronous here)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.disable_timing = disable_timing
        self._t = None

    def record(self, stream=None):
        self._t = _time.perf_counter()

    def synchronize(self):
        pass

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event) -> float:
    """Milliseconds between two recorded events."""
    if start_event._t is None or end_event._t is None:
        raise CUDADriverError(1, "an event was not recorded")
    return (end_event._t - start_event._t) * 1e3


class Stream:
    """``cupy.cuda.Stream``: work is synchronous on the host, so ``synchronize`` only
    returns; ``Stream.null`` is the default stream."""

    def __init__(self, null=False, non_blocking=False, ptr=None, priority=None):
        self.ptr = 0 if null else (ptr or id(self))
        self._previous = []

    def synchronize(self):
        pass

    @property
    def done(self):
        return True

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def use(self):
        _stream[0] = self
        return self

    def __enter__(self):
        self._previous.append(_stream[0])
        _stream[0] = self
        return self

    def __exit__(self, *exc):
        _stream[0] = self._previous.pop()
        return False

    def __repr__(self):
        return f"<Stream {self.ptr}>"


Stream.null = Stream(null=True)
_stream = [Stream.null]


class ExternalStream(Stream):
    def __init__(self, ptr, device_id=-1):
        super().__init__(ptr=ptr)


def get_current_stream(device_id=-1):
    return _stream[0]


from ._core import MemoryPointer  # noqa: E402,F401  (cupy.cuda.MemoryPointer)
