"""Every differentiable op, forward and backward, on CuPy arrays gives the NumPy bits
(the output and every input gradient), under several precisions: on a GPU, and in CI on
the stand-in (tests/cupy_standin)."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.autograd import Parameter, Tensor
from minifp.backend import asnumpy
from minifp.precision import get_precision, use

pytestmark = pytest.mark.gpu

POLICIES = ["float16", "bfloat16", "fp8", "posit8-mixed", "float32"]


def rnd(*shape, seed=1, positive=False):
    a = np.random.default_rng(seed + 7 * len(shape) + sum(shape)).standard_normal(shape)
    return np.abs(a) + 0.1 if positive else a


def _bn(x, g, b):
    from minifp.backend import array_module
    xp = array_module(x.data)           # the running statistics live with the data
    rm, rv = xp.zeros(3), xp.ones(3)
    return F.batch_norm(x, g, b, rm, rv, training=True)


OPS = {
    "add": (lambda a, b: F.add(a, b), [rnd(3, 4), rnd(4, seed=2)]),
    "sub": (lambda a, b: F.sub(a, b), [rnd(3, 4), rnd(3, 1, seed=2)]),
    "mul": (lambda a, b: F.mul(a, b), [rnd(3, 4), rnd(3, 4, seed=2)]),
    "div": (lambda a, b: F.div(a, b), [rnd(3, 4), rnd(3, 4, seed=2, positive=True)]),
    "scalars": (lambda a: (2.0 * a - 1.5) / 3.0 + a ** 2, [rnd(4, 5)]),
    "pow": (lambda a: F.pow(a, 1.7), [rnd(4, 5, positive=True)]),
    "exp": (F.exp, [rnd(4, 5)]),
    "log": (F.log, [rnd(4, 5, positive=True)]),
    "sqrt": (F.sqrt, [rnd(4, 5, positive=True)]),
    "tanh": (F.tanh, [rnd(4, 5)]),
    "sigmoid": (F.sigmoid, [rnd(4, 5)]),
    "relu": (F.relu, [rnd(4, 5)]),
    "gelu": (F.gelu, [rnd(4, 5)]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [rnd(4, 5)]),
    "quantize": (F.quantize, [rnd(4, 5)]),
    "matmul": (F.matmul, [rnd(2, 3, 7), rnd(7, 4, seed=3)]),
    "linear": (F.linear, [rnd(5, 6), rnd(4, 6, seed=2), rnd(4, seed=3)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
               [rnd(2, 2, 6, 6), rnd(3, 2, 3, 3, seed=2), rnd(3, seed=3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), [rnd(2, 2, 6, 6)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), [rnd(2, 2, 6, 6)]),
    "sum": (lambda x: F.sum(x, axis=1), [rnd(3, 9)]),
    "mean": (lambda x: F.mean(x, axis=0), [rnd(9, 3)]),
    "softmax": (lambda x: F.softmax(x, axis=-1), [rnd(4, 7)]),
    "log_softmax": (lambda x: F.log_softmax(x, axis=-1), [rnd(4, 7)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([0, 3, 6, 1])), [rnd(4, 7)]),
    "batch_norm": (_bn, [rnd(4, 3, 2, 2), rnd(3, seed=2, positive=True), rnd(3, seed=3)]),
    "layer_norm": (lambda x, g, b: F.layer_norm(x, g, b), [rnd(4, 6), rnd(6, positive=True),
                                                            rnd(6, seed=4)]),
    "reshape": (lambda x: F.reshape(x, (6, 2)), [rnd(3, 4)]),
    "flatten": (F.flatten, [rnd(2, 3, 4)]),
    "transpose": (lambda x: F.transpose(x, (1, 0)), [rnd(3, 4)]),
    "concat": (lambda a, b: F.concat([a, b], axis=1), [rnd(3, 2), rnd(3, 4, seed=2)]),
    "stack": (lambda a, b: F.stack([a, b], axis=0), [rnd(3, 2), rnd(3, 2, seed=2)]),
    "getitem": (lambda x: F.getitem(x, (np.array([0, 2, 2]),)), [rnd(3, 4)]),
    "split": (lambda x: F.split(x, 2, axis=1)[1], [rnd(3, 4)]),
    "heads": (lambda x: F.merge_heads(F.split_heads(x, 2)), [rnd(2, 3, 4)]),
}


def _run(fn, arrays, policy, device):
    """(output, gradients) of fn under policy, as float64 NumPy; inputs on ``device``."""
    pol = get_precision(policy)
    with use(pol, rng=np.random.default_rng(3)):
        put = (lambda a: a) if device == "cpu" else __import__("minifp.device", fromlist=[
            "x"]).parse_device(device).put
        ins = [Parameter(put(pol.round("weights", a))) if i else
               Tensor(put(pol.round("activations", a)), requires_grad=True)
               for i, a in enumerate(arrays)]
        y = fn(*ins)
        w = put(pol.round("backward", rnd(*y.shape, seed=9)))
        y.backward(w)
    out = [np.asarray(asnumpy(y.data), np.float64)]
    out += [np.asarray(asnumpy(t.grad.data), np.float64) for t in ins]
    return out


def _same(a, b):
    return a.shape == b.shape and bool(((a.view(np.uint64) == b.view(np.uint64))
                                        | (np.isnan(a) & np.isnan(b))).all())


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_forward_and_backward_match_numpy(cupy, name, policy):
    fn, arrays = OPS[name]
    want = _run(fn, arrays, policy, "cpu")
    got = _run(fn, arrays, policy, "gpu")
    for i, (a, b) in enumerate(zip(want, got)):
        assert _same(a, b), f"{name} {policy}: {'output' if i == 0 else f'grad {i - 1}'}"


def test_dropout_masks_match(cupy):
    x = rnd(6, 8)
    outs = []
    for device in ("cpu", "gpu"):
        from minifp.device import parse_device
        put = parse_device(device).put
        with use(get_precision("float16")):
            t = Tensor(put(x.astype(np.float16)), requires_grad=True)
            y = F.dropout(t, 0.3, training=True, rng=np.random.default_rng(5))
            y.backward(put(np.ones(y.shape, np.float16)))
        outs.append([np.asarray(asnumpy(y.data), np.float64),
                     np.asarray(asnumpy(t.grad.data), np.float64)])
    assert all(_same(a, b) for a, b in zip(*outs))
