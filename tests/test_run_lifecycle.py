"""The run lifecycle of `minifp train` / `compare`: run states, resume, failure, options,
strict JSON, progress and output (click's runner; the signal tests are in
test_run_signals.py)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from minifp.train import rundir
from minifp.checkpoint import load_checkpoint
from minifp.cli import main
from minifp.cli.train import compare_command, eval_command, train_command
from minifp.jsonio import loads_strict
from minifp.precision import get_precision
from minifp.train import TrainConfig, build

FAST = ["--dataset", "digits", "--batch-size", "256", "--no-progress"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    return r


def strict_json_files(folder):
    """Every JSON file (and JSON-lines file) under ``folder``, parsed strictly."""
    seen = 0
    for p in sorted(folder.rglob("*.json")) + sorted(folder.rglob("*.jsonl")):
        text = p.read_text()
        if p.suffix == ".jsonl":
            for line in text.splitlines():
                loads_strict(line)
        else:
            loads_strict(text)
        seen += 1
    return seen


def params(path):
    return load_checkpoint(path)["params"]


def same_params(a, b):
    pa, pb = params(a), params(b)
    return list(pa) == list(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


# ---- states: failed, complete, unfinished -----------------------------------------------
def test_failed_first_epoch_is_recorded_and_replaced_by_the_same_command(tmp_path):
    out = tmp_path / "nan1"
    args = ["train", *FAST, "--lr", "1000", "--out", out]
    r = invoke(*args)
    assert r.exit_code == 3, r.output
    assert "no checkpoint was written" in r.output and "last good" not in r.output
    summary = loads_strict((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "nan" in summary["reason"]
    assert rundir.state(out).kind == "failed"
    r = invoke(*args)                          # no --overwrite needed
    assert r.exit_code == 3 and "replacing the failed run" in r.output, r.output
    r = invoke("train", "--resume", out, "--no-progress")
    assert r.exit_code == 3 and "starting it again" in r.output, r.output


def test_killed_before_first_checkpoint_is_replaced(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    cfg = TrainConfig(dataset="digits", batch_size=256, epochs=1, progress=False,
                      out=str(out))
    rundir.write_config(out, cfg.to_dict())    # what a kill in epoch 1 leaves
    assert rundir.state(out).kind == "failed"
    r = ok("train", *FAST, "--epochs", 1, "--out", out)
    assert "replacing the failed run" in r.output
    assert rundir.state(out).kind == "complete"


def test_nan_after_a_checkpoint_names_it(tmp_path):
    # float16 at lr 1.2: finite for an epoch, then the loss overflows
    out = tmp_path / "r"
    r = invoke("train", *FAST, "--lr", "1.2", "--epochs", 6, "--out", out)
    assert r.exit_code == 3, r.output
    rows = rundir.read_metrics(out)
    saved = load_checkpoint(out / "checkpoint.h5")["epoch"]
    assert saved >= 1
    assert f"the last checkpoint is {out / 'checkpoint.h5'} (epoch {saved})" in r.output
    assert rows[-1]["epoch"] >= saved
    assert loads_strict((out / "summary.json").read_text())["saved_epoch"] == saved


def test_complete_run_is_refused_with_what_to_do(tmp_path):
    out = tmp_path / "r"
    ok("train", *FAST, "--epochs", 1, "--out", out)
    before = (out / "checkpoint.h5").read_bytes()
    r = invoke("train", *FAST, "--epochs", 1, "--out", out)
    assert r.exit_code == 2
    assert "already holds a complete run (1 epochs)" in r.output and "--resume" in r.output
    assert (out / "checkpoint.h5").read_bytes() == before


# ---- resume --------------------------------------------------------------------------------
def test_resume_refuses_options_that_differ(tmp_path):
    out = tmp_path / "r"
    ok("train", *FAST, "--epochs", 1, "--out", out)
    r = invoke("train", "--resume", out, "--lr", "0.5", "--dtype", "float32",
               "--batch-size", "64", "--optimizer", "adam", "--no-progress")
    assert r.exit_code == 2
    line = r.output.strip()
    assert len(line.splitlines()) == 1
    for words in ("--lr 0.5 (the run has 0.01)", "--dtype float32 (the run has float16)",
                  "--batch-size 64 (the run has 256)", "--optimizer adam (the run has sgd)"):
        assert words in line, line
    # the same values as saved are fine
    ok("train", "--resume", out, "--lr", "0.01", "--epochs", 2, "--no-progress")


@pytest.mark.parametrize("extra, words", [
    (["--out", "elsewhere"], "names another directory"),
    (["--overwrite"], "cannot be combined with --overwrite"),
    (["--net", "lenet5"], "--net lenet5 (the run has mlp)"),
])
def test_resume_conflicts(tmp_path, extra, words):
    out = tmp_path / "r"
    ok("train", *FAST, "--epochs", 1, "--out", out)
    extra = [str(tmp_path / e) if e == "elsewhere" else e for e in extra]
    r = invoke("train", "--resume", out, *extra, "--no-progress")
    assert r.exit_code == 2 and words in r.output, r.output


def test_resume_epochs_only_upward(tmp_path):
    out = tmp_path / "r"
    ok("train", *FAST, "--epochs", 2, "--out", out)
    r = invoke("train", "--resume", out, "--epochs", 1, "--no-progress")
    assert r.exit_code == 2 and "already trained 2 epochs" in r.output, r.output
    before = (out / "checkpoint.h5").read_bytes()
    r = ok("train", "--resume", out, "--no-progress")          # nothing left to do
    assert "epoch   " not in r.output
    assert (out / "checkpoint.h5").read_bytes() == before


def test_resume_extends_bit_identically_and_keeps_metrics_whole(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ok("train", *FAST, "--dtype", "mixed", "--epochs", 3, "--out", a)
    ok("train", *FAST, "--dtype", "mixed", "--epochs", 1, "--out", b)
    r = ok("train", "--resume", b, "--epochs", 3, "--no-progress")
    assert "resuming from epoch 1 of 3" in r.output
    assert same_params(a / "checkpoint.h5", b / "checkpoint.h5")
    ma, mb = rundir.read_metrics(a), rundir.read_metrics(b)
    assert [m["epoch"] for m in mb] == [1, 2, 3]
    assert [m["test_loss"] for m in ma] == [m["test_loss"] for m in mb]


def test_save_every_and_best(tmp_path):
    out = tmp_path / "r"
    ok("train", *FAST, "--epochs", 3, "--save-every", 2, "--out", out)
    assert load_checkpoint(out / "checkpoint.h5")["epoch"] == 3   # the last always
    rows = rundir.read_metrics(out)
    best = max(rows, key=lambda m: m["test_accuracy"])
    assert load_checkpoint(out / "best.h5")["epoch"] == best["epoch"]
    summary = loads_strict((out / "summary.json").read_text())
    assert summary["best"]["epoch"] == best["epoch"]
    r = invoke("train", *FAST, "--save-every", 0, "--out", tmp_path / "x")
    assert r.exit_code == 2 and "--save-every" in r.output


def test_init_from_rounds_trained_weights_once_to_the_new_policy(tmp_path):
    a = tmp_path / "a"
    ok("train", *FAST, "--dtype", "float32", "--epochs", 1, "--out", a)
    trained = params(a / "checkpoint.h5")
    cfg = TrainConfig(dataset="digits", dtype="float16", init_from=str(a / "checkpoint.h5"),
                      out=None, progress=False)
    _, model, policy, _, _ = build(cfg)
    fp16 = get_precision("float16").format_of("weights")
    for name, p in model.named_parameters():
        want = fp16.round(trained[name].astype(np.float64))
        assert np.array_equal(np.asarray(p.data), want), name
    r = ok("train", *FAST, "--dtype", "float16", "--epochs", 1, "--init-from",
           a / "checkpoint.h5", "--out", tmp_path / "b")
    assert "initialised from" in r.output
    fresh = ok("train", *FAST, "--dtype", "float16", "--epochs", 1, "--out", tmp_path / "c")
    acc_b = rundir.read_metrics(tmp_path / "b")[0]["test_accuracy"]
    acc_c = rundir.read_metrics(tmp_path / "c")[0]["test_accuracy"]
    assert acc_b > acc_c, (acc_b, acc_c, fresh.output)
    r = invoke("train", *FAST, "--net", "cnn", "--init-from", a / "checkpoint.h5",
               "--out", tmp_path / "d")
    assert r.exit_code == 2 and "holds a mlp network, not cnn" in r.output, r.output


# ---- failure is failure ------------------------------------------------------------------
def test_every_step_skipped_fails(tmp_path):
    d = get_precision("mixed").to_dict()
    d.update(name="mixed-static", loss_scaling={"mode": "static", "scale": 1e30})
    pol = tmp_path / "pol.json"
    pol.write_text(json.dumps(d))
    out = tmp_path / "r"
    r = invoke("train", *FAST, "--dtype", pol, "--epochs", 2, "--out", out)
    assert r.exit_code == 3, r.output
    assert "every step of epoch 1 was skipped" in r.output
    assert loads_strict((out / "summary.json").read_text())["status"] == "failed"


def test_nonfinite_test_loss_fails_and_train_loss_counts_finite_batches(tmp_path):
    out = tmp_path / "r"
    r = invoke("train", *FAST, "--dtype", "mixed", "--lr", "1e5", "--epochs", 2,
               "--out", out)
    assert r.exit_code == 3, r.output
    assert "the test loss is nan after epoch 1" in r.output
    (row,) = rundir.read_metrics(out)
    assert row["test_loss"] is None                  # strict JSON: NaN written as null
    assert 0 < row["nonfinite_batches"] < 6
    assert row["train_loss"] is not None and row["train_loss"] > 1.0   # not 0.0000
    assert f"{row['nonfinite_batches']} batches with a non-finite loss" in r.output


@pytest.mark.parametrize("args, words", [
    (["--dtype", "e2m1"], "every weight gradient is zero"),
    (["--dtype", "float16", "--lr", "1e-12"], "below half an ulp of the weights format"),
])
def test_no_parameter_changed_fails_and_names_layers(tmp_path, args, words):
    out = tmp_path / "r"
    r = invoke("train", *FAST, *args, "--epochs", 2, "--out", out)
    assert r.exit_code == 3, r.output
    assert "no parameter changed in epoch 1" in r.output and words in r.output
    if "lr" in args[-2]:
        assert "body.1.weight (float16)" in r.output


def test_master_weights_that_move_are_not_frozen(tmp_path):
    # mixed: fp16 weights may stay put while the fp32 masters move
    ok("train", *FAST, "--dtype", "mixed", "--lr", "1e-6", "--epochs", 1,
       "--out", tmp_path / "r")


# ---- options ------------------------------------------------------------------------------
def test_adamw_has_its_own_weight_decay(tmp_path):
    ok("train", *FAST, "--optimizer", "adam", "--lr", "1e-3", "--epochs", 1,
       "--dtype", "float32", "--out", tmp_path / "adam")
    ok("train", *FAST, "--optimizer", "adamw", "--lr", "1e-3", "--epochs", 1,
       "--dtype", "float32", "--out", tmp_path / "adamw")
    ok("train", *FAST, "--optimizer", "adamw", "--weight-decay", 0, "--lr", "1e-3",
       "--epochs", 1, "--dtype", "float32", "--out", tmp_path / "adamw0")
    assert not same_params(tmp_path / "adam/checkpoint.h5", tmp_path / "adamw/checkpoint.h5")
    assert same_params(tmp_path / "adam/checkpoint.h5", tmp_path / "adamw0/checkpoint.h5")
    s = loads_strict((tmp_path / "adamw/summary.json").read_text())
    assert s["weight_decay"] == 0.01


@pytest.mark.parametrize("args, words", [
    (["--momentum", "5"], "--momentum must be in [0, 1)"),
    (["--momentum", "-0.1"], "--momentum must be in [0, 1)"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum applies to sgd only"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
])
def test_bad_optimizer_options(tmp_path, args, words):
    r = invoke("train", *FAST, *args, "--out", tmp_path / "r")
    assert r.exit_code == 2 and words in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_compare_checks_every_name_before_training(tmp_path):
    r = invoke("compare", "--dtypes", "float32,float17", *FAST, "--epochs", 1)
    assert r.exit_code == 2 and "float17" in r.output
    assert "epoch" not in r.output


def test_compare_refuses_to_overwrite_runs(tmp_path):
    out = tmp_path / "cmp"
    ok("compare", "--dtypes", "float32,float16", *FAST, "--epochs", 1, "--out", out)
    before = (out / "float16" / "checkpoint.h5").read_bytes()
    r = invoke("compare", "--dtypes", "float32,float16", *FAST, "--epochs", 1, "--out", out)
    assert r.exit_code == 2 and "already holds a complete run" in r.output, r.output
    assert (out / "float16" / "checkpoint.h5").read_bytes() == before
    ok("compare", "--dtypes", "float32,float16", *FAST, "--epochs", 1, "--out", out,
       "--overwrite")
    assert strict_json_files(out) >= 6


def test_compare_marks_a_failed_run_and_exits_3(tmp_path):
    js = tmp_path / "cmp.json"
    r = invoke("compare", "--dtypes", "float32,e2m1", *FAST, "--epochs", 2, "--json", js)
    assert r.exit_code == 3, r.output
    assert "e2m1             FAILED: no parameter changed" in r.output
    res = loads_strict(js.read_text())
    assert [row["status"] for row in res["rows"]] == ["complete", "failed"]


def test_every_option_has_help_and_commands_have_examples():
    for cmd in (train_command, eval_command, compare_command):
        missing = [p.name for p in cmd.params
                   if isinstance(p, __import__("click").Option) and not p.help]
        assert not missing, (cmd.name, missing)
        r = CliRunner().invoke(main, [cmd.name, "--help"])
        assert r.exit_code == 0 and "Examples:" in r.output


# ---- names, JSON, output --------------------------------------------------------------
def test_default_run_directory_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig().run_dir().as_posix() == "runs/mlp-float16-0"
    pol = tmp_path / "pol.json"
    pol.write_text(json.dumps(get_precision("mixed").to_dict()))
    name = TrainConfig(dtype=str(pol)).run_dir().name
    assert name.startswith("mlp-pol-0-") and "/" not in name and "json" not in name
    plain = TrainConfig(dataset="digits").run_dir()
    acc = TrainConfig(dataset="digits", accumulate="float32").run_dir()
    order = TrainConfig(dataset="digits", order="pairwise").run_dir()
    assert len({plain, acc, order}) == 3
    assert TrainConfig(dtype='{"base": "fp8"}').run_dir().name.startswith("mlp-policy-0-")


def test_quiet_prints_only_the_closing_line(tmp_path):
    r = ok("train", *FAST, "--epochs", 1, "--quiet", "--out", tmp_path / "r")
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("done: mlp under float16, 1 epochs in")
    assert "test acc" in lines[0] and str(tmp_path / "r") in lines[0]


def test_strict_json_everywhere_on_a_diverged_run(tmp_path):
    out = tmp_path / "r"
    invoke("train", *FAST, "--dtype", "mixed", "--lr", "1e5", "--epochs", 1, "--out", out)
    js = tmp_path / "cmp.json"
    invoke("compare", "--dtypes", "float32,mixed", *FAST, "--lr", "1e5", "--epochs", 1,
           "--json", js, "--out", tmp_path / "cmp")
    ok("train", *FAST, "--epochs", 1, "--out", tmp_path / "good")
    ok("eval", tmp_path / "good" / "checkpoint.h5", "--json", tmp_path / "eval.json")
    assert "NaN" in json.dumps(float("nan"))          # what the default writer would do
    assert strict_json_files(tmp_path) >= 9


def test_stale_temporaries_are_cleaned(tmp_path):
    out = tmp_path / "r"
    ok("train", *FAST, "--epochs", 1, "--out", out)
    stale = [out / "checkpoint.h5.tmp-999999999", out / ".metrics.jsonl.tmp-999999999"]
    for p in stale:
        p.write_bytes(b"partial")
    ok("train", "--resume", out, "--epochs", 2, "--no-progress")
    assert not any(p.exists() for p in stale)


def _strip_seconds(text):
    import re
    return re.sub(r"\d+\.\d+ ?s", "Ts", text)


def test_progress_bars_go_to_stderr_only(tmp_path):
    with_bar = CliRunner().invoke(main, ["train", *FAST[:-1], "--progress", "--epochs", "1",
                                         "--out", str(tmp_path / "a")])
    without = CliRunner().invoke(main, ["train", *FAST, "--epochs", "1",
                                        "--out", str(tmp_path / "b")])
    assert with_bar.exit_code == 0 and without.exit_code == 0
    assert "epoch 1/1" in with_bar.stderr and "step/s" in with_bar.stderr   # tqdm: rate, ETA
    assert "<" in with_bar.stderr                                          # [elapsed<eta]
    assert "test 1" in with_bar.stderr                                     # the evaluation
    assert without.stderr == ""
    assert _strip_seconds(with_bar.stdout).replace(str(tmp_path / "a"), "D") == \
        _strip_seconds(without.stdout).replace(str(tmp_path / "b"), "D")


def test_warnings_are_one_line_without_source_paths(tmp_path):
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, "-c", "from minifp.cli import main; main()", "train", *FAST,
         "--optimizer", "adam", "--lr", "1e-4", "--epochs", "1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300)
    lines = proc.stderr.splitlines()
    warns = [line for line in lines if line.startswith("minifp: warning:")]
    assert warns and all(w.startswith("minifp: warning: Adam eps=1e-08 rounds to 0")
                         for w in warns), proc.stderr
    assert all(line.startswith("minifp: ") for line in lines), proc.stderr   # nothing else
    assert ".py:" not in proc.stderr and "warnings.warn" not in proc.stderr


def test_compare_plot_has_integer_epoch_ticks(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from minifp.cli.train import plot_compare
    figures = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figures.append(self))
    hist = [{"epoch": e, "test_loss": 1.0 / e, "test_accuracy": 0.5 + e / 10}
            for e in (1, 2, 3)]
    plot_compare({"net": "mlp", "dataset": "digits",
                  "rows": [{"dtype": "float16", "history": hist}]}, tmp_path / "p.png")
    (fig,) = figures
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.parametrize("cmd", [train_command, eval_command, compare_command])
def test_examples_in_the_help_parse(cmd):
    import shlex
    lines = [ln.split("#")[0].strip() for ln in cmd.epilog.splitlines()]
    examples = [shlex.split(ln)[2:] for ln in lines if ln.startswith("minifp ")]
    assert examples
    for args in examples:
        cmd.make_context(cmd.name, list(args))          # raises on an unknown option
