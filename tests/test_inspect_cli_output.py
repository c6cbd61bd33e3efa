"""`minifp inspect`'s output: the default table fits 120 columns (--wide has every
column), the plot's title names no full path, progress bars on stderr only, --quiet,
strict JSON, the help and its examples, one-line warnings."""
import dataclasses
import math
import re
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from minifp.cli import inspect as cli_inspect
from minifp.cli import main
from minifp.jsonio import loads_strict

FAST = ["--net", "mlp", "--dataset", "digits", "--samples", "64"]
CONV = ["--net", "lenet5", "--dataset", "digits", "--samples", "16", "--backward"]


def invoke(*args, input=None):
    return CliRunner().invoke(main, ["inspect", *[str(a) for a in args]], input=input)


def header_of(text):
    return next(x for x in text.splitlines() if x.startswith("layer"))


@pytest.fixture(scope="module")
def mlp_records():
    """The records of a small inspection (mlp on digits, --backward)."""
    from minifp.data import load_dataset
    from minifp.inspect import inspect
    from minifp.nn.zoo import build_model
    data = load_dataset("digits")
    model = build_model("mlp", data.input_shape, data.classes, seed=0)
    return inspect(model, data.x_test[:8], "float16", backward=True, targets=data.y_test[:8])


# ---------------------------------------------------------------------------- 1. width
@pytest.mark.parametrize("args", [FAST, CONV, FAST + ["--backward"], CONV[:-1]],
                         ids=["mlp", "lenet5-backward", "mlp-backward", "lenet5"])
def test_default_output_fits_120_columns(args):
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) > 15
    wide = [(len(x), x) for x in lines if len(x) > 120]
    assert not wide, wide                 # the table, legend, heading and summary alike
    header = re.split(r"\s{2,}", header_of(r.stdout))
    assert header[:2] == ["layer", "kind"] and header[-1] == "events"
    assert {"prop err", "loc err", "ratio"} <= set(header)
    if "--backward" in args:
        assert {"grad err", "g.local", "g.ratio"} <= set(header)


@pytest.mark.parametrize("args", [FAST, CONV], ids=["mlp", "lenet5-backward"])
def test_wide_keeps_every_column(args):
    r = invoke(*args, "--wide")
    assert r.exit_code == 0, r.output
    header = header_of(r.stdout)
    cols = cli_inspect._COLS + (cli_inspect._GRAD_COLS if "--backward" in args else [])
    assert re.split(r"\s{2,}", header.strip()) == [c[0] for c in cols]
    assert len(header) > 120                                       # as wide as it was
    assert "float16/float16 float16 sequential fma" in r.stdout    # formats in full
    assert "--wide: all columns" not in r.stdout                   # no legend


def test_step_table_fits_120_columns():
    r = invoke(*FAST, "--backward", "--step", input="\n" * 3 + "q\n")
    assert r.exit_code == 0, r.output
    assert all(len(x) <= 120 for x in r.stdout.splitlines())
    assert re.split(r"\s{2,}", header_of(r.stdout))[-4:] == ["grad err", "g.local",
                                                              "g.ratio", "events"]


def test_table_fits_120_whatever_the_names(mlp_records):
    """Deep paths, long class names, every count nonzero and large: still 120."""
    from minifp.cli.inspect import Table
    long = []
    for i, r in enumerate(mlp_records):
        long.append(dataclasses.replace(
            r, path=f"body.{i}.blocks.{i + 10}.attention.out_projection" if r.path else "",
            depth=7 if r.path else 0, kind="MultiHeadSelfAttentionWithRotaryEmbedding",
            overflows=123456, saturated=7, underflows=98765, zeroed=12, nonfinite=4_500_000,
            grad_overflows=10, grad_underflows=333_333,
            output_shape=(4096, 512, 128, 128)))
    for backward in (False, True):
        rows = [(r, r if backward else None) for r in long]
        for table in (Table(backward, rows=rows), Table(backward)):     # after / --step
            lines = [table.header()] + [table.row(r, g) for r, g in rows] + table.legend()
            assert max(len(x) for x in lines) <= 120
            body = "\n".join(lines)
            assert "\u2026" in body                       # cut with an ellipsis
            assert "out_projection" in body               # the end of each path is kept
        wide = Table(backward, wide=True)
        assert len(wide.header()) > 120 and "\u2026" not in wide.row(*rows[1])


