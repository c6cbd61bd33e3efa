"""Whole networks on CuPy arrays give the NumPy bits: forward, backward and three training
steps of every zoo family under the papers' precisions, a short training run on digits
through `minifp train`'s loop, and checkpoints that move between the devices.  On a GPU,
and in CI on the stand-in (tests/cupy_standin)."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.backend import asnumpy
from minifp.data import synthetic
from minifp.nn.zoo import build_model
from minifp.optim import LossScaler, build_optimizer
from minifp.precision import get_precision, use

pytestmark = pytest.mark.gpu

NETS = ["mlp", "lenet5", "cnn", "resnet", "vit"]
POLICIES = ["float16", "fp8", "posit8-mixed"]   # IEEE, 8-bit with scaling, posit + quire


def _steps(net, policy_name, device, stochastic=False):
    """Logits, loss, gradients and weights (as float64 NumPy) along three SGD steps."""
    data = synthetic(n_train=12, n_test=4, shape=(1, 8, 8), classes=4)
    policy = get_precision(policy_name)
    if stochastic:
        d = policy.to_dict()
        d["rounding"] = {role: "stochastic" for role in d["rounding"]}
        for phase in ("forward", "backward_acc"):
            d[phase] = dict(d[phase], format="bfloat16", order="pairwise",
                            rounding="stochastic")
        policy = get_precision(d)
    model = build_model(net, (1, 8, 8), 4, seed=3)
    model.to(policy, device=device)
    optimizer = build_optimizer("sgd", model, 0.05, policy, momentum=0.9)
    scaler = LossScaler.from_policy(policy)
    seen = []
    model.train()
    with use(policy, rng=np.random.default_rng(11)):
        for step in range(3):
            sl = slice(4 * step, 4 * step + 4)
            xb = model.device.put(data.x_train[sl])
            yb = model.device.put(data.y_train[sl])
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


def _compare(want, got, label):
    assert [w for w, _ in want] == [g for g, _ in got]
    for (what, a), (_, b) in zip(want, got):
        assert _same(a, b), f"{label}: {what} differs"


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("net", NETS)
def test_three_training_steps_match_numpy(cupy, net, policy):
    _compare(_steps(net, policy, "cpu"), _steps(net, policy, "gpu"), f"{net} {policy}")


@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_stochastic_training_matches_numpy(cupy, net):
    _compare(_steps(net, "float16", "cpu", True), _steps(net, "float16", "gpu", True),
             f"{net} stochastic")


def _run(tmp_path, name, device, epochs, resume=False):
    from minifp.train import TrainConfig, train
    cfg = TrainConfig(net="mlp", dataset="digits", dtype="float16", epochs=epochs,
                      batch_size=64, device=device, out=str(tmp_path / name), quiet=True,
                      progress=False)
    return train(cfg, resume=resume)


def _checkpoint_params(path):
    from minifp.checkpoint import load_checkpoint
    ck = load_checkpoint(path)
    return {k: np.asarray(v, np.float64) for k, v in ck["params"].items()}


def test_training_run_and_resume_across_devices(cupy, tmp_path):
    """Two epochs on the GPU give the CPU run's checkpoint bit for bit; a run started on
    the GPU and resumed on the CPU (and the other way round) does too."""
    _run(tmp_path, "cpu", "cpu", 2)
    _run(tmp_path, "gpu", "gpu", 2)
    _run(tmp_path, "g2c", "gpu", 1)
    _run(tmp_path, "g2c", "cpu", 2, resume=True)
    _run(tmp_path, "c2g", "cpu", 1)
    _run(tmp_path, "c2g", "gpu", 2, resume=True)
    want = _checkpoint_params(tmp_path / "cpu" / "checkpoint.h5")
    for name in ("gpu", "g2c", "c2g"):
        got = _checkpoint_params(tmp_path / name / "checkpoint.h5")
        assert want.keys() == got.keys()
        for k in want:
            assert _same(want[k], got[k]), f"{name}: {k}"


@pytest.mark.parametrize("extra", [[], ["--backward"]])
def test_inspect_and_eval_on_the_gpu_match_the_cpu(cupy, tmp_path, extra):
    """`minifp inspect --device gpu` writes the CPU's JSON (errors, bounds, lemma counts),
    and `minifp eval --device gpu` the CPU's accuracy and loss."""
    import json

    from click.testing import CliRunner

    from minifp.cli.main import main
    runner = CliRunner()
    out = {}
    for device in ("cpu", "gpu"):
        path = tmp_path / f"{device}.json"
        r = runner.invoke(main, ["inspect", "--net", "mlp", "--dataset", "digits",
                                 "--samples", "64", "--quiet", "--device", device,
                                 "--json", str(path), *extra])
        assert r.exit_code == 0, r.output
        out[device] = json.loads(path.read_text())
    assert out["cpu"] == out["gpu"]
    _run(tmp_path, "run", "cpu", 1)
    ev = {}
    for device in ("cpu", "gpu"):
        r = runner.invoke(main, ["eval", str(tmp_path / "run" / "checkpoint.h5"), "--dtype",
                                 "bfloat16", "--device", device])
        assert r.exit_code == 0, r.output
        ev[device] = r.output
    assert ev["cpu"] == ev["gpu"]
