"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

The formulas are PyTorch's ``torch.optim.SGD`` (``g`` the gradient, ``w`` the weight,
``b`` the momentum buffer)::

    g  = g + weight_decay * w                        (when weight_decay != 0)
    b  = g                                           (first step of the parameter)
    b  = momentum * b + (1 - dampening) * g          (later steps)
    d  = g + momentum * b   (nesterov)   or   d = b   (momentum != 0)   or   d = g
    w  = w - lr * d

Each line is evaluated in float64 from the stored values (``g`` as stored in G, ``b`` as
stored in O, ``w`` the master in O or the parameter in W); the new buffer is rounded once
to O and stored, and ``d`` uses the stored (rounded) buffer; the new weight is rounded once
to O (master weights) and then to W, or once to W directly (see :mod:`minifp.optim.base`).
"""
from __future__ import annotations

from ..errors import UserError
from .base import Optimizer, _f64, _number

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, nesterov=False, weight_decay=0, policy=None,
    dampening=0)``.  ``params``: a Module or a list of ``(name, Parameter)``.  State per
    parameter: ``momentum_buffer`` (in O, when ``momentum != 0``), ``master`` (in O, with
    master weights)."""

    name = "sgd"
    state_keys = ("momentum_buffer",)
    hyper_keys = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 policy=None, dampening=0.0):
        self.lr = _number("SGD learning rate lr", lr)
        self.momentum = _number("SGD momentum", momentum)
        self.dampening = _number("SGD dampening", dampening)
        self.weight_decay = _number("SGD weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise UserError("SGD with nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, policy)

    def _update(self, name, w, g, state, lp):
        if self.weight_decay != 0:
            g = g + self.weight_decay * w
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                new_buf = g
            else:
                new_buf = self.momentum * _f64(buf) + (1.0 - self.dampening) * g
            b = _f64(self._store(state, "momentum_buffer", lp, new_buf))
            d = g + self.momentum * b if self.nesterov else b
        else:
            d = g
        return w - self.lr * d
