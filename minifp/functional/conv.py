"""2-D convolution (im2col + engine matmul) and pooling, NCHW.

conv2d forward: the input patches are unfolded (im2col) and multiplied by the weights with
one engine matmul under the forward Accumulation; each output is one accumulation over
(C_in, kh, kw) with the bias as its last term, rounded once to F.

conv2d backward, under the backward Accumulation, each rounded once to B/G:
  gw = g.T @ im2col(x)   one accumulation over (N, OH, OW) per weight;
  gb = engine sum of g over (N, OH, OW);
  gx = transposed convolution: g is dilated by the stride and padded, the kernel flipped,
       and every input gradient is one accumulation over (C_out, kh, kw) (zero terms where
       no window covers it), as in cuDNN's backward-data.

Pooling: max is exact (output rounded to F, a no-op for F inputs); average is an engine
mean under the forward Accumulation rounded once to F.  Backward of both scatters the
window gradients back (col2im): each input gradient is an engine sum, under the backward
Accumulation, of its contributions from every window position (kh*kw terms, zero where
the window does not cover it), rounded once to B; for average pooling the terms are the
shares g / (kh*kw), each correctly rounded to B first.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import array_module
from .core import append_bias, engine_matmul, engine_mean, engine_sum, f64
from .exactops import prepare_for

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "im2col", "col2im"]


_MINIMUM = {"kernel": 1, "stride": 1, "padding": 0}


def _pair(v, name):
    """``v`` (int or pair) as a pair of ints, ValueError unless each is at least the
    minimum for ``name`` (kernel, stride: 1; padding: 0)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        a, b = int(v[0]), int(v[1])
    else:
        a = b = int(v)
    lo = _MINIMUM.get(name, 0)
    if a < lo or b < lo:
        raise ValueError(f"{name} must be at least {lo}, got {v!r}")
    return a, b


def _out_size(size, k, s, p, what):
    o = (size + 2 * p - k) // s + 1
    if o < 1:
        raise ValueError(f"{what}: kernel {k} with padding {p} does not fit an input of "
                         f"size {size}")
    return o


def im2col(x, kernel, stride=1, padding=0, pad_value=0.0):
    """Patches of ``x`` (N, C, H, W) as an array (N, C, kh, kw, OH, OW) (no copy of the
    values' formats: data movement only)."""
    xp = array_module(x)
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    n, c, h, w = x.shape
    oh = _out_size(h, kh, sh, ph, "im2col")
    ow = _out_size(w, kw, sw, pw, "im2col")
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    return cols


def im2col_rows(x, kernel, stride, padding):
    """The patches of ``x`` (N, C, H, W) as rows: (N*OH*OW, C*kh*kw), one row per output
    position in (N, OH, OW) order, columns in (C, kh, kw) order (the weight's layout);
    and (OH, OW)."""
    n, c = x.shape[:2]
    kh, kw = _pair(kernel, "kernel")
    cols = im2col(x, (kh, kw), stride, padding)                  # (N, C, kh, kw, OH, OW)
    oh, ow = cols.shape[-2:]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw), (oh, ow)


