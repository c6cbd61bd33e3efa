"""Model zoo: every model builds for MNIST, digits and CIFAR shapes, runs forward and
backward, and its float64 masters depend only on (name, shape, classes, seed)."""
import numpy as np
import pytest

import minifp.functional as F
from minifp import nn
from minifp.errors import UserError
from minifp.nn.zoo import MODEL_NAMES, build_model, count_parameters, vit_patch_size

NAMES = ["mlp", "lenet5", "cnn", "resnet", "vit"]
SHAPES = [(1, 28, 28), (1, 8, 8), (3, 32, 32)]


def _step(model, shape, policy="float32", n=2, seed=0):
    model.to(policy)
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(shape))
    y = rng.integers(0, model.num_classes, n)
    out = model(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    return out, loss


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name, shape):
    model = build_model(name, shape, 10)
    out, loss = _step(model, shape)
    assert out.shape == (2, 10)
    assert np.isfinite(out.data).all() and np.isfinite(loss.data).all()
    names = [n for n, _ in model.named_parameters()]
    assert names, "model has no parameters"
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {pname}"
        assert p.grad.shape == p.shape
        assert np.isfinite(p.grad.data).all(), pname
    # some gradient somewhere is nonzero
    assert any(np.any(p.grad.data != 0) for p in model.parameters())


def test_resnet20_digits():
    model = build_model("resnet20", (1, 8, 8), 10)
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 9
    out, _ = _step(model, (1, 8, 8))
    assert out.shape == (2, 10)
    assert all(p.grad is not None for p in model.parameters())


def test_resnet_aliases_and_depths():
    r = build_model("resnet", (1, 8, 8), 10)
    r8 = build_model("resnet8", (1, 8, 8), 10)
    ms, m8 = r.master_state_dict(), r8.master_state_dict()
    assert list(ms) == list(m8)
    assert all(np.array_equal(ms[k], m8[k]) for k in ms)
    nblocks = lambda m: sum(type(x).__name__ == "BasicBlock" for x in m.modules())  # noqa: E731
    assert nblocks(r) == 3
    assert nblocks(build_model("resnet14", (1, 8, 8), 10)) == 6
    for bad in ("resnet9", "resnet2", "resnet0"):
        with pytest.raises(UserError, match="6n\\+2"):
            build_model(bad, (1, 8, 8), 10)


@pytest.mark.parametrize("name", NAMES + ["resnet20"])
def test_masters_deterministic(name):
    a = build_model(name, (1, 8, 8), 10, seed=3)
    b = build_model(name, (1, 8, 8), 10, seed=3)
    # the global init generator plays no part
    nn.init.seed(12345)
    c = build_model(name, (1, 8, 8), 10, seed=3)
    d = build_model(name, (1, 8, 8), 10, seed=4)
    ma, mb, mc, md = (m.master_state_dict() for m in (a, b, c, d))
    assert list(ma) == list(mb) == list(mc)
    for k in ma:
        assert ma[k].dtype == np.float64
        assert ma[k].tobytes() == mb[k].tobytes() == mc[k].tobytes(), k
    assert any(ma[k].tobytes() != md[k].tobytes() for k in ma)


def test_same_seed_same_weights_under_policies():
    a = build_model("lenet5", (1, 8, 8), 10, seed=1).to("float16")
    b = build_model("lenet5", (1, 8, 8), 10, seed=1).to("float32")
    masters = b.master_state_dict()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(pa.data, masters[k].astype(np.float16)), k   # one rounding
        assert np.array_equal(pb.data, masters[k].astype(np.float32)), k


def test_training_forward_is_deterministic():
    outs = []
    for _ in range(2):
        m = build_model("cnn", (1, 8, 8), 10, seed=7)
        out, _ = _step(m, (1, 8, 8), policy="float16")
        outs.append(out.data.tobytes())
    assert outs[0] == outs[1]


def test_mlp_sizes():
    m = build_model("mlp", (1, 28, 28), 10)
    shapes = [p.shape for p in m.parameters()]
    assert shapes == [(256, 784), (256,), (128, 256), (128,), (10, 128), (10,)]


def test_lenet5_layout():
    m = build_model("lenet5", (1, 28, 28), 10)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    lins = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(6, 5), (16, 5)]
    assert [(x.in_features, x.out_features) for x in lins] == [(400, 120), (120, 84), (84, 10)]


