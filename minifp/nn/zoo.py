"""Model zoo: small reference networks for any (C, H, W) input and any class count.

``build_model(name, input_shape, num_classes, seed=0)`` returns a :class:`ZooModel` whose
float64 master weights are drawn from ``numpy.random.default_rng(seed)`` alone (the global
generator of :mod:`minifp.nn.init` is not touched), so the same name, shape, class count
and seed give bit-identical masters, whatever the precision policy applied later with
``model.to(policy)``.

Models (``MODEL_NAMES``):

* ``mlp``     flatten -> Linear(C*H*W, 256) -> ReLU -> Linear(256, 128) -> ReLU -> Linear(128, K).
* ``lenet5``  conv5x5(6, padding 2) -> ReLU -> maxpool2 -> conv5x5(16) -> ReLU -> maxpool2 ->
              120 -> 84 -> K (ReLU).  The second conv is padded (to "same") when the map is
              smaller than 10 pixels, and a pool is skipped where the map is below 2 pixels,
              so 28x28, 32x32 and 8x8 inputs all work; the flatten size follows the shape.
* ``cnn``     VGG-style: two blocks of [conv3x3-BatchNorm-ReLU] x 2 + maxpool2, with 16 and
              32 channels, then Linear to K.
* ``resnet``  CIFAR-style ResNet with basic blocks and BatchNorm, depth 6n+2 (``resnet`` =
              ``resnet8``: n=1; ``resnet20``: n=3; any ``resnetN`` with N = 6n+2), stages of
              16/32/64 channels (stride 2 between stages, 1x1 conv + BN projection shortcuts,
              "option B"; ``resnetN-a``: parameter-free "option A" shortcuts, subsampling
              and zero channels, as the 16-bit paper's CIFAR ResNets), global average
              pooling, Linear to K.
* ``alexnet`` small CIFAR AlexNet: [conv5x5 64 - ReLU - maxpool2] x 2, Linear 384 - 192 - K.
* ``vgg11``, ``vgg16``  VGG with batch norm for CIFAR: conv3x3-BN-ReLU stacks of 64 to 512
              channels with maxpool2 (skipped where the map is below 2 pixels), Linear to K.
* ``vit``     Vision transformer: patch embedding (patch 4 when 4 divides the image side,
              else the largest divisor <= 8; non-square images are zero-padded to a square),
              dim 64, 2 pre-norm blocks with 4 heads, class-token head (LayerNorm + Linear).

>>> from minifp.nn.zoo import build_model
>>> net = build_model("mlp", (1, 8, 8), 10, seed=0)
>>> import numpy as np
>>> net(np.zeros((2, 1, 8, 8))).shape
(2, 10)
"""
from __future__ import annotations

import math
import re

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..errors import UserError
from .attention import PatchEmbedding, TransformerBlock
from .layers import BatchNorm2d, Conv2d, Flatten, Identity, LayerNorm, Linear, MaxPool2d, ReLU
from .module import Module, Residual, Sequential

__all__ = ["MODEL_NAMES", "build_model", "model_names", "ZooModel", "vit_patch_size",
           "count_parameters"]

#: Names accepted by :func:`build_model` (besides ``resnetN`` for any N = 6n+2).
MODEL_NAMES = ("mlp", "lenet5", "cnn", "resnet", "resnet8", "resnet20", "resnet20-a",
               "resnet32-a", "alexnet", "vgg11", "vgg16", "vit")

#: resnetN (projection shortcuts, "option B") or resnetN-a (parameter-free "option A")
_RESNET_RE = re.compile(r"^resnet(\d+)(?:-([ab]))?$")


def model_names() -> list[str]:
    """The known model names, as a list."""
    return list(MODEL_NAMES)


# --------------------------------------------------------------------------------------

