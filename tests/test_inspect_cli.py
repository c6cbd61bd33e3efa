"""`minifp inspect`: the per-layer table, the lemma summary, --step, --backward, --json,
--plot and the one-line errors (digits, mlp, 32 samples: fast)."""
import json
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from minifp.cli import main

FAST = ["--net", "mlp", "--dataset", "digits", "--samples", "32"]
LAYERS = [("body.0", "Flatten"), ("body.1", "Linear"), ("body.2", "ReLU"),
          ("body.3", "Linear"), ("body.4", "ReLU"), ("body.5", "Linear"),
          ("body", "Sequential"), ("(model)", "ZooModel")]


def invoke(*args, input=None):
    return CliRunner().invoke(main, ["inspect", *[str(a) for a in args]], input=input)


def rows_of(output):
    """The table rows, {path: {column header: cell}}: lines whose first two cells are a
    layer path and its kind (cells are separated by two or more spaces; a blank events
    cell is left out)."""
    lines = output.splitlines()
    heads = re.split(r"\s{2,}", next(x for x in lines if x.startswith("layer")).strip())
    rows = {}
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 2 and (cells[0], cells[1]) in LAYERS:
            rows[cells[0]] = dict(zip(heads, cells))
    return rows


def summary_counts(output):
    def num(label):
        line = next(x for x in output.splitlines() if label in x)
        return int(line.split()[-1])
    return {"guaranteed": num("agreement guaranteed"), "agree": num("predictions agree"),
            "differ": num("predictions differ"), "bad": num("guaranteed but differ")}


def test_table_and_summary():
    r = invoke(*FAST)
    assert r.exit_code == 0, r.output
    rows = rows_of(r.output)
    assert list(rows) == [p for p, _ in LAYERS]
    assert "policy float16 against reference float64" in r.output
    assert rows["body.1"]["formats"] == "fp16/fp16 fp16 seq"       # the default table
    # every layer, containers included, has a bound and a ratio <= 1
    for path in ("body.1", "body.3", "body.5", "body.2", "body", "(model)"):
        assert 0 <= float(rows[path]["ratio"]) <= 1
    # the propagated bound is at least the propagated error
    for path in ("body.1", "body.5", "(model)"):
        assert float(rows[path]["prop bnd"]) >= float(rows[path]["prop err"])
    wide = rows_of(invoke(*FAST, "--wide").output)
    lin = wide["body.1"]
    assert lin["formats"] == "float16/float16 float16 sequential fma"
    for path in ("body.1", "body.5", "(model)"):
        assert float(wide[path]["prop bound"]) >= float(wide[path]["prop err"])
        assert wide[path]["ratio"] == rows[path]["ratio"]
    assert "delta within it on 32 samples" in r.output
    c = summary_counts(r.output)
    assert c["bad"] == 0
    assert c["agree"] + c["differ"] == 32
    assert 0 < c["guaranteed"] <= c["agree"]
    assert "float64 softmax" in r.output
    assert "first overflow / non-finite value        none" in r.output


def test_json_matches_table(tmp_path):
    js = tmp_path / "i.json"
    r = invoke(*FAST, "--json", js)
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    assert doc["complete"] and doc["policy"] == "float16" and doc["reference"] == "float64"
    assert [(rec["path"] or "(model)", rec["kind"]) for rec in doc["records"]] == LAYERS
    s = doc["summary"]
    c = summary_counts(r.output)
    assert (s["guaranteed"], s["agree"], s["differ"]) == (c["guaranteed"], c["agree"],
                                                          c["differ"])
    assert s["guaranteed_but_disagree"] == 0 and s["agree"] + s["disagree"] == 32
    assert s["first_overflow"] is None
    ps = s["per_sample"]
    gam, dlt = np.array(ps["gamma"]), np.array(ps["delta"])
    assert len(gam) == 32 and np.array_equal(gam >= 2 * dlt, np.array(ps["guaranteed"]))
    assert sum(ps["guaranteed"]) == s["guaranteed"]
    lin = doc["records"][1]
    assert lin["propagated_error"]["max_abs"] > 0 and lin["ratio"] <= 1
    assert lin["grad_error"] is None


def test_step_enter_p_quit():
    r = invoke(*FAST, "--step", input="\n\np\nq\n")
    assert r.exit_code == 0, r.output
    rows = rows_of(r.output)
    assert list(rows) == ["body.0", "body.1", "body.2"]      # quit on the third layer
    assert "-- body.2 (ReLU)" in r.output                      # the `p` statistics
    assert "output (policy)" in r.output and "|error| propagated" in r.output
    assert "min " in r.output and "std " in r.output and "underflows" in r.output
    assert "quit after 3 layer record(s)" in r.output
    assert "predictions agree" not in r.output


def test_step_through_to_the_end(tmp_path):
    js = tmp_path / "s.json"
    r = invoke(*FAST, "--step", "--json", js, input="\n" * len(LAYERS))
    assert r.exit_code == 0, r.output
    assert list(rows_of(r.output)) == [p for p, _ in LAYERS]
    assert summary_counts(r.output)["bad"] == 0
    assert json.loads(js.read_text())["complete"]


def test_step_end_of_input_quits():
    r = invoke(*FAST, "--step", input="x\n\n")
    assert r.exit_code == 0, r.output
    assert "unknown answer 'x'" in r.output and "quit after 2 layer record(s)" in r.output