def test_cells_are_abbreviated_sensibly(mlp_records):
    from minifp.cli.inspect import Table, _formats_short, _short_accumulation, fit_path
    assert _short_accumulation("float16 sequential fma") == "fp16 seq"
    assert _short_accumulation("float32 blocked:32 no-fma") == "fp32 blk32 nofma"
    assert _short_accumulation("bfloat16 pairwise fma toward_zero") == "bf16 pair toward_zero"
    assert _short_accumulation("exact (quire)") == "quire"
    assert _short_accumulation("exact (Kulisch)") == "exact"
    assert _short_accumulation("float32 native (order unspecified)") == "fp32 native"
    # paths: indentation gives way first, then middle components; numbers are kept
    assert fit_path("body.1", 2, 10) == "  body.1"
    assert fit_path("body.4.res.shortcut.0", 5, 21) == "body.4.res.shortcut.0"
    assert fit_path("body.4.res.shortcut.0", 5, 18) in ("body.4\u2026shortcut.0",
                                                       "\u20264.res.shortcut.0")
    assert fit_path("body.1.attn.out_proj", 3, 16) == "\u20261.attn.out_proj"
    assert fit_path("", 0, 10) == "(model)"
    assert len(fit_path("averyveryverylongname", 0, 10)) == 10
    rec = next(r for r in mlp_records if r.kind == "Linear")
    row = Table(False, rows=[(rec, None)]).row(rec)
    assert "fp16/fp16 fp16 seq" in row
    assert _formats_short(rec, 13) == "fp16 fp16 seq"     # same weights format left out
    assert _formats_short(rec, 8) == "fp16 fp\u2026"


# ---------------------------------------------------------------------------- 2. title
def test_plot_title_has_no_full_path():
    from minifp.cli.inspect import plot_title
    t = plot_title("mlp from run-fp16/checkpoint.h5 (epoch 2, trained under float16)",
                   "/very/long/path/to/datasets/huge", 64, "float16", "float64")
    assert t == ("mlp from run-fp16/checkpoint.h5 (epoch 2, trained under float16) on "
                 "huge, 64 samples: float16 vs float64")
    assert cli_inspect.short_path("/a/b/run-3/checkpoint.h5") == "run-3/checkpoint.h5"
    assert cli_inspect.short_path("checkpoint.h5") == "checkpoint.h5"


