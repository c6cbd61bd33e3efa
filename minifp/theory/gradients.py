"""Componentwise bounds on the gradients of a recorded backward pass.

The forward pass of a run is recorded with :func:`minifp.theory.ops.record_calls` and
bounded by :class:`minifp.theory.ops.Propagation` (E_X for every forward tensor); the
backward pass through the same calls records, per op, the gradient G it received and the
gradients it returned.  :class:`GradPropagation` walks the calls in reverse and bounds,
for every tensor, |computed gradient - exact gradient|, where the exact gradient is that
of the real-arithmetic network at the exact forward values, seeded with the exact
upstream gradient (``seeds``: bounds on the seed's own error, usually 0).

Per op (G, E_G: the received gradient and its bound; X, E_X: the saved forward values):

* linear / matmul / conv2d (bilinear): each gradient is one engine sum under the
  backward Accumulation, rounded to B (G for parameters):
  B_acc * S + A (+ the output rounding) with S the same backward on |G|, |X|, |W|, plus
  the propagation E_G |W| + |G| E_W + E_G E_W (input), E_G |X| + |G| E_X + E_G E_X
  (weights), sum E_G (bias) -- each evaluated by running the op's own backward on those
  non-negative arrays in float64 with exact accumulation.
* relu: E_G where |X| > E_X (the exact sign is the computed one), |G| + E_G where the
  sign is uncertain.  tanh / sigmoid / exp / sqrt (derivative from the saved output Y):
  |G| |f'(Y) - f'(Y*)| + E_G |f'(Y)| with |Y - Y*| <= E_Y; log (1/X), gelu (|f''| <=
  2 phi(0) < 0.8): the same from X.  Plus one rounding of the float64 product.
* add / sub / mul: the product terms rounded to B, then an engine sum over broadcast axes.
* index ops (reshape, transpose, concat, getitem, the inspection tap, dropout): the op's
  backward applied to E_G (an engine sum for repeated advanced indices).
* max_pool2d: the window's maximum is certain where it exceeds the runner-up by more than
  their two error bounds; elsewhere every position of the window may receive G.
* avg_pool2d / mean / sum: the share g / k rounded to B, then col2im sums.
* softmax: gx = R_B(y (g - d)), d the engine dot of g and y: the dot's accumulation bound
  plus E_G |Y| + |G| E_Y per term, then E_Y |g - d| + |Y| (E_G + E_d) (+ E_Y (E_G + E_d)).
* batch_norm with batch statistics and layer_norm: gx = R_B(scale (M h - sg - xhat sgx))
  bounded term by term (the two engine sums, the errors of xhat and istd from the forward
  analysis, the float64 steps); ggamma / gbeta as below.
* batch_norm with running statistics: gx = R_B(g gamma istd) with |istd - r*| from the
  saved istd, the float64 1/sqrt(var + eps) and the running-variance error;
  ggamma / gbeta: engine sums of g xhat and g (|xhat - xhat*| from its rounding to F, the
  input and the running-mean errors).

A tensor used by k ops receives k contributions, added in float64 and rounded to its
gradient format k - 1 times: the bounds add, plus (k - 1) roundings of magnitude at most
the sum of the |contributions|.  Ops with no rule (log_softmax, cross_entropy, div, pow) give
``inf`` and are named in ``notes``.
"""
from __future__ import annotations

import numpy as np

from ..formats import get_format
from .ops import (U64, _accumulated, _apriori, _bcast, _f64, _SAFETY,
                        exact_clone, rounding_error_around, rounding_error_at)

__all__ = ["GradPropagation", "GRAD_RULES"]


def _run_backward(fn, g, saved=None):
    """The op's backward on float64 ``g`` (and replaced saved arrays), float64 exact."""
    with np.errstate(all="ignore"):
        out = exact_clone(fn, saved).backward(np.asarray(g, dtype=np.float64))
    out = out if isinstance(out, tuple) else (out,)
    return [None if o is None else np.abs(_f64(o)) * (1 + 2.0 ** -52) for o in out]


