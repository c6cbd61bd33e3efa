"""minifp.nn: module system, to(policy) rounding from float64 masters, layers, attention,
determinism."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp import nn
from minifp.autograd import Parameter as AutogradParameter
from minifp.autograd import Tensor
from minifp.formats import get_format
from minifp.precision import get_precision, use

FP16 = get_format("float16")
FP32 = get_format("float32")


# ------------------------------------------------------------------------------ models
def mlp(seed=0):
    return nn.Sequential(nn.Linear(4, 8, seed=seed), nn.ReLU(), nn.Linear(8, 3, seed=seed + 1))


class ViT(nn.Module):
    """Tiny ViT: 8x8 images, patch 4 (4 patches + class token), 2 blocks, class head."""

    def __init__(self, seed=0, classes=3, dim=8, heads=2, dropout=0.0):
        super().__init__()
        rng = nn.init.make_rng(seed)
        self.patch = nn.PatchEmbedding(8, 4, 1, dim, seed=rng)
        self.blocks = nn.Sequential(*[nn.TransformerBlock(dim, heads, 2.0, dropout=dropout,
                                                          seed=rng) for _ in range(2)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes, init="xavier", seed=rng)

    def forward(self, x):
        z = self.norm(self.blocks(self.patch(x)))
        return self.head(F.getitem(z, (slice(None), 0)))


def convnet(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, seed=rng), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, seed=rng), nn.Tanh())),
        nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.25, seed=rng),
        nn.Linear(16, 3, seed=rng))


def images(n=2, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8))


def params_np(model):
    return {k: p.numpy().copy() for k, p in model.named_parameters()}


# ------------------------------------------------------------------------------ module system
def test_parameter_is_autograd_parameter():
    assert nn.Parameter is AutogradParameter


def test_named_parameters_paths_and_order():
    net = mlp()
    assert [k for k, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                      "2.bias"]
    assert [k for k, _ in net.named_modules()] == ["", "0", "1", "2"]
    assert len(list(net.children())) == 3 and len(list(net.parameters())) == 4
    assert net[0].weight.shape == (8, 4) and net[2].bias.shape == (3,)
    vit = ViT()
    names = [k for k, _ in vit.named_parameters()]
    # a module's own parameters first, then its children's (as PyTorch)
    assert names[:4] == ["patch.cls_token", "patch.pos_embedding", "patch.proj.weight",
                         "patch.proj.bias"]
    assert "blocks.1.attn.q_proj.weight" in names
    assert "blocks.0.mlp.2.bias" in names
    assert names[-2:] == ["head.weight", "head.bias"]
    assert len(names) == len(set(names))


def test_no_bias_shared_params_and_repr():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None and [k for k, _ in lin.named_parameters()] == ["weight"]
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(net.parameters())) == 2
    r = repr(mlp())
    assert "Sequential(" in r and "(0): Linear(in_features=4, out_features=8, bias=True)" in r


def test_assignment_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\) first in Bad"):
        Bad()


def test_train_eval_propagates():
    vit = ViT(dropout=0.1)
    assert all(m.training for m in vit.modules())
    assert vit.eval() is vit
    assert not any(m.training for m in vit.modules())
    vit.train()
    assert all(m.training for m in vit.modules())


def test_zero_grad():
    net = mlp().to("float32")
    F.cross_entropy(net(np.ones((2, 4))), np.array([0, 1])).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip():
    a = convnet(seed=0).to("float16")
    a.train()
    a(images())  # moves the BatchNorm running statistics
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                        "1.running_var", "4.body.0.weight", "4.body.0.bias", "8.weight",
                        "8.bias"]
    b = convnet(seed=5).to("float16")
    assert not np.array_equal(b[0].weight.numpy(), a[0].weight.numpy())
    b.load_state_dict(sd)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
        assert v.dtype == np.float16
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(images()).numpy(), b(images()).numpy())
    # state_dict returns copies
    sd["0.weight"][...] = 0
    assert np.any(a[0].weight.numpy() != 0)


def test_load_state_dict_strict_errors():
    net = mlp()
    sd = net.state_dict()
    del sd["2.bias"]
    sd["3.weight"] = np.zeros((1,))
    with pytest.raises(nn.StateDictError, match=r"missing keys: 2\.bias.*unexpected keys: "
                                                 r"3\.weight"):
        net.load_state_dict(sd)
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["2.bias"] and res.unexpected_keys == ["3.weight"]
    bad = mlp().state_dict()
    bad["0.weight"] = np.zeros((4, 8))
    with pytest.raises(nn.StateDictError, match=r"'0\.weight'.*\(4, 8\).*\(8, 4\)"):
        net.load_state_dict(bad)


# ------------------------------------------------------------------------------ to(policy)
def test_master_is_float64_and_policy_independent():
    a, b = ViT(seed=3).to("float32"), ViT(seed=3).to("float16")
    ma, mb = a.master_state_dict(), b.master_state_dict()
    assert list(ma) == list(mb)
    for k in ma:
        assert ma[k].dtype == np.float64
        np.testing.assert_array_equal(ma[k], mb[k])


def test_to_float16_rounds_every_parameter_once_from_master():
    net = ViT(seed=1)
    master = net.master_state_dict()
    assert net.to("float16") is net
    assert net.policy.name == "float16"
    for k, p in net.named_parameters():
        assert p.dtype == np.float16
        assert FP16.is_representable(p.data).all()
        np.testing.assert_array_equal(p.data, FP16.round(master[k]))


def test_switching_policies_rerounds_from_master():
    net = mlp(seed=2)
    master = net.master_state_dict()
    net.to("float16")
    net.to("float32")
    for k, p in net.named_parameters():
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.data, FP32.round(master[k]))
        if k.endswith("weight"):
            assert not np.array_equal(p.data.astype(np.float64), FP16.round(master[k]))
    net.to("bfloat16")
    bf16 = get_format("bfloat16")
    for k, p in net.named_parameters():
        np.testing.assert_array_equal(p.data, bf16.round(master[k]))
    # commit_master makes the current values the new masters
    net.to("float16").commit_master().to("float32")
    for k, p in net.named_parameters():
        np.testing.assert_array_equal(p.data, FP16.round(master[k]).astype(np.float32))


def test_per_layer_override_keeps_last_layer_float32():
    policy = get_precision("float16").replace(
        overrides=[("2", {"weights": "float32", "activations": "float32"})])
    net = mlp(seed=4).to(policy)
    master = net.master_state_dict()
    for k, p in net.named_parameters():
        if k.startswith("2."):
            assert p.dtype == np.float32
            np.testing.assert_array_equal(p.data, FP32.round(master[k]))
        else:
            assert p.dtype == np.float16
            np.testing.assert_array_equal(p.data, FP16.round(master[k]))
    y = net(np.ones((2, 4)))
    assert y.dtype == np.float32 and y.record.layer == "2"
    assert y.record.formats["activations"] == "float32"


def test_module_policy_wins_over_context_and_unpinned_follows_context():
    pinned = mlp().to("float16")
    with use("float32"):
        assert pinned(np.ones((1, 4))).dtype == np.float16
    free = mlp()
    with use("float16"):
        y = free(np.ones((1, 4)))
    assert y.dtype == np.float16
    assert all(p.dtype == np.float16 for p in free.parameters())
    master = free.master_state_dict()
    with use("float32"):  # a new weights format: re-rounded from master, not from fp16
        free(np.ones((1, 4)))
    for k, p in free.named_parameters():
        np.testing.assert_array_equal(p.data, FP32.round(master[k]))


def test_stochastic_weight_rounding_is_reproducible():
    pol = get_precision("float16").replace(rounding={"weights": "stochastic"}, seed=7)
    a, b = mlp(seed=9).to(pol), mlp(seed=9).to(pol)
    for (k, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert FP16.is_representable(p.data).all()


def test_to_a_missing_gpu_is_one_clear_error(monkeypatch):
    from minifp import backend
    from minifp.errors import UserError
    previous = backend.install_cupy(None)
    try:
        with pytest.raises(UserError, match="no GPU here"):
            mlp().to("gpu")
        with pytest.raises(UserError, match="unknown device"):
            mlp().to(device="tpu")
    finally:
        backend.install_cupy(*previous)
    m = mlp().to("cpu")
    assert str(m.device) == "cpu"


# ------------------------------------------------------------------------------ init
def test_init_seeding():
    nn.init.seed(11)
    l1 = nn.Linear(5, 6)
    nn.init.seed(11)
    l2 = nn.Linear(5, 6)
    np.testing.assert_array_equal(l1.weight.data, l2.weight.data)
    l3 = nn.Linear(5, 6, seed=np.random.default_rng(11))
    np.testing.assert_array_equal(l3.weight.data, nn.Linear(5, 6, seed=11).weight.data)
    bound = np.sqrt(2.0) * np.sqrt(3.0 / 5)
    assert np.all(np.abs(l3.weight.data) <= bound) and np.all(l3.bias.data == 0)
    x = nn.Linear(5, 6, init="xavier", seed=1).weight.data
    assert np.all(np.abs(x) <= np.sqrt(6.0 / 11))
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 2, init="orthogonal")


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("policy", ["float32", "float16"])
def test_layer_forward_shapes(policy):
    x4 = images(2)
    fmt = get_precision(policy).activations
    cases = [
        (nn.Linear(8, 5, seed=0), np.ones((2, 3, 8)), (2, 3, 5)),
        (nn.Conv2d(1, 3, 3, seed=0), x4, (2, 3, 6, 6)),
        (nn.Conv2d(1, 3, 3, stride=2, padding=1, seed=0), x4, (2, 3, 4, 4)),
        (nn.MaxPool2d(2), x4, (2, 1, 4, 4)),
        (nn.AvgPool2d(4), x4, (2, 1, 2, 2)),
        (nn.Flatten(), x4, (2, 64)),
        (nn.ReLU(), x4, x4.shape), (nn.GELU(), x4, x4.shape), (nn.Tanh(), x4, x4.shape),
        (nn.Sigmoid(), x4, x4.shape), (nn.Softmax(axis=1), np.ones((2, 5)), (2, 5)),
        (nn.Dropout(0.5, seed=0), x4, x4.shape),
        (nn.BatchNorm1d(3), np.arange(6.0).reshape(2, 3), (2, 3)),
        (nn.BatchNorm2d(1), x4, x4.shape),
        (nn.LayerNorm(8), np.ones((2, 3, 8)), (2, 3, 8)),
        (nn.PatchEmbedding(8, 4, 1, 6, seed=0), x4, (2, 5, 6)),
        (nn.MultiHeadSelfAttention(6, 2, seed=0), np.ones((2, 5, 6)), (2, 5, 6)),
        (nn.TransformerBlock(6, 3, seed=0), np.ones((2, 5, 6)), (2, 5, 6)),
    ]
    for layer, x, shape in cases:
        y = layer.to(policy)(x)
        assert isinstance(y, Tensor)
        assert y.shape == shape, layer
        assert y.dtype == fmt.carrier, layer
    sm = nn.Softmax()(np.array([[0.0, 1.0, 2.0]]))
    assert abs(float(sm.numpy().sum()) - 1) < 1e-6


def test_layer_input_errors():
    with pytest.raises(ValueError, match="BatchNorm2d expects"):
        nn.BatchNorm2d(3)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="got 4 channels"):
        nn.BatchNorm1d(3)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="not divisible"):
        nn.MultiHeadSelfAttention(6, 4)
    with pytest.raises(ValueError, match="PatchEmbedding expects"):
        nn.PatchEmbedding(8, 4, 1, 6)(np.ones((1, 1, 4, 4)))


def test_tiny_vit_and_convnet_forward_shapes():
    for policy in ("float32", "float16", "bfloat16"):
        assert ViT(seed=0).to(policy)(images(3)).shape == (3, 3)
        assert convnet(seed=0).to(policy)(images(3)).shape == (3, 3)


@pytest.mark.parametrize("make", [ViT, convnet, mlp])
@pytest.mark.parametrize("policy", ["float32", "float16"])
def test_backward_reaches_every_parameter(make, policy):
    net = make(seed=0).to(policy)
    x = images(4) if make is not mlp else np.random.default_rng(0).standard_normal((4, 4))
    loss = F.cross_entropy(net(x), np.array([0, 1, 2, 1]))
    loss.backward()
    gfmt = get_precision(policy).gradients
    for k, p in net.named_parameters():
        assert p.grad is not None, k
        assert p.grad.shape == p.shape, k
        assert p.grad.dtype == gfmt.carrier, k
        assert np.isfinite(p.grad.numpy()).all(), k
    # the first layer's weight gradient is not identically zero
    first = next(iter(net.parameters()))
    assert np.any(first.grad.numpy() != 0)


def test_batchnorm_running_stats_train_and_eval():
    bn = nn.BatchNorm2d(2, momentum=0.5).to("float64")
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 3)) * 2 + 3
    bn(x)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean, 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * var, rtol=1e-12)
    bn.eval()
    before = bn.running_mean.copy(), bn.running_var.copy()
    y = bn(x).numpy()
    expect = (x - before[0].reshape(1, 2, 1, 1)) / np.sqrt(before[1].reshape(1, 2, 1, 1)
                                                           + bn.eps)
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])
    # in a float16 model the running statistics are kept in the weights format
    bn16 = nn.BatchNorm1d(3).to("float16")
    bn16(np.random.default_rng(1).standard_normal((5, 3)))
    assert bn16.running_mean.dtype == np.float16
    assert np.any(bn16.running_mean != 0)


def test_dropout_seeded_determinism():
    x = np.ones((4, 16))
    a, b, c = nn.Dropout(0.5, seed=3), nn.Dropout(0.5, seed=3), nn.Dropout(0.5, seed=4)
    ya, yb, yc = a(x).numpy(), b(x).numpy(), c(x).numpy()
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    assert set(np.unique(ya)) <= {0.0, 2.0}
    second = a(x).numpy()
    assert not np.array_equal(second, ya)          # the stream moves on
    a.reset_rng()
    np.testing.assert_array_equal(a(x).numpy(), ya)
    a.eval()
    np.testing.assert_array_equal(a(x).numpy(), x)
    nn.init.seed(5)
    d1 = nn.Dropout(0.5)
    nn.init.seed(5)
    d2 = nn.Dropout(0.5)
    assert d1.seed == d2.seed


@pytest.mark.parametrize("policy", ["float16", "bfloat16"])
def test_forward_backward_bit_identical_twice(policy):
    def run():
        out = {}
        for name, make in (("vit", lambda: ViT(seed=2, dropout=0.1)), ("cnn", convnet)):
            net = make().to(policy)
            x = images(3, seed=7)
            logits = net(x)
            loss = F.cross_entropy(logits, np.array([2, 0, 1]))
            loss.backward()
            out[name] = (logits.numpy().copy(), loss.numpy().copy(),
                         {k: p.grad.numpy().copy() for k, p in net.named_parameters()},
                         {k: v.copy() for k, v in net.state_dict().items()})
        return out

    r1, r2 = run(), run()
    for name in r1:
        l1, s1, g1, sd1 = r1[name]
        l2, s2, g2, sd2 = r2[name]
        assert l1.tobytes() == l2.tobytes() and s1.tobytes() == s2.tobytes()
        assert list(g1) == list(g2)
        for k in g1:
            assert g1[k].tobytes() == g2[k].tobytes(), (name, k)
        for k in sd1:
            assert sd1[k].tobytes() == sd2[k].tobytes(), (name, k)


def test_policies_start_from_same_weights():
    a = convnet(seed=1).to("float32")
    b = convnet(seed=1).to("float16")
    for (k, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(FP16.round(p.data), q.data)


def test_records_carry_layer_paths():
    from minifp.autograd import trace
    net = ViT(seed=0).to("float16")
    with trace() as records:
        net(images(2))
    layers = {r.layer for r in records}
    assert {"patch", "patch.proj", "blocks.0.attn", "blocks.0.attn.q_proj", "blocks.1.mlp.0",
            "norm", "head", ""} <= layers
    ops = {(r.layer, r.op) for r in records}
    assert ("blocks.0.attn", "matmul") in ops and ("blocks.0.attn", "softmax") in ops
    assert ("blocks.1.norm2", "layer_norm") in ops


@pytest.mark.parametrize("policy", ["fp8", "posit8-mixed", "mixed"])
def test_presets_forward_backward(policy):
    p = get_precision(policy)
    net = ViT(seed=0).to(policy)
    for k, prm in net.named_parameters():
        assert p.weights.is_representable(prm.data).all(), k
    logits = net(images(2))
    assert logits.dtype == p.activations.carrier
    F.cross_entropy(logits, np.array([0, 1])).backward()
    assert all(prm.grad is not None for prm in net.parameters())


def test_stochastic_rounding_stream_runs_on_and_replays():
    pol = get_precision("float16").replace(rounding={"activations": "stochastic"}, seed=3)
    net = convnet(0).to(pol).eval()
    a, b = net(images()).numpy(), net(images()).numpy()
    assert not np.array_equal(a, b)                    # the stream moves on between calls
    again = convnet(0).to(pol).eval()
    np.testing.assert_array_equal(again(images()).numpy(), a)
    np.testing.assert_array_equal(again(images()).numpy(), b)


def test_residual_with_shortcut():
    body = nn.Linear(4, 3, seed=0)
    short = nn.Linear(4, 3, bias=False, seed=1)
    res = nn.Residual(body, short).to("float64")
    x = np.random.default_rng(0).standard_normal((2, 4))
    y = res(x).numpy()
    expect = x @ body.weight.data.T + body.bias.data + x @ short.weight.data.T
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    assert [k for k, _ in res.named_parameters()] == ["body.weight", "body.bias",
                                                      "shortcut.weight"]
    ident = nn.Residual(nn.ReLU()).to("float64")
    np.testing.assert_array_equal(ident(x).numpy(), np.maximum(x, 0) + x)


def test_load_state_dict_into_unpinned_model_rounds_at_call():
    src = mlp(seed=1).to("float16")
    dst = mlp(seed=7)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.master_state_dict()["0.weight"],
                                  src[0].weight.data.astype(np.float64))
    with use("float16"):
        np.testing.assert_array_equal(dst(np.ones((1, 4))).numpy(),
                                      src(np.ones((1, 4))).numpy())


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_attention_blocks_match_float64_reference():
    rng = np.random.default_rng(0)
    pe = nn.PatchEmbedding(8, 4, 2, 6, seed=1).to("float64")
    x = rng.standard_normal((2, 2, 8, 8))
    patches = np.stack([x[:, :, i:i + 4, j:j + 4].reshape(2, -1)
                        for i in (0, 4) for j in (0, 4)], axis=1)          # (2, 4, 32)
    tok = patches @ pe.proj.weight.data.T + pe.proj.bias.data
    cls = np.broadcast_to(pe.cls_token.data, (2, 1, 6))
    expect = np.concatenate([cls, tok], axis=1) + pe.pos_embedding.data
    np.testing.assert_allclose(pe(x).numpy(), expect, rtol=1e-12, atol=1e-14)

    att = nn.MultiHeadSelfAttention(6, 2, seed=2).to("float64")
    t = rng.standard_normal((2, 5, 6))

    def proj(lin, a):
        return a @ lin.weight.data.T + lin.bias.data

    def heads(a):
        return a.reshape(2, 5, 2, 3).transpose(0, 2, 1, 3)

    q, k, v = (heads(proj(m, t)) for m in (att.q_proj, att.k_proj, att.v_proj))
    ctx = _softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(3)) @ v
    expect = proj(att.out_proj, ctx.transpose(0, 2, 1, 3).reshape(2, 5, 6))
    np.testing.assert_allclose(att(t).numpy(), expect, rtol=1e-10, atol=1e-12)
