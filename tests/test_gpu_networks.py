"""Whole networks on CuPy arrays give the NumPy bits: forward, backward and three training
steps of every zoo family under the papers' precisions, a short training run on digits
through `minifp train`'s loop, and checkpoints that move between the devices.  On a GPU,
and in CI on the stand-in (tests/cupy_standin)."""
from __future__ import annotations

import numpy as np
import pytest

from test_kernels_networks import _same, _train

pytestmark = pytest.mark.gpu

NETS = ["mlp", "lenet5", "cnn", "resnet", "vit"]
POLICIES = ["float16", "fp8", "posit8-mixed"]   # IEEE, 8-bit with scaling, posit + quire


def _compare(want, got, label):
    assert [w for w, _ in want] == [g for g, _ in got]
    for (what, a), (_, b) in zip(want, got):
        assert _same(a, b), f"{label}: {what} differs"


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("net", NETS)
def test_three_training_steps_match_numpy(cupy, net, policy):
    _compare(_train(net, policy, device="cpu"), _train(net, policy, device="gpu"),
             f"{net} {policy}")


@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_stochastic_training_matches_numpy(cupy, net):
    _compare(_train(net, "float16", True, "pairwise", "cpu"),
             _train(net, "float16", True, "pairwise", "gpu"), f"{net} stochastic")


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
