"""Inverted dropout."""
from __future__ import annotations

import numpy as np

from .. import precision as _precision
from ..autograd import Function, Tensor
from ..backend import array_module
from .core import f64
from .exactops import prepare_for

__all__ = ["dropout"]


class Dropout(Function):
    op_name = "dropout"
    p = 0.5

    def forward(self, x, mask):
        self.saved_mask = mask
        self.scale = 1.0 / (1.0 - self.p)
        kept = f64(x) * f64(mask)                   # exact: the mask is 0 or 1
        return self.round_out(prepare_for(self, self.output_role, "mul", kept, self.scale))

    def backward(self, g):
        kept = f64(g) * f64(self.saved_mask)
        return self.round_grad(0, prepare_for(self, self.grad_role(0), "mul", kept,
                                              self.scale)), None


def dropout(x, p: float = 0.5, training: bool = True, rng=None):
    """Zero each element with probability ``p`` and scale the rest by s = 1/(1-p) (s the
    float64 quotient): x * s correctly rounded to F (float64 for formats of at most 25
    bits, the exact product rounded to odd for wider ones); gradient: the same mask and
    scale, g * s correctly rounded to B.
    The mask is ``rng.random(x.shape) >= p`` from ``rng`` (a numpy Generator; default
    :func:`minifp.precision.current_rng`), so a fixed seed gives a fixed mask.  Identity
    (the same Tensor) when not ``training`` or ``p == 0``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x if isinstance(x, Tensor) else Tensor(x)
    data = x.data if isinstance(x, Tensor) else x
    xp = array_module(data)
    if rng is None:
        rng = _precision.current_rng()
    mask = rng.random(tuple(data.shape)) >= p
    mask = xp.asarray(mask).astype(np.float32)
    return Dropout.apply(x, Tensor(mask), p=float(p))
