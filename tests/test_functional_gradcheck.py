"""Gradient check of every op in float64 (Chainer-style directional central differences).

For inputs x_i, output weights w and random directions d_i, the analytic directional
derivative sum_i <grad_i, d_i> of L = <f(x), w> must match (L(x + h d) - L(x - h d)) / 2h,
checked input by input so a failure names the wrong gradient.
"""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.autograd import Parameter, Tensor, no_grad
from minifp.precision import get_precision, use

F64 = get_precision("float64")


def gradcheck(fn, *arrays, params=(), seed=0, eps=1e-6, rtol=1e-6, atol=1e-9):
    """Check d<fn(*inputs), w>/d input_i along a random direction, for every input.
    ``params``: indices of the inputs passed as Parameters (the others as Tensors)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    with use(F64):
        ts = [Parameter(a) if i in params else Tensor(a, requires_grad=True)
              for i, a in enumerate(arrays)]
        y = fn(*ts)
        w = rng.standard_normal(y.shape)
        y.backward(w)
        for i, a in enumerate(arrays):
            assert ts[i].grad is not None, f"input {i}: no gradient"
            g = ts[i].grad.numpy()
            assert g.shape == a.shape and g.dtype == np.float64
            d = rng.standard_normal(a.shape)

            def loss(h):
                xs = [Tensor(b + h * d) if j == i else Tensor(b) for j, b in enumerate(arrays)]
                with no_grad():
                    return float((fn(*xs).numpy() * w).sum())

            numeric = (loss(eps) - loss(-eps)) / (2 * eps)
            analytic = float((g * d).sum())
            assert analytic == pytest.approx(numeric, rel=rtol, abs=atol), \
                f"input {i}: analytic {analytic} vs numeric {numeric}"


def rnd(*shape, seed=1, away_from_zero=False):
    a = np.random.default_rng(seed + 17 * len(shape) + sum(shape)).standard_normal(shape)
    if away_from_zero:
        a = np.where(a >= 0, a + 0.2, a - 0.2)
    return a


# ---------------------------------------------------------------- elementwise
@pytest.mark.parametrize("op", [F.add, F.sub, F.mul, F.div])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)),
                                   ((2, 1, 4), (3, 1)), ((), (2, 3))])
def test_binary_broadcasting(op, sa, sb):
    b = rnd(*sb, seed=2, away_from_zero=True)
    gradcheck(op, rnd(*sa), b)


def test_binary_broadcast_parameter():
    gradcheck(lambda x, b: x + b, rnd(4, 3), rnd(3), params=(1,))
    gradcheck(lambda x, b: x * b, rnd(2, 4, 3), rnd(4, 1), params=(1,))


def test_operators_and_scalars():
    gradcheck(lambda a, b: (2.0 * a - b / 3.0 + 1.5) * (1.0 - a) / (b * b + 1.0),
              rnd(3, 4), rnd(3, 4, seed=5))
    gradcheck(lambda a: -a ** 3 + a ** 2, rnd(5))


@pytest.mark.parametrize("op,positive", [(F.exp, False), (F.log, True), (F.sqrt, True),
                                         (F.tanh, False), (F.sigmoid, False),
                                         (F.relu, False), (F.gelu, False),
                                         (lambda x: F.gelu(x, approximate="tanh"), False),
                                         (F.neg, False)])
def test_unary(op, positive):
    x = rnd(3, 5, away_from_zero=True)
    if positive:
        x = np.abs(x) + 0.5
    gradcheck(op, x)


def test_quantize_passes_gradient():
    gradcheck(F.quantize, rnd(4, 2))


# ---------------------------------------------------------------- reductions
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False),
                                           (-1, True)])
def test_sum_mean(axis, keepdims):
    x = rnd(2, 3, 4)
    gradcheck(lambda t: F.sum(t, axis, keepdims), x)
    gradcheck(lambda t: F.mean(t, axis, keepdims), x)
    gradcheck(lambda t: t.sum(axis, keepdims) * t.mean(axis, keepdims), x)


# ---------------------------------------------------------------- matmul / linear
@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 3)),
                                   ((2, 4), (4,)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                                   ((2, 1, 3, 4), (3, 4, 2)), ((5,), (2, 5, 3))])
def test_matmul(sa, sb):
    gradcheck(F.matmul, rnd(*sa), rnd(*sb, seed=3))


def test_matmul_operator_parameter():
    gradcheck(lambda x, w: x @ w.T, rnd(6, 4), rnd(3, 4), params=(1,))


@pytest.mark.parametrize("xshape", [(5, 4), (2, 3, 4), (4,)])
def test_linear(xshape):
    gradcheck(F.linear, rnd(*xshape), rnd(3, 4, seed=4), rnd(3, seed=5), params=(1, 2))
    gradcheck(F.linear, rnd(*xshape), rnd(3, 4, seed=4), params=(1,))


# ---------------------------------------------------------------- conv / pooling
@pytest.mark.parametrize("stride,padding,size", [(1, 0, 5), (1, 1, 5), (2, 0, 6), (2, 1, 5),
                                                  ((2, 1), (0, 2), 5), (3, 2, 4)])
def test_conv2d(stride, padding, size):
    x = rnd(2, 3, size, size + 1)
    w = rnd(4, 3, 3, 2, seed=6)
    b = rnd(4, seed=7)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), x, w, b, params=(1, 2))
    gradcheck(lambda x, w: F.conv2d(x, w, None, stride, padding), x, w, params=(1,))


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), (2, 1, 0),
                                                   ((3, 2), (2, 1), 0)])
def test_pooling(kernel, stride, padding):
    x = rnd(2, 3, 6, 5)
    gradcheck(lambda t: F.avg_pool2d(t, kernel, stride, padding), x)
    # distinct values so the max is unique and stable under the finite-difference step
    xm = np.random.default_rng(9).permutation(x.size).reshape(x.shape) * 0.01
    gradcheck(lambda t: F.max_pool2d(t, kernel, stride, padding), xm, eps=1e-5)


# ---------------------------------------------------------------- softmax family
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_log_softmax(axis):
    x = rnd(3, 4, 5)
    gradcheck(lambda t: F.softmax(t, axis), x)
    gradcheck(lambda t: F.log_softmax(t, axis), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    x = rnd(6, 4)
    t = np.array([0, 3, 1, 1, 2, 0])
    gradcheck(lambda z: F.cross_entropy(z, t, reduction), x)
    soft = np.random.default_rng(3).dirichlet(np.ones(4), size=6)
    gradcheck(lambda z: F.cross_entropy(z, soft, reduction), x)


# ---------------------------------------------------------------- normalization
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 3)])
def test_batch_norm_train(shape):
    x = rnd(*shape)
    c = shape[1]
    gradcheck(lambda x, g, b: F.batch_norm(x, g, b, None, None, True), x, rnd(c, seed=8) + 1,
              rnd(c, seed=9), params=(1, 2))
    gradcheck(lambda x: F.batch_norm(x, None, None, np.zeros(c), np.ones(c), True), x)


def test_batch_norm_eval():
    c = 3
    rm, rv = rnd(c, seed=1), np.abs(rnd(c, seed=2)) + 0.5
    gradcheck(lambda x, g, b: F.batch_norm(x, g, b, rm, rv, False), rnd(4, c, 2, 2),
              rnd(c, seed=3), rnd(c, seed=4), params=(1, 2))


@pytest.mark.parametrize("shape,nshape", [((4, 6), (6,)), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4))])
def test_layer_norm(shape, nshape):
    gradcheck(F.layer_norm, rnd(*shape), rnd(*nshape, seed=3) + 1, rnd(*nshape, seed=4),
              params=(1, 2))
    gradcheck(lambda x: F.layer_norm(x, None, None, normalized_shape=nshape), rnd(*shape))


# ---------------------------------------------------------------- dropout, shapes
def test_dropout_fixed_seed():
    x = rnd(6, 5)
    gradcheck(lambda t: F.dropout(t, 0.3, True, np.random.default_rng(42)), x)
    with use(F64):
        a = F.dropout(Tensor(x), 0.3, True, np.random.default_rng(42)).numpy()
        b = F.dropout(Tensor(x), 0.3, True, np.random.default_rng(42)).numpy()
        c = F.dropout(Tensor(x), 0.3, False)
    np.testing.assert_array_equal(a, b)
    kept = a != 0
    np.testing.assert_allclose(a[kept], x[kept] / 0.7)
    assert 0 < kept.sum() < x.size
    np.testing.assert_array_equal(c.numpy(), x)


def test_shape_ops():
    x = rnd(2, 3, 4)
    gradcheck(lambda t: F.reshape(t, (4, -1)) * 2.0, x)
    gradcheck(lambda t: F.flatten(t) ** 2, x)
    gradcheck(lambda t: F.transpose(t, (2, 0, 1)) ** 2, x)
    gradcheck(lambda t: t.T ** 2, x)
    gradcheck(lambda a, b: F.concat([a, b * b], axis=1), x, rnd(2, 2, 4, seed=3))
    gradcheck(lambda a, b: F.stack([a, b], axis=1) ** 2, x, rnd(2, 3, 4, seed=3))
    gradcheck(lambda t: t[1, :, 1:3] ** 2, x)
    gradcheck(lambda t: t[:, [0, 2, 0, 0]] ** 2, x)            # repeated advanced index
    gradcheck(lambda t: F.split(t, 2, axis=2)[1] * F.split(t, [1], axis=1)[1][:, :1, :2], x)


def test_attention_like_composition():
    b, h, t, d = 2, 2, 3, 4

    def attention(x, wq, wk, wv, wo):
        q = F.split_heads(F.linear(x, wq), h)
        k = F.split_heads(F.linear(x, wk), h)
        v = F.split_heads(F.linear(x, wv), h)
        scores = (q @ F.transpose(k, (0, 1, 3, 2))) / np.sqrt(d // h)   # 4-D matmul
        out = F.merge_heads(F.softmax(scores, axis=-1) @ v)
        return F.layer_norm(x + F.linear(out, wo), None, None)

    gradcheck(attention, rnd(b, t, d), rnd(d, d, seed=2), rnd(d, d, seed=3), rnd(d, d, seed=4),
              rnd(d, d, seed=5), params=(1, 2, 3, 4))


def test_small_cnn_composition():
    def net(x, w1, b1, w2):
        h = F.relu(F.conv2d(x, w1, b1, stride=1, padding=1))
        h = F.max_pool2d(h, 2)
        h = F.batch_norm(h, None, None, None, None, True)
        return F.cross_entropy(F.linear(F.flatten(h), w2), np.array([1, 0]))

    gradcheck(net, rnd(2, 1, 4, 4), rnd(2, 1, 3, 3, seed=2), rnd(2, seed=3),
              rnd(2, 8, seed=4), params=(1, 2, 3), rtol=1e-5)
