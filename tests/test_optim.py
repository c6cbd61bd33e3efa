"""minifp.optim: SGD / Adam / AdamW against float64 formulas, rounding of state and weights
to their formats, master weights, the Adam-epsilon warning, loss scaling, state dicts."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import minifp.functional as F
from minifp import nn
from minifp.autograd import Parameter, Tensor
from minifp.errors import UserError
from minifp.formats import get_format
from minifp.optim import (SGD, Adam, AdamW, LossScaler, PrecisionWarning,
                          build_optimizer)
from minifp.precision import get_precision

FP16 = get_format("float16")
FP32 = get_format("float32")


def grads_seq(shape, n, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) * scale for _ in range(n)]


def one_param(values, dtype=np.float64):
    return Parameter(np.asarray(values, dtype=dtype))


def mlp(seed=0):
    return nn.Sequential(nn.Linear(4, 8, seed=seed), nn.ReLU(), nn.Linear(8, 3, seed=seed + 1))


def data(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def train_steps(model, opt, steps, seed=0, scaler=None):
    for i in range(steps):
        x, y = data(seed + i)
        loss = F.cross_entropy(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale_loss(loss).backward()
            scaler.step(opt)
        opt.zero_grad()


# ------------------------------------------------------------------ float64 formulas
@pytest.mark.parametrize("momentum,nesterov,wd,damp", [
    (0.0, False, 0.0, 0.0), (0.9, False, 0.0, 0.0), (0.9, True, 0.0, 0.0),
    (0.0, False, 1e-2, 0.0), (0.8, True, 5e-3, 0.0), (0.9, False, 1e-3, 0.1)])
def test_sgd_matches_float64_formulas(momentum, nesterov, wd, damp):
    lr = 0.05
    w0 = np.random.default_rng(1).standard_normal(7)
    p = one_param(w0)
    opt = SGD([("layer.weight", p)], lr, momentum=momentum, nesterov=nesterov,
              weight_decay=wd, policy="float64", dampening=damp)
    w, buf = w0.copy(), None
    for g in grads_seq(7, 5):
        p.grad = Tensor(g)
        opt.step()
        d = g + wd * w if wd else g
        if momentum:
            buf = d if buf is None else momentum * buf + (1.0 - damp) * d
            d = d + momentum * buf if nesterov else buf
        w = w - lr * d
        assert np.array_equal(p.data, w)
        if momentum:
            assert np.array_equal(opt.state["layer.weight"]["momentum_buffer"], buf)
    assert opt.step_count == 5


@pytest.mark.parametrize("cls,wd", [(Adam, 0.0), (Adam, 1e-2), (AdamW, 0.0), (AdamW, 1e-2)])
def test_adam_matches_float64_formulas(cls, wd):
    lr, b1, b2, eps = 1e-2, 0.9, 0.99, 1e-8
    w0 = np.random.default_rng(2).standard_normal((3, 4))
    p = one_param(w0)
    opt = cls([("w", p)], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, policy="float64")
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads_seq((3, 4), 6, seed=3), start=1):
        p.grad = Tensor(g)
        opt.step()
        if cls is Adam and wd:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step_size = lr / (1 - b1 ** t)
        denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps
        if cls is AdamW:
            w = w * (1 - lr * wd) - step_size * m / denom
        else:
            w = w - step_size * m / denom
        assert np.array_equal(p.data, w)
        st = opt.state["w"]
        assert st["step"] == t
        assert np.array_equal(st["exp_avg"], m) and np.array_equal(st["exp_avg_sq"], v)


def test_parameters_without_grad_are_skipped():
    a, b = one_param([1.0, 2.0]), one_param([3.0])
    opt = SGD([("a", a), ("b", b)], 0.5, momentum=0.9, policy="float64")
    a.grad = Tensor(np.array([1.0, 1.0]))
    opt.step()
    assert np.array_equal(a.data, [0.5, 1.5]) and np.array_equal(b.data, [3.0])
    assert "b" not in opt.state


# ------------------------------------------------------------------ low precision
@pytest.mark.parametrize("make", [
    lambda m: SGD(m, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda m: Adam(m, lr=1e-2, eps=1e-4),
    lambda m: AdamW(m, lr=1e-2, eps=1e-4)])
def test_float16_state_and_weights_are_representable(make):
    model = mlp().to("float16")
    opt = make(model)
    assert opt.policy.name == "float16"          # taken from the model
    train_steps(model, opt, 3)
    assert opt.state
    for name, p in model.named_parameters():
        assert p.data.dtype == np.float16 and FP16.is_representable(p.data).all()
        for key, a in opt.state[name].items():
            if key != "step":
                assert a.dtype == np.float16 and FP16.is_representable(a).all(), key
                assert np.isfinite(a).all()


def test_master_weights_accumulate_updates_that_vanish_in_float16():
    # lr * g = 1e-4 is below half an ulp of 1 in float16 (2^-11 / 2 ~ 2.4e-4):
    # pure float16 updates of w = 1 are lost, the float32 master keeps them.
    lr, steps = 1e-4, 20
    pure = one_param([1.0], np.float16)
    mixed = one_param([1.0], np.float16)
    o_pure = SGD([("w", pure)], lr, policy="float16")
    o_mixed = SGD([("w", mixed)], lr, policy="mixed")
    assert o_mixed.master_weights and not o_pure.master_weights
    for _ in range(steps):
        for p, o in ((pure, o_pure), (mixed, o_mixed)):
            p.grad = Tensor(np.array([1.0], np.float16))
            o.step()
    assert pure.data[0] == 1.0                              # every update vanished
    master = o_mixed.state["w"]["master"]
    assert master.dtype == np.float32
    ref = np.float32(1.0)
    for _ in range(steps):                                  # float32 arithmetic of the master
        ref = FP32.round(np.float64(ref) - lr * 1.0)
    assert master[0] == ref and abs(float(master[0]) - (1 - steps * lr)) < 1e-6
    assert mixed.data.dtype == np.float16
    assert mixed.data[0] == FP16.round(master)[0] < 1.0     # weights = master rounded to W


def test_master_weights_on_a_model_and_module_masters_follow():
    model = mlp().to("mixed")
    opt = SGD(model, 0.1, momentum=0.9)
    train_steps(model, opt, 2)
    masters = model.master_state_dict()
    for name, p in model.named_parameters():
        st = opt.state[name]
        assert st["master"].dtype == np.float32 and st["momentum_buffer"].dtype == np.float32
        assert p.data.dtype == np.float16
        assert np.array_equal(p.data, FP16.round(st["master"]))
        assert np.array_equal(masters[name], st["master"].astype(np.float64))


def test_per_layer_weights_override_uses_the_layer_path():
    pol = get_precision("float32").replace(overrides=[("2", {"weights": "bfloat16"})])
    model = mlp().to(pol)
    opt = Adam(model, lr=1e-2)
    train_steps(model, opt, 2)
    bf16 = get_format("bfloat16")
    assert bf16.is_representable(model[2].weight.data).all()
    assert not bf16.is_representable(model[0].weight.data).all()


# ------------------------------------------------------------------ Adam epsilon
def test_adam_eps_warning_float16():
    p = one_param([1.0], np.float16)
    with pytest.warns(PrecisionWarning, match=r"float16.*6\.1e-05") as rec:
        opt = Adam([("w", p)], eps=1e-8, policy="float16")
    assert len([r for r in rec if issubclass(r.category, PrecisionWarning)]) == 1
    assert issubclass(PrecisionWarning, UserWarning)
    assert opt._eps_o["w"] == 0.0                          # used as rounded, not changed
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)   # once per optimizer
        p.grad = Tensor(np.array([1.0], np.float16))
        opt.step()
        opt.step()


def test_adam_eps_subnormal_warns_and_no_warning_for_1e_4():
    p = one_param([1.0], np.float16)
    with pytest.warns(PrecisionWarning, match="subnormal"):
        Adam([("w", p)], eps=1e-6, policy="float16")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        Adam([("w", p)], eps=1e-4, policy="float16")
        Adam([("w", p)], eps=1e-8, policy="mixed")         # O = float32 holds 1e-8
        AdamW([("w", p)], eps=1e-8, policy="float32")


# ------------------------------------------------------------------ loss scaling
def test_loss_scaler_skips_overflow_and_adjusts_scale():
    p = one_param([1.0, 2.0], np.float16)
    opt = SGD([("w", p)], 0.5, policy="float16")
    sc = LossScaler("dynamic", scale=2.0 ** 4, growth_interval=3, policy="float16")
    p.grad = Tensor(np.array([np.inf, 1.0], np.float16))
    before = p.data.copy()
    assert sc.step(opt) is False
    assert np.array_equal(p.data, before) and opt.step_count == 0
    assert sc.scale == 8.0 and sc.skipped == 1
    # NaN (and the manual protocol)
    p.grad = Tensor(np.array([np.nan, 1.0], np.float16))
    found = sc.unscale_and_check(opt)
    assert found is False
    if found:
        opt.step()
    sc.update(found)
    assert np.array_equal(p.data, before) and sc.scale == 4.0 and sc.skipped == 2
    # clean steps: gradient unscaled exactly (power-of-two scale), then growth after 3
    for i in range(3):
        assert sc.scale == 4.0
        p.grad = Tensor(np.array([4.0, -8.0], np.float16))   # = 4 * [1, -2]
        assert sc.step(opt) is True
        assert np.array_equal(p.grad.data, [1.0, -2.0])
    assert sc.scale == 8.0 and sc.skipped == 2 and sc.steps == 5 and sc.good_steps == 0
    assert opt.step_count == 3
    assert np.array_equal(p.data, before - 3 * 0.5 * np.array([1.0, -2.0]))


def test_loss_scaler_unscales_into_the_optimizers_precision():
    """Unscaled gradients live in O, or in float32 where O is narrower (AMP): with a scale
    below 1, 60000 * 16 is beyond float16 but a float32 value, so the step is taken."""
    p = one_param([0.0], np.float16)
    sc = LossScaler("static", scale=2.0 ** -4, policy="float16")
    p.grad = Tensor(np.array([60000.0], np.float16))
    assert sc.unscale_and_check([("w", p)]) is True
    assert p.grad.data.dtype == np.float32 and float(p.grad.data[0]) == 960000.0
    # an Inf in G stays an Inf, and the step is skipped
    p.grad = Tensor(np.array([np.inf], np.float16))
    assert sc.unscale_and_check([("w", p)]) is False
    sc.update(False)
    assert sc.scale == 2.0 ** -4 and sc.skipped == 1         # static: scale kept
    # O at least float32 (posit32 is not: float32 then; float64 O is kept)
    q = one_param([0.0], np.float64)
    sc64 = LossScaler("static", scale=2.0 ** 3, policy="float64")
    q.grad = Tensor(np.array([1e-300]))
    assert sc64.unscale_and_check([("w", q)]) is True and q.grad.data.dtype == np.float64


def test_loss_scaling_rescues_e5m2_weight_gradients():
    """fp8 (B and G = e5m2, smallest subnormal 2**-16 ~ 1.5e-5): a loss weighted by 1e-4
    (the backward seed) gives activation and weight gradients far below that, which
    underflow to 0 without loss scaling; scaled by 2**12 they are e5m2 values, and unscaled
    into float32 (O) the weight gradients reach the optimizer nonzero."""
    import minifp.functional as F
    from minifp import nn
    from minifp.precision import use
    from minifp.train import make_policy
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16)) * 0.1
    y = rng.integers(0, 4, 64)
    counts = {}
    for spec in ("none", "static:4096"):
        policy = make_policy("fp8", changes={"loss_scaling": spec})
        layer = nn.Linear(16, 4, seed=1)
        layer.to(policy)
        sc = LossScaler.from_policy(policy)
        with use(policy):
            loss = F.cross_entropy(layer(x), y)
            sc.scale_loss(loss).backward(np.array(1e-4))
            sc.unscale_and_check([("weight", layer.weight)])
        counts[spec] = int(np.count_nonzero(np.asarray(layer.weight.grad.data)))
    assert counts["none"] < 8 and counts["static:4096"] > 48, counts


def test_loss_scaler_none_and_from_policy():
    sc = LossScaler.from_policy("mixed")
    assert (sc.mode, sc.scale, sc.growth_interval, sc.factor) == ("dynamic", 2.0 ** 16, 2000, 2)
    none = LossScaler()
    assert none.scale == 1.0 and not none.enabled
    t = Tensor(np.array(3.0))
    assert none.scale_loss(t) is t
    with pytest.raises(UserError):
        LossScaler("sometimes")


def test_scale_loss_backward_equals_seeded_backward_and_survives_fp16():
    scale = 2.0 ** 16                                         # > float16 max 65504
    x, y = data(5)
    grads = []
    for how in ("scaler", "seed"):
        model = mlp().to("mixed")
        sc = LossScaler.from_policy("mixed")
        loss = F.cross_entropy(model(x), y)
        if how == "scaler":
            scaled = sc.scale_loss(loss)
            assert scaled.item() == FP32.round(loss.item() * scale)
            scaled.backward()
        else:
            loss.backward(grad=np.float64(scale))
        grads.append({n: p.grad.data.copy() for n, p in model.named_parameters()})
        assert all(np.isfinite(g).all() for g in grads[-1].values())
    for n in grads[0]:
        assert np.array_equal(grads[0][n], grads[1][n])


def test_training_with_mixed_scaler_runs():
    model = mlp().to("mixed")
    opt = build_optimizer("adam", model, 1e-2, None)
    sc = LossScaler.from_policy("mixed")
    train_steps(model, opt, 3, scaler=sc)
    assert sc.skipped == 0 and opt.step_count == 3


# ------------------------------------------------------------------ state dicts
def _policy_sr():
    return get_precision("mixed").replace(
        rounding={"optimizer": "stochastic", "weights": "stochastic"}, seed=7)


@pytest.mark.parametrize("name,policy", [("sgd", "float16"), ("adam", "mixed"),
                                         ("adamw", "sr"), ("sgd", "sr")])
def test_state_dict_round_trip_is_bit_exact(name, policy):
    pol = _policy_sr() if policy == "sr" else get_precision(policy)
    kw = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {"eps": 1e-4}

    def fresh():
        m = mlp().to(pol)
        return m, build_optimizer(name, m, 1e-2, pol, **kw), LossScaler.from_policy(pol)

    model, opt, sc = fresh()
    train_steps(model, opt, 3, scaler=sc)
    sd, ssd = opt.state_dict(), sc.state_dict()
    params = {n: p.data.copy() for n, p in model.named_parameters()}
    train_steps(model, opt, 2, seed=10, scaler=sc)            # the uninterrupted run

    model2, opt2, sc2 = fresh()
    for n, p in model2.named_parameters():
        p.data = params[n].copy()
    opt2.load_state_dict(sd)
    sc2.load_state_dict(ssd)
    assert opt2.step_count == 3
    train_steps(model2, opt2, 2, seed=10, scaler=sc2)
    for (n, p), (_, q) in zip(model.named_parameters(), model2.named_parameters()):
        assert p.data.dtype == q.data.dtype and np.array_equal(p.data, q.data), n
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["step"] == b["step"] and a["rng_state"] == b["rng_state"]
    for n in a["state"]:
        for k, v in a["state"][n].items():
            assert np.array_equal(v, b["state"][n][k]), (n, k)
    assert sc.state_dict() == sc2.state_dict()


def test_load_state_dict_errors():
    p = one_param([1.0])
    opt = SGD([("w", p)], 0.1, momentum=0.9, policy="float64")
    p.grad = Tensor(np.array([1.0]))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(UserError, match="adam"):
        Adam([("w", p)], policy="float64").load_state_dict(sd)
    with pytest.raises(UserError, match="'w'"):
        SGD([("v", p)], 0.1, policy="float64").load_state_dict(sd)
    with pytest.raises(UserError, match="shape"):
        SGD([("w", one_param([1.0, 2.0]))], 0.1, policy="float64").load_state_dict(sd)


# ------------------------------------------------------------------ building, errors
def test_build_optimizer():
    model = mlp()
    assert isinstance(build_optimizer("SGD", model, 0.1, "float32", momentum=0.9), SGD)
    assert isinstance(build_optimizer("adamw", model, None, "float32"), AdamW)
    with pytest.raises(UserError, match="unknown optimizer 'rmsprop'.*sgd, adam, adamw"):
        build_optimizer("rmsprop", model, 0.1, "float32")
    with pytest.raises(UserError, match="betas"):
        build_optimizer("sgd", model, 0.1, "float32", betas=(0.9, 0.9))
    with pytest.raises(UserError, match="learning rate"):
        build_optimizer("sgd", model, None, "float32")


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, -1.0), lambda p: SGD(p, 0.1, nesterov=True),
    lambda p: Adam(p, betas=(1.0, 0.9)), lambda p: Adam(p, eps=float("nan")),
    lambda p: SGD([], 0.1), lambda p: SGD([("a", p[0][1]), ("a", p[0][1])], 0.1)])
def test_bad_arguments_raise_user_error(make):
    with pytest.raises(UserError):
        make([("w", one_param([1.0]))])
