"""Strict JSON for everything minifp writes: non-finite floats become ``null``.

Python's ``json`` writes ``NaN``/``Infinity`` by default, which RFC 8259 (and most
parsers outside Python) reject.  :func:`dumps` replaces every non-finite float (NumPy
scalars and arrays included) by ``None`` and writes with ``allow_nan=False``, so a value
that slipped through is an error here, not an unreadable file later.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["strict", "dumps", "loads_strict", "replacing", "write_atomic",
           "write_lines_atomic"]


def strict(obj):
    """``obj`` with NumPy values turned into Python ones and non-finite floats into None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if isinstance(obj, np.generic):
        return strict(obj.item())
    if isinstance(obj, np.ndarray):
        return strict(obj.tolist())
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):   # a CuPy array
        from .backend import asnumpy  # noqa: PLC0415
        return strict(asnumpy(obj).tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def dumps(obj, indent=None) -> str:
    """Strict JSON text of ``obj`` (see the module docstring)."""
    return json.dumps(strict(obj), indent=indent, allow_nan=False)


def _refuse(name):
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(text: str):
    """Parse JSON text, refusing ``NaN``, ``Infinity`` and ``-Infinity``."""
    return json.loads(text, parse_constant=_refuse)


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside ``path``; when the block ends without an error the
    temporary file is fsynced and moved over ``path`` (a reader sees the old or the new
    file, never a part), else it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_lines_atomic(path, lines) -> None:
    """Write ``lines`` (each gets a newline) to ``path`` atomically (:func:`replacing`)."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")


def write_atomic(path, obj, indent=2) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically."""
    write_lines_atomic(path, [dumps(obj, indent=indent)])
