"""Rounding modes and the random bits that stochastic rounding consumes."""
from __future__ import annotations

import enum

import numpy as np


class Rounding(str, enum.Enum):
    """How a value between two neighbours of a format is resolved.

    ``nearest_even``  IEEE roundTiesToEven (the default everywhere).
    ``nearest_away``  IEEE roundTiesToAway.
    ``toward_zero``   truncation.
    ``up``            toward +infinity.
    ``down``          toward -infinity.
    ``to_odd``        truncate, then pick the neighbour with an odd code if inexact
                      (von Neumann / Boldo-Melquiond rounding used to avoid double rounding).
    ``stochastic``    round away from zero with probability (|x| - lo) / (hi - lo),
                      random bits from a caller-supplied ``numpy.random.Generator``;
                      the expected result equals x.
    """

    NEAREST_EVEN = "nearest_even"
    NEAREST_AWAY = "nearest_away"
    TOWARD_ZERO = "toward_zero"
    UP = "up"
    DOWN = "down"
    TO_ODD = "to_odd"
    STOCHASTIC = "stochastic"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


_ALIASES = {
    "nearest_even": Rounding.NEAREST_EVEN, "nearest": Rounding.NEAREST_EVEN,
    "rne": Rounding.NEAREST_EVEN, "ties_to_even": Rounding.NEAREST_EVEN,
    "nearest_away": Rounding.NEAREST_AWAY, "rna": Rounding.NEAREST_AWAY,
    "ties_to_away": Rounding.NEAREST_AWAY,
    "toward_zero": Rounding.TOWARD_ZERO, "rtz": Rounding.TOWARD_ZERO,
    "truncate": Rounding.TOWARD_ZERO,
    "up": Rounding.UP, "ru": Rounding.UP, "toward_positive": Rounding.UP,
    "down": Rounding.DOWN, "rd": Rounding.DOWN, "toward_negative": Rounding.DOWN,
    "to_odd": Rounding.TO_ODD, "rto": Rounding.TO_ODD, "odd": Rounding.TO_ODD,
    "stochastic": Rounding.STOCHASTIC, "sr": Rounding.STOCHASTIC,
}

MODE_NAMES = tuple(m.value for m in Rounding)


def parse_rounding(mode) -> Rounding:
    """Turn a mode name (or alias such as ``rne``, ``rtz``, ``sr``) into a :class:`Rounding`."""
    if isinstance(mode, Rounding):
        return mode
    key = str(mode).strip().lower().replace("-", "_")
    if key not in _ALIASES:
        raise ValueError(
            f"unknown rounding mode {mode!r} (known: {', '.join(MODE_NAMES)})")
    return _ALIASES[key]


def check_rng(mode: Rounding, rng):
    """Stochastic rounding needs a generator; the other modes ignore ``rng``."""
    if mode is Rounding.STOCHASTIC and (rng is None or not hasattr(rng, "integers")):
        got = "" if rng is None else f" (got {type(rng).__name__})"
        raise ValueError("stochastic rounding needs a random generator: pass "
                         f"rng=numpy.random.default_rng(seed){got}")


def random_words(rng, shape, dtype, xp=np):
    """Uniform random unsigned words of ``dtype`` (uint32 or uint64), one per element.

    The stream is documented so results can be reproduced: NumPy generators are
    asked for ``rng.integers(0, 2**bits, size=shape, dtype=dtype, endpoint=False)``.
    A CuPy generator is used the same way for CuPy data.
    """
    dtype = np.dtype(dtype)
    hi = 1 << (8 * dtype.itemsize)
    words = rng.integers(0, hi, size=shape, dtype=dtype)
    if xp is not np and not isinstance(words, xp.ndarray):
        words = xp.asarray(words)
    return words


def random_unit(rng, shape, xp=np):
    """Uniform doubles in [0, 1) with 53 random bits: ``rng.random(size=shape)``."""
    u = rng.random(size=shape)
    if xp is not np and not isinstance(u, xp.ndarray):
        u = xp.asarray(u)
    return u
