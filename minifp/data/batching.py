"""Mini-batches: one pass over (x, y) per call, in a seeded random order."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import UserError

__all__ = ["batches", "num_batches"]


def _check_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise UserError(f"batch size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches :func:`batches` yields for ``n`` samples."""
    batch_size = _check_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(x, y, batch_size: int, rng=None, shuffle: bool = True,
            drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(xb, yb)`` covering every sample exactly once (one epoch).

    With ``shuffle`` the order is ``rng.permutation(n)``: pass one ``numpy.random.Generator``
    for the whole run and each epoch gets a new, reproducible order (an int seeds a fresh
    generator; ``None`` means seed 0, i.e. the same order every call).  The last batch may be
    smaller unless ``drop_last``.  Batches are copies (fancy indexing) when shuffled and
    views otherwise.
    """
    batch_size = _check_size(batch_size)
    n = len(x)
    if len(y) != n:
        raise UserError(f"x has {n} samples but y has {len(y)}")
    if shuffle:
        if rng is None:
            rng = np.random.default_rng(0)
        elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            rng = np.random.default_rng(int(rng))
        elif not isinstance(rng, np.random.Generator):
            raise UserError(f"rng must be a numpy Generator, an int seed or None, "
                            f"got {type(rng).__name__}")
        order = rng.permutation(n)
    else:
        order = None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            yield x[start:end], y[start:end]
        else:
            idx = order[start:end]
            yield x[idx], y[idx]
