"""Seeded initialisers, computed in float64.

Every initialiser draws from a ``numpy.random.Generator`` on the host and returns a float64
NumPy array: these are the *master* values of a parameter.  A model built for any precision
policy draws exactly the same master values (the policy plays no part here); ``Module.to``
then rounds them once to each layer's weights format.

Where the generator comes from (``make_rng``):

* ``seed=None``     the global generator, set with :func:`seed` (default seed 0), so that
                    ``init.seed(s); build_model()`` is reproducible;
* ``seed=int``      a fresh ``numpy.random.default_rng(seed)``;
* ``seed=Generator`` used as is (draws advance it).

>>> from minifp.nn import init
>>> init.seed(1)
>>> w = init.kaiming_uniform((3, 4), fan_in=4)
>>> w.dtype
dtype('float64')
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["seed", "global_rng", "make_rng", "child_seed", "kaiming_uniform", "xavier_uniform",
           "uniform", "normal", "trunc_normal", "zeros", "ones", "fans"]

_GLOBAL_SEED = 0
_global = np.random.default_rng(_GLOBAL_SEED)


def seed(value: int = 0) -> None:
    """Reset the global initialisation generator to ``numpy.random.default_rng(value)``."""
    global _global, _GLOBAL_SEED
    _GLOBAL_SEED = int(value)
    _global = np.random.default_rng(_GLOBAL_SEED)


def global_rng() -> np.random.Generator:
    """The global initialisation generator (see :func:`seed`)."""
    return _global


def make_rng(seed=None) -> np.random.Generator:
    """A Generator from ``None`` (the global one), an int, or a Generator (returned as is)."""
    if seed is None:
        return _global
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None, an int or a numpy.random.Generator, "
                        f"got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def child_seed(rng: np.random.Generator) -> int:
    """Draw one 63-bit integer seed from ``rng`` (for a module's own stream, e.g. Dropout)."""
    return int(rng.integers(0, 2**63 - 1))


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``: (out, in) or (out, in, kh, kw)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"fans need a weight of at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape, bound: float, rng=None) -> np.ndarray:
    """U(-bound, bound) in float64."""
    return make_rng(rng).uniform(-bound, bound, size=tuple(shape)).astype(np.float64)


def kaiming_uniform(shape, fan_in: int | None = None, gain: float = math.sqrt(2.0),
                    rng=None) -> np.ndarray:
    """He/Kaiming uniform, U(-b, b) with b = gain * sqrt(3 / fan_in) (gain sqrt(2): ReLU)."""
    if fan_in is None:
        fan_in = fans(shape)[0]
    return uniform(shape, gain * math.sqrt(3.0 / fan_in), rng)


def xavier_uniform(shape, fan_in: int | None = None, fan_out: int | None = None,
                   gain: float = 1.0, rng=None) -> np.ndarray:
    """Glorot/Xavier uniform, U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    if fan_in is None or fan_out is None:
        fi, fo = fans(shape)
        fan_in = fi if fan_in is None else fan_in
        fan_out = fo if fan_out is None else fan_out
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng)


def normal(shape, std: float = 1.0, rng=None) -> np.ndarray:
    """N(0, std^2) in float64."""
    return make_rng(rng).normal(0.0, std, size=tuple(shape)).astype(np.float64)


def trunc_normal(shape, std: float = 0.02, rng=None) -> np.ndarray:
    """N(0, std^2) truncated to [-2 std, 2 std] (redrawn, not clipped), float64."""
    g = make_rng(rng)
    out = g.normal(0.0, std, size=tuple(shape))
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = g.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out.astype(np.float64)


def zeros(shape) -> np.ndarray:
    """Zeros in float64."""
    return np.zeros(tuple(shape), dtype=np.float64)


def ones(shape) -> np.ndarray:
    """Ones in float64."""
    return np.ones(tuple(shape), dtype=np.float64)
