"""Vision-transformer building blocks: PatchEmbedding, MultiHeadSelfAttention,
TransformerBlock.

All arithmetic goes through :mod:`minifp.functional` under the policy in force for each
layer: projections are ``functional.linear`` (one forward-Accumulation sum per output,
rounded to F), the attention scores and the weighted values are batched 4-D
``functional.matmul`` (one engine dot product per element), the softmax denominator is an
engine sum, and every elementwise step (scaling, residual additions, position
embedding) is computed in float64 and rounded once to F.  Parameters are initialised in
float64 from a seeded generator (Xavier uniform for projections, truncated normal
std 0.02 for the class token and the position embedding).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from . import init
from .layers import GELU, Dropout, LayerNorm, Linear
from .module import Module, Parameter, Sequential

__all__ = ["PatchEmbedding", "MultiHeadSelfAttention", "TransformerBlock"]


class PatchEmbedding(Module):
    """Images (N, C, H, W) -> tokens (N, 1 + (H/p)(W/p), dim).

    Non-overlapping p x p patches are cut out by reshape/transpose (exact), flattened in
    (C, p, p) order and projected by ``proj`` (Linear C*p*p -> dim, equivalent to a conv
    with kernel = stride = p).  A learned class token is prepended (``concat``) and a
    learned position embedding added (``add``, float64 then rounded once to F; its
    gradient is the engine sum over the batch under the backward Accumulation).
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, dim: int, *,
                 seed=None):
        super().__init__()
        image_size, patch_size = int(image_size), int(patch_size)
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size "
                             f"{patch_size}")
        rng = init.make_rng(seed)
        self.image_size, self.patch_size = image_size, patch_size
        self.in_channels, self.dim = int(in_channels), int(dim)
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = Linear(self.in_channels * patch_size * patch_size, self.dim,
                           init="xavier", seed=rng)
        self.cls_token = Parameter(init.trunc_normal((1, 1, self.dim), 0.02, rng))
        self.pos_embedding = Parameter(init.trunc_normal((1, self.num_patches + 1, self.dim),
                                                         0.02, rng))

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.patch_size
        if c != self.in_channels or h != self.image_size or w != self.image_size:
            raise ValueError(f"PatchEmbedding expects (N, {self.in_channels}, "
                             f"{self.image_size}, {self.image_size}) images, got {tuple(x.shape)}")
        t = F.reshape(x, (n, c, h // p, p, w // p, p))
        t = F.transpose(t, (0, 2, 4, 1, 3, 5))
        t = F.reshape(t, (n, (h // p) * (w // p), c * p * p))
        t = self.proj(t)
        cls = F.getitem(self.cls_token, (np.zeros(n, dtype=np.intp),))   # (n, 1, dim)
        z = F.concat([cls, t], axis=1)
        return F.add(z, self.pos_embedding)

    def extra_repr(self):
        return (f"image_size={self.image_size}, patch_size={self.patch_size}, "
                f"in_channels={self.in_channels}, dim={self.dim}")


class MultiHeadSelfAttention(Module):
    """Multi-head self-attention on tokens (N, T, dim).

    q, k, v = ``q_proj``, ``k_proj``, ``v_proj`` (Linear dim -> dim), split into
    ``num_heads`` heads (N, H, T, dh); scores = matmul(q, k^T) (engine dot products of
    length dh), scaled by 1/sqrt(dh) (float64 constant, product rounded once to F);
    attention = softmax over the keys; context = matmul(attention, v) (dot products of
    length T); heads merged and projected by ``out_proj``.
    """

    def __init__(self, dim: int, num_heads: int, *, bias: bool = True, dropout: float = 0.0,
                 seed=None):
        super().__init__()
        dim, num_heads = int(dim), int(num_heads)
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        rng = init.make_rng(seed)
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q_proj = Linear(dim, dim, bias, init="xavier", seed=rng)
        self.k_proj = Linear(dim, dim, bias, init="xavier", seed=rng)
        self.v_proj = Linear(dim, dim, bias, init="xavier", seed=rng)
        self.out_proj = Linear(dim, dim, bias, init="xavier", seed=rng)
        self.attn_dropout = Dropout(dropout, seed=rng) if dropout > 0 else None

    def forward(self, x):
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"MultiHeadSelfAttention({self.dim}) expects (N, T, {self.dim}) "
                             f"tokens, got {tuple(x.shape)}")
        h = self.num_heads
        q = F.split_heads(self.q_proj(x), h)
        k = F.split_heads(self.k_proj(x), h)
        v = F.split_heads(self.v_proj(x), h)
        scores = F.mul(F.matmul(q, F.transpose(k, (0, 1, 3, 2))), self.scale)
        attn = F.softmax(scores, axis=-1)
        if self.attn_dropout is not None:
            attn = self.attn_dropout(attn)
        ctx = F.merge_heads(F.matmul(attn, v))
        return self.out_proj(ctx)

    def extra_repr(self):
        return f"dim={self.dim}, num_heads={self.num_heads}"


class TransformerBlock(Module):
    """Pre-norm transformer encoder block::

        x = x + attn(norm1(x))
        x = x + mlp(norm2(x))      mlp = Linear(dim, hidden) -> GELU -> Linear(hidden, dim)

    Residual additions are ``functional.add`` (float64, rounded once to F); LayerNorm
    statistics are engine sums under the forward Accumulation.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, *,
                 dropout: float = 0.0, seed=None):
        super().__init__()
        rng = init.make_rng(seed)
        dim = int(dim)
        hidden = int(round(dim * mlp_ratio))
        self.dim, self.num_heads, self.hidden = dim, int(num_heads), hidden
        self.norm1 = LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads, dropout=dropout, seed=rng)
        self.norm2 = LayerNorm(dim)
        layers = [Linear(dim, hidden, init="xavier", seed=rng), GELU()]
        if dropout > 0:
            layers.append(Dropout(dropout, seed=rng))
        layers.append(Linear(hidden, dim, init="xavier", seed=rng))
        if dropout > 0:
            layers.append(Dropout(dropout, seed=rng))
        self.mlp = Sequential(*layers)

    def forward(self, x):
        x = F.add(x, self.attn(self.norm1(x)))
        return F.add(x, self.mlp(self.norm2(x)))

    def extra_repr(self):
        return f"dim={self.dim}, num_heads={self.num_heads}, hidden={self.hidden}"
