"""Learning-rate schedules (float64, rounded once to O; bit-identical across a resume) and
the optimizer flags --eps, --betas, --nesterov, --schedule."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from minifp.checkpoint import load_checkpoint
from minifp.cli import main
from minifp.errors import UserError
from minifp.formats import get_format
from minifp.optim.schedule import Schedule


def test_factors():
    s = Schedule.parse("step:4:0.5")
    assert [s.factor(e * 10, 10, 100) for e in range(10)] == \
        [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    c = Schedule.parse("cosine")
    assert c.factor(0, 10, 100) == 1.0 and c.factor(100, 10, 100) == 0.0
    assert c.factor(50, 10, 100) == 0.5 * (1 + math.cos(math.pi / 2))
    w = Schedule.parse("warmup:4,cosine")
    assert w.factor(0, 10, 100) == 0.25 * 1.0 and w.factor(3, 10, 100) == c.factor(3, 10, 100)
    assert Schedule.parse("constant").parts == ()


def test_rate_is_rounded_once_to_O():
    f16 = get_format("float16")
    s = Schedule.parse("step:1:0.3")
    want = float(np.float16(0.01 * 0.3 ** 2))
    assert s.rate(0.01, 20, 10, 100, f16) == want


@pytest.mark.parametrize("text", ["linear", "step:0:0.5", "step:2", "warmup:0", "cosine:3",
                                  "cosine,step:2:0.5", "warmup:2,warmup:3", "step:2:-1"])
def test_bad_schedules(text):
    with pytest.raises(UserError, match="--schedule"):
        Schedule.parse(text)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


COMMON = ["--net", "mlp", "--dataset", "digits", "--no-progress", "--dtype", "float16"]


def _params(path):
    return {k: np.asarray(v).view(np.uint16) for k, v in load_checkpoint(path)["params"].items()}


@pytest.mark.parametrize("extra", [{"schedule": "warmup:5,cosine"},
                                   {"optimizer": "adam", "lr": 0.001, "eps": 1e-4,
                                    "betas": "0.8,0.99", "schedule": "step:1:0.5"},
                                   {"nesterov": True, "schedule": "step:2:0.5"}])
def test_an_interrupted_run_resumes_on_the_schedule_bit_for_bit(tmp_path, extra):
    from minifp.train import TrainConfig, train
    base = dict(net="mlp", dataset="digits", dtype="float16", epochs=2, progress=False,
                quiet=True)
    train(TrainConfig(**base, **extra, out=str(tmp_path / "full")))

    def stop(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**base, **extra, out=str(tmp_path / "part")), on_epoch=stop)
    cfg = json.loads((tmp_path / "part" / "config.json").read_text())
    assert cfg["schedule"] == extra["schedule"]
    train(TrainConfig(**base, **extra, out=str(tmp_path / "part")), resume=True)
    a, b = _params(tmp_path / "full" / "checkpoint.h5"), _params(tmp_path / "part" /
                                                                "checkpoint.h5")
    assert all((a[k] == b[k]).all() for k in a)
    # and the schedule changed the run
    plain = {k: v for k, v in extra.items() if k != "schedule"}
    train(TrainConfig(**base, **plain, out=str(tmp_path / "plain")))
    c = _params(tmp_path / "plain" / "checkpoint.h5")
    assert any((a[k] != c[k]).any() for k in a)


@pytest.mark.parametrize("args, words", [
    (["--eps", "1e-4"], "--eps applies to adam"),
    (["--betas", "0.9,0.99"], "--betas applies to adam"),
    (["--optimizer", "adam", "--betas", "0.9"], "--betas"),
    (["--optimizer", "adam", "--betas", "1.2,0.9"], "--betas"),
    (["--optimizer", "adam", "--eps", "0"], "--eps must be positive"),
    (["--optimizer", "adam", "--nesterov"], "--nesterov applies to sgd"),
    (["--nesterov", "--momentum", "0"], "--nesterov needs a momentum"),
    (["--schedule", "sometimes"], "--schedule"),
])
def test_optimizer_flags_bad_input(tmp_path, args, words):
    r = run("train", *COMMON, "--epochs", 1, "--out", tmp_path / "x", *args)
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
