"""Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov & Hutter 2019)
with decoupled weight decay.

Per parameter, at its ``t``-th step (``g`` gradient, ``w`` weight, ``m`` / ``v`` the first
and second moment estimates)::

    g  = g + weight_decay * w                      (Adam, when weight_decay != 0)
    m  = beta1 * m + (1 - beta1) * g               (m, v start at 0)
    v  = beta2 * v + (1 - beta2) * g * g
    step_size = lr / (1 - beta1**t)
    denom     = sqrt(v) / sqrt(1 - beta2**t) + eps
    w  = w - step_size * m / denom                              (Adam)
    w  = w * (1 - lr * weight_decay) - step_size * m / denom    (AdamW)

(PyTorch's ``torch.optim.Adam`` / ``AdamW`` formulas, written without ``lerp``.)  Every
line is evaluated in float64 from the stored values; ``m`` and ``v`` are rounded once to
the optimizer format O and stored, and the weight update uses the stored (rounded) ``m``,
``v``; the new weight is rounded once (to O for the master, then to W; or directly to W).

``eps`` is rounded to O (the policy's optimizer rounding, nearest-even when that is
stochastic) and that rounded value is used.  When it rounds to 0 or to a subnormal of O a
:class:`~minifp.optim.PrecisionWarning` is issued once per optimizer, naming the format and
its smallest normal value, the smallest epsilon it holds at full precision (float16:
6.1e-05; mixed-precision practice uses eps around 1e-4 for float16 optimizer state).  The
value is not changed silently: with eps rounded to 0 a weight whose gradients were all 0
gets ``0/0 = nan``, as on hardware.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import array_module
from ..errors import UserError
from ..formats import Rounding, get_format
from .base import Optimizer, PrecisionWarning, _f64, _number, _user_stacklevel

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    policy=None)``.  State per parameter: ``exp_avg`` (m), ``exp_avg_sq`` (v), both in O,
    ``step`` (int), and ``master`` (in O, with master weights)."""

    name = "adam"
    decoupled = False
    state_keys = ("exp_avg", "exp_avg_sq")
    hyper_keys = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 policy=None):
        label = type(self).__name__
        self.lr = _number(f"{label} learning rate lr", lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise UserError(f"{label} betas must be a pair (beta1, beta2), not {betas!r}") \
                from None
        self.betas = (_number(f"{label} beta1", b1, 0.0, 1.0),
                      _number(f"{label} beta2", b2, 0.0, 1.0))
        self.eps = _number(f"{label} eps", eps)
        self.weight_decay = _number(f"{label} weight_decay", weight_decay)
        super().__init__(params, policy)
        self._eps_warned = False
        self._eps_o = {}
        bad = []
        for name, _ in self.params:
            fmt = self._layer_policy[name].optimizer
            e = self._eps_o[name] = self._round_eps(name)
            if abs(e) < fmt.smallest_normal and (fmt.name, e) not in bad:
                bad.append((fmt.name, e))
        if bad:
            self._warn_eps(bad)

    def _round_eps(self, name) -> float:
        """``eps`` rounded once to the optimizer format O of parameter ``name``'s layer
        (the "optimizer" rounding mode; nearest-even when that is stochastic)."""
        lp = self._layer_policy[name]
        mode = lp.rounding["optimizer"]
        if mode is Rounding.STOCHASTIC:
            mode = Rounding.NEAREST_EVEN
        return float(np.asarray(lp.optimizer.round(np.float64(self.eps), mode)))

    def _warn_eps(self, bad):
        if self._eps_warned:
            return
        self._eps_warned = True
        parts = []
        for fname, e in bad:
            fmt = get_format(fname)
            what = "0" if e == 0 else f"the subnormal {e:.3g}"
            parts.append(f"rounds to {what} in the optimizer format {fname}, whose smallest "
                         f"normal value {fmt.smallest_normal:.2g} is the smallest epsilon it "
                         f"can hold at full precision")
        warnings.warn(f"{type(self).__name__} eps={self.eps:g} " + "; ".join(parts)
                      + " (float16 optimizer state needs eps around 1e-4); the rounded value "
                        "is used as is", PrecisionWarning, stacklevel=_user_stacklevel())

    def _flags(self) -> dict:
        return {"eps_warned": bool(self._eps_warned)}

    def _load_flags(self, flags: dict) -> None:
        self._eps_warned = bool(flags.get("eps_warned", self._eps_warned))
        # eps may have been restored from the hyperparameters: re-round it quietly
        for name, _ in self.params:
            self._eps_o[name] = self._round_eps(name)

    def _update(self, name, w, g, state, lp):
        b1, b2 = self.betas
        if self.weight_decay != 0 and not self.decoupled:
            g = g + self.weight_decay * w
        t = int(state.get("step", 0)) + 1
        state["step"] = t
        m_old = state.get("exp_avg")
        v_old = state.get("exp_avg_sq")
        m_new = (1.0 - b1) * g if m_old is None else b1 * _f64(m_old) + (1.0 - b1) * g
        v_new = ((1.0 - b2) * g * g if v_old is None
                 else b2 * _f64(v_old) + (1.0 - b2) * g * g)
        m = _f64(self._store(state, "exp_avg", lp, m_new))
        v = _f64(self._store(state, "exp_avg_sq", lp, v_new))
        xp = array_module(m)
        step_size = self.lr / (1.0 - b1 ** t)
        denom = xp.sqrt(v) / math.sqrt(1.0 - b2 ** t) + self._eps_o[name]
        if self.decoupled and self.weight_decay != 0:
            return w * (1.0 - self.lr * self.weight_decay) - step_size * m / denom
        return w - step_size * m / denom


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
    policy=None)``: Adam with decoupled weight decay ``w * (1 - lr * weight_decay)``,
    folded into the same float64 expression as the Adam step (one rounding)."""

    name = "adamw"
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 policy=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         policy=policy)