@pytest.mark.parametrize("shape", [(2, 5, 7), (1, 1, 1), (3, 13, 13)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NAMES)
def test_odd_shapes_and_classes(name, shape):
    model = build_model(name, shape, 3)
    out, _ = _step(model, shape, n=1)
    assert out.shape == (1, 3)
    assert all(p.grad is not None for p in model.parameters())


def test_vit_patch_size():
    assert vit_patch_size(28) == 4 and vit_patch_size(8) == 4 and vit_patch_size(32) == 4
    assert vit_patch_size(30) == 6 and vit_patch_size(7) == 7 and vit_patch_size(11) == 1
    m = build_model("vit", (1, 28, 28), 10)
    pe = [x for x in m.modules() if isinstance(x, nn.PatchEmbedding)][0]
    assert pe.patch_size == 4 and pe.dim == 64 and pe.num_patches == 49
    blocks = [x for x in m.modules() if isinstance(x, nn.TransformerBlock)]
    assert len(blocks) == 2 and all(b.num_heads == 4 for b in blocks)


def test_config_and_count():
    m = build_model("CNN", [1, 8, 8], 10)
    assert m.config() == {"arch": "cnn", "input_shape": [1, 8, 8], "num_classes": 10}
    assert count_parameters(m) == sum(int(np.prod(p.shape)) for p in m.parameters())
    assert set(NAMES) <= set(MODEL_NAMES)


def test_wrong_input_shape():
    m = build_model("mlp", (1, 8, 8), 10).to("float32")
    with pytest.raises(UserError, match=r"expects inputs of shape \(N, 1, 8, 8\)"):
        m(np.zeros((2, 1, 28, 28)))


def test_errors():
    with pytest.raises(UserError) as e:
        build_model("googlenet", (1, 8, 8), 10)
    msg = str(e.value)
    assert "\n" not in msg and "googlenet" in msg
    for n in ("mlp", "lenet5", "cnn", "resnet", "vit"):
        assert n in msg
    with pytest.raises(UserError, match="input shape"):
        build_model("mlp", (1, 0, 8), 10)
    with pytest.raises(UserError, match="input shape"):
        build_model("mlp", "abc", 10)
    with pytest.raises(UserError, match="classes"):
        build_model("mlp", (1, 8, 8), 0)
    with pytest.raises(UserError, match="seed"):
        build_model("mlp", (1, 8, 8), 10, seed=1.5)


# ------------------------------------------- the 16-bit paper's CIFAR table: new nets
NEW_NAMES = ["resnet20-a", "resnet32-a", "alexnet", "vgg11", "vgg16"]


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 5, 7), (1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NEW_NAMES)
def test_new_nets_forward_backward(name, shape):
    model = build_model(name, shape, 3)
    out, loss = _step(model, shape, n=2)
    assert out.shape == (2, 3) and np.isfinite(loss.data).all()
    assert all(p.grad is not None for p in model.parameters())
    assert any(np.any(p.grad.data != 0) for p in model.parameters())


@pytest.mark.parametrize("name, params", [("resnet20-a", 270_000), ("resnet32-a", 460_000),
                                          ("vgg11", 9_200_000), ("vgg16", 14_700_000),
                                          ("alexnet", None)])
def test_new_nets_build_for_cifar(name, params):
    m = build_model(name, (3, 32, 32), 10)
    n = count_parameters(m)
    if params is not None:       # the usual sizes of these CIFAR nets
        assert abs(n - params) < 0.05 * params, n


def test_option_a_shortcuts_have_no_parameters_and_are_exact():
    a, b = build_model("resnet20-a", (3, 32, 32), 10), build_model("resnet20", (3, 32, 32), 10)
    assert count_parameters(b) > count_parameters(a)
    from minifp.nn.zoo import OptionAShortcut
    sc = [m for m in a.modules() if isinstance(m, OptionAShortcut)]
    assert len(sc) == 2 and all(not list(m.parameters()) for m in sc)
    x = np.arange(2 * 16 * 4 * 4, dtype=np.float64).reshape(2, 16, 4, 4)
    with __import__("minifp.precision", fromlist=["use"]).use("float16"):
        y = sc[0](x)
    y = np.asarray(y.data, np.float64)
    assert y.shape == (2, 32, 2, 2)
    assert np.array_equal(y[:, 8:24], np.float16(x[:, :, ::2, ::2]).astype(np.float64))
    assert not y[:, :8].any() and not y[:, 24:].any()
