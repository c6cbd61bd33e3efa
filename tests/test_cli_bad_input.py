"""Bad input at the command line: one line ``minifp: error: ...``, exit 2, no traceback.

Regression tests for inputs that used to end in a Python traceback (or, for
``formats round 1e999999999``, in a hang) or that were silently accepted.
Every check fails before any training or evaluation starts, so these are fast.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from minifp.cli import main

SMALL = ["--dataset", "digits", "--epochs", "1", "--batch-size", "256", "--no-progress"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result, *needles):
    """Exit status 2, one line `minifp: error: ...` on stderr, no traceback."""
    err = result.stderr if result.stderr_bytes is not None else result.output
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minifp: error: "), lines[0]
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    return f


# ---- train --out / --seed / --resume --------------------------------------------------
def test_train_out_is_a_file(tmp_path, a_file):
    assert_user_error(run("train", *SMALL, "--out", a_file), "is a file, not a directory")


def test_train_out_under_a_file(tmp_path, a_file):
    assert_user_error(run("train", *SMALL, "--out", a_file / "sub"), "is not a directory")


def test_train_negative_seed(tmp_path):
    assert_user_error(run("train", *SMALL, "--seed", "-1", "--out", tmp_path / "r"),
                      "--seed must be a non-negative integer")
    assert not (tmp_path / "r").exists()


def test_resume_config_that_is_not_an_object(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    assert_user_error(run("train", "--resume", tmp_path, "--no-progress"),
                      "is not a minifp run config", "list")


def test_resume_config_that_is_a_directory(tmp_path):
    (tmp_path / "config.json").mkdir()
    assert_user_error(run("train", "--resume", tmp_path, "--no-progress"), "cannot read")


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_resume_with_epochs_below_one(tmp_path, epochs):
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "digits"}))
    assert_user_error(run("train", "--resume", tmp_path, "--epochs", epochs, "--no-progress"),
                      f"--epochs must be at least 1, got {epochs}")


# ---- eval / compare / inspect: --json, --plot, --out are checked before the work ----
@pytest.mark.parametrize("where", ["missing_folder", "directory", "under_a_file"])
def test_eval_json_unwritable(tmp_path, a_file, where):
    path = {"missing_folder": tmp_path / "no" / "x.json", "directory": tmp_path,
            "under_a_file": a_file / "x.json"}[where]
    # the checkpoint need not exist: the --json path is refused first
    assert_user_error(run("eval", tmp_path / "ck.h5", "--json", path), "--json")


def test_compare_json_unwritable(tmp_path):
    assert_user_error(run("compare", "--dtypes", "float32", *SMALL,
                          "--json", tmp_path / "no" / "x.json"), "--json", "does not exist")


def test_compare_out_is_a_file(a_file):
    assert_user_error(run("compare", "--dtypes", "float32", *SMALL, "--out", a_file),
                      "is a file, not a directory")


def test_compare_duplicate_dtypes_with_out(tmp_path):
    assert_user_error(run("compare", "--dtypes", "float32,float32", *SMALL,
                          "--out", tmp_path / "c"), "float32 twice")


def test_compare_negative_seed():
    assert_user_error(run("compare", "--dtypes", "float32", *SMALL, "--seed", "-2"),
                      "--seed must be a non-negative integer")


def test_compare_plot_unwritable_or_unknown_suffix(tmp_path):
    pytest.importorskip("matplotlib")
    assert_user_error(run("compare", "--dtypes", "float32", *SMALL,
                          "--plot", tmp_path / "no" / "x.png"), "--plot", "does not exist")
    assert_user_error(run("compare", "--dtypes", "float32", *SMALL,
                          "--plot", tmp_path / "x.h5"), "cannot write .h5")


def test_inspect_json_unwritable(tmp_path):
    assert_user_error(run("inspect", "--dataset", "digits", "--samples", "4",
                          "--json", tmp_path / "no" / "x.json"), "--json", "does not exist")
    assert_user_error(run("inspect", "--dataset", "digits", "--samples", "4",
                          "--json", tmp_path), "is a directory")


def test_inspect_plot_unwritable_or_unknown_suffix(tmp_path, a_file):
    pytest.importorskip("matplotlib")
    assert_user_error(run("inspect", "--dataset", "digits", "--samples", "4",
                          "--plot", a_file / "x.png"), "--plot", "is not a directory")
    assert_user_error(run("inspect", "--dataset", "digits", "--samples", "4",
                          "--plot", tmp_path / "x.xyz"), "cannot write .xyz")


def test_inspect_negative_seed():
    assert_user_error(run("inspect", "--dataset", "digits", "--samples", "4", "--seed", "-1"),
                      "--seed must be a non-negative integer")


# ---- formats round ----------------------------------------------------------------
@pytest.mark.parametrize("value", ["1e999999999", "-1e-99999999999", "0x1p99999999999",
                                   "1E+1_000_001"])
def test_round_absurd_exponent_is_refused_not_hung(value):
    assert_user_error(run("formats", "round", "float16", value), "exponent", "too large")


def test_round_largest_allowed_exponent_still_works():
    r = run("formats", "round", "float16", "1e1000000")
    assert r.exit_code == 0, r.output
    assert " inf " in r.output


def test_round_long_decimal_is_read_exactly():
    # more than Python's default 4300-digit limit on int(str): used to be "not a number"
    text = "0." + "1" * 5000
    r = run("formats", "round", "float16", text)
    assert r.exit_code == 0, r.output
    short = run("formats", "round", "float16", "0.11111111111")
    assert r.output.split()[-4:][:3] == short.output.split()[-4:][:3]  # same rounded/code


def test_round_negative_seed():
    assert_user_error(run("formats", "round", "float16", "1", "--mode", "stochastic",
                          "--seed", "-1"), "--seed must be a non-negative integer")
