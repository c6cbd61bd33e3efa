"""Reductions: sum and mean, through the accumulation engine.

Forward: the engine reduces under the forward Accumulation (terms in C index order of the
reduced axes) and rounds once to F.  Backward: the gradient is broadcast back (sum) or
divided by the count (mean), the quotient correctly rounded to B (G for Parameters):
float64 for formats of at most 25 bits, the exact quotient rounded to odd for wider ones
(:func:`~minifp.functional.exactops.prepare`).
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import array_module
from .core import engine_mean, engine_sum, f64, normalize_axes
from .exactops import prepare_for

__all__ = ["sum", "mean"]


class _Reduce(Function):
    forward_reduces = True
    axis = None
    keepdims = False

    def forward(self, x):
        self.in_shape = tuple(x.shape)
        self.axes = normalize_axes(self.axis, x.ndim)
        reducer = engine_sum if self.op_name == "sum" else engine_mean
        return reducer(self, x, self.axes, "forward", self.output_role, self.keepdims)

    def backward(self, g):
        xp = array_module(g)
        kept = [1 if i in self.axes else n for i, n in enumerate(self.in_shape)]
        g = f64(g).reshape(kept)
        if self.op_name == "mean":
            count = 1
            for i in self.axes:
                count *= self.in_shape[i]
            g = prepare_for(self, self.grad_role(0), "div", g, float(count))
        return self.round_grad(0, xp.broadcast_to(g, self.in_shape))


class Sum(_Reduce):
    op_name = "sum"


class Mean(_Reduce):
    op_name = "mean"


def sum(x, axis=None, keepdims: bool = False):  # noqa: A001 - mirrors numpy
    """Sum over ``axis`` (None: all) via the engine under the forward Accumulation,
    rounded once to F."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False):
    """Mean over ``axis`` (None: all): engine sum (forward Accumulation) divided by the
    count, rounded once to F."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)
