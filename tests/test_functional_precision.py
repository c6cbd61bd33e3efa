"""Ops under low-precision policies: formats of outputs and gradients, records,
accumulation semantics, determinism."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.accumulate import Accumulation
from minifp.autograd import Parameter, Tensor, trace
from minifp.formats import get_format
from minifp.precision import Precision, get_precision, layer_scope, use

FP16 = get_format("float16")


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((4, 1, 6, 6)),
        "w1": rng.standard_normal((3, 1, 3, 3)) * 0.5,
        "b1": rng.standard_normal(3) * 0.1,
        "g": 1 + 0.1 * rng.standard_normal(3),
        "be": 0.1 * rng.standard_normal(3),
        "w2": rng.standard_normal((5, 27)) * 0.2,
        "b2": np.zeros(5),
        "t": np.array([0, 4, 2, 1]),
    }


def run_net(policy, d, stochastic_rng=None):
    """A small CNN touching most ops; returns (loss, outputs, params, input tensor)."""
    with use(policy, rng=stochastic_rng) as p:
        params = {k: Parameter(p.round("weights", d[k])) for k in ("w1", "b1", "g", "be", "w2",
                                                                    "b2")}
        x = Tensor(p.round("activations", d["x"]), requires_grad=True)
        outs = {}
        with layer_scope("conv"):
            outs["conv"] = h = F.conv2d(x, params["w1"], params["b1"], stride=1, padding=1)
        outs["bn"] = h = F.batch_norm(h, params["g"], params["be"], np.zeros(3), np.ones(3),
                                      True)
        outs["gelu"] = h = F.gelu(h)
        outs["pool"] = h = F.avg_pool2d(h, 2)
        outs["max"] = h = F.max_pool2d(h, 1)
        with layer_scope("head"):
            outs["fc"] = h = F.linear(F.flatten(h), params["w2"], params["b2"])
        outs["sm"] = F.softmax(h)
        outs["ln"] = F.layer_norm(h, None, None)
        loss = F.cross_entropy(h, d["t"])
        loss.backward()
    return loss, outs, params, x


def test_float16_preset_formats_and_records():
    loss, outs, params, x = run_net("float16", _data())
    for name, t in outs.items():
        assert t.dtype == np.float16, name
        assert bool(FP16.is_representable(t.data).all()), name
        r = t.record
        assert r.formats["activations"] == "float16"
        assert r.policy == "float16"
    assert loss.dtype == np.float16 and loss.record.formats["loss"] == "float16"
    label = str(Accumulation("float16", "sequential", fma=True))
    assert outs["conv"].record.forward == (label,) and outs["conv"].record.backward == (label,)
    assert outs["conv"].record.layer == "conv" and outs["fc"].record.layer == "head"
    assert outs["gelu"].record.forward == ()
    for k, p in params.items():
        assert p.grad is not None and p.grad.dtype == np.float16, k
        assert bool(FP16.is_representable(p.grad.data).all()), k
    assert x.grad.dtype == np.float16


def test_distinct_role_formats():
    policy = Precision(name="roles", weights="float32", activations="bfloat16",
                       loss="float32", backward="e5m2", gradients="float16",
                       optimizer="float32", forward="float32:pairwise",
                       backward_acc="float32:blocked:4")
    loss, outs, params, x = run_net(policy, _data(1))
    bf16, e5m2 = get_format("bfloat16"), get_format("e5m2")
    for name, t in outs.items():
        assert bool(bf16.is_representable(t.data).all()), name
    assert loss.dtype == np.float32 and loss.record.formats["loss"] == "float32"
    assert bool(e5m2.is_representable(x.grad.data).all())
    for k, p in params.items():
        assert bool(FP16.is_representable(p.grad.data).all()), k
    r = outs["fc"].record
    assert r.formats == {"activations": "bfloat16", "weights": "float32",
                         "backward": "e5m2", "gradients": "float16"}
    with use(policy):        # no input needs a gradient: only the output format is named
        assert F.relu(Tensor(np.ones(2))).record.formats == {"activations": "bfloat16"}
    assert r.forward == (str(Accumulation.parse("float32:pairwise")),)
    assert r.backward == (str(Accumulation.parse("float32:blocked:4")),)


def test_per_layer_override_reaches_records():
    policy = get_precision("float16").replace(
        name="fp16-head32", overrides=(("head", {"activations": "float32",
                                                 "forward": "float32:sequential"}),))
    _, outs, _, _ = run_net(policy, _data())
    assert outs["fc"].record.formats["activations"] == "float32"
    assert outs["fc"].dtype == np.float32
    assert outs["fc"].record.forward == (str(Accumulation("float32")),)
    assert outs["conv"].record.formats["activations"] == "float16"


def test_dot_of_4096_ones():
    ones = np.ones(4096, dtype=np.float16)
    with use("float16"):
        y = F.matmul(Tensor(ones), Tensor(ones))
        assert float(y.data) == 2048.0                 # pure fp16 accumulation stagnates
        assert float((Tensor(ones) @ Tensor(ones)).data) == 2048.0
        assert float(F.sum(Tensor(ones)).data) == 2048.0
    assert float(np.dot(ones, ones)) == 4096.0         # NumPy accumulates fp16 in fp32
    with use("float16-acc32"):
        assert float(F.matmul(Tensor(ones), Tensor(ones)).data) == 4096.0


def test_linear_bias_is_last_term_of_the_accumulation():
    # fp16 sequential: 2048 + 1 (bias) stays 2048; a separate rounding would give the same,
    # but with exact accumulation the bias joins the exact sum and is rounded once.
    x = np.ones((1, 3), dtype=np.float16)
    w = np.float16([[2048.0, 0.5, 0.5]])
    with use("float16"):
        y = F.linear(Tensor(x), Parameter(w), Parameter(np.float16([0.5])))
    assert float(y.data[0, 0]) == 2048.0             # each +0.5 is a tie: rounds to even
    posit = Precision(name="quire16", **{r: "float16" for r in
                                         ("weights", "activations", "loss", "backward",
                                          "gradients", "optimizer")},
                      forward=Accumulation("float16", "exact"),
                      backward_acc=Accumulation("float16", "exact"))
    with use(posit):
        y = F.linear(Tensor(x), Parameter(w), Parameter(np.float16([0.5])))
    assert float(y.data[0, 0]) == 2050.0             # 2049.5 exact, rounded once


def test_elementwise_rounded_once_from_float64():
    a = np.float16([1.0, 3.0, 0.1])
    b = np.float16([2.0 ** -11, 7.0, 3.0])
    with use("float16"):
        s = F.add(Tensor(a), Tensor(b)).data
        q = F.div(Tensor(a), Tensor(b)).data
        e = F.exp(Tensor(a)).data
    np.testing.assert_array_equal(s, (a.astype(np.float64) + b).astype(np.float16))
    np.testing.assert_array_equal(q, (a.astype(np.float64) / b).astype(np.float16))
    np.testing.assert_array_equal(e, np.exp(a.astype(np.float64)).astype(np.float16))


def test_softmax_denominator_and_mean_use_the_engine():
    # 4096 equal logits: the fp16 sequential denominator stagnates at 2048, so each
    # probability comes out as 1/2048 instead of 1/4096.
    x = np.zeros((1, 4096), dtype=np.float16)
    with use("float16"):
        p = F.softmax(Tensor(x)).data
        m = F.mean(Tensor(np.ones(4096, dtype=np.float16))).data
    assert float(p[0, 0]) == 2.0 ** -11
    assert float(m) == 0.5
    with use("float16-acc32"):
        p = F.softmax(Tensor(x)).data
    assert float(p[0, 0]) == 2.0 ** -12


def test_batch_norm_running_stats_in_place_and_eval():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 2, 2)) * 2 + 1
    rm, rv = np.zeros(3, dtype=np.float32), np.ones(3, dtype=np.float32)
    rm_t, rv_t = Tensor(np.zeros(3)), Tensor(np.ones(3))
    with use("float32"):
        F.batch_norm(Tensor(x.astype(np.float32)), None, None, rm, rv, True, momentum=0.5)
        F.batch_norm(Tensor(x.astype(np.float32)), None, None, rm_t, rv_t, True, momentum=0.5)
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(rm, 0.5 * mean, rtol=1e-5)
        np.testing.assert_allclose(rv, 0.5 + 0.5 * var, rtol=1e-5)
        np.testing.assert_allclose(rm_t.numpy(), rm, rtol=1e-6)
        y = F.batch_norm(Tensor(x.astype(np.float32)), None, None, rm, rv, False)
        assert y.record.forward == ()
    ref = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", ["float16", "bfloat16", "fp8", "posit8-mixed"])
def test_determinism_same_seed_bit_identical(policy):
    runs = [run_net(policy, _data(3)) for _ in range(2)]
    (l1, o1, p1, x1), (l2, o2, p2, x2) = runs
    assert l1.numpy().tobytes() == l2.numpy().tobytes()
    for k in o1:
        assert o1[k].numpy().tobytes() == o2[k].numpy().tobytes(), k
    for k in p1:
        assert p1[k].grad.numpy().tobytes() == p2[k].grad.numpy().tobytes(), k
    assert x1.grad.numpy().tobytes() == x2.grad.numpy().tobytes()


def test_stochastic_rounding_reproducible_from_seed():
    base = get_precision("float16")
    sr = base.replace(name="fp16-sr", rounding="stochastic", seed=11)
    a = run_net(sr, _data(4))
    b = run_net(sr, _data(4))
    c = run_net(sr.replace(seed=12), _data(4))
    assert a[0].numpy().tobytes() == b[0].numpy().tobytes()
    assert a[2]["w2"].grad.numpy().tobytes() == b[2]["w2"].grad.numpy().tobytes()
    assert any(a[1][k].numpy().tobytes() != c[1][k].numpy().tobytes() for k in a[1])


def test_loss_scale_seed_is_rounded_to_the_loss_format():
    # "mixed": B is fp16 (max 65504) but L is fp32, so a 2^16 loss-scale seed survives and
    # the scaled logit gradients (2^16 * (p - onehot) / N) fit in fp16.
    logits = np.float16([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5]])
    with use("mixed"):
        z = Tensor(logits, requires_grad=True)
        loss = F.cross_entropy(z, np.array([1, 0]))
    loss.backward(2.0 ** 16)
    g = z.grad.numpy()
    assert g.dtype == np.float16 and np.isfinite(g).all()
    p = np.exp(logits - logits.max(1, keepdims=True).astype(np.float64))
    p /= p.sum(1, keepdims=True)
    ref = 2.0 ** 16 * (p - np.eye(3)[[1, 0]]) / 2
    np.testing.assert_allclose(g, ref, rtol=2e-3)


def test_dropout_under_policy_and_trace():
    x = Tensor(np.ones((4, 4), dtype=np.float16))
    with use("float16"), trace() as recs:
        y = F.dropout(x, 0.5, True, np.random.default_rng(0))
    assert y.dtype == np.float16 and set(np.unique(y.numpy())) <= {0.0, 2.0}
    assert [r.op for r in recs] == ["dropout"]
