"""The accumulation engine: every sum in minifp (matmul, convolution, sum, mean, variance,
softmax denominators, loss averages, gradients) is computed here under an explicit
:class:`Accumulation` (accumulator format, order, fma, rounding).

>>> import numpy as np
>>> from minifp.accumulate import Accumulation, dot
>>> ones = np.ones(4096, dtype=np.float16)
>>> float(dot(ones, ones, Accumulation("float16", "sequential")))   # stagnates at 2048
2048.0
>>> float(np.dot(ones, ones))                                        # NumPy: float32 inside
4096.0
"""
from .engine import dot, matmul, mean, sum
from .spec import ORDERS, Accumulation, Order, parse_order

__all__ = ["Accumulation", "Order", "ORDERS", "parse_order", "dot", "matmul", "sum", "mean"]