def test_backward_columns(tmp_path):
    js = tmp_path / "b.json"
    r = invoke(*FAST, "--backward", "--wide", "--json", js)
    assert r.exit_code == 0, r.output
    header = next(x for x in r.output.splitlines() if x.startswith("layer"))
    assert header.split()[-7:] == ["grad", "err", "g.local", "g.bound", "g.ratio", "g.ovf",
                                   "g.unf"]
    rows = rows_of(r.output)
    lin = rows["body.1"]
    assert float(lin["grad err"]) > 0          # a gradient error arrives at Linear 1
    # the local backward error of Linear 1 is within its bound
    assert 0 < float(lin["g.local"]) <= float(lin["g.bound"])
    assert 0 < float(lin["g.ratio"]) <= 1
    assert [rows["body.0"][k] for k in ("grad err", "g.local", "g.bound", "g.ratio",
                                        "g.ovf", "g.unf")] == ["-"] * 6  # no input gradient
    # the default table: the gradient columns and one events column, the same numbers
    d = invoke(*FAST, "--backward")
    assert d.exit_code == 0, d.output
    header = next(x for x in d.output.splitlines() if x.startswith("layer"))
    assert re.split(r"\s{2,}", header)[-4:] == ["grad err", "g.local", "g.ratio", "events"]
    short = rows_of(d.output)
    for key in ("grad err", "g.local", "g.ratio", "prop err", "ratio"):
        assert short["body.1"][key] == lin[key]
    assert [short["body.0"][k] for k in ("grad err", "g.local", "g.ratio")] == ["-"] * 3
    doc = json.loads(js.read_text())
    lin = doc["records"][1]
    assert lin["grad_error"]["max_abs"] > 0
    assert set(lin["param_grad_errors"]) == {"weight", "bias"}
    assert set(lin["param_grad_ratios"]) == {"weight", "bias"}
    assert all(0 < v <= 1 for v in lin["param_grad_ratios"].values())
    assert lin["grad_local_error"]["max_abs"] <= lin["grad_bound_max"]
    assert lin["formats"]["activations"] == "float16"
    assert summary_counts(r.output)["bad"] == 0


def test_checkpoint(tmp_path):
    out = tmp_path / "run"
    t = CliRunner().invoke(main, ["train", "--net", "mlp", "--dataset", "digits", "--epochs",
                                  "2", "--dtype", "float32", "--batch-size", "256",
                                  "--no-progress", "--out", str(out)])
    assert t.exit_code == 0, t.output
    ck = out / "checkpoint.h5"
    r = invoke("--checkpoint", ck, "--samples", 32)
    assert r.exit_code == 0, r.output
    assert "from" in r.output and "trained under float32" in r.output and "digits" in r.output
    c = summary_counts(r.output)
    assert c["bad"] == 0 and c["agree"] + c["differ"] == 32
    line = next(x for x in r.output.splitlines() if "accuracy on the labels" in x)
    assert float(line.split()[-1]) > 0.5           # trained weights were used
    bad = invoke("--checkpoint", ck, "--net", "lenet5", "--samples", 8)
    assert bad.exit_code == 2 and "holds a mlp" in bad.output


def test_overflow_is_reported_at_its_layer(tmp_path):
    from minifp.data.datasets import write_h5
    rng = np.random.default_rng(0)
    path = tmp_path / "huge.h5"
    write_h5(path, rng.random((64, 1, 8, 8)).astype(np.float32), np.arange(64) % 4,
             (rng.random((16, 1, 8, 8)) * 10000).astype(np.float32), np.arange(16) % 4,
             {"name": "huge", "scale": 1.0, "classes": 4})
    js = tmp_path / "o.json"
    r = invoke("--dataset", path, "--samples", 16, "--json", js)
    assert r.exit_code == 0, r.output
    assert "first overflow / non-finite value        body.1 (Linear" in r.output
    assert "vacuous" in r.output
    s = json.loads(js.read_text())["summary"]
    assert s["first_overflow"]["path"] == "body.1" and s["guaranteed_but_disagree"] == 0


@pytest.mark.parametrize("args, words", [
    (["--net", "nosuchnet"], "unknown model"),
    (["--dataset", "nosuchdata"], "nosuchdata"),
    (["--dtype", "float99"], "--dtype"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--samples", "100000"], "larger than the 359 test samples"),
    (["--reference", "bfloat16"], "narrower"),
    (["--checkpoint", "/nonexistent/c.h5"], "does not exist"),
])
def test_bad_input_is_one_line(args, words):
    base = {"--net": "mlp", "--dataset": "digits", "--samples": "8"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = invoke(*[x for kv in base.items() for x in kv])
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("minifp: error:")


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "c.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    r = invoke("--checkpoint", bad, "--samples", 8)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_plot_draws_or_says_what_is_missing(tmp_path):
    png = tmp_path / "i.png"
    r = invoke(*FAST, "--plot", png)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.exit_code == 2 and "--plot needs matplotlib" in r.output
        assert not png.exists()
    else:
        assert r.exit_code == 0, r.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import raises ImportError
    png = tmp_path / "i.png"
    r = invoke("--net", "mlp", "--dataset", "nosuchdata", "--plot", png)
    assert r.exit_code == 2
    assert r.output.strip() == "minifp: error: --plot needs matplotlib: pip install -e '.[plot]'"
    assert not png.exists()