class ZooModel(Module):
    """A zoo network: ``body`` applied to (N, C, H, W) inputs of the shape it was built for.

    Attributes ``arch`` (the model name as given), ``input_shape`` (C, H, W) and
    ``num_classes`` describe it (e.g. for checkpoints); ``config()`` returns them as a dict.
    """

    def __init__(self, arch: str, input_shape, num_classes: int, body: Module):
        super().__init__()
        self.arch = arch
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.body = body

    def config(self) -> dict:
        return {"arch": self.arch, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes}

    def forward(self, x):
        shape = tuple(int(s) for s in x.shape)
        if len(shape) != 4 or shape[1:] != self.input_shape:
            want = "(N, " + ", ".join(map(str, self.input_shape)) + ")"
            raise UserError(f"model {self.arch!r} expects inputs of shape {want}, "
                            f"got {shape}")
        return self.body(x)

    def extra_repr(self):
        return (f"arch={self.arch!r}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes}")


def _maybe_pool(h: int, w: int):
    """A 2x2 max pool (and the new size) when both sides are at least 2, else Identity."""
    if h >= 2 and w >= 2:
        return MaxPool2d(2), h // 2, w // 2
    return Identity(), h, w


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


# ---- mlp -----------------------------------------------------------------------------

def _mlp(shape, classes, rng):
    c, h, w = shape
    d = c * h * w
    return Sequential(Flatten(), Linear(d, 256, seed=rng), ReLU(),
                      Linear(256, 128, seed=rng), ReLU(), Linear(128, classes, seed=rng))


# ---- lenet5 --------------------------------------------------------------------------

def _lenet5(shape, classes, rng):
    c, h, w = shape
    layers = [Conv2d(c, 6, 5, padding=2, seed=rng), ReLU()]          # same size
    pool, h, w = _maybe_pool(h, w)
    layers.append(pool)
    pad2 = 0 if min(h, w) >= 10 else 2                               # tiny maps: "same"
    layers += [Conv2d(6, 16, 5, padding=pad2, seed=rng), ReLU()]
    h, w = _conv_out(h, 5, 1, pad2), _conv_out(w, 5, 1, pad2)
    pool, h, w = _maybe_pool(h, w)
    layers += [pool, Flatten(),
               Linear(16 * h * w, 120, seed=rng), ReLU(),
               Linear(120, 84, seed=rng), ReLU(),
               Linear(84, classes, seed=rng)]
    return Sequential(*layers)


# ---- cnn -----------------------------------------------------------------------------

def _conv_bn_relu(cin, cout, rng, stride=1):
    return [Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, seed=rng),
            BatchNorm2d(cout), ReLU()]


def _cnn(shape, classes, rng):
    c, h, w = shape
    layers = []
    cin = c
    for width in (16, 32):
        layers += _conv_bn_relu(cin, width, rng) + _conv_bn_relu(width, width, rng)
        pool, h, w = _maybe_pool(h, w)
        layers.append(pool)
        cin = width
    layers += [Flatten(), Linear(cin * h * w, classes, seed=rng)]
    return Sequential(*layers)


# ---- resnet --------------------------------------------------------------------------

