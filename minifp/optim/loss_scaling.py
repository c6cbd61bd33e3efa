"""Loss scaling: keep small gradients above the underflow threshold of a narrow gradient
format by scaling the loss before the backward pass and unscaling the weight gradients
before the optimizer step (Micikevicius et al. 2018; the rule of PyTorch's GradScaler).

Protocol (one training step)::

    loss = F.cross_entropy(model(x), y)
    scaler.scale_loss(loss).backward()                 # gradients of scale * loss
    found_finite = scaler.unscale_and_check(optimizer) # grads /= scale, rounded to G
    if found_finite:
        optimizer.step()                               # skipped on overflow
    scaler.update(found_finite)                        # adjust the scale, count skips
    optimizer.zero_grad()

or, the same thing in one call: ``stepped = scaler.step(optimizer)`` (it unscales, checks,
steps only when every gradient is finite, and updates the scale; returns whether the step
was taken).

Numerics:

* ``scale_loss(loss)`` computes ``loss * scale`` in float64 and rounds it once to the loss
  format L.  With a power-of-two scale (the default 2**16; dynamic scaling multiplies and
  divides it by ``factor``, 2 by default) the float64 product is exact, so this is one
  correct rounding; with any other scale it is the float64 product rounded again (for L
  of more than 25 bits, e.g. posit32, not always the correct rounding of the exact
  product).  Its backward passes ``g * scale`` (rounded to L) to the loss: the gradient
  with respect to a loss value lives in L, exactly as the seed of ``loss.backward(grad=s)``
  does, so ``scale_loss(loss).backward()`` and ``loss.backward(grad=scale)`` give the same
  gradients, and a scale of 2^16 survives even when the backward format B is float16
  (whose largest value is 65504).
* ``unscale_and_check(params)`` divides every weight gradient (in G) by the scale in
  float64 and rounds the quotient once into the optimizer's precision, as AMP does: the
  layer's optimizer format O (its "optimizer" rounding), or float32 where O is narrower
  than float32 (:func:`unscaled_format`); the float64 quotient is exact for a power-of-two
  scale, otherwise it is a first rounding.  The optimizer takes that gradient as it is, so
  a gradient below G's smallest subnormal that the scale saved is not lost again by a
  second rounding to G.  It returns False when any gradient holds a non-finite value after
  unscaling (which includes every inf/nan present before).  With a scale of 1 the
  gradients stay in G and are only checked.
* ``update(found_finite)``: a step with non-finite gradients counts as skipped (all modes:
  the protocol never applies such a step).  Dynamic mode also divides the scale by
  ``factor`` on a skip and multiplies it by ``factor`` after ``growth_interval``
  consecutive finite steps; ``none`` (scale 1) and ``static`` keep the scale.
"""
from __future__ import annotations

import json

import numpy as np

from .. import precision as _precision
from ..autograd import Function, Tensor
from ..backend import array_module
from ..errors import UserError
from ..formats import Rounding
from .base import Optimizer, layer_path_of, named_params

__all__ = ["LossScaler"]

_MODES = ("none", "static", "dynamic")


def unscaled_format(layer_policy):
    """(format, rounding) of an unscaled gradient: the layer's optimizer format O, or
    float32 where O is narrower than float32 (as AMP keeps them), O's rounding mode (or
    nearest-even for float32).  A gradient below G's smallest subnormal, saved by the
    scale, so stays nonzero on its way to the optimizer."""
    from ..formats import get_format  # noqa: PLC0415
    o = layer_policy.optimizer
    f32 = get_format("float32")
    if o.precision >= f32.precision and o.max >= f32.max and \
            o.smallest_subnormal <= f32.smallest_subnormal:
        return o, layer_policy.rounding["optimizer"]
    return f32, Rounding.NEAREST_EVEN


class _ScaleLoss(Function):
    """``loss * s``, rounded to L; the gradient for the loss is ``g * s``, rounded to L."""

    op_name = "scale_loss"
    output_role = "loss"

    def forward(self, x):
        xp = array_module(x)
        return self.round_out(xp.asarray(x, dtype=np.float64) * self.s)

    def backward(self, g):
        xp = array_module(g)
        return self.policy.round("loss", xp.asarray(g, dtype=np.float64) * self.s, self.rng)


