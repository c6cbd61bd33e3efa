"""Shape ops: reshape, flatten, transpose, concat, stack, getitem, split and the attention
head helpers.

Forward: data movement, the result rounded to F (a no-op for values already in F).
Backward: the gradient moved back and rounded to B (G for Parameters); the only sums are
for repeated indices in ``getitem`` (an engine sum under the backward Accumulation).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import array_module
from .core import engine_sum

__all__ = ["reshape", "flatten", "transpose", "concat", "stack", "getitem", "split",
           "split_heads", "merge_heads"]


def _axis(op, axis, ndim) -> int:
    """``axis`` as a non-negative int below ``ndim``, or ValueError (never wrapped)."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


class Reshape(Function):
    op_name = "reshape"
    shape = ()

    def forward(self, x):
        self.in_shape = tuple(x.shape)
        try:
            y = x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape an array of shape {self.in_shape} "
                             f"into shape {tuple(self.shape)}") from None
        return self.round_out(y)

    def backward(self, g):
        return self.round_grad(0, g.reshape(self.in_shape))


def reshape(x, shape):
    """x with a new shape (one -1 allowed); values unchanged, in F."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return Reshape.apply(x, shape=tuple(int(s) for s in shape))


def flatten(x, start_dim: int = 1):
    """Merge the dims from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""
    shp = x.shape
    start = start_dim % len(shp) if shp else 0
    return reshape(x, tuple(shp[:start]) + (-1,))


class Transpose(Function):
    op_name = "transpose"
    axes = None

    def forward(self, x):
        axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(self.axes)
        if (any(not -x.ndim <= a < x.ndim for a in axes)
                or sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim))):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"{x.ndim} dims of shape {tuple(x.shape)}")
        self.perm = tuple(a % x.ndim for a in axes)
        return self.round_out(x.transpose(self.perm))

    def backward(self, g):
        inv = tuple(np.argsort(self.perm))
        return self.round_grad(0, g.transpose(inv))


def transpose(x, axes=None):
    """Permute dims (default: reverse them), in F."""
    return Transpose.apply(x, axes=None if axes is None else tuple(axes))


class Concat(Function):
    op_name = "concat"
    axis = 0

    def forward(self, *xs):
        xp = array_module(*xs)
        nd = xs[0].ndim
        ax = _axis("concat", self.axis, nd)
        for x in xs[1:]:
            if x.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape))
                                   if i != ax):
                raise ValueError(f"concat: shapes {tuple(xs[0].shape)} and {tuple(x.shape)} "
                                 f"differ outside axis {self.axis}")
        self.ax = ax
        self.sizes = [x.shape[ax] for x in xs]
        dt = np.result_type(*[x.dtype for x in xs])
        return self.round_out(xp.concatenate([x.astype(dt, copy=False) for x in xs], axis=ax))

    def backward(self, g):
        out, start = [], 0
        for i, n in enumerate(self.sizes):
            idx = [slice(None)] * g.ndim
            idx[self.ax] = slice(start, start + n)
            start += n
            out.append(self.round_grad(i, g[tuple(idx)]) if self.needs_input_grad[i] else None)
        return tuple(out)


def concat(tensors, axis: int = 0):
    """Join tensors along an existing ``axis``, in F."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat: need at least one tensor")
    return Concat.apply(*tensors, axis=axis)


def stack(tensors, axis: int = 0):
    """Join tensors along a new ``axis``, in F."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: need at least one tensor")
    nd = tensors[0].ndim + 1
    ax = _axis("stack", axis, nd)
    parts = [reshape(t, tuple(t.shape[:ax]) + (1,) + tuple(t.shape[ax:])) for t in tensors]
    return concat(parts, axis=ax)


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
               for i in items)


