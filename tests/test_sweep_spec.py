"""Sweep specs: expansion, exclusion, [quick], stable ids and bad input, with no cluster."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from minifp.cli import main
from minifp.errors import UserError
from minifp.sweep import expand, load_spec, run_id
from minifp.sweep.spec import parse_spec
from minifp.train import TrainConfig

GRID = {"grid": {"dtype": ["float32", "float16"], "seed": [0, 1], "net": ["mlp"],
                 "dataset": ["digits"], "epochs": [1]}}


def test_expansion_order_exclusion_and_ids():
    spec = parse_spec(dict(GRID, exclude=[{"dtype": "float16", "seed": 1}]))
    runs = expand(spec)
    assert [(r.options["dtype"], r.options["seed"]) for r in runs] == \
        [("float32", 0), ("float32", 1), ("float16", 0)]
    assert len({r.id for r in runs}) == 3
    # the id is the canonical configuration's: key order and fixed/grid placement do not
    # change it, and a plain TrainConfig of the same options has it too
    other = parse_spec({"grid": {"seed": [0], "dtype": ["float32"]},
                        "fixed": {"net": "mlp", "dataset": "digits", "epochs": 1}})
    assert expand(other)[0].id == runs[0].id
    assert run_id(TrainConfig(dtype="float32", seed=0, net="mlp", dataset="digits",
                              epochs=1)) == runs[0].id
    # duplicates collapse: the same configuration twice is one run
    dup = parse_spec({"grid": {"weight_decay": [0.0, 0.0]}})
    assert len(expand(dup)) == 1


def test_quick_values_replace_grid_and_fixed():
    spec = parse_spec(dict(GRID, fixed={"batch_size": 64},
                           quick={"seed": [0], "epochs": 1, "batch_size": 32}))
    assert len(expand(spec)) == 4
    quick = expand(spec, quick=True)
    assert len(quick) == 2 and all(r.options["batch_size"] == 32 for r in quick)


@pytest.mark.parametrize("data, words", [
    ({"grid": {"dtype": ["float17"]}}, "float17"),
    ({"grid": {"colour": ["red"]}}, "unknown [grid] key 'colour'"),
    ({"grid": {"batch-size": [1]}}, "did you mean 'batch_size'"),
    ({"grid": {}}, "missing or empty"),
    ({"grid": {"dtype": []}}, "non-empty list"),
    ({"grid": {"dtype": ["fp8"]}, "fixed": {"dtype": "fp8"}}, "both [grid] and [fixed]"),
    ({"grid": {"out": ["x"]}}, "decided by the sweep"),
    ({"grid": {"dtype": ["fp8"]}, "exclude": [{"dtype": "fp8"}]}, "no run"),
    ({"grid": {"dtype": ["fp8"]}, "tables": 1}, "unknown top-level key"),
    ({"grid": {"dtype": ["fp8"], "loss_scaling": ["sometimes"]}}, "--loss-scaling"),
    ({"grid": {"epochs": ["three"]}}, "epochs = 'three' must be an int"),
    ({"grid": {"epochs": [True]}}, "epochs = True must be an int"),
    ({"grid": {"lr": ["0.1"]}}, "lr = '0.1' must be a number"),
    ({"grid": {"master_weights": [1]}}, "master_weights = 1 must be a bool"),
    ({"grid": {"dtype": [16]}}, "dtype = 16 must be a str"),
    ({"grid": {"seed": [-1]}}, "seed must be a non-negative integer"),
])
def test_bad_specs_are_one_line(data, words):
    with pytest.raises(UserError) as e:
        expand(parse_spec(data))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cli_dry_run_and_bad_input(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "tiny"\n[grid]\ndtype = ["float32", "float16"]\n'
                    'net = ["mlp"]\ndataset = ["digits"]\n')
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"),
                                  "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].startswith("sweep tiny: 2 runs") and len(lines) == 3
    assert "dtype=float16" in lines[2] and not (tmp_path / "o").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\n")
    for args, words in (([str(bad)], "not valid TOML"), (["nosuchspec"], "no shipped spec")):
        r = CliRunner().invoke(main, ["sweep", *args, "--out", str(tmp_path / "o"),
                                      "--dry-run"])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1
    assert load_spec(spec).name == "tiny"


def test_bundles_labels_and_quick_selection():
    spec = parse_spec({
        "grid": {"setup": [{"label": "A", "dtype": "float32"},
                           {"label": "B", "dtype": "posit(8,2)", "order": "exact",
                            "optimizer_format": "posit(16,2)", "master_weights": True},
                           {"dtype": "float16", "loss": "float32"}],
                 "seed": [0, 1]},
        "fixed": {"net": "mlp", "dataset": "digits", "epochs": 1},
        "exclude": [{"setup": "A", "seed": 1}],
        "reference": {"setup": "A"},
        "quick": {"setup": ["B"], "seed": [0]}})
    runs = expand(spec)
    assert [r.coords["setup"] for r in runs] == \
        ["A", "B", "B", "dtype=float16,loss=float32", "dtype=float16,loss=float32"]
    b = runs[1]
    assert b.options["optimizer_format"] == "posit(16,2)" and "label" not in b.options
    assert b.label(["setup", "seed"]) == "setup=B seed=0"
    # the id is the configuration's, not the label's
    assert b.id == run_id(TrainConfig(**b.options))
    quick = expand(spec, quick=True)
    assert [(r.coords["setup"], r.options["seed"]) for r in quick] == [("B", 0)]


@pytest.mark.parametrize("data, words", [
    ({"grid": {"setup": [{"label": "A", "dtype": "float32"}]}, "quick": {"setup": ["Z"]}},
     "labelled 'Z'"),
    ({"grid": {"setup": [{"label": "A", "colour": "red"}]}}, "unknown [grid.setup] key"),
    ({"grid": {"dtype": ["float32"]}, "reference": {"net": "mlp"}}, "not a [grid] key"),
    ({"grid": {"dtype": ["float32"]}, "expected": {"a": 1}}, "expected must be a list"),
])
def test_bad_bundles_and_references(data, words):
    with pytest.raises(UserError) as e:
        expand(parse_spec(data), quick=True)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_diverged_run_is_a_result_and_is_not_run_again(tmp_path):
    from minifp.sweep.task import execute
    options = {"net": "mlp", "dataset": "digits", "epochs": 1, "dtype": "float16",
               "optimizer": "adam", "lr": 0.001, "eps": 1e-8}
    with pytest.warns(Warning, match="eps=1e-08 rounds to 0"):
        row = execute(tmp_path / "r", "r", options)
    assert row["status"] == "failed" and row["diverged"] and "nan" in row["reason"]
    again = execute(tmp_path / "r", "r", options)
    assert again.get("skipped") and again["diverged"]
