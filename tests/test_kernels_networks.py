"""Whole networks give the same bits under the NumPy reference and with the C kernels:
forward, backward and three training steps of every zoo family, under the papers'
precisions (stochastic rounding included)."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.backend import asnumpy
from minifp.data import synthetic
from minifp.nn.zoo import build_model
from minifp.optim import LossScaler, build_optimizer
from minifp.precision import get_precision, use

NETS = ["mlp", "lenet5", "cnn", "resnet", "vit"]
POLICIES = ["float32", "float16", "bfloat16", "fp8", "posit8-mixed"]


pytestmark = pytest.mark.usefixtures("kernels_built")


def _train(net, policy_name, stochastic=False, order="sequential", device="cpu"):
    """Logits, loss, gradients and weights (float64 NumPy, compared as bits) along three
    SGD steps on ``device`` (tests/test_gpu_networks.py runs it on CuPy); ``stochastic``:
    every role and both accumulations round stochastically, in ``order``."""
    data = synthetic(n_train=12, n_test=4, shape=(1, 8, 8), classes=4)
    policy = get_precision(policy_name)
    if stochastic:
        d = policy.to_dict()
        d["rounding"] = {role: "stochastic" for role in d["rounding"]}
        for phase in ("forward", "backward_acc"):
            d[phase] = dict(d[phase], format="bfloat16", order=order, rounding="stochastic")
        policy = get_precision(d)
    model = build_model(net, (1, 8, 8), 4, seed=3)
    model.to(policy, device=device)
    optimizer = build_optimizer("sgd", model, 0.05, policy, momentum=0.9)
    scaler = LossScaler.from_policy(policy)
    seen = []
    model.train()
    with use(policy, rng=np.random.default_rng(11)):
        for step in range(3):
            xb = model.device.put(data.x_train[4 * step:4 * step + 4])
            yb = model.device.put(data.y_train[4 * step:4 * step + 4])
            optimizer.zero_grad()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            scaler.scale_loss(loss).backward()
            seen.append(("logits", logits.data))
            seen.append(("loss", loss.data))
            for name, p in model.named_parameters():
                seen.append((f"grad {name}", p.grad.data))
            scaler.step(optimizer)
            for name, p in model.named_parameters():
                seen.append((f"weight {name}", p.data))
    return [(what, np.asarray(asnumpy(v), np.float64)) for what, v in seen]


def _same(a, b):
    return a.shape == b.shape and bool(((a.view(np.uint64) == b.view(np.uint64))
                                        | (np.isnan(a) & np.isnan(b))).all())


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("net", NETS)
def test_three_training_steps_are_bit_identical(monkeypatch, net, policy):
    runs = []
    for backend in ("numpy", "c"):
        monkeypatch.setenv("MINIFP_KERNELS", backend)
        runs.append(_train(net, policy))
    for (what, a), (_, b) in zip(*runs):
        assert _same(a, b), f"{net} {policy}: {what} differs between NumPy and the kernels"


@pytest.mark.parametrize("order", ["sequential", "pairwise", "blocked:8"])
@pytest.mark.parametrize("net", ["mlp", "lenet5"])
def test_stochastic_training_is_bit_identical(monkeypatch, net, order):
    runs = []
    for backend in ("numpy", "c"):
        monkeypatch.setenv("MINIFP_KERNELS", backend)
        runs.append(_train(net, "bfloat16", stochastic=True, order=order))
    for (what, a), (_, b) in zip(*runs):
        assert _same(a, b), f"{net} stochastic: {what} differs"
