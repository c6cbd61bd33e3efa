"""End to end: `minifp train`, `eval`, `compare` on the 8x8 digits with tiny nets."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from minifp.checkpoint import load_checkpoint
from minifp.cli import main

FAST = ["--dataset", "digits", "--batch-size", "256", "--no-progress"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_train_writes_run_directory_and_prints_policy(tmp_path):
    out = tmp_path / "r"
    r = run("train", "--dtype", "float16", "--net", "mlp", "--epochs", 2, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    assert "precision policy 'float16'" in r.output
    assert sum(line.startswith("epoch ") for line in r.output.splitlines()) == 2
    assert r.output.strip().splitlines()[-1].startswith("done: mlp under float16, 2 epochs")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy"]["name"] == "float16" and summary["seed"] == 0
    assert summary["final"]["test_accuracy"] > 0.5
    assert "numpy" in summary["versions"]
    ckpt = load_checkpoint(out / "checkpoint.h5")
    assert ckpt["epoch"] == 2


def test_resume_is_bit_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("train", "--dtype", "mixed", "--net", "mlp", "--epochs", 3, "--out", a,
               *FAST).exit_code == 0
    assert run("train", "--dtype", "mixed", "--net", "mlp", "--epochs", 2, "--out", b,
               *FAST).exit_code == 0
    r = run("train", "--resume", b, "--epochs", 3, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "resuming from epoch 2" in r.output
    ca, cb = load_checkpoint(a / "checkpoint.h5"), load_checkpoint(b / "checkpoint.h5")
    for name in ca["params"]:
        assert np.array_equal(ca["params"][name], cb["params"][name]), name
    ma = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [m["test_loss"] for m in ma] == [m["test_loss"] for m in mb]


def test_out_holding_another_run_is_refused(tmp_path):
    out = tmp_path / "r"
    assert run("train", "--net", "mlp", "--epochs", 1, "--out", out, *FAST).exit_code == 0
    before = (out / "checkpoint.h5").read_bytes()
    r = CliRunner().invoke(main, ["train", "--net", "mlp", "--epochs", "1", "--out", str(out),
                                  *FAST])
    assert r.exit_code == 2
    assert "already holds a complete run" in r.output and "Traceback" not in r.output
    assert (out / "checkpoint.h5").read_bytes() == before
    r = run("train", "--net", "mlp", "--epochs", 1, "--out", out, "--overwrite", *FAST)
    assert r.exit_code == 0


@pytest.mark.parametrize("args, words", [
    (["--net", "googlenet"], "googlenet"),
    (["--dataset", "imagenet"], "imagenet"),
    (["--dtype", "float17"], "float17"),
    (["--order", "blocked:0"], "blocked:0"),
    (["--epochs", "0"], "--epochs"),
    (["--device", "tpu"], "tpu"),
])
def test_bad_input_is_one_line(tmp_path, args, words):
    r = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "x"), "--no-progress",
                                  "--dataset", "digits", *args])
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["train", "--dataset", "digits"], ["compare", "--dtypes",
                                     "float16", "--dataset", "digits"],
                                     ["inspect", "--dataset", "digits"]])
@pytest.mark.parametrize("device", ["gpu", "cuda:1"])
def test_a_gpu_that_is_not_there_is_one_line(tmp_path, command, device):
    from minifp import backend
    previous = backend.install_cupy(None)          # as on a machine without CuPy
    try:
        r = CliRunner().invoke(main, [*command, "--device", device, "--quiet",
                                      *(["--out", str(tmp_path / "x")] if command[0] != "inspect"
                                        else [])])
    finally:
        backend.install_cupy(*previous)
    assert r.exit_code == 2, r.output
    assert "no GPU here" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_dataset_file_that_is_not_hdf5(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    r = CliRunner().invoke(main, ["train", "--dataset", str(bad), "--out",
                                  str(tmp_path / "x")])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    out = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "--dtype", "float16", "--net", "mlp", "--epochs",
                                  "3", "--lr", "1e6", "--out", str(out), *FAST])
    assert r.exit_code == 3, r.output
    assert "epoch" in r.output and "step" in r.output and "Traceback" not in r.output


def test_eval_checkpoint_under_other_policy(tmp_path):
    out = tmp_path / "r"
    assert run("train", "--dtype", "float32", "--net", "mlp", "--epochs", 2, "--out", out,
               *FAST).exit_code == 0
    js = tmp_path / "eval.json"
    r = run("eval", out / "checkpoint.h5", "--dtype", "float16", "--json", js)
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    own, other = res["rows"]
    assert own["policy"] == "float32" and other["policy"] == "float16"
    assert 0.9 <= other["agreement"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert own["accuracy"] == pytest.approx(summary["final"]["test_accuracy"])


def test_eval_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "c.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    r = CliRunner().invoke(main, ["eval", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_compare_table_and_json(tmp_path):
    js = tmp_path / "cmp.json"
    r = run("compare", "--dtypes", "float32,float16,bfloat16", "--net", "mlp", "--epochs", 1,
            "--json", js, *FAST)
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    assert [row["dtype"] for row in res["rows"]] == ["float32", "float16", "bfloat16"]
    assert res["rows"][0]["agreement"] == 1.0
    lines = r.output.strip().splitlines()
    assert lines[-1].startswith("done: 3 policies, mlp on digits, 1 epochs each")
    table = lines[-5:-1]
    assert table[0].split()[:3] == ["policy", "test", "acc"]
    assert table[2].startswith("float16")


def test_compare_plot_draws_or_says_what_is_missing(tmp_path):
    png = tmp_path / "cmp.png"
    r = CliRunner().invoke(main, ["compare", "--dtypes", "float32,float16", "--net", "mlp",
                                  "--epochs", "1", "--plot", str(png), *FAST])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.exit_code == 2 and "matplotlib" in r.output and not png.exists()
    else:
        assert r.exit_code == 0, r.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
