"""Layers.  Each one calls :mod:`minifp.functional`, so every rounding and every sum follows
the policy in force for the layer (see :mod:`minifp.nn.module`):

* parameters hold values of the weights format W (rounded once from float64 masters);
* every forward output is rounded to the activations format F; reductions (matmul,
  convolution, pooling averages, normalisation statistics, softmax denominators) run
  through the forward Accumulation of the policy;
* in the backward pass gradients w.r.t. activations are rounded to B, gradients w.r.t.
  parameters to G, and their reductions use the backward Accumulation.

Initialisation is seeded and in float64 (:mod:`minifp.nn.init`): ``seed`` is None (the
global generator, :func:`minifp.nn.init.seed`), an int, or a ``numpy.random.Generator``.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "GELU", "Tanh",
           "Sigmoid", "Softmax", "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
           "Identity"]

_INITS = ("kaiming", "xavier")


def _weight(shape, fan_in, fan_out, how, rng):
    if how == "kaiming":
        return init.kaiming_uniform(shape, fan_in, rng=rng)
    if how == "xavier":
        return init.xavier_uniform(shape, fan_in, fan_out, rng=rng)
    raise ValueError(f"unknown init {how!r} (known: {', '.join(_INITS)})")


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2 or v[0] != v[1]:
            raise ValueError(f"{name} must be an int or a pair of equal ints, got {v!r}")
        v = v[0]
    v = int(v)
    return v


class Identity(Module):
    """Returns its input unchanged (no rounding)."""

    def forward(self, x):
        return x


class Linear(Module):
    """``y = x W^T + b`` with W of shape (out_features, in_features).

    ``functional.linear``: every output element is one sum over ``in_features`` products
    under the forward Accumulation, plus the bias, rounded once to F.  Backward: dX and dW
    are sums under the backward Accumulation (rounded to B and G), db a sum over the batch.
    Init: ``"kaiming"`` (He uniform, gain sqrt 2, for ReLU nets; default) or ``"xavier"``;
    zero bias.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 init: str = "kaiming", seed=None):
        super().__init__()
        how = init
        rng = _make_rng(seed)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(_weight((self.out_features, self.in_features),
                                        self.in_features, self.out_features, how, rng))
        if bias:
            self.bias = Parameter(_zeros((self.out_features,)))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D convolution, NCHW, weight (C_out, C_in, k, k).

    ``functional.conv2d``: every output element is one sum over C_in*k*k products under the
    forward Accumulation, plus the bias, rounded once to F.  Init as :class:`Linear` with
    fan_in = C_in*k*k.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, *, init: str = "kaiming", seed=None):
        super().__init__()
        how = init
        rng = _make_rng(seed)
        k = _pair(kernel_size, "kernel_size")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = k, _pair(stride, "stride"), \
            _pair(padding, "padding")
        shape = (self.out_channels, self.in_channels, k, k)
        self.weight = Parameter(_weight(shape, self.in_channels * k * k,
                                        self.out_channels * k * k, how, rng))
        if bias:
            self.bias = Parameter(_zeros((self.out_channels,)))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class MaxPool2d(Module):
    """Max pooling (exact: selects a value, no rounding beyond F)."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class AvgPool2d(Module):
    """Average pooling: each window summed under the forward Accumulation, divided by the
    window size and rounded once to F."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class Flatten(Module):
    """Reshape to (N, -1) from ``start_dim`` on (exact)."""

    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = int(start_dim)

    def forward(self, x):
        return F.flatten(x, self.start_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}"


class ReLU(Module):
    """max(x, 0) (exact in any format)."""

    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    """x * Phi(x) with the exact erf form, computed in float64 and rounded once to F."""

    def forward(self, x):
        return F.gelu(x)


class Tanh(Module):
    """tanh computed in float64, rounded once to F."""

    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) computed in float64, rounded once to F."""

    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    """Softmax along ``axis``: exponentials in float64 rounded to F, the denominator summed
    under the forward Accumulation, each quotient rounded once to F."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x):
        return F.softmax(x, axis=self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class Dropout(Module):
    """Inverted dropout with probability ``p`` in training, identity in eval.

    The mask comes from the module's own ``numpy.random.Generator`` (seeded from ``seed``,
    or from one draw of the global init generator), so a model built from the same seed
    drops the same units run after run; :meth:`reset_rng` restarts the stream.  The scaling
    by 1/(1-p) is rounded once to F.
    """

    def __init__(self, p: float = 0.5, seed=None):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            self.seed = int(seed)
        else:
            self.seed = init.child_seed(init.make_rng(seed))
        self.reset_rng()

    def reset_rng(self):
        """Restart the mask stream from the module's seed."""
        self.rng = np.random.default_rng(self.seed)

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"


class _BatchNorm(Module):
    """Batch normalisation over every axis but the channel axis 1.

    Training: batch mean and variance are sums under the forward Accumulation (kept in
    its accumulator format, see :func:`minifp.functional.batch_norm`); the output is
    rounded once to F; the running statistics (buffers ``running_mean``, ``running_var``, kept in the
    weights format) are updated as ``(1-momentum)*running + momentum*batch`` (unbiased
    variance).  Eval: the running statistics are used.  gamma = 1, beta = 0 at init.
    """

    _ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.eps, self.momentum, self.affine = float(eps), float(momentum), bool(affine)
        if affine:
            self.weight = Parameter(init.ones((self.num_features,)))
            self.bias = Parameter(init.zeros((self.num_features,)))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", init.zeros((self.num_features,)))
        self.register_buffer("running_var", init.ones((self.num_features,)))

    def forward(self, x):
        if x.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__} expects input of "
                             f"{' or '.join(map(str, self._ndims))} dimensions, got shape "
                             f"{tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got {x.shape[1]} "
                             f"channels (shape {tuple(x.shape)})")
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}, " \
               f"affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__ + "\n    Input (N, C) or (N, C, L).\n"
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__ + "\n    Input (N, C, H, W).\n"
    _ndims = (4,)


class LayerNorm(Module):
    """Layer normalisation over the last axis (size ``normalized_shape``): mean and
    variance are sums under the forward Accumulation; output rounded to F.  gamma = 1,
    beta = 0 at init."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError("LayerNorm normalises over the last axis only: "
                                 f"normalized_shape must be an int, got {normalized_shape!r}")
            normalized_shape = normalized_shape[0]
        self.normalized_shape = int(normalized_shape)
        self.eps = float(eps)
        self.weight = Parameter(init.ones((self.normalized_shape,)))
        self.bias = Parameter(init.zeros((self.normalized_shape,)))

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps:g}"


def _make_rng(seed):
    return init.make_rng(seed)


def _zeros(shape):
    return init.zeros(shape)