class OptionAShortcut(Module):
    """He et al.'s parameter-free shortcut ("option A", the 16-bit paper's CIFAR ResNets):
    every ``stride``-th pixel, the channels zero-padded from ``cin`` to ``cout`` (half the
    new channels before, half after).  Exact: no arithmetic, no rounding."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.cin, self.cout, self.stride = int(cin), int(cout), int(stride)

    def forward(self, x):
        s = self.stride
        if s != 1:
            x = F.getitem(x, (slice(None), slice(None), slice(None, None, s),
                              slice(None, None, s)))
        extra = self.cout - self.cin
        if extra <= 0:
            return x
        n, _, h, w = (int(v) for v in x.shape)
        xp = x.xp
        before, after = extra // 2, extra - extra // 2
        parts = ([Tensor(xp.zeros((n, before, h, w), dtype=x.dtype))] if before else []) + \
            [x] + [Tensor(xp.zeros((n, after, h, w), dtype=x.dtype))]
        return F.concat(parts, axis=1)

    def extra_repr(self):
        return f"{self.cin}, {self.cout}, stride={self.stride}"


class BasicBlock(Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; the shortcut is the
    identity, or when the shape changes a 1x1 conv (with ``stride``) + BatchNorm
    (``shortcut="b"``, projection) or :class:`OptionAShortcut` (``"a"``)."""

    def __init__(self, cin: int, cout: int, stride: int, rng, shortcut: str = "b"):
        super().__init__()
        body = Sequential(*_conv_bn_relu(cin, cout, rng, stride),
                          Conv2d(cout, cout, 3, padding=1, bias=False, seed=rng),
                          BatchNorm2d(cout))
        shortcut_module = None
        if stride != 1 or cin != cout:
            shortcut_module = OptionAShortcut(cin, cout, stride) if shortcut == "a" else \
                Sequential(Conv2d(cin, cout, 1, stride=stride, bias=False, seed=rng),
                           BatchNorm2d(cout))
        shortcut = shortcut_module
        self.res = Residual(body, shortcut)
        self.relu = ReLU()

    def forward(self, x):
        return self.relu(self.res(x))


class GlobalAvgPool(Module):
    """Mean over the spatial axes (N, C, H, W) -> (N, C): one engine mean per channel under
    the forward Accumulation, rounded once to F."""

    def forward(self, x):
        return F.mean(x, axis=(2, 3))


def _resnet(shape, classes, rng, n, shortcut="b"):
    c, _, _ = shape
    layers = _conv_bn_relu(c, 16, rng)
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            layers.append(BasicBlock(cin, width, stride, rng, shortcut))
            cin = width
    layers += [GlobalAvgPool(), Linear(cin, classes, seed=rng)]
    return Sequential(*layers)


def _resnet_depth(name: str):
    """(blocks per stage, shortcut) of a resnet name, or None for another name."""
    if name in ("resnet", "resnet-a", "resnet-b"):
        return 1, "a" if name.endswith("-a") else "b"
    m = _RESNET_RE.match(name)
    if not m:
        return None
    depth = int(m.group(1))
    if depth < 8 or (depth - 2) % 6:
        raise UserError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), "
                        f"got {name!r}")
    return (depth - 2) // 6, m.group(2) or "b"


# ---- alexnet, vgg (CIFAR sizes, batch norm) -----------------------------------------

def _alexnet(shape, classes, rng):
    """A small CIFAR AlexNet (cuda-convnet style): conv5x5 64 - pool - conv5x5 64 - pool,
    then Linear 384 - 192 - classes, ReLU between (pools only where the map allows)."""
    c, h, w = shape
    layers = []
    cin = c
    for width in (64, 64):
        layers += [Conv2d(cin, width, 5, padding=2, seed=rng), ReLU()]
        pool, h, w = _maybe_pool(h, w)
        layers.append(pool)
        cin = width
    layers += [Flatten(), Linear(cin * h * w, 384, seed=rng), ReLU(),
               Linear(384, 192, seed=rng), ReLU(), Linear(192, classes, seed=rng)]
    return Sequential(*layers)


