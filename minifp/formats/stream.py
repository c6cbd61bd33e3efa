"""The random bits of stochastic rounding: one 64-bit word per rounding, from a counter.

A rounding call (``Format.round`` or one reduction of the engine) draws one key from
the caller's generator, ``key = rng.integers(0, 2**64, dtype=uint64)``, and every
rounding it performs takes the word

    word(key, event, index) = mix(mix(key + (event + 1) * G2) + (index + 1) * G1)

(arithmetic modulo 2**64; ``mix`` is the SplitMix64 finaliser, G1 = 0x9E3779B97F4A7C15,
G2 = 0xD1B54A32D192ED03).  ``index`` is the element's C-order position in the result,
``event`` numbers the roundings that element goes through (0 for an elementwise
rounding; the accumulation orders document theirs).  The words depend on nothing else:
not on the backend, the thread count, the tiling or the chunking, so NumPy, the C
kernels and the CUDA kernels round alike.  The same formulas are in
``minifp/kernels/src/mf_round.h``.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module

G1 = 0x9E3779B97F4A7C15
G2 = 0xD1B54A32D192ED03
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1


def mix(z, xp=np):
    """SplitMix64's finaliser on a uint64 array (a bijection of 64-bit words)."""
    z = xp.asarray(z, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(M2)
    return z ^ (z >> np.uint64(31))


def _mix_int(z: int) -> int:
    z &= _MASK
    z = ((z ^ (z >> 30)) * M1) & _MASK
    z = ((z ^ (z >> 27)) * M2) & _MASK
    return z ^ (z >> 31)


def draw_key(rng) -> int:
    """One 64-bit key from a generator (the only draw a rounding call makes)."""
    return int(rng.integers(0, 1 << 64, dtype=np.uint64))


def event_key(key: int, event) :
    """mix(key + (event + 1) * G2): a Python int for an int event, else a uint64 array."""
    if isinstance(event, (int, np.integer)):
        return _mix_int(int(key) + (int(event) + 1) * G2)
    xp = array_module(event)
    e = xp.asarray(event, dtype=np.uint64)
    return mix(np.uint64(key) + (e + np.uint64(1)) * np.uint64(G2), xp)


def words(key: int, event, index, xp=np):
    """The words of elements ``index`` (uint64 array) at ``event`` (int or array that
    broadcasts with ``index``)."""
    ek = event_key(key, event)
    idx = xp.asarray(index, dtype=np.uint64)
    ek = np.uint64(ek) if isinstance(ek, int) else ek
    return mix(ek + (idx + np.uint64(1)) * np.uint64(G1), xp)


def unit(w):
    """A word's top 53 bits as a double in [0, 1)."""
    return (w >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


class Stream:
    """The key of one rounding call; ``words(event, index)`` gives its words."""

    __slots__ = ("key", "xp")

    def __init__(self, key: int, xp=np):
        self.key = int(key) & _MASK
        self.xp = xp

    @classmethod
    def from_rng(cls, rng, xp=np):
        return cls(draw_key(rng), xp)

    def words(self, event, index):
        return words(self.key, event, index, self.xp)

    def words_for_shape(self, shape, event=0):
        """Words of every element of an array of ``shape`` (C order) at ``event``."""
        n = int(np.prod(shape)) if len(shape) else 1
        return self.words(event, self.xp.arange(n, dtype=np.uint64)).reshape(shape)
