"""The interface every number format implements.

A format is a finite set of values plus a rounding function onto it. Values live
in a *carrier*: the narrowest native NumPy float dtype (float16, float32 or
float64) that holds every value of the format exactly, so arithmetic on carriers
never loses a format value. ``encode``/``decode`` map values to the unsigned
integer codes of the format's bit layout and back.
"""
from __future__ import annotations

import abc
from fractions import Fraction

import numpy as np

from ..backend import array_module
from .modes import Rounding, check_rng, parse_rounding
from .stream import Stream, draw_key

CHUNK = 28672  # elements per cache-sized block when rounding large NumPy arrays

_CODE_DTYPES = ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, np.uint64))


def code_dtype_for(bits: int) -> np.dtype:
    """Narrowest unsigned integer dtype with at least ``bits`` bits."""
    for width, dt in _CODE_DTYPES:
        if bits <= width:
            return np.dtype(dt)
    raise ValueError(f"formats wider than 64 bits are not supported ({bits} bits)")


def as_float_array(x):
    """Return ``(xp, array)`` with a float dtype: float16/32/64 pass through,
    everything else (ints, bools, Python scalars, lists) becomes float64."""
    xp = array_module(x)
    a = xp.asarray(x)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"expected real numbers, got an array of dtype {a.dtype} "
                         "(complex, object and string data are not rounded)")
    if a.dtype.kind != "f" or a.dtype.itemsize > 8:
        a = a.astype(np.float64)
    return xp, a