_VGG = {"vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
        "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                  512, 512, 512, "M")}


def _vgg(shape, classes, rng, name):
    """VGG-11/16 with batch norm for CIFAR sizes: conv3x3-BN-ReLU stacks, 2x2 max pools
    (where the map is still at least 2x2), then Linear(512 * h * w, classes)."""
    c, h, w = shape
    layers = []
    cin = c
    for item in _VGG[name]:
        if item == "M":
            pool, h, w = _maybe_pool(h, w)
            layers.append(pool)
        else:
            layers += _conv_bn_relu(cin, item, rng)
            cin = item
    layers += [Flatten(), Linear(cin * h * w, classes, seed=rng)]
    return Sequential(*layers)


# ---- vit -----------------------------------------------------------------------------

def vit_patch_size(image_size: int) -> int:
    """4 when it divides ``image_size``, else the largest divisor of it that is <= 8."""
    image_size = int(image_size)
    if image_size % 4 == 0:
        return 4
    return max(p for p in range(1, min(8, image_size) + 1) if image_size % p == 0)


class PadToSquare(Module):
    """Zero-pad (N, C, H, W) at the bottom/right to (N, C, S, S), S = max(H, W) (exact)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def forward(self, x):
        n, c, h, w = (int(s) for s in x.shape)
        xp = x.xp
        if w < self.size:
            x = F.concat([x, Tensor(xp.zeros((n, c, h, self.size - w), dtype=x.dtype))],
                         axis=3)
        if h < self.size:
            x = F.concat([x, Tensor(xp.zeros((n, c, self.size - h, self.size),
                                             dtype=x.dtype))], axis=2)
        return x

    def extra_repr(self):
        return f"size={self.size}"


class ClassTokenHead(Module):
    """LayerNorm on the class token (token 0) then Linear(dim, classes)."""

    def __init__(self, dim: int, classes: int, rng):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.fc = Linear(dim, classes, init="xavier", seed=rng)

    def forward(self, x):
        return self.fc(self.norm(F.getitem(x, (slice(None), 0))))


def _vit(shape, classes, rng, dim=64, depth=2, heads=4):
    c, h, w = shape
    size = max(h, w)
    layers = []
    if h != w:
        layers.append(PadToSquare(size))
    layers.append(PatchEmbedding(size, vit_patch_size(size), c, dim, seed=rng))
    layers += [TransformerBlock(dim, heads, seed=rng) for _ in range(depth)]
    layers.append(ClassTokenHead(dim, classes, rng))
    return Sequential(*layers)


# --------------------------------------------------------------------------------------

def _check_shape(input_shape):
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = all(int(s) == s for s in input_shape)
    except (TypeError, ValueError):
        raise UserError(f"input shape must be (C, H, W) positive integers, "
                        f"got {input_shape!r}") from None
    if len(shape) == 2:
        shape = (1,) + shape
    if not ok or len(shape) != 3 or min(shape) < 1:
        raise UserError(f"input shape must be (C, H, W) positive integers, got {input_shape!r}")
    return shape


def build_model(name: str, input_shape, num_classes: int, seed: int = 0) -> ZooModel:
    """Build zoo model ``name`` for inputs of ``input_shape`` (C, H, W) (or (H, W): C = 1)
    and ``num_classes`` outputs, with float64 master weights drawn from
    ``numpy.random.default_rng(seed)`` (same arguments -> bit-identical masters).
    Unknown names, bad shapes or class counts raise :class:`minifp.errors.UserError`."""
    if not isinstance(name, str):
        raise UserError(f"model name must be a string, got {name!r}")
    key = name.strip().lower()
    shape = _check_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise UserError(f"number of classes must be a positive integer, got {num_classes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed must be an integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    classes = int(num_classes)
    if key == "mlp":
        body = _mlp(shape, classes, rng)
    elif key == "lenet5":
        body = _lenet5(shape, classes, rng)
    elif key == "cnn":
        body = _cnn(shape, classes, rng)
    elif key == "vit":
        body = _vit(shape, classes, rng)
    elif key == "alexnet":
        body = _alexnet(shape, classes, rng)
    elif key in _VGG:
        body = _vgg(shape, classes, rng, key)
    else:
        depth = _resnet_depth(key)
        if depth is None:
            raise UserError(f"unknown model {name!r} (known: {', '.join(MODEL_NAMES)}, "
                            f"resnetN and resnetN-a for N = 6n+2)")
        body = _resnet(shape, classes, rng, *depth)
    return ZooModel(key, shape, classes, body)


def count_parameters(model: Module) -> int:
    """Total number of parameter elements of ``model``."""
    return int(sum(math.prod(p.shape) for p in model.parameters()))
