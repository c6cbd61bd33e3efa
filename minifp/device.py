"""Devices: where a network's arrays live.  ``cpu`` (NumPy) or ``cuda:N`` (CuPy on GPU N;
``gpu`` is ``cuda:0``).

Moving an array never changes a bit: the values are copied as they are (float16 stays
float16).  minifp converts device arrays to NumPy only at the edges: metrics, checkpoints
and inspection output.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import numpy as np

from .backend import asnumpy, cupy_module, gpu_available, is_device_array
from .errors import UserError


@dataclass(frozen=True)
class Device:
    """A place for arrays: ``Device("cpu")`` or ``Device("cuda", N)``."""
    kind: str = "cpu"
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    @property
    def xp(self):
        """The array module: numpy or cupy."""
        return cupy_module() if self.is_gpu else np

    @contextlib.contextmanager
    def selected(self):
        """Make this the current CUDA device for the block (no-op on the CPU)."""
        if not self.is_gpu:
            yield self
            return
        with cupy_module().cuda.Device(self.index):
            yield self

    def put(self, a):
        """``a`` (NumPy or CuPy array, or None) on this device, bits unchanged."""
        if a is None:
            return None
        if not self.is_gpu:
            return asnumpy(a) if is_device_array(a) else a
        cp = cupy_module()
        if is_device_array(a) and device_of(a) == self:
            return a
        with cp.cuda.Device(self.index):
            return cp.asarray(asnumpy(a) if is_device_array(a) else np.asarray(a))


CPU = Device("cpu")

_SPEC = re.compile(r"(cpu|gpu|cuda)(?::(\d+))?")


def parse_device(spec) -> Device:
    """A Device from ``cpu``, ``gpu``, ``cuda`` or ``cuda:N`` (or a Device).  A GPU that
    is not there is a UserError in one line."""
    name = str(spec)
    if isinstance(spec, Device):
        dev = spec
    else:
        m = _SPEC.fullmatch(str(spec).strip().lower())
        if not m or (m.group(1) == "cpu" and m.group(2) is not None):
            raise UserError(f"unknown device {spec!r} (use cpu, gpu or cuda:N)")
        if m.group(1) == "cpu":
            return CPU
        dev = Device("cuda", int(m.group(2) or 0))
    if dev.is_gpu:
        if not gpu_available():
            raise UserError(f"device {name}: no GPU here (CuPy is not installed or sees no "
                            "CUDA device); use cpu")
        count = int(cupy_module().cuda.runtime.getDeviceCount())
        if dev.index >= count:
            raise UserError(f"device {name}: there {'is' if count == 1 else 'are'} only "
                            f"{count} GPU{'s' if count != 1 else ''} (cuda:0 .. "
                            f"cuda:{count - 1})")
    return dev


def device_of(a) -> Device:
    """The device an array lives on."""
    if is_device_array(a):
        return Device("cuda", int(a.device.id))
    return CPU


def to_numpy(a):
    """A NumPy copy (or the array itself) of ``a``, for metrics, checkpoints and output."""
    return asnumpy(a)
