"""softmax, log_softmax and cross_entropy.

Forward (x shifted by its maximum m along the axis; x - m is the float64 difference:
exact unless it needs more than 53 bits, e.g. for operands far apart in exponent, where
it is rounded to nearest):
  e_i = R_F(exp(x_i - m))                  exp in float64, rounded once to F;
  s   = engine sum of e over the axis      forward Accumulation, kept in its format;
  softmax_i     = R_F(e_i / s)             the quotient correctly rounded to F
                                           (:func:`~minifp.functional.exactops.prepare`:
                                           float64 for F of at most 25 bits, the exact
                                           quotient rounded to odd for wider F);
  log_softmax_i = R_F(x_i - m - log s)     float64 expression, rounded once.
cross_entropy: per-sample losses R_L(log s + m - x_t) (a float64 expression, rounded
once to L), then the engine mean over the batch (forward Accumulation), rounded once to
L.

Backward (backward Accumulation for the sums, results rounded once to B):
  softmax:      gx = y * (g - <g, y>)      <g, y> one engine dot per row;
  log_softmax:  gx = g - exp(y) * sum(g)   sum(g) one engine sum per row;
  cross_entropy: gx = (e / s - onehot) * g / N.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import array_module
from .core import engine_dot_reduce, engine_mean, engine_sum, f64
from .exactops import prepare_for
from .portable import portable_for

__all__ = ["softmax", "log_softmax", "cross_entropy"]


def _exp_terms(fn, x, axis):
    """(m, e, s): the shift, R_F(exp(x - m)) and the engine sum of e (accumulator format)."""
    xp = array_module(x)
    x64 = f64(x)
    m = xp.max(x64, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    e = fn.policy.round("activations", portable_for(fn, "activations",
                                                    lambda xp, d: xp.exp(d), (x64 - m,)),
                        fn.rng)
    s = engine_sum(fn, e, axis, "forward", None, keepdims=True)
    return x64, m, e, s


class Softmax(Function):
    op_name = "softmax"
    forward_reduces = True
    backward_reduces = True
    axis = -1

    def forward(self, x):
        _, _, e, s = _exp_terms(self, x, self.axis)
        y = self.round_out(prepare_for(self, self.output_role, "div", f64(e), f64(s)))
        self.saved_y = y
        return y

    def backward(self, g):
        y = self.saved_y
        d = engine_dot_reduce(self, g, y, self.axis, "backward", None, keepdims=True)
        return self.round_grad(0, f64(y) * (f64(g) - f64(d)))


class LogSoftmax(Function):
    op_name = "log_softmax"
    forward_reduces = True
    backward_reduces = True
    axis = -1

    def forward(self, x):
        xp = array_module(x)
        x64, m, _, s = _exp_terms(self, x, self.axis)
        s = f64(s)
        y = self.round_out(portable_for(self, self.output_role,
                                        lambda xp, a, b, s: a - b - xp.log(s), (x64, m, s),
                                        lambda xp, a, b, s: (xp.abs(a) + xp.abs(b)
                                                             + xp.abs(xp.log(s)))))
        self.saved_y = y
        return y

    def backward(self, g):
        xp = array_module(g)
        sg = f64(engine_sum(self, g, self.axis, "backward", None, keepdims=True))
        g, y = f64(g), f64(self.saved_y)
        return self.round_grad(0, portable_for(
            self, self.grad_role(0), lambda xp, g, y, sg: g - xp.exp(y) * sg, (g, y, sg),
            lambda xp, g, y, sg: xp.abs(g) + xp.abs(sg)))


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along ``axis``: numerators R_F(exp(x - max)) (float64 exp,
    rounded once), denominator an engine sum (forward Accumulation), quotient correctly
    rounded to F (one rounding of the exact quotient of those two values)."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis: int = -1):
    """x - max - log(sum(exp(x - max))) along ``axis``: exp terms rounded to F, engine sum
    (forward Accumulation), log and difference in float64, rounded once to F."""
    return LogSoftmax.apply(x, axis=axis)


class CrossEntropy(Function):
    op_name = "cross_entropy"
    output_role = "loss"
    forward_reduces = True
    backward_reduces = False
    reduction = "mean"
    class_targets = False

    def forward(self, logits, targets):
        if logits.ndim != 2:
            raise ValueError(f"cross_entropy: logits must be (N, classes), got shape "
                             f"{tuple(logits.shape)}")
        if self.policy.loss_stage == "L":
            return self._forward_in_L(logits, targets)
        return self._forward_reference(logits, targets)

    def _targets(self, xp, targets, n, c):
        """(onehot float64 (N, c), class indices or None), checked."""
        if targets.dtype.kind in "iu" or (targets.ndim == 1 and targets.dtype.kind == "b"):
            if tuple(targets.shape) != (n,):
                raise ValueError(f"cross_entropy: class targets of shape {tuple(targets.shape)} "
                                 f"do not match logits of shape {(n, c)}")
            t = targets.astype(np.int64)
            if t.size and (int(t.min()) < 0 or int(t.max()) >= c):
                raise ValueError(f"cross_entropy: class targets must lie in [0, {c})")
            self.class_targets = True      # each row of onehot sums to 1 exactly
            return (xp.arange(c)[None, :] == t[:, None]).astype(np.float64), t
        if tuple(targets.shape) != (n, c):
            raise ValueError(f"cross_entropy: probability targets of shape "
                             f"{tuple(targets.shape)} do not match logits of shape {(n, c)}")
        return f64(targets), None

    def _reduce(self, per):
        if self.reduction == "none":
            return per
        if self.reduction == "sum":
            return engine_sum(self, per, 0, "forward", self.output_role)
        return engine_mean(self, per, 0, "forward", self.output_role)

    def _forward_in_L(self, logits, targets):
        """The loss stage in L (PositNN): d = R_L(x - max), e = R_L(exp d), s = the engine
        sum of e (forward accumulation) rounded to L, ls = R_L(log s), the per-sample loss
        R_L(ls - d_t) (probability targets: the engine dot of t and R_L(ls - d)), then the
        engine mean or sum in L."""
        xp = array_module(logits)
        n, c = logits.shape
        L = self.output_role
        x64 = f64(logits)
        m = xp.max(x64, axis=1, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0.0)
        d = self.round_out(prepare_for(self, L, "sub", x64, m))
        e = self.round_out(portable_for(self, L, lambda xp, a: xp.exp(a), (f64(d),)))
        s = engine_sum(self, e, 1, "forward", L, keepdims=True)
        ls = self.round_out(portable_for(self, L, lambda xp, a: xp.log(a), (f64(s),)))
        onehot, t = self._targets(xp, targets, n, c)
        if t is not None:
            dt = xp.take_along_axis(f64(d), t[:, None], 1)
            per = self.round_out(prepare_for(self, L, "sub", f64(ls), dt))[:, 0]
        else:
            nlp = self.round_out(prepare_for(self, L, "sub", f64(ls), f64(d)))
            per = engine_dot_reduce(self, onehot, nlp, 1, "forward", L)
        self.saved_e, self.saved_s, self.saved_t = e, s, onehot
        self.n = n
        return self._reduce(per)

    def _forward_reference(self, logits, targets):
        """The float64 reference (loss_stage "float64")."""
        xp = array_module(logits)
        n, c = logits.shape
        x64, m, e, s = _exp_terms(self, logits, 1)
        s64 = f64(s)
        onehot, t = self._targets(xp, targets, n, c)
        if t is not None:
            xt = xp.take_along_axis(x64, t[:, None], 1)[:, 0]
            per = self.round_out(portable_for(
                self, self.output_role, lambda xp, s, m, xt: xp.log(s) + m - xt,
                (s64[:, 0], m[:, 0], xt),
                lambda xp, s, m, xt: xp.abs(xp.log(s)) + 2 * xp.abs(m) + xp.abs(xt)))
        else:
            nlp = self.round_out(portable_for(                 # -log p, in L
                self, self.output_role, lambda xp, s, m, x: xp.log(s) + m - x,
                (s64, m, x64),
                lambda xp, s, m, x: xp.abs(xp.log(s)) + 2 * xp.abs(m) + xp.abs(x)))
            per = engine_dot_reduce(self, onehot, nlp, 1, "forward", self.output_role)
        self.saved_e, self.saved_s, self.saved_t = e, s, onehot
        self.n = n
        return self._reduce(per)

    def backward(self, g):
        if self.policy.loss_stage == "L":
            return self._backward_in_L(g)
        xp = array_module(g)
        p = f64(self.saved_e) / f64(self.saved_s)
        t = self.saved_t
        if not self.class_targets:     # probability targets: p * sum(t) - t
            p = p * xp.sum(t, axis=1, keepdims=True)
        g64 = f64(g)
        if self.reduction == "none":
            g64 = g64[:, None]
        elif self.reduction == "mean":
            g64 = g64 / self.n
        gx = (p - t) * g64
        return self.round_grad(0, gx), None

    def _backward_in_L(self, g):
        """p = R_L(e / s), q = R_L(p - t) (probability targets: R_L(p sum(t)) first, the
        sum by the engine), the upstream gradient per sample R_L(g / N) (mean), and the
        gradient handed to the network R_B(q * g'), one rounding of each product."""
        L = self.output_role
        p = self.round_out(prepare_for(self, L, "div", f64(self.saved_e), f64(self.saved_s)))
        t = self.saved_t
        if not self.class_targets:
            st = engine_sum(self, t, 1, "forward", L, keepdims=True)
            p = self.round_out(prepare_for(self, L, "mul", f64(p), f64(st)))
        q = self.round_out(prepare_for(self, L, "sub", f64(p), t))
        g64 = f64(g)
        if self.reduction == "none":
            g64 = g64[:, None]
        elif self.reduction == "mean":
            g64 = f64(self.round_out(prepare_for(self, L, "div", g64, float(self.n))))
        gx = prepare_for(self, self.grad_role(0), "mul", f64(q), g64)
        return self.round_grad(0, gx), None


def cross_entropy(logits, targets, reduction: str = "mean"):
    """Cross-entropy of ``logits`` (N, classes) against class indices (N,) or
    probabilities (N, classes).  Per-sample losses are computed in float64 from the
    engine-summed softmax denominator and rounded once to L; ``reduction="mean"`` (default)
    averages them with the engine (forward Accumulation), rounded once to L ("sum",
    "none" also accepted).  Backward: (softmax - target) * g / N in float64, rounded once
    to B."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be mean, sum or none, not "
                         f"{reduction!r}")
    if isinstance(targets, Tensor):
        targets = targets.data
    xp = array_module(logits.data if isinstance(logits, Tensor) else logits)
    targets = xp.asarray(targets)
    return CrossEntropy.apply(logits, Tensor(targets), reduction=reduction)
