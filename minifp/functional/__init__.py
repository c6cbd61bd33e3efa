"""Differentiable ops.  Each rounds its forward outputs to the activations format F (loss
ops to L) and its gradients to B (G for Parameters), and computes every reduction with
:mod:`minifp.accumulate` under the phase's Accumulation of the policy in force
(:func:`minifp.precision.current`), captured when the op is applied.

>>> import numpy as np, minifp.functional as F
>>> from minifp.autograd import Tensor
>>> from minifp.precision import use
>>> ones = Tensor(np.ones(4096, dtype=np.float16))
>>> with use("float16"):                    # pure fp16: fp16 sequential accumulation
...     float(F.matmul(ones, ones).data)
2048.0
"""
from .conv import avg_pool2d, conv2d, max_pool2d
from .dropout import dropout
from .elementwise import (add, div, exp, gelu, log, mul, neg, pow, quantize, relu, sigmoid,
                          sqrt, sub, tanh)
from .linalg import linear, matmul
from .norm import batch_norm, layer_norm
from .reduce import mean, sum
from .shape import (concat, flatten, getitem, merge_heads, reshape, split, split_heads, stack,
                    transpose)
from .softmax import cross_entropy, log_softmax, softmax

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "sigmoid",
           "relu", "gelu", "quantize", "matmul", "linear", "conv2d", "max_pool2d",
           "avg_pool2d", "sum", "mean", "softmax", "log_softmax", "cross_entropy",
           "batch_norm", "layer_norm", "dropout", "reshape", "flatten", "transpose", "concat",
           "stack", "getitem", "split", "split_heads", "merge_heads"]
