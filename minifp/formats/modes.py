"""Rounding modes (the random bits of stochastic rounding: :mod:`.stream`)."""
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
                      one random 64-bit word per rounding from a key that a
                      caller-supplied ``numpy.random.Generator`` draws (see
                      :mod:`minifp.formats.stream`); the expected result equals x.
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