class Format(abc.ABC):
    """A number format: a value set, its codes, and rounding onto it.

    Subclasses provide the properties below and the private hooks ``_round_flat``
    (values → rounded values, one cache-sized block at a time), ``_draw`` (the
    random numbers stochastic rounding consumes, one per element), ``_encode_values``
    (representable carrier values → codes) and ``_decode_codes``.
    """

    name: str

    # ---- properties every format reports ---------------------------------
    @property
    @abc.abstractmethod
    def bits(self) -> int:
        """Width of a code in bits."""

    @property
    @abc.abstractmethod
    def precision(self) -> int:
        """Significand bits including the hidden bit (for posits: the most, reached near 1)."""

    @property
    def unit_roundoff(self) -> float:
        """u = 2**-p: the largest relative error of round-to-nearest in the normal range."""
        return 2.0 ** -self.precision

    @property
    @abc.abstractmethod
    def max(self) -> float:
        """Largest finite value."""

    @property
    @abc.abstractmethod
    def smallest_normal(self) -> float:
        """Smallest positive normal value (posits: minpos)."""

    @property
    @abc.abstractmethod
    def smallest_subnormal(self) -> float:
        """Smallest positive value (equals ``smallest_normal`` without subnormals)."""

    @property
    @abc.abstractmethod
    def carrier(self) -> np.dtype:
        """Narrowest NumPy float dtype holding every value of the format exactly."""

    @property
    @abc.abstractmethod
    def has_inf(self) -> bool: ...

    @property
    @abc.abstractmethod
    def has_nan(self) -> bool: ...

    @property
    @abc.abstractmethod
    def has_negative_zero(self) -> bool: ...

    @property
    @abc.abstractmethod
    def specials(self) -> str:
        """One line describing the Inf/NaN encodings and overflow behaviour."""

    @property
    def code_dtype(self) -> np.dtype:
        """Unsigned integer dtype of the codes returned by :meth:`encode`."""
        return code_dtype_for(self.bits)

    # ---- the operations ---------------------------------------------------
    def round(self, x, mode="nearest_even", rng=None, *, dtype=None, words=None):
        """Round every element of ``x`` to this format.

        ``x``: array-like of any real dtype (NumPy or CuPy); float16/float32/float64
        inputs are rounded directly (one rounding, no intermediate format), other
        dtypes are first converted to float64. ``mode``: a :class:`Rounding` or its
        name. ``rng``: a ``numpy.random.Generator``, required by ``stochastic`` (also
        for CuPy data: the one key of the call is drawn on the host). Returns an array of the carrier dtype, or
        of ``dtype`` if given (it must hold every value of the format).

        Stochastic rounding works on the float64 value of every input (so the input
        dtype never changes a result) and takes one 64-bit word per element: the
        words of one key drawn from ``rng`` (:mod:`minifp.formats.stream`, event 0,
        the element's C-order index), or ``words`` (a uint64 array of x's shape) when
        the caller computed them.
        """
        mode = parse_rounding(mode)
        if words is None:
            check_rng(mode, rng)
        xp, a = as_float_array(x)
        out_dtype = self.carrier if dtype is None else np.dtype(dtype)
        if dtype is not None and not self.fits_in(out_dtype):
            raise ValueError(f"{out_dtype} cannot hold every value of {self.name}")
        if mode is Rounding.STOCHASTIC:
            with np.errstate(invalid="ignore"):      # signalling NaNs stay NaN
                a = a.astype(np.float64, copy=False)
            if words is not None and tuple(words.shape) != tuple(a.shape):
                words = xp.broadcast_to(words, a.shape)
        return self._round_driver(xp, a, mode, rng, out_dtype, words)

    def _round_driver(self, xp, a, mode, rng, out_dtype, words=None):
        """Draw the per-element random words, then round NumPy data in chunks
        of ``CHUNK`` elements so every intermediate pass stays in cache."""
        if a.ndim == 0:
            w = None if words is None else words.reshape(1)
            return self._round_driver(xp, a.reshape(1), mode, rng, out_dtype, w).reshape(())
        if xp is not np and words is None:       # CuPy: the CUDA rounding kernel
            return self._round_device(xp, a, mode, rng, out_dtype)
        rand = words if words is not None else self._draw(xp, a, mode, rng)
        n = a.size
        if xp is not np or n <= CHUNK:
            return self._round_flat(xp, a, mode, rng, rand).astype(out_dtype, copy=False)
        flat = np.ascontiguousarray(a).reshape(-1)
        rand = None if rand is None else np.ascontiguousarray(rand).reshape(-1)
        out = np.empty(n, dtype=out_dtype)
        for i in range(0, n, CHUNK):
            part = slice(i, i + CHUNK)
            out[part] = self._round_flat(np, flat[part], mode, rng,
                                         None if rand is None else rand[part])
        return out.reshape(a.shape)

    def _round_device(self, xp, a, mode, rng, out_dtype):
        """CuPy data through mf_round_array_kernel (bit for bit the NumPy rounding: it
        rounds the float64 value, as every path here does; stochastic words of one key
        drawn from ``rng`` on the host, event 0, the C-order index)."""
        from ..kernels import cuda  # noqa: PLC0415 - the GPU path only
        key = draw_key(rng) if mode is Rounding.STOCHASTIC else 0
        with np.errstate(invalid="ignore"):
            a64 = a.astype(np.float64, copy=False)
        return cuda.round_array(self, a64, mode, key).astype(out_dtype, copy=False)

    def _draw(self, xp, a, mode, rng):
        """The words stochastic rounding consumes, one per element (or None)."""
        if mode is not Rounding.STOCHASTIC:
            return None
        return Stream.from_rng(rng, xp).words_for_shape(a.shape)

    def encode(self, x, mode="nearest_even", rng=None):
        """Round ``x`` (see :meth:`round`) and return the unsigned integer codes."""
        r = self.round(x, mode, rng)
        xp = array_module(r)
        return self._encode_values(xp, r)

    def decode(self, codes):
        """Values (in the carrier dtype) of unsigned integer codes."""
        xp = array_module(codes)
        c = xp.asarray(codes)
        if c.dtype.kind not in "ui":
            raise ValueError(f"codes must be integers, got dtype {c.dtype}")
        if c.size and (bool((c < 0).any()) or bool((c >= (1 << self.bits)).any())):
            raise ValueError(f"codes of {self.name} lie in [0, 2**{self.bits})")
        return self._decode_codes(xp, c.astype(np.uint64))

    def is_representable(self, x):
        """Elementwise: is the value exactly one of the format's values?
        NaN counts as representable when the format has a NaN."""
        xp, a = as_float_array(x)
        r = self._round_driver(xp, a, Rounding.TOWARD_ZERO, None, a.dtype)
        same = (r == a) & (xp.signbit(r) == xp.signbit(a))
        if not self.has_negative_zero:
            same &= ~((a == 0) & xp.signbit(a))
        if self.has_nan:
            same |= xp.isnan(a)
        return same

    def fits_in(self, dtype) -> bool:
        """True if ``dtype`` holds every value of the format exactly."""
        order = {np.dtype(np.float16): 0, np.dtype(np.float32): 1, np.dtype(np.float64): 2}
        d = np.dtype(dtype)
        return d in order and order[d] >= order[self.carrier]

    # ---- inspection ------------------------------------------------------
    def code_table(self):
        """All codes and their values (formats of at most 16 bits)."""
        if self.bits > 16:
            raise ValueError(f"{self.name} has 2**{self.bits} codes: too many to list")
        codes = np.arange(1 << self.bits, dtype=np.uint64).astype(self.code_dtype)
        return codes, self.decode(codes)

    def describe(self) -> dict:
        """Properties as plain Python values (for tables and JSON)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "bits": self.bits,
            "precision": self.precision,
            "unit_roundoff": self.unit_roundoff,
            "max": self.max,
            "smallest_normal": self.smallest_normal,
            "smallest_subnormal": self.smallest_subnormal,
            "has_inf": self.has_inf,
            "has_nan": self.has_nan,
            "has_negative_zero": self.has_negative_zero,
            "specials": self.specials,
            "carrier": str(self.carrier),
        }

    def exact_value(self, code: int) -> Fraction:
        """Exact value of a finite code as a Fraction (NaN/Inf raise ValueError)."""
        v = float(self.decode(np.array([code], dtype=self.code_dtype))[0])
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"code {code:#x} of {self.name} is not finite")
        return Fraction(v)

    kind: str = "format"

    @abc.abstractmethod
    def _round_flat(self, xp, a, mode: Rounding, rng, rand):
        """Round ``a`` (float16/32/64) with ``mode``; ``rand`` is this chunk's share
        of :meth:`_draw`. Returns floats of any dtype that holds the results."""

    @abc.abstractmethod
    def _encode_values(self, xp, r): ...

    @abc.abstractmethod
    def _decode_codes(self, xp, codes_u64): ...

    def __str__(self) -> str:
        return self.name