class LossScaler:
    """``LossScaler(mode="none"|"static"|"dynamic", scale=2**16, growth_interval=2000,
    factor=2, policy=None)``; see the module docstring for the protocol and numerics.

    Attributes: ``mode``, ``scale`` (current; 1 for ``none``), ``growth_interval``,
    ``factor``, ``skipped`` (steps skipped for non-finite gradients), ``good_steps``
    (consecutive finite steps since the last change of scale), ``steps`` (updates seen).
    ``policy``: the policy whose L and G formats are used (None: the policy in force when
    called)."""

    def __init__(self, mode="none", scale=2.0 ** 16, growth_interval=2000, factor=2.0,
                 policy=None):
        try:
            spec = _precision.LossScaling(mode, scale, growth_interval, factor)
        except (ValueError, TypeError) as err:
            raise UserError(str(err)) from None
        self.mode = spec.mode
        self.scale = 1.0 if self.mode == "none" else spec.scale
        self.growth_interval = spec.growth_interval
        self.factor = spec.factor
        try:
            self.policy = None if policy is None else _precision.get_precision(policy)
        except ValueError as err:
            raise UserError(str(err)) from None
        self.skipped = 0
        self.good_steps = 0
        self.steps = 0
        self.rng = np.random.default_rng(0 if self.policy is None else self.policy.seed)

    @classmethod
    def from_policy(cls, policy) -> "LossScaler":
        """The scaler described by ``policy.loss_scaling``, using the policy's formats."""
        try:
            p = _precision.get_precision(policy)
        except ValueError as err:
            raise UserError(str(err)) from None
        ls = p.loss_scaling
        return cls(ls.mode, ls.scale, ls.growth_interval, ls.factor, policy=p)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def _policy(self):
        return self.policy if self.policy is not None else _precision.current()

    def _layer_policy(self, base, name):
        """``base.for_layer(layer_path_of(name))``, cached per base policy (a policy with
        overrides builds a new Precision on every ``for_layer`` call; this runs per
        parameter per step)."""
        cache = self.__dict__.get("_lp_cache")
        if cache is None or cache[0] is not base:
            cache = self._lp_cache = (base, {})
        lp = cache[1].get(name)
        if lp is None:
            lp = cache[1][name] = base.for_layer(layer_path_of(name))
        return lp

    # ------------------------------------------------------------------ protocol
    def scale_loss(self, loss) -> Tensor:
        """``loss * scale`` rounded once to L, in the graph (mode ``none``: ``loss``
        itself).  Call ``.backward()`` on the result."""
        if not isinstance(loss, Tensor):
            raise UserError(f"scale_loss needs the loss Tensor, not {type(loss).__name__}")
        if self.mode == "none":
            return loss
        if self.policy is None:
            return _ScaleLoss.apply(loss, s=float(self.scale))
        with _precision.use(self.policy, rng=self.rng):
            return _ScaleLoss.apply(loss, s=float(self.scale))

    def unscale_and_check(self, params) -> bool:
        """Divide every gradient of ``params`` (an Optimizer, a Module, or a list of
        ``(name, Parameter)``) by the scale in float64, round once to its layer's G, store
        it in ``param.grad``, and return True when every gradient is finite."""
        pairs = params.params if isinstance(params, Optimizer) else named_params(params)
        base = self._policy()
        finite = True
        inv = self.scale != 1.0
        for name, p in pairs:
            if p.grad is None:
                continue
            gt = p.grad if isinstance(p.grad, Tensor) else Tensor(p.grad)
            xp = array_module(gt.data)
            if inv:
                lp = self._layer_policy(base, name)
                fmt, mode = unscaled_format(lp)
                rng = self.rng if mode is Rounding.STOCHASTIC else None
                with np.errstate(over="ignore", invalid="ignore"):
                    q = xp.asarray(gt.data, dtype=np.float64) / self.scale
                    gt = Tensor(fmt.round(q, mode, rng=rng))
                p.grad = gt
            if finite and not bool(xp.all(xp.isfinite(gt.data))):
                finite = False
        return finite

    def update(self, found_finite: bool) -> None:
        """After a step (taken when ``found_finite``, skipped otherwise): count it, and in
        dynamic mode divide the scale by ``factor`` on a skip / multiply it by ``factor``
        after ``growth_interval`` consecutive finite steps."""
        self.steps += 1
        if not found_finite:
            self.skipped += 1
            self.good_steps = 0
            if self.mode == "dynamic":
                smaller = self.scale / self.factor
                if smaller > 0:
                    self.scale = smaller
            return
        self.good_steps += 1
        if self.mode == "dynamic" and self.good_steps >= self.growth_interval:
            bigger = self.scale * self.factor
            if np.isfinite(bigger):
                self.scale = bigger
            self.good_steps = 0

    def step(self, optimizer, params=None) -> bool:
        """Unscale and check the gradients of ``params`` (default: the optimizer's),
        call ``optimizer.step()`` only when all are finite, then :meth:`update`.
        Returns whether the step was taken."""
        finite = self.unscale_and_check(optimizer if params is None else params)
        if finite:
            optimizer.step()
        self.update(finite)
        return finite

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain data: mode, scale, growth_interval, factor, skipped, good_steps, steps and
        the stochastic-rounding Generator state (JSON string)."""
        return {"mode": self.mode, "scale": float(self.scale),
                "growth_interval": int(self.growth_interval), "factor": float(self.factor),
                "skipped": int(self.skipped), "good_steps": int(self.good_steps),
                "steps": int(self.steps), "rng_state": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict` exactly."""
        if not isinstance(sd, dict) or "scale" not in sd or "mode" not in sd:
            raise UserError("loss scaler state is not a minifp LossScaler state dict")
        mode = str(sd["mode"])
        if mode not in _MODES:
            raise UserError(f"loss scaler state has unknown mode {mode!r}")
        self.mode = mode
        self.scale = float(sd["scale"])
        self.growth_interval = int(sd.get("growth_interval", self.growth_interval))
        self.factor = float(sd.get("factor", self.factor))
        self.skipped = int(sd.get("skipped", 0))
        self.good_steps = int(sd.get("good_steps", 0))
        self.steps = int(sd.get("steps", 0))
        rs = sd.get("rng_state")
        if rs is not None:
            self.rng.bit_generator.state = json.loads(rs) if isinstance(rs, str) else rs

    def __repr__(self) -> str:
        return (f"LossScaler(mode={self.mode!r}, scale={self.scale:g}, "
                f"growth_interval={self.growth_interval}, factor={self.factor:g}, "
                f"skipped={self.skipped})")