def test_plot_title_end_to_end(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure
    from minifp.checkpoint import save_checkpoint
    from minifp.data import load_dataset
    from minifp.nn.zoo import build_model
    data = load_dataset("digits")
    model = build_model("mlp", data.input_shape, data.classes, seed=3).to("float32")
    ck = tmp_path / "deep" / "folders" / "run-fp32" / "checkpoint.h5"
    ck.parent.mkdir(parents=True)
    save_checkpoint(ck, model, epoch=2, policy="float32",
                    extra={"config": {"net": "mlp", "dataset": "digits", "seed": 3}})
    titles = []
    save = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **k):
        titles.append(fig._suptitle.get_text())
        return save(fig, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    png = tmp_path / "i.png"
    r = invoke("--checkpoint", ck, "--samples", 16, "--plot", png)
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert titles == ["mlp from run-fp32/checkpoint.h5 (epoch 2, trained under float32) on "
                      "digits, 16 samples: float16 vs float64"]
    assert str(tmp_path) not in titles[0]
    assert str(ck) in r.stdout                  # the heading still names the full path


# ---------------------------------------------------------------------------- 3. progress
def test_progress_bar_on_stderr_only():
    off = invoke(*FAST, "--no-progress")
    on = invoke(*FAST, "--progress")
    default = invoke(*FAST)                       # stderr is not a terminal here
    assert off.exit_code == on.exit_code == default.exit_code == 0, on.output
    assert on.stdout == off.stdout == default.stdout
    assert off.stderr == "" and default.stderr == ""
    assert "inspect" in on.stderr and "layer" in on.stderr and "8/8" in on.stderr


def test_quiet_prints_only_the_summary():
    r = invoke(*FAST, "--quiet", "--progress")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""                         # no bar, even when asked
    assert r.stdout.startswith("summary over 64 samples")
    assert "layer" not in r.stdout and "inspect mlp" not in r.stdout
    assert "predictions agree" in r.stdout and "first overflow" in r.stdout
    full = invoke(*FAST)
    assert full.stdout.endswith(r.stdout)         # the same summary
    step = invoke(*FAST, "-q", "--step", input="\n\nq\n")
    assert step.exit_code == 0 and "body.1" in step.stdout   # --step still shows rows


# ---------------------------------------------------------------------------- 4. JSON
def _walk(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from _walk(x)
    else:
        yield v


def test_json_is_strict_with_non_finite_values(tmp_path):
    """e4m3 (no infinity: overflow is NaN) on inputs up to 10^4: NaN outputs, infinite
    errors and bounds in the records -- null in the file, never NaN/Infinity or strings."""
    from minifp.data import load_dataset
    from minifp.data.datasets import write_h5
    from minifp.inspect import inspect
    from minifp.nn.zoo import build_model
    rng = np.random.default_rng(0)
    path = tmp_path / "huge.h5"
    write_h5(path, rng.random((64, 1, 8, 8)).astype(np.float32), np.arange(64) % 4,
             (rng.random((16, 1, 8, 8)) * 10000).astype(np.float32), np.arange(16) % 4,
             {"name": "huge", "scale": 1.0, "classes": 4})
    # the same run in memory: it really has non-finite numbers
    data = load_dataset(path)
    model = build_model("mlp", data.input_shape, data.classes, seed=0)
    recs = inspect(model, data.x_test[:16], "e4m3", backward=True, targets=data.y_test[:16])
    lin = recs[1]
    assert lin.nan > 0 and math.isinf(lin.propagated_error.max_abs)
    assert math.isinf(lin.bound_max) and math.isinf(lin.propagated_bound_max)
    assert math.isinf(lin.grad_error.max_abs)

    js = tmp_path / "e4m3.json"
    r = invoke("--dataset", path, "--samples", 16, "--dtype", "e4m3", "--backward",
               "--json", js)
    assert r.exit_code == 0, r.output
    text = js.read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = loads_strict(text)
    assert not [v for v in _walk(doc) if isinstance(v, str) and v.strip("+-").lower()
                in ("inf", "nan", "infinity")]
    j = doc["records"][1]
    assert j["path"] == "body.1" and j["nan"] == lin.nan
    assert j["propagated_error"]["max_abs"] is None
    assert j["bound_max"] is None and j["propagated_bound_max"] is None
    assert j["grad_error"]["max_abs"] is None
    assert doc["summary"]["delta_bound_max"] is None
    assert doc["summary"]["first_overflow"]["path"] == "body.0"


# ---------------------------------------------------------------------------- 5. help
def test_every_option_has_help_and_examples_run():
    cmd = cli_inspect.inspect_command
    ctx = cmd.make_context("inspect", [])
    missing = [p.name for p in cmd.get_params(ctx) if not getattr(p, "help", None)]
    assert missing == []
    r = CliRunner().invoke(main, ["inspect", "--help"])
    assert r.exit_code == 0
    assert "Examples:" in r.output
    examples = [x.strip() for x in r.output.split("Examples:")[1].splitlines()
                if x.strip().startswith("minifp inspect")]
    assert len(examples) >= 4
    for ex in examples:           # one example per line (\b), each a valid command line
        cmd.make_context("inspect", ex.split()[2:])
    for opt in ("--wide", "--progress / --no-progress", "--quiet", "--json", "--step"):
        assert opt in r.output


# ---------------------------------------------------------------------------- 6. warnings
def test_warnings_are_one_line(monkeypatch):
    summary = cli_inspect._summary

    def noisy(*a, **k):
        warnings.warn("overflow encountered\n    in the softmax", RuntimeWarning)
        return summary(*a, **k)

    monkeypatch.setattr(cli_inspect, "_summary", noisy)
    quiet = invoke(*FAST, "--no-progress")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "minifp: warning: overflow encountered in the softmax\n"
    assert ".py" not in quiet.stderr
    loud = invoke(*FAST, "--progress")              # above the bar, still one line
    assert "minifp: warning: overflow encountered in the softmax\n" in loud.stderr
    assert loud.stdout == quiet.stdout