def col2im_terms(cols, shape, stride, padding):
    """Place window contributions ``cols`` (N, C, kh, kw, OH, OW) at their input positions:
    returns (N, C, H, W, kh*kw), zero where a window position does not cover the input.
    Summing over the last axis gives col2im."""
    xp = array_module(cols)
    n, c, kh, kw, oh, ow = cols.shape
    _, _, h, w = shape
    sh, sw = stride
    ph, pw = padding
    terms = xp.zeros((n, c, h + 2 * ph, w + 2 * pw, kh * kw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            terms[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw, i * kw + j] = cols[:, :, i, j]
    return terms[:, :, ph:ph + h, pw:pw + w]


def col2im(fn, cols, shape, stride, padding, role):
    """Sum window contributions back onto the input: one engine sum per input element
    (backward Accumulation, terms in kernel-position order), rounded once to ``role``."""
    terms = col2im_terms(cols, shape, stride, padding)
    return engine_sum(fn, terms, -1, "backward", role)


def _placement(count, step, offset, size):
    """Slices (into the dilated array, into g) placing g[o] at o*step + offset, keeping
    the positions inside [0, size)."""
    lo = 0
    while lo * step + offset < 0:
        lo += 1
    hi = count
    while hi > lo and (hi - 1) * step + offset >= size:
        hi -= 1
    if hi <= lo:
        return slice(0, 0), slice(0, 0)
    start = lo * step + offset
    return slice(start, start + (hi - lo - 1) * step + 1, step), slice(lo, hi)


class Conv2d(Function):
    op_name = "conv2d"
    forward_reduces = True
    backward_reduces = True
    stride = (1, 1)
    padding = (0, 0)

    def forward(self, x, w, b=None):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: input of shape {tuple(x.shape)} does not match weight "
                             f"of shape {tuple(w.shape)} (expected (N, C, H, W) and "
                             "(C_out, C, kh, kw))")
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"conv2d: bias of shape {tuple(b.shape)} does not match weight "
                             f"of shape {tuple(w.shape)}")
        xp = array_module(x, w)
        n = x.shape[0]
        co, ci, kh, kw = w.shape
        xc, (oh, ow) = im2col_rows(x, (kh, kw), self.stride, self.padding)
        wc = w.reshape(co, ci * kh * kw).T
        if b is not None:  # bias = last term of the accumulation
            xc, wc = append_bias(xc, wc, b)
        y = engine_matmul(self, xc, wc, "forward", self.output_role)   # (N*OH*OW, C_out)
        self.saved_x, self.saved_w = x, w
        return xp.ascontiguousarray(y.reshape(n, oh, ow, co).transpose(0, 3, 1, 2))

    def backward(self, g):
        x, w = self.saved_x, self.saved_w
        xp = array_module(g)
        n, _, h, wd = x.shape
        co, ci, kh, kw = w.shape
        _, _, oh, ow = g.shape
        sh, sw = self.stride
        ph, pw = self.padding
        gx = gw = gb = None
        if self.needs_input_grad[1]:
            xc, _ = im2col_rows(x, (kh, kw), self.stride, self.padding)
            g2 = g.transpose(1, 0, 2, 3).reshape(co, n * oh * ow)
            gw = engine_matmul(self, g2, xc, "backward", self.grad_role(1)).reshape(w.shape)
        if len(self.inputs) > 2 and self.needs_input_grad[2]:
            gb = engine_sum(self, g, (0, 2, 3), "backward", self.grad_role(2))
        if self.needs_input_grad[0]:
            # G[..., oh*s + k-1-p] = g[..., oh]; gx = conv(G, flipped w), stride 1.
            big = xp.zeros((n, co, h + kh - 1, wd + kw - 1), dtype=g.dtype)
            rs, rg = _placement(oh, sh, kh - 1 - ph, h + kh - 1)
            cs, cg = _placement(ow, sw, kw - 1 - pw, wd + kw - 1)
            big[:, :, rs, cs] = g[:, :, rg, cg]
            gcols = im2col(big, (kh, kw), 1, 0)                      # (N, C_out, kh, kw, H, W)
            gc = gcols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * wd, co * kh * kw)
            wf = w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1).reshape(co * kh * kw, ci)
            gx2 = engine_matmul(self, gc, wf, "backward", self.grad_role(0))
            gx = xp.ascontiguousarray(gx2.reshape(n, h, wd, ci).transpose(0, 3, 1, 2))
        return (gx, gw, gb)[:len(self.inputs)]


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D cross-correlation, NCHW: x (N, C, H, W), w (C_out, C, kh, kw), b (C_out,) or None.
    im2col + one engine matmul (forward Accumulation; bias the last term), rounded once to
    F.  Gradients: see the module docstring (backward Accumulation, rounded to B/G)."""
    kw = {"stride": _pair(stride, "stride"), "padding": _pair(padding, "padding")}
    if b is None:
        return Conv2d.apply(x, w, **kw)
    return Conv2d.apply(x, w, b, **kw)


class _Pool(Function):
    kernel = (2, 2)
    stride = (2, 2)
    padding = (0, 0)

    def _windows(self, x, pad_value):
        """Check ``x`` is (N, C, H, W), remember its shape, and return its windows as
        (N, C, OH, OW, kh*kw)."""
        if x.ndim != 4:
            raise ValueError(f"{self.op_name}: expected an (N, C, H, W) input, got shape "
                             f"{tuple(x.shape)}")
        self.in_shape = tuple(x.shape)
        cols = im2col(x, self.kernel, self.stride, self.padding, pad_value)
        n, c, kh, kw, oh, ow = cols.shape
        return cols.transpose(0, 1, 4, 5, 2, 3).reshape(n, c, oh, ow, kh * kw)

    def _scatter(self, terms):
        """terms (N, C, OH, OW, kh*kw) -> input gradient via engine col2im."""
        n, c, oh, ow, _ = terms.shape
        kh, kw = self.kernel
        cols = terms.reshape(n, c, oh, ow, kh, kw).transpose(0, 1, 4, 5, 2, 3)
        return col2im(self, cols, self.in_shape, self.stride, self.padding, self.grad_role(0))


class MaxPool2d(_Pool):
    op_name = "max_pool2d"
    backward_reduces = True

    def forward(self, x):
        win = self._windows(x, -np.inf)
        self.saved_arg = win.argmax(axis=-1)          # first maximum on ties
        y = win.max(axis=-1)
        return self.round_out(y)

    def backward(self, g):
        xp = array_module(g)
        arg = self.saved_arg
        k = self.kernel[0] * self.kernel[1]
        terms = xp.where(xp.arange(k) == arg[..., None], g[..., None], 0)
        return self._scatter(terms)


class AvgPool2d(_Pool):
    op_name = "avg_pool2d"
    forward_reduces = True
    backward_reduces = True

    def forward(self, x):
        win = self._windows(x, 0.0)
        return engine_mean(self, win, -1, "forward", self.output_role)

    def backward(self, g):
        xp = array_module(g)
        k = self.kernel[0] * self.kernel[1]
        # each window element's share g / k, correctly rounded to B
        share = self.round_grad(0, prepare_for(self, self.grad_role(0), "div", f64(g),
                                               float(k)))
        terms = xp.broadcast_to(share[..., None], share.shape + (k,))
        return self._scatter(terms)


def _pool_kw(kernel, stride, padding):
    kernel = _pair(kernel, "kernel")
    return {"kernel": kernel, "stride": kernel if stride is None else _pair(stride, "stride"),
            "padding": _pair(padding, "padding")}


def max_pool2d(x, kernel, stride=None, padding=0):
    """Max over kh x kw windows (stride defaults to the kernel; padding with -inf).
    Exact; output in F.  Backward: engine col2im of the gradients at each window's first
    maximum, rounded once to B."""
    return MaxPool2d.apply(x, **_pool_kw(kernel, stride, padding))


def avg_pool2d(x, kernel, stride=None, padding=0):
    """Mean over kh x kw windows (stride defaults to the kernel; zero padding counted):
    engine mean under the forward Accumulation, rounded once to F.  Backward: g / (kh*kw)
    correctly rounded to B, then engine col2im rounded once to B."""
    return AvgPool2d.apply(x, **_pool_kw(kernel, stride, padding))