class GetItem(Function):
    op_name = "getitem"
    index = None

    def forward(self, x):
        self.in_shape = tuple(x.shape)
        self.basic = _is_basic(self.index)
        self.backward_reduces = not self.basic
        return self.round_out(x[_index_on(array_module(x), self.index)])

    def backward(self, g):
        xp = array_module(g)
        if self.basic:
            gx = xp.zeros(self.in_shape, dtype=g.dtype)
            gx[_index_on(xp, self.index)] = g
            return self.round_grad(0, gx)
        # Advanced index: positions may repeat -> engine sum of their contributions.
        size = int(np.prod(self.in_shape))
        pos = np.arange(size).reshape(self.in_shape)[_host_index(self.index)].reshape(-1)
        gflat = g.reshape(-1)
        order = np.argsort(pos, kind="stable")
        uniq, first, counts = np.unique(pos[order], return_index=True, return_counts=True)
        width = int(counts.max()) if counts.size else 1
        terms = xp.zeros((uniq.size, width), dtype=g.dtype)
        rank = np.arange(order.size) - np.repeat(first, counts)
        terms[xp.asarray(np.repeat(np.arange(uniq.size), counts)), xp.asarray(rank)] = \
            gflat[xp.asarray(order)]
        sums = engine_sum(self, terms, 1, "backward", self.grad_role(0))
        gx = xp.zeros(size, dtype=sums.dtype)
        gx[xp.asarray(uniq)] = sums
        return self.round_grad(0, gx.reshape(self.in_shape))


def _index_on(xp, index):
    """``index`` with its array items on the data's device (CuPy refuses NumPy arrays as
    indices of device arrays)."""
    if xp is np:
        return index
    items = index if isinstance(index, tuple) else (index,)
    out = tuple(xp.asarray(i) if isinstance(i, np.ndarray) else i for i in items)
    return out if isinstance(index, tuple) else out[0]


def _host_index(index):
    from ..backend import asnumpy  # noqa: PLC0415
    items = index if isinstance(index, tuple) else (index,)
    out = tuple(asnumpy(i) if hasattr(i, "shape") else i for i in items)
    return out if isinstance(index, tuple) else out[0]


def getitem(x, index):
    """x[index] (basic or advanced NumPy indexing), in F.  Backward scatters the gradient
    back; repeated positions are summed by the engine (backward Accumulation)."""
    if hasattr(index, "data") and hasattr(index, "creator"):  # a Tensor used as an index
        index = index.data
    return GetItem.apply(x, index=index)


def split(x, sections, axis: int = 0):
    """Split along ``axis`` into ``sections`` equal parts (int) or at the given indices
    (list), like numpy.split; returns a list of Tensors (each a getitem)."""
    ax = _axis("split", axis, x.ndim)
    n = x.shape[ax]
    if isinstance(sections, (int, np.integer)):
        if sections < 1 or n % sections:
            raise ValueError(f"split: axis of length {n} does not divide into {sections} parts")
        step = n // sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0] + [int(i) for i in sections] + [n]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = (slice(None),) * ax + (slice(lo, hi),)
        parts.append(getitem(x, idx))
    return parts


def split_heads(x, num_heads: int):
    """(B, T, D) -> (B, H, T, D/H) for multi-head attention."""
    if x.ndim != 3:
        raise ValueError(f"split_heads: expected a (B, T, D) input, got shape {tuple(x.shape)}")
    b, t, d = x.shape
    if num_heads < 1 or d % num_heads:
        raise ValueError(f"split_heads: width {d} is not divisible by {num_heads} heads")
    return transpose(reshape(x, (b, t, num_heads, d // num_heads)), (0, 2, 1, 3))


def merge_heads(x):
    """(B, H, T, Dh) -> (B, T, H*Dh), the inverse of :func:`split_heads`."""
    if x.ndim != 4:
        raise ValueError(f"merge_heads: expected a (B, H, T, Dh) input, got shape "
                         f"{tuple(x.shape)}")
    b, h, t, dh = x.shape
    return reshape(transpose(x, (0, 2, 1, 3)), (b, t, h * dh))
