"""Batch and layer normalization.

Forward, with the statistics kept in the forward accumulator format A:
  mu      = engine mean of x over the normalized axes               (rounded to A)
  var     = engine mean of R_A((x - mu)^2)                          (rounded to A)
  istd    = R_A(1 / sqrt(var + eps))
  y       = R_F(gamma * (x - mu) * istd + beta)
The expressions inside R_A(...) and R_F(...) are evaluated in float64, each step rounded
to nearest, and the float64 value is rounded once: not a correct rounding of the exact
expression (also (x - mu)^2 is the float64 square of the float64 difference).
batch_norm in eval mode uses the running statistics instead of mu and var; in training
mode it updates them in place: running = R_W((1 - momentum) * running + momentum * stat)
(the unbiased variance, as PyTorch), rounded to the weights format W.

Backward (backward Accumulation; xhat = R_F((x - mu) * istd) saved from the forward):
  gx     = R_B(istd / M * (M h - sum(h) - xhat * sum(h * xhat)))   batch statistics,
           h = g * gamma (gamma factored out of the sums in batch_norm, h = R_B(g * gamma)
           in layer_norm where gamma varies along the normalized axes)
  gx     = R_B(g * gamma * istd)                                           running stats
  ggamma = engine sum of g * xhat (one dot per element), gbeta = engine sum of g, both
           rounded once to G (to B for non-Parameters).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import array_module
from .core import engine_dot_reduce, engine_mean, engine_sum, f64, round_acc

__all__ = ["batch_norm", "layer_norm"]


class _Normalize(Function):
    forward_reduces = True
    backward_reduces = True
    eps = 1e-5
    use_batch_stats = True

    def _setup(self, x, gamma):
        """Set ``self.axes`` (normalized), ``self.param_axes`` (reduced for gamma/beta)
        and ``self.pshape`` (gamma broadcast against x)."""
        raise NotImplementedError

    def forward(self, x, gamma, beta):
        self._setup(x, gamma)
        self.forward_reduces = self.use_batch_stats
        xp = array_module(x)
        if self.use_batch_stats:
            mu = engine_mean(self, x, self.axes, "forward", None, keepdims=True)
            d = f64(x) - f64(mu)
            sq = round_acc(self, d * d, "forward")
            var = engine_mean(self, sq, self.axes, "forward", None, keepdims=True)
            self.batch_mean, self.batch_var = mu, var
        else:
            mu = f64(self.running_mean_data).reshape(self.pshape)
            var = f64(self.running_var_data).reshape(self.pshape)
            d = f64(x) - mu
        istd = round_acc(self, 1.0 / xp.sqrt(f64(var) + self.eps), "forward")
        xhat = d * f64(istd)
        g64 = f64(gamma).reshape(self.pshape)
        y = self.round_out(g64 * xhat + f64(beta).reshape(self.pshape))
        self.saved_xhat = self.policy.round("activations", xhat, self.rng)
        self.saved_istd = istd
        self.saved_gamma = gamma
        return y

    def backward(self, g):
        xhat, istd = self.saved_xhat, self.saved_istd
        gamma64 = f64(self.saved_gamma).reshape(self.pshape)
        gx = ggamma = gbeta = None
        if self.needs_input_grad[0]:
            if self.use_batch_stats:
                m = int(np.prod([g.shape[i] for i in self.axes]))
                if all(self.pshape[i] == 1 for i in self.axes):   # gamma constant: factor out
                    dxh, scale = g, gamma64 * f64(istd) / m
                else:                    # gamma varies along the axes: dxhat = R_B(g * gamma)
                    dxh, scale = self.policy.round("backward", f64(g) * gamma64,
                                                   self.rng), f64(istd) / m
                sg = engine_sum(self, dxh, self.axes, "backward", None, keepdims=True)
                sgx = engine_dot_reduce(self, dxh, xhat, self.axes, "backward", None,
                                        keepdims=True)
                gx = scale * (m * f64(dxh) - f64(sg) - f64(xhat) * f64(sgx))
            else:
                gx = f64(g) * gamma64 * f64(istd)
            gx = self.round_grad(0, gx)
        pshape = self.inputs[1].shape
        if self.needs_input_grad[1]:
            ggamma = engine_dot_reduce(self, g, xhat, self.param_axes, "backward",
                                       self.grad_role(1)).reshape(pshape)
        if self.needs_input_grad[2]:
            gbeta = engine_sum(self, g, self.param_axes, "backward",
                               self.grad_role(2)).reshape(self.inputs[2].shape)
        return gx, ggamma, gbeta


class BatchNorm(_Normalize):
    op_name = "batch_norm"

    def _setup(self, x, gamma):
        if x.ndim < 2 or x.shape[1] != gamma.size:
            raise ValueError(f"batch_norm: input of shape {tuple(x.shape)} does not match "
                             f"{gamma.size} channels (expected (N, C, ...))")
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.param_axes = self.axes
        self.pshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)


class LayerNorm(_Normalize):
    op_name = "layer_norm"
    normalized_ndim = 1

    def _setup(self, x, gamma):
        k = self.normalized_ndim
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != tuple(self.normalized_shape):
            raise ValueError(f"layer_norm: input of shape {tuple(x.shape)} does not end with "
                             f"the normalized shape {tuple(self.normalized_shape)}")
        self.axes = tuple(range(x.ndim - k, x.ndim))
        self.param_axes = tuple(range(x.ndim - k))
        self.pshape = (1,) * (x.ndim - k) + tuple(self.normalized_shape)


def _data(t):
    return t.data if isinstance(t, Tensor) else t


def _param(t, shape, xp, fill):
    if t is None:
        return Tensor(xp.full(shape, fill, dtype=np.float64))
    return t


def _update_running(buf, value, fn):
    """In place: buf <- value rounded to the weights format."""
    new = fn.policy.round("weights", value, fn.rng)
    if isinstance(buf, Tensor):
        if buf.data.dtype == new.dtype:
            buf.data[...] = new.reshape(buf.data.shape)
        else:
            buf.data = new.reshape(buf.data.shape)
    else:
        buf[...] = new.reshape(buf.shape)


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalization over (N, spatial...) per channel of x (N, C, ...); gamma, beta
    (C,) or None.  ``training``: batch statistics (engine mean and variance, forward
    Accumulation, kept in its format) and in-place update of ``running_mean`` /
    ``running_var`` (Tensors or arrays, or None to skip) rounded to W; otherwise the
    running statistics.  Output rounded once to F; gradients see the module docstring."""
    xt = x.data if isinstance(x, Tensor) else x
    xp = array_module(xt)
    c = xt.shape[1] if xt.ndim >= 2 else 0
    use_batch = bool(training) or running_mean is None or running_var is None
    kw = {"eps": float(eps), "use_batch_stats": use_batch}
    if not use_batch:
        kw["running_mean_data"] = _data(running_mean)
        kw["running_var_data"] = _data(running_var)
    fn = BatchNorm(**kw)
    y = fn(x, _param(gamma, (c,), xp, 1.0), _param(beta, (c,), xp, 0.0))
    if training and running_mean is not None and running_var is not None:
        mu, var = f64(fn.batch_mean).reshape(-1), f64(fn.batch_var).reshape(-1)
        m = xt.size // max(c, 1)
        unbiased = var * (m / max(m - 1, 1))
        _update_running(running_mean, (1 - momentum) * f64(_data(running_mean)).reshape(-1)
                        + momentum * mu, fn)
        _update_running(running_var, (1 - momentum) * f64(_data(running_var)).reshape(-1)
                        + momentum * unbiased, fn)
    fn.batch_mean = fn.batch_var = None
    return y


def layer_norm(x, gamma, beta, eps: float = 1e-5, normalized_shape=None):
    """Layer normalization over the trailing dims of x given by gamma's shape (or
    ``normalized_shape``; default the last dim when gamma is None).  Statistics per sample
    by the engine (forward Accumulation, kept in its format); output rounded once to F."""
    xt = x.data if isinstance(x, Tensor) else x
    xp = array_module(xt)
    if normalized_shape is None:
        normalized_shape = gamma.shape if gamma is not None else (
            beta.shape if beta is not None else xt.shape[-1:])
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    return LayerNorm.apply(x, _param(gamma, normalized_shape, xp, 1.0),
                           _param(beta, normalized_shape, xp, 0.0), eps=float(eps),
                           normalized_shape=normalized_shape,
                           normalized_ndim=len(normalized_shape))