def _role(fn, i):
    role = fn.grad_role(i)
    return fn.policy.format_of(role), fn.policy.rounding[role], role


# ---------------------------------------------------------------------------- rules
_BILINEAR = {   # op -> (saved names of the two operands, input index of each)
    "linear": ("saved_x2", "saved_w"),
    "matmul": ("saved_a", "saved_b"),
    "conv2d": ("saved_x", "saved_w"),
}


def _bilinear_n(c, i):
    """Number of terms of each gradient's sums (an upper bound)."""
    sv = c.saved
    g = np.shape(c.grad_in)
    gsize = int(np.prod(g)) if g else 1
    if c.op == "linear":
        return sv["saved_w"].shape[0] if i == 0 else max(gsize // g[-1], 1)
    if c.op == "conv2d":
        w = sv["saved_w"].shape
        return w[0] * w[2] * w[3] if i == 0 else g[0] * g[2] * g[3]
    a, b = np.shape(sv["saved_a"]), np.shape(sv["saved_b"])
    if len(a) < 2 or len(b) < 2 or len(g) < 2:
        return max(gsize, 1)
    batch_g = int(np.prod(g[:-2]))
    own = a if i == 0 else b
    reps = max(batch_g // max(int(np.prod(own[:-2])), 1), 1)
    return (g[-1] if i == 0 else g[-2]) * reps


def _rule_bilinear(c, EG, fwd):
    fn, sv = c.fn, c.saved
    na, nb = _BILINEAR[c.op]
    A, B = _f64(sv[na]), _f64(sv[nb])
    EA = _bcast(fwd.error(c.inputs[0]), c.inputs[0].shape).reshape(A.shape)
    EB = _bcast(fwd.error(c.inputs[1]), c.inputs[1].shape).reshape(B.shape)
    G = np.abs(_f64(c.grad_in))
    EG = _bcast(EG, G.shape)
    S = _run_backward(fn, G, {na: np.abs(A), nb: np.abs(B)})
    T2 = _run_backward(fn, EG, {na: np.abs(A), nb: np.abs(B)})
    T3 = _run_backward(fn, G, {na: EA, nb: EB})
    T4 = _run_backward(fn, EG, {na: EA, nb: EB})
    out = []
    for i, gx in enumerate(c.grad_out):
        if gx is None or S[i] is None:
            out.append(None)
            continue
        GX = _f64(gx)
        prop = T2[i] if i == 2 else T2[i] + T3[i] + T4[i]
        local = _accumulated(fn, GX, _bilinear_n(c, i), S[i], fn.grad_role(i), "backward")
        out.append(local + prop)
    return out


def _rule_relu(c, EG, fwd):
    x = _f64(c.inputs[0])
    ex = _bcast(fwd.error(c.inputs[0]), x.shape)
    G = _f64(c.grad_in)
    GX = _f64(c.grad_out[0])
    mask = x > 0
    prop = np.where(np.abs(x) > ex, np.where(mask, EG, 0.0), np.abs(G) + EG)
    fmt, mode, _ = _role(c.fn, 0)
    rnd = np.where(GX == G * mask, 0.0, rounding_error_around(fmt, mode, GX))
    return [rnd + prop]


def _deriv_from_output(op, Y, EY):
    """(|f'(Y)|, bound on |f'(Y) - f'(Y*)|) for f' written in the output y."""
    aY = np.abs(Y)
    if op == "tanh":
        return np.abs(1 - Y * Y), EY * (2 * aY + EY)
    if op == "sigmoid":
        return np.abs(Y * (1 - Y)), EY * (np.abs(1 - 2 * Y) + EY)
    if op == "exp":
        return aY, EY
    # sqrt: 1 / (2 y)
    den = aY * (aY - EY)
    return 0.5 / aY, np.where(den > 0, 0.5 * EY / den, np.inf)


def _rule_unary(c, EG, fwd):
    fn, op = c.fn, c.op
    G = _f64(c.grad_in)
    GX = _f64(c.grad_out[0])
    if op in ("tanh", "sigmoid", "exp", "sqrt"):
        Y = _f64(c.output)
        d, dd = _deriv_from_output(op, Y, _bcast(fwd.error(c.output), Y.shape))
    elif op == "log":
        X = _f64(c.inputs[0])
        ex = _bcast(fwd.error(c.inputs[0]), X.shape)
        aX = np.abs(X)
        d = 1.0 / aX
        dd = np.where(aX > ex, ex / (aX * (aX - ex)), np.inf)
    elif op == "gelu" and getattr(fn, "approximate", "none") == "none":
        from .ops import _gelu_prime  # noqa: PLC0415
        X = _f64(c.inputs[0])
        d = np.abs(_gelu_prime(X))
        dd = 0.8 * _bcast(fwd.error(c.inputs[0]), X.shape)
    elif op in ("neg", "quantize"):
        d, dd = np.ones(G.shape), np.zeros(G.shape)
    else:
        return [None]
    fmt, mode, _ = _role(fn, 0)
    # float64 evaluation of g * f': a few roundings, with cancellation inside f' (1 - y^2,
    # y (1 - y), cdf + x pdf) bounded by the magnitudes of its parts
    aux = 0.0
    if op == "tanh":
        aux = _f64(c.output) ** 2
    elif op == "gelu":
        aux = np.abs(_f64(c.inputs[0]))
    local = rounding_error_around(fmt, mode, GX) + 8 * U64 * np.abs(G) * (d + 1 + aux)
    if op in ("neg", "quantize"):
        local = np.where(np.abs(GX) == np.abs(G), 0.0, local)
    return [local + np.abs(G) * dd + EG * (d + dd)]


def _unbroadcast_bound(fn, i, term_abs, term_err, GX, shape):
    """Bound of unbroadcast(R_role(terms)) to ``shape`` given |terms| and the bound of
    each rounded term against its exact value."""
    fmt, mode, role = _role(fn, i)
    if tuple(term_abs.shape) == tuple(shape):
        return term_err
    lead = term_abs.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + k for k, s in enumerate(shape)
                                      if s == 1 and term_abs.shape[lead + k] != 1)
    n = int(np.prod([term_abs.shape[a] for a in axes]))
    S = np.sum(term_abs + term_err, axis=axes).reshape(shape) * (1 + 2 * n * U64)
    E = np.sum(term_err, axis=axes).reshape(shape) * (1 + 2 * n * U64)
    return _accumulated(fn, GX, n, S, role, "backward") + E


def _rule_binary(c, EG, fwd):
    fn, op = c.fn, c.op
    G = _f64(c.grad_in)
    A, B = _f64(c.inputs[0]), _f64(c.inputs[1])
    shape = G.shape
    out = []
    for i, gx in enumerate(c.grad_out):
        if gx is None:
            out.append(None)
            continue
        fmt, mode, _ = _role(fn, i)
        if op in ("add", "sub"):
            terms = np.abs(G)
            err = rounding_error_at(fmt, mode, G) + EG
        elif op == "mul":
            other, eo = (B, fwd.error(c.inputs[1])) if i == 0 else (A, fwd.error(c.inputs[0]))
            o = np.abs(_bcast(other, shape))
            eo = _bcast(eo, shape)
            v = G * _bcast(other, shape)
            terms = np.abs(v)
            err = (rounding_error_at(fmt, mode, v) + U64 * terms
                   + np.abs(G) * eo + EG * o + EG * eo)
        else:
            out.append(None)
            continue
        out.append(_unbroadcast_bound(fn, i, terms, _bcast(err, shape), _f64(gx),
                                      c.inputs[i].shape))
    return out


def _rule_index(c, EG, fwd):
    """reshape, transpose, concat, getitem, dropout, the inspection tap."""
    fn = c.fn
    saved = dict(c.saved or {})
    prop = _run_backward(fn, EG, saved)
    exact = exact_clone(fn, saved).backward(_f64(c.grad_in))
    exact = exact if isinstance(exact, tuple) else (exact,)
    S = _run_backward(fn, np.abs(_f64(c.grad_in)), saved)
    out = []
    for i, gx in enumerate(c.grad_out):
        if gx is None or i >= len(prop) or prop[i] is None:
            out.append(None)
            continue
        GX = _f64(gx)
        fmt, mode, role = _role(fn, i)
        if c.op == "getitem" and not getattr(fn, "basic", True):
            local = _accumulated(fn, GX, int(np.size(c.grad_in)), S[i], role, "backward")
        else:
            local = np.where(GX == _f64(exact[i]), 0.0, rounding_error_around(fmt, mode, GX))
            if c.op == "dropout":
                local = local + U64 * S[i]
        out.append(local + prop[i])
    return out


def _overlap(fn):
    kh, kw = fn.kernel
    sh, sw = fn.stride
    return max(-(-kh // sh), 1) * max(-(-kw // sw), 1)


def _rule_max_pool(c, EG, fwd):
    from .ops import _windows  # noqa: PLC0415
    fn = c.fn
    x = _f64(c.inputs[0])
    ex = _bcast(fwd.error(c.inputs[0]), x.shape).copy()
    G = _f64(c.grad_in)
    win = _windows(fn, x, -np.inf)
    ewin = _windows(fn, ex, 0.0)
    k = win.shape[-1]
    arg = win.argmax(axis=-1)[..., None]
    pos = np.arange(k)
    top = np.take_along_axis(win, arg, -1)[..., 0]
    at = pos == arg
    second = np.where(at, -np.inf, win).max(axis=-1)
    e_top = np.take_along_axis(ewin, arg, -1)[..., 0]
    e_oth = np.where(at, 0.0, ewin).max(axis=-1)
    with np.errstate(invalid="ignore"):
        certain = (top - second) > (e_top + e_oth)
    eg = _bcast(EG, G.shape)
    unc = np.abs(G) + eg
    terms_err = np.where(certain[..., None], np.where(at, eg[..., None], 0.0), unc[..., None])
    clone = exact_clone(fn)
    prop = np.abs(_f64(clone._scatter(terms_err)))
    S = np.abs(_f64(clone._scatter(np.where(at, np.abs(G)[..., None], 0.0))))
    GX = _f64(c.grad_out[0])
    return [_accumulated(fn, GX, _overlap(fn), S, fn.grad_role(0), "backward") + prop]


def _rule_avg_pool(c, EG, fwd):
    fn = c.fn
    G = _f64(c.grad_in)
    k = fn.kernel[0] * fn.kernel[1]
    fmt, mode, role = _role(fn, 0)
    share = G / k
    err = rounding_error_at(fmt, mode, share) + U64 * np.abs(share) + _bcast(EG, G.shape) / k
    clone = exact_clone(fn)
    ones = np.ones(share.shape + (k,))
    prop = np.abs(_f64(clone._scatter(err[..., None] * ones)))
    S = np.abs(_f64(clone._scatter((np.abs(share) + err)[..., None] * ones)))
    GX = _f64(c.grad_out[0])
    return [_accumulated(fn, GX, _overlap(fn), S, role, "backward") + prop * (1 + 4 * U64)]


def _rule_reduce(c, EG, fwd):
    fn = c.fn
    G = _f64(c.grad_in)
    shape = tuple(fn.in_shape)
    kept = [1 if i in fn.axes else n for i, n in enumerate(shape)]
    count = 1
    if c.op == "mean":
        for i in fn.axes:
            count *= shape[i]
    fmt, mode, _ = _role(fn, 0)
    v = np.broadcast_to(G.reshape(kept) / count, shape)
    e = np.broadcast_to(_bcast(EG, G.shape).reshape(kept) / count, shape)
    return [rounding_error_at(fmt, mode, v) + U64 * np.abs(v) + e]


def _rule_softmax(c, EG, fwd):
    """gx = R_B(y (g - d)), d = engine dot of g and y (accumulator format)."""
    from .ops import _acc_terms  # noqa: PLC0415
    fn = c.fn
    axis = fn.axis % c.output.ndim
    G, Y = _f64(c.grad_in), _f64(c.saved["saved_y"])
    EY = _bcast(fwd.error(c.output), Y.shape)
    n = Y.shape[axis]
    S = np.sum(np.abs(G) * np.abs(Y), axis=axis, keepdims=True) * (1 + 2 * n * U64)
    B, A = _acc_terms(fn, n, S, "backward")
    E_d = B * S + A + np.sum(EG * np.abs(Y) + np.abs(G) * EY + EG * EY, axis=axis,
                             keepdims=True) * (1 + 2 * n * U64)
    d_hi = S * (1 + B) + A
    inner = np.abs(G) + d_hi
    fmt, mode, _ = _role(fn, 0)
    GX = _f64(c.grad_out[0])
    return [rounding_error_around(fmt, mode, GX) + 3 * U64 * np.abs(Y) * inner
            + EY * inner + np.abs(Y) * (EG + E_d) + EY * (EG + E_d)]


def _norm_param_grads(c, G, EG, xhat, e_xh):
    """Bounds of ggamma = engine sum of g xhat and gbeta = engine sum of g over the
    parameter axes (None where not computed), |xhat - xhat*| <= e_xh."""
    fn = c.fn
    pax = tuple(fn.param_axes)
    n = int(np.prod([G.shape[a] for a in pax])) if pax else 1
    grow = 1 + 2 * n * U64
    aG, ax = np.abs(G), np.abs(xhat)
    out = []
    for i, (terms, eterms) in ((1, (aG * ax, aG * e_xh + EG * (ax + e_xh))), (2, (aG, EG))):
        if len(c.grad_out) <= i or c.grad_out[i] is None:
            out.append(None)
            continue
        GX = _f64(c.grad_out[i])
        S = (np.sum(terms, axis=pax) * grow).reshape(GX.shape)
        Et = (np.sum(eterms, axis=pax) * grow).reshape(GX.shape)
        out.append(_accumulated(fn, GX, n, S, fn.grad_role(i), "backward") + Et)
    return out


def _rule_norm_batch(c, EG, fwd):
    """batch_norm with batch statistics and layer_norm: gx = R_B(scale (M h - sg - xhat
    sgx)), h = g (gamma factored into scale) or R_B(g gamma); sg, sgx engine sums in the
    accumulator format; ggamma / gbeta engine sums of g xhat and g.  |istd - r*| and
    |xhat - xhat*| come from the forward analysis (minifp.theory.ops.norm_analysis)."""
    from .ops import _acc_terms, norm_analysis  # noqa: PLC0415
    fn = c.fn
    X = [_f64(t) for t in c.inputs]
    E = [fwd.error(t) for t in c.inputs]
    an = norm_analysis(fn, X, E, fwd)
    pshape = tuple(fn.pshape)
    axes = tuple(fn.axes)
    G = _f64(c.grad_in)
    aG = np.abs(G)
    M = int(np.prod([G.shape[a] for a in axes]))
    gam = _f64(c.inputs[1]).reshape(pshape)
    egam = _bcast(E[1], c.inputs[1].shape).reshape(pshape)
    istd = _f64(c.saved["saved_istd"])
    xhat = _f64(c.saved["saved_xhat"])
    fmt_f, mode_f = fn.policy.format_of("activations"), fn.policy.rounding["activations"]
    e_xh = rounding_error_around(fmt_f, mode_f, xhat) + _bcast(an["e_xh"], xhat.shape)
    e_r = _bcast(an["e_r"], istd.shape)
    ax = np.abs(xhat)
    fmt_b, mode_b, _ = _role(fn, 0)
    out = [None, None, None]
    if c.grad_out[0] is not None:
        const = all(pshape[i] == 1 for i in axes)
        if const:
            h, eh = aG, EG
            scale, e_scale = np.abs(gam) * istd / M, (egam * (istd + e_r) + np.abs(gam) * e_r) / M
        else:
            hv = G * gam
            h = np.abs(hv)
            eh = (rounding_error_at(fmt_b, mode_b, hv) + U64 * h + aG * egam
                  + EG * np.abs(gam) + EG * egam)
            h = h + rounding_error_at(fmt_b, mode_b, hv)
            scale, e_scale = istd / M, e_r / M
        grow = 1 + 2 * M * U64
        S_sg = np.sum(h, axis=axes, keepdims=True) * grow
        S_sgx = np.sum(h * ax, axis=axes, keepdims=True) * grow
        B1, A1 = _acc_terms(fn, M, S_sg, "backward")
        B2, A2 = _acc_terms(fn, M, S_sgx, "backward")
        E_sg = B1 * S_sg + A1 + np.sum(eh, axis=axes, keepdims=True) * grow
        E_sgx = B2 * S_sgx + A2 + np.sum(eh * ax + h * e_xh + eh * e_xh, axis=axes,
                                         keepdims=True) * grow
        sg_hi, sgx_hi = S_sg * (1 + B1) + A1, S_sgx * (1 + B2) + A2
        inner = M * h + sg_hi + ax * sgx_hi
        e_inner = M * eh + E_sg + e_xh * (sgx_hi + E_sgx) + ax * E_sgx + 4 * U64 * inner
        GX = _f64(c.grad_out[0])
        out[0] = (rounding_error_around(fmt_b, mode_b, GX) + scale * e_inner
                  + e_scale * (inner + e_inner) + 2 * U64 * scale * inner)
    out[1], out[2] = _norm_param_grads(c, G, EG, xhat, e_xh)
    return out


def _rule_batch_norm_eval(c, EG, fwd):
    """batch_norm with running statistics: gx = R_B(g gamma istd), ggamma = engine sum of
    g xhat, gbeta = engine sum of g (batch and spatial axes)."""
    fn = c.fn
    if c.op != "batch_norm" or fn.use_batch_stats:
        return _rule_norm_batch(c, EG, fwd)
    pshape = tuple(fn.pshape)
    G = _f64(c.grad_in)
    x = _f64(c.inputs[0])
    ex = _bcast(fwd.error(c.inputs[0]), x.shape)
    gam = _f64(c.inputs[1]).reshape(pshape)
    egam = _bcast(fwd.error(c.inputs[1]), c.inputs[1].shape).reshape(pshape)
    istd = _f64(c.saved["saved_istd"]).reshape(pshape)
    xhat = _f64(c.saved["saved_xhat"])
    rm = _f64(fn.running_mean_data).reshape(pshape)
    rv = _f64(fn.running_var_data).reshape(pshape)
    erm = np.reshape(fwd.array_error(fn.running_mean_data), (-1,))
    erv = np.reshape(fwd.array_error(fn.running_var_data), (-1,))
    erm = _bcast(erm, (rm.size,)).reshape(pshape)
    erv = _bcast(erv, (rv.size,)).reshape(pshape)
    r64 = 1.0 / np.sqrt(rv + fn.eps)
    lo = np.maximum(rv - erv, 0.0) + fn.eps
    r_hi = 1.0 / np.sqrt(lo)
    e_r = np.abs(istd - r64) + 4 * U64 * r64 + erv / (2 * lo ** 1.5)  # |istd - r*|
    d = np.abs(x - rm)
    # |xhat_saved - xhat*|: its rounding to F, the float64 steps, the input/buffer errors
    fmt_f, mode_f = fn.policy.format_of("activations"), fn.policy.rounding["activations"]
    e_xh = (rounding_error_around(fmt_f, mode_f, xhat) + 2 * U64 * d * istd
            + (ex + erm) * (istd + e_r) + d * e_r)
    aG = np.abs(G)
    out = [None] + _norm_param_grads(c, G, EG, xhat, e_xh)
    if c.grad_out[0] is not None:
        fmt, mode, _ = _role(fn, 0)
        g_abs = np.abs(gam)
        out[0] = (rounding_error_around(fmt, mode, _f64(c.grad_out[0]))
                  + 3 * U64 * aG * g_abs * istd + aG * (g_abs * e_r + egam * (istd + e_r))
                  + EG * (g_abs + egam) * (istd + e_r))
    return out


GRAD_RULES = {
    "linear": _rule_bilinear, "matmul": _rule_bilinear, "conv2d": _rule_bilinear,
    "relu": _rule_relu,
    "tanh": _rule_unary, "sigmoid": _rule_unary, "exp": _rule_unary, "sqrt": _rule_unary,
    "log": _rule_unary, "gelu": _rule_unary, "neg": _rule_unary, "quantize": _rule_unary,
    "add": _rule_binary, "sub": _rule_binary, "mul": _rule_binary,
    "reshape": _rule_index, "transpose": _rule_index, "concat": _rule_index,
    "getitem": _rule_index, "dropout": _rule_index, "inspect_tap": _rule_index,
    "max_pool2d": _rule_max_pool, "avg_pool2d": _rule_avg_pool,
    "sum": _rule_reduce, "mean": _rule_reduce,
    "softmax": _rule_softmax, "batch_norm": _rule_batch_norm_eval,
    "layer_norm": _rule_norm_batch,
}


class GradPropagation:
    """Gradient error bounds of a recorded backward pass (see the module docstring).

    ``fwd``: the :class:`~minifp.theory.ops.Propagation` of the same run's forward pass;
    ``seeds``: id(Tensor) -> bound on the error of the gradient seeded there."""

    def __init__(self, fwd, seeds=None):
        self.fwd = fwd
        self.seeds = dict(seeds or {})
        self.contrib: dict = {}          # id(tensor) -> [(bound, |gradient|, fmt, mode)]
        self.notes: list = []
        self._keep: list = []

    def error(self, t):
        """The bound on the gradient of Tensor ``t`` (None if no gradient reached it)."""
        parts = self.contrib.get(id(t))
        seed = self.seeds.get(id(t))
        if not parts:
            return None if seed is None else np.asarray(seed, dtype=np.float64)
        total = sum(p[0] for p in parts) + (0.0 if seed is None else seed)
        if len(parts) > 1:            # k - 1 float64 additions rounded to the gradient format
            mag = sum(p[1] + p[0] for p in parts)
            fmt, mode = parts[-1][2], parts[-1][3]
            total = total + (len(parts) - 1) * _apriori(fmt, mode, mag)
        return np.where(np.isnan(total), np.inf, total) * _SAFETY

    def run(self, calls) -> "GradPropagation":
        for c in reversed(calls):
            if c.grad_in is None:
                continue
            self._keep.append(c)
            G = _f64(c.grad_in)
            EG = self.error(c.output)
            EG = np.zeros(G.shape) if EG is None else _bcast(EG, G.shape)
            rule = GRAD_RULES.get(c.op)
            with np.errstate(all="ignore"):
                outs = rule(c, EG, self.fwd) if rule is not None else [None] * len(c.inputs)
            for i, (t, gx) in enumerate(zip(c.inputs, c.grad_out)):
                if gx is None or not c.fn.needs_input_grad[i]:
                    continue
                b = outs[i] if i < len(outs) else None
                if b is None:
                    if c.op not in self.notes:
                        self.notes.append(c.op)
                    b = np.full(np.shape(gx), np.inf)
                fmt, mode, _ = _role(c.fn, i)
                b = np.broadcast_to(np.asarray(b, dtype=np.float64), np.shape(gx))
                self.contrib.setdefault(id(t), []).append(
                    (np.where(np.isnan(b), np.inf, b), np.abs(_f64(gx)), get_format(fmt),
                     mode))
        return self

