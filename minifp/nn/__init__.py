"""Neural-network modules whose every rounding and sum follows a precision policy.

>>> import numpy as np
>>> from minifp import nn
>>> from minifp.formats import get_format
>>> nn.init.seed(0)
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to("float16")
>>> all(get_format("float16").is_representable(p.data).all() for p in net.parameters())
True
>>> net(np.ones((2, 4))).shape
(2, 3)

Parameters are initialised once in float64 (seeded, :mod:`minifp.nn.init`) and kept as
masters; ``model.to(policy)`` rounds them once to each layer's weights format, so models
for different policies built from the same seed start from the same weights.
"""
from . import init, zoo
from .attention import MultiHeadSelfAttention, PatchEmbedding, TransformerBlock
from .layers import (GELU, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,
                     Identity, LayerNorm, Linear, MaxPool2d, ReLU, Sigmoid, Softmax, Tanh)
from .module import IncompatibleKeys, Module, Parameter, Residual, Sequential, StateDictError
from .zoo import MODEL_NAMES, build_model

__all__ = ["init", "zoo", "build_model", "MODEL_NAMES", "Module", "Parameter", "Sequential",
           "Residual", "StateDictError", "IncompatibleKeys", "Identity", "Linear", "Conv2d",
           "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax",
           "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "PatchEmbedding",
           "MultiHeadSelfAttention", "TransformerBlock"]
