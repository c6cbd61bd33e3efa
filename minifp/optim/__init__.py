"""Optimizers and loss scaling under a precision policy.

* :class:`SGD`, :class:`Adam`, :class:`AdamW`: the update arithmetic is done in float64
  from the stored values and rounded once to the optimizer format O (state: momentum,
  Adam ``m`` / ``v``; master weights when ``policy.master_weights``), and the parameters
  are rounded once to their layer's weights format W (see :mod:`minifp.optim.base`).
* :class:`LossScaler`: static / dynamic loss scaling with the skip-on-overflow protocol
  (see :mod:`minifp.optim.loss_scaling`).
* :func:`build_optimizer` by name; :class:`PrecisionWarning` for settings a format cannot
  hold (an Adam eps below the smallest normal of O).

>>> import numpy as np
>>> from minifp.autograd import Parameter, Tensor
>>> w = Parameter(np.array([1.0, 2.0]))
>>> w.grad = Tensor(np.array([0.5, -0.5]))
>>> opt = SGD([("w", w)], lr=0.1, policy="float64")
>>> opt.step(); w.data
array([0.95, 2.05])
"""
from __future__ import annotations

from ..errors import UserError
from .adam import Adam, AdamW
from .base import Optimizer, PrecisionWarning
from .loss_scaling import LossScaler
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LossScaler", "PrecisionWarning",
           "OPTIMIZERS", "build_optimizer"]

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def build_optimizer(name, model, lr=None, policy=None, **kw) -> Optimizer:
    """The optimizer ``name`` ("sgd", "adam", "adamw"; case-insensitive) over ``model``
    (a Module or a list of ``(name, Parameter)``).  ``lr`` None: the optimizer's default
    (Adam/AdamW 1e-3; SGD has none and needs one).  ``policy`` None: the model's policy,
    else the one in force.  ``kw``: the optimizer's other options (momentum, nesterov,
    weight_decay, betas, eps, dampening).  Unknown names and options raise UserError."""
    key = str(name).strip().lower()
    cls = OPTIMIZERS.get(key)
    if cls is None:
        raise UserError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)})")
    import inspect  # noqa: PLC0415
    sig = inspect.signature(cls.__init__)
    allowed = [p for p in sig.parameters if p not in ("self", "params", "lr", "policy")]
    bad = [k for k in kw if k not in allowed]
    if bad:
        raise UserError(f"optimizer {key!r} has no option {bad[0]!r} "
                        f"(options: lr, {', '.join(allowed)})")
    if lr is None:
        if sig.parameters["lr"].default is inspect.Parameter.empty:
            raise UserError(f"optimizer {key!r} needs a learning rate (lr)")
        lr = sig.parameters["lr"].default
    return cls(model, lr=lr, policy=policy, **kw)
