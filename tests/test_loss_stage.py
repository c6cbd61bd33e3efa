"""The loss stage in L (PositNN, pure 16-bit training): cross_entropy's softmax, loss and
gradient in L arithmetic, every elementwise result rounded to L, the sums by the engine,
the gradient to the network rounded to B; against a step-by-step reference with exact
(Fraction) arithmetic for +, -, *, / and float64 exp/log, each rounded once.  The float64
reference stage stays available as loss_stage "float64"."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import minifp.functional as F
from minifp.autograd import Tensor
from minifp.precision import get_precision, use


def R(fmt, v):
    """Round one exact value (Fraction or float) once to fmt, nearest-even."""
    f = Fraction(v)
    # the correct rounding of an exact value: through float64 rounded to odd
    x = float(f)
    if Fraction(x) != f:
        lo, hi = (x, math.nextafter(x, math.inf)) if Fraction(x) < f else \
            (math.nextafter(x, -math.inf), x)
        x = lo if int(np.float64(lo).view(np.uint64)) & 1 else hi
    return float(fmt.round(np.array([x]), dtype=np.float64)[0])


def reference(policy, x, t):
    L, B = policy.loss, policy.backward
    n, c = x.shape
    loss, grads = [], np.zeros((n, c))
    for i in range(n):
        m = max(x[i])
        d = [R(L, Fraction(float(v)) - Fraction(float(m))) for v in x[i]]
        e = [R(L, math.exp(v)) for v in d]
        s = R(L, sum(Fraction(v) for v in e))   # the quire's exact sum, rounded once to L
        ls = R(L, math.log(s))
        loss.append(R(L, Fraction(ls) - Fraction(d[t[i]])))
        gn = R(L, Fraction(1, n))
        for j in range(c):
            p = R(L, Fraction(e[j]) / Fraction(s))
            q = R(L, Fraction(p) - (1 if j == t[i] else 0))
            grads[i, j] = R(B, Fraction(q) * Fraction(gn))
    # the engine's mean: the sum in the accumulator A (the quire's exact sum rounded once to
    # A), divided by the count, rounded once to L
    A = policy.forward.format
    mean = R(L, Fraction(R(A, sum(Fraction(v) for v in loss))) / n)
    return mean, grads


@pytest.mark.parametrize("name", ["posit8", "posit16", "posit8-mixed"])
def test_loss_and_gradient_in_L_match_the_step_by_step_reference(name):
    policy = get_precision(name)
    assert policy.loss_stage == "L" and policy.forward.order.kind == "exact"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5)) * 2
    x = policy.activations.round(x, dtype=np.float64)
    t = rng.integers(0, 5, 6)
    with use(policy):
        z = Tensor(policy.round("activations", x), requires_grad=True)
        loss = F.cross_entropy(z, t)
        loss.backward()
    want_loss, want_grad = reference(policy, x, t)
    assert float(loss.data) == want_loss
    assert np.array_equal(np.asarray(z.grad.data, np.float64), want_grad)


def test_the_float64_stage_is_the_reference_and_differs():
    base = get_precision("posit8")
    ref = base.replace(name="posit8-ref", loss_stage="float64")
    rng = np.random.default_rng(1)
    x = base.activations.round(rng.standard_normal((32, 10)) * 3, dtype=np.float64)
    t = rng.integers(0, 10, 32)
    out = {}
    for p in (base, ref):
        with use(p):
            z = Tensor(p.round("activations", x), requires_grad=True)
            loss = F.cross_entropy(z, t, reduction="none")
            loss.backward(np.ones(32))
        out[p.loss_stage] = (np.asarray(loss.data, np.float64),
                             np.asarray(z.grad.data, np.float64))
    # the reference stage exactly: e = R_F(exp(x - m)), s = the quire's exact sum rounded
    # once to A (posit8 values over this range sum exactly in float64), the per-sample
    # loss R_L(log(s) + m - x_t) from float64
    m = x.max(1, keepdims=True)
    e = base.activations.round(np.exp(x - m), dtype=np.float64)
    s = base.forward.format.round(e.sum(1, keepdims=True), dtype=np.float64)
    want = base.loss.round((np.log(s) + m)[:, 0] - x[np.arange(32), t], dtype=np.float64)
    assert np.array_equal(out["float64"][0], want)
    assert (out["float64"][0] != out["L"][0]).any() or (out["float64"][1] != out["L"][1]).any()


def test_policy_round_trip_and_bad_value():
    p = get_precision("float16").replace(loss_stage="float64")
    from minifp.precision import Precision
    assert Precision.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="loss_stage"):
        get_precision("float16").replace(loss_stage="double")
