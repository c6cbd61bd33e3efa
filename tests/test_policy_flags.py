"""Per-stage flags on top of --dtype: formats per role, accumulations per phase, loss
scaling, master weights and per-layer overrides; derived names; bad input in one line."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from minifp.cli import main
from minifp.errors import UserError
from minifp.precision import get_precision
from minifp.train import make_policy
from minifp.train.policy_flags import apply_changes, parse_loss_scaling, parse_override


def test_each_flag_changes_its_stage_and_names_it():
    base = get_precision("fp8")
    p = apply_changes(base, {"loss": "float16", "optimizer_format": "bfloat16",
                             "backward_order": "pairwise", "forward_accumulate": "float16",
                             "master_weights": False, "loss_scaling": "dynamic:256:50"})
    assert p.loss.name == "float16" and p.optimizer.name == "bfloat16"
    assert p.backward_acc.order.kind == "pairwise" and p.forward.order.kind == base.forward.order.kind
    assert p.forward.format.name == "float16" and p.backward_acc.format == base.backward_acc.format
    assert p.master_weights is False
    assert p.loss_scaling.mode == "dynamic" and p.loss_scaling.scale == 256
    assert p.loss_scaling.growth_interval == 50
    assert p.name == ("fp8+L=float16+O=bfloat16+fwd-acc=float16+bwd-order=pairwise"
                      "+ls=dynamic:256:50+mw=off")
    assert apply_changes(base, {}) is base
    assert make_policy("fp8", changes={"loss_scaling": "static:1024"}).name == "fp8+ls=static:1024"


def test_overrides_apply_per_layer():
    p = make_policy("float16", changes={"overrides": ("body.4=weights:float32,activations:"
                                                      "float32",)})
    assert p.for_layer("body.4").weights.name == "float32"
    assert p.for_layer("body.0").weights.name == "float16"


@pytest.mark.parametrize("text", ["", "static", "static:0", "dynamic:1:0", "none:3", "x:1",
                                  "dynamic:a"])
def test_bad_loss_scaling(text):
    with pytest.raises(UserError, match="--loss-scaling"):
        parse_loss_scaling(text)


@pytest.mark.parametrize("text", ["body.4", "=weights:float32", "x=weights", "x=colour:float32",
                                  "x=weights:float17"])
def test_bad_override(text):
    with pytest.raises(UserError, match="--override"):
        parse_override(text)


def test_inline_json_is_named_after_what_it_changes():
    p = make_policy(json.dumps({"base": "fp8", "loss_scaling": {"mode": "static",
                                                               "scale": 1024}}))
    assert p.name == "fp8+loss_scaling"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_prints_the_derived_name_and_keeps_runs_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["train", "--dtype", "fp8", "--net", "mlp", "--dataset", "digits", "--epochs", 1,
              "--no-progress"]
    r1 = run(*common)
    r2 = run(*common, "--loss-scaling", "static:1024")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert "precision policy 'fp8+ls=static:1024'" in r2.output
    dirs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(dirs) == 2 and all(d.startswith("mlp-digits-fp8-0") for d in dirs)
    flagged = [d for d in dirs if d != "mlp-digits-fp8-0"]
    assert len(flagged) == 1
    summary = json.loads((tmp_path / "runs" / flagged[0] / "summary.json").read_text())
    assert summary["policy"]["name"] == "fp8+ls=static:1024"
    assert summary["loss_scale"] == 1024.0
    # the resume of a flagged run takes its flags from config.json
    r3 = run("train", "--resume", tmp_path / "runs" / flagged[0], "--epochs", 2, "--no-progress")
    assert r3.exit_code == 0 and "fp8+ls=static:1024" in r3.output, r3.output


@pytest.mark.parametrize("args, words", [
    (["--dtype", "float32", "--loss-scaling", "static:8"], "--loss-scaling"),
    (["--dtype", "fp8", "--override", "nothing*=weights:float32"], "matches no layer"),
    (["--dtype", "fp8", "--weights", "float17"], "--weights"),
    (["--dtype", "fp8", "--backward-order", "blocked:0"], "blocked:0"),
    (["--dtype", "fp8", "--loss-scaling", "sometimes"], "--loss-scaling"),
])
def test_conflicts_are_one_line(tmp_path, args, words):
    r = run("train", "--net", "mlp", "--dataset", "digits", "--epochs", 1, "--no-progress",
            "--out", tmp_path / "x", *args)
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_help_names_every_form_of_dtype():
    text = " ".join(run("train", "--help").output.split())
    for form in ("a preset", "a format name", "policy JSON file", "inline JSON"):
        assert form in text
    for flag in ("--weights", "--activations", "--loss ", "--backward ", "--gradients",
                 "--optimizer-format", "--loss-scaling", "--master-weights", "--override",
                 "--forward-order", "--backward-accumulate"):
        assert flag in text


def test_compare_and_eval_take_the_flags(tmp_path):
    r = run("compare", "--dtypes", "fp8", "--net", "mlp", "--dataset", "digits", "--epochs", 1,
            "--no-progress", "--loss-scaling", "static:64", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    assert "fp8+ls=static:64" in r.output
    ck = next((tmp_path / "c").rglob("checkpoint.h5"))
    r = run("eval", ck, "--dtype", "fp8", "--optimizer-format", "float16")
    assert r.exit_code == 0 and "fp8+O=float16" in r.output, r.output
    r = run("eval", ck, "--weights", "float16")
    assert r.exit_code == 2 and "give --dtype too" in r.output


def test_loss_stage_flag():
    p = make_policy("posit8", changes={"loss_stage": "float64"})
    assert p.loss_stage == "float64" and p.name == "posit8+loss-stage=float64"
    assert get_precision("posit8").loss_stage == "L"
    r = run("train", "--dtype", "float16", "--loss-stage", "double", "--dataset", "digits")
    assert r.exit_code == 2 and "--loss-stage" in r.output


def test_gradient_underflows_are_counted_and_loss_scaling_lowers_them(tmp_path):
    """metrics.jsonl counts, per epoch, the B and G gradient elements that were nonzero
    before their rounding and 0 after it: fp8 without loss scaling loses far more."""
    counts = {}
    for ls in ("none", "static:4096"):
        out = tmp_path / ls.replace(":", "-")
        r = run("train", "--dtype", "fp8", "--loss-scaling", ls, "--net", "mlp", "--dataset",
                "digits", "--epochs", 1, "--no-progress", "--out", out)
        assert r.exit_code == 0, r.output
        row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        counts[ls] = row["gradient_underflows"]
    assert set(counts["none"]) == {"B", "G"}
    assert counts["none"]["B"] > 10 * max(1, counts["static:4096"].get("B", 0))
    assert counts["none"]["G"] > counts["static:4096"].get("G", 0)
