"""Matrix products: ``matmul`` (NumPy semantics, batched, broadcasting) and ``linear``.

Forward: one engine matmul under the forward Accumulation, rounded once to F.  In
``linear`` the bias enters the same accumulation as its last term (an extra column of
ones times the bias row), so ``x @ w.T + b`` is rounded to F only once.

Backward, under the backward Accumulation, each gradient one engine matmul rounded once
to its role (B, or G for Parameters): ``gx = g @ w``, ``gw = g.T @ x`` (the batch and any
broadcast batch dimensions folded into the reduction), ``gb`` = engine sum of ``g`` over
the batch.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import array_module
from .core import append_bias, engine_matmul, engine_sum

__all__ = ["matmul", "linear"]


def _mm_shape(a_shape, b_shape) -> tuple:
    """Output shape of numpy.matmul, or ValueError naming both shapes."""
    def bad(why):
        return ValueError(f"matmul: shapes {tuple(a_shape)} and {tuple(b_shape)} are not "
                          f"aligned ({why})")
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise bad("0-d operands are not allowed")
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    if a2[-1] != b2[-2]:
        raise bad(f"inner dimensions {a2[-1]} != {b2[-2]}")
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        raise bad("batch dimensions do not broadcast") from None
    out = tuple(batch) + (a2[-2], b2[-1])
    if len(a_shape) == 1:
        out = out[:-2] + out[-1:]
    if len(b_shape) == 1:
        out = out[:-1]
    return out


def _mm_sum_to(fn, x, y, target_shape, role):
    """Sum of ``x @ y`` over the batch axes that ``target_shape`` broadcasts, as ONE
    engine matmul: the broadcast batch axes are folded into the reduction dimension
    (terms in index order of (broadcast axes..., k))."""
    xp = array_module(x, y)
    batch = tuple(np.broadcast_shapes(x.shape[:-2], y.shape[:-2]))
    r = len(batch)
    tb = (1,) * (r - (len(target_shape) - 2)) + tuple(target_shape[:-2])
    red = [i for i in range(r) if tb[i] == 1 and batch[i] != 1]
    if not red:
        return engine_matmul(fn, x, y, "backward", role).reshape(target_shape)
    keep = [i for i in range(r) if i not in red]
    m, n = x.shape[-2], x.shape[-1]
    k = y.shape[-1]
    nred = int(np.prod([batch[i] for i in red]))
    xb = xp.broadcast_to(x, batch + (m, n))
    yb = xp.broadcast_to(y, batch + (n, k))
    kshape = [batch[i] for i in keep]
    xt = xb.transpose(keep + [r] + red + [r + 1]).reshape(kshape + [m, nred * n])
    yt = yb.transpose(keep + red + [r, r + 1]).reshape(kshape + [nred * n, k])
    return engine_matmul(fn, xt, yt, "backward", role).reshape(target_shape)


class MatMul(Function):
    op_name = "matmul"
    forward_reduces = True
    backward_reduces = True

    def forward(self, a, b):
        _mm_shape(a.shape, b.shape)
        self.saved_a, self.saved_b = a, b
        return engine_matmul(self, a, b, "forward", self.output_role)

    def backward(self, g):
        a, b = self.saved_a, self.saved_b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :] if b.ndim > 1 else g2[..., None]
        if b.ndim == 1:
            g2 = g2[..., None]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = _mm_sum_to(self, g2, b2.swapaxes(-1, -2), a2.shape,
                            self.grad_role(0)).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = _mm_sum_to(self, a2.swapaxes(-1, -2), g2, b2.shape,
                            self.grad_role(1)).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """``a @ b`` with numpy.matmul semantics (1-D operands, batched and broadcast leading
    dimensions).  Each output element is one engine dot product under the forward
    Accumulation, rounded once to F.  Shape mismatch: ValueError naming both shapes."""
    return MatMul.apply(a, b)


class Linear(Function):
    op_name = "linear"
    forward_reduces = True
    backward_reduces = True

    def forward(self, x, w, b=None):
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
            inner = w.shape[-1] if w.ndim else "in_features"
            raise ValueError(f"linear: input of shape {tuple(x.shape)} does not match weight "
                             f"of shape {tuple(w.shape)} (expected (..., {inner}) input "
                             "and a 2-D (out_features, in_features) weight)")
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"linear: bias of shape {tuple(b.shape)} does not match weight "
                             f"of shape {tuple(w.shape)} (expected ({w.shape[0]},))")
        x2 = x.reshape(-1, x.shape[-1])
        self.saved_x2, self.saved_w, self.x_shape = x2, w, tuple(x.shape)
        wt = w.T
        if b is not None:  # bias = last term of the same accumulation
            x2, wt = append_bias(x2, wt, b)
        y = engine_matmul(self, x2, wt, "forward", self.output_role)
        return y.reshape(self.x_shape[:-1] + (w.shape[0],))

    def backward(self, g):
        x2, w = self.saved_x2, self.saved_w
        g2 = g.reshape(-1, w.shape[0])
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx = engine_matmul(self, g2, w, "backward", self.grad_role(0)).reshape(self.x_shape)
        if self.needs_input_grad[1]:
            gw = engine_matmul(self, g2.T, x2, "backward", self.grad_role(1))
        if len(self.inputs) > 2 and self.needs_input_grad[2]:
            gb = engine_sum(self, g2, 0, "backward", self.grad_role(2))
        return (gx, gw, gb)[:len(self.inputs)]


def linear(x, w, b=None):
    """``x @ w.T + b`` for x of shape (..., in), w (out, in), b (out,) or None.  One engine
    accumulation per output (the bias its last term) under the forward Accumulation,
    rounded once to F.  Backward: gx = g @ w, gw = g.T @ x (over all leading dims),
    gb = engine sum of g, each under the backward Accumulation, rounded to B/G."""
    if b is None:
        return Linear.apply(x, w)
    return Linear.apply(x, w, b)
