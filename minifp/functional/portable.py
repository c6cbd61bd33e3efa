"""Transcendental float64 results that round alike on every backend.

exp, log, tanh, erf and pow in float64 come from different libraries on NumPy (glibc),
and on a GPU (CUDA's libdevice), and may differ in their last bits.  minifp only ever
rounds such a value once to a narrow format, so it needs the *rounded* result to be the
host's.  For CuPy data :func:`portable` computes the value on the device and rounds the
ends of a window around it that covers both libraries' errors (a few float64 ulps of the
result, plus an absolute term for expressions that cancel); where the two ends round
differently (rare: the window straddles a rounding boundary of the target format) those
elements are recomputed by NumPy on the host.  Everywhere else the host's value lies in
the window, and rounding is monotone, so it rounds to the same value.  Stochastic
rounding looks at every bit of the value: there the whole array is computed on the host.
NumPy data are computed as before, once.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module, asnumpy
from ..formats import Rounding

#: the window's relative half-width: 2**-48 = 16 float64 ulps (CUDA's double exp, log,
#: tanh are within 1 ulp, erf and pow within 2; glibc's within 1)
RELATIVE = 2.0 ** -48


def portable(f, args, fmt, mode, scale=None):
    """``f(xp, *args)`` (float64 arrays, broadcast) such that rounding it to ``fmt`` in
    ``mode`` gives the NumPy backend's result.  ``scale``: ``None``, or an array of the
    magnitudes whose relative errors reach the result in absolute terms (``1`` for
    0.5 + 0.5 tanh(x/2), ``|x|`` for x erf(x)), or a function ``scale(xp, *args)``
    giving it: called only for CuPy data, so the NumPy path does no extra work."""
    xp = array_module(*[a for a in args if hasattr(a, "shape")])
    if xp is np:
        return f(np, *args)
    if Rounding(mode) is Rounding.STOCHASTIC or fmt.precision >= 50:
        host = [asnumpy(a) if hasattr(a, "shape") else a for a in args]
        return xp.asarray(f(np, *host))
    with np.errstate(all="ignore"):
        r = f(xp, *args)
        width = xp.abs(r) * RELATIVE + 4.0 * 2.0 ** -1074
        if callable(scale):
            scale = scale(xp, *args)
        if scale is not None:
            width = width + xp.abs(scale) * RELATIVE
        lo = fmt.round(r - width, mode, dtype=np.float64)
        hi = fmt.round(r + width, mode, dtype=np.float64)
    finite = xp.isfinite(r)
    ambiguous = finite & ~((lo == hi) & (xp.signbit(lo) == xp.signbit(hi)))
    if not bool(ambiguous.any()):
        return r
    shape = r.shape
    where = xp.nonzero(ambiguous.reshape(-1))[0]
    host = []
    for a in args:
        if hasattr(a, "shape"):
            a = xp.broadcast_to(a, shape).reshape(-1)[where]
            host.append(asnumpy(a))
        else:
            host.append(a)
    with np.errstate(all="ignore"):
        exact = xp.asarray(f(np, *host))
    r = r.reshape(-1).copy()
    r[where] = exact
    return r.reshape(shape)


def portable_for(fn, role, f, args, scale=None):
    """:func:`portable` for the format and rounding mode of ``role`` in ``fn``'s policy."""
    p = fn.policy
    return portable(f, args, p.format_of(role), p.rounding_of(role), scale)
