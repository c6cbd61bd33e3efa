"""``minifp sweep`` at the command line: bad input gives one line and a non-zero exit and
loses nothing; the shipped specs expand; reports from a folder written without a cluster."""
from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from minifp.cli import main
from minifp.sweep import engine, expand, load_spec, report
from minifp.sweep.spec import parse_spec
from minifp.sweep.task import OUTPUTS, execute, read_outputs

TINY = """
name = "tiny"
[grid]
dtype = ["float32", "float16"]
seed = [0, 1]
net = ["mlp"]
dataset = ["digits"]
epochs = [1]
"""


def _cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _one_line_error(result, words, code=2):
    assert result.exit_code == code, result.output
    err = result.output.strip().splitlines()[-1] if result.output.strip() else ""
    assert err.startswith("minifp: error:") and "\n" not in err and "Traceback" not in err
    assert words in err, err


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_unreachable_scheduler_is_one_line(tiny, tmp_path):
    pytest.importorskip("distributed")
    r = _cli("sweep", str(tiny), "--out", str(tmp_path / "o"), "--scheduler",
             "tcp://127.0.0.1:9", "--timeout", "1")
    _one_line_error(r, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_folder_that_cannot_hold_the_sweep(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    _one_line_error(_cli("sweep", str(tiny), "--out", str(blocker)), "is a file")
    _one_line_error(_cli("sweep", str(tiny), "--out", str(blocker / "sub")),
                    "cannot write the sweep into")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    _one_line_error(_cli("sweep", str(tiny), "--out", str(foreign)), "not a minifp sweep")
    assert blocker.read_text() == "keep me" and (foreign / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_folder_holding_another_sweep_is_refused_untouched(tiny, tmp_path):
    out = tmp_path / "o"
    spec = load_spec(str(tiny))
    engine.open_folder(out, spec, False, expand(spec))
    before = (out / engine.MANIFEST).read_text()
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace('"tiny"', '"other"'))
    _one_line_error(_cli("sweep", str(other), "--out", str(out)), "holds another sweep")
    _one_line_error(_cli("sweep", str(tiny), "--out", str(out), "--quick"),
                    "holds another sweep")
    assert (out / engine.MANIFEST).read_text() == before


def test_without_distributed_says_how_to_install(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    _one_line_error(_cli("sweep", str(tiny), "--out", str(tmp_path / "o")),
                    "pip install 'minifp[sweep]'")
    r = _cli("sweep", str(tiny), "--out", str(tmp_path / "o"), "--dry-run")   # no Dask needed
    assert r.exit_code == 0 and "4 runs" in r.output


@pytest.mark.parametrize("args, words", [
    (["nosuchspec", "--out", "x"], "no shipped spec of that name"),
    (["positnn", "--out", "x", "--workers", "2", "--scheduler", "tcp://h:1"],
     "exclude each other"),
    (["positnn", "--out", "x", "--device", "tpu"], "use cpu or cuda"),
    (["report", "."], "holds no minifp sweep"),
])
def test_bad_command_lines(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_error(_cli("sweep", *args), words)


def test_bad_spec_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\n")
    _one_line_error(_cli("sweep", str(bad), "--out", "x", "--dry-run"), "not valid TOML")
    bad.write_text('[grid]\ndtype = ["posit(8,9)"]\n')
    _one_line_error(_cli("sweep", str(bad), "--out", "x", "--dry-run"), "posit(8,9)")


@pytest.mark.parametrize("name", ["yun16", "positnn", "fp8"])
def test_shipped_specs_expand(name):
    spec = load_spec(name)
    full, quick = expand(spec), expand(spec, quick=True)
    assert len(quick) < len(full)
    assert len({r.id for r in full}) == len(full)
    assert spec.expected and spec.reference
    assert all(e.get("source") for e in spec.expected)
    r = _cli("sweep", name, "--out", "unused", "--quick", "--dry-run")
    assert r.exit_code == 0 and f"{len(quick)} runs" in r.output


def test_report_from_runs_executed_in_process(tmp_path):
    """The task and the report without a cluster: two seeds of two policies, a bundle
    with a label, the reference, and an expected value beside the measured one."""
    spec = parse_spec({
        "name": "pair",
        "grid": {"setup": [{"label": "F32", "dtype": "float32"},
                           {"label": "F16", "dtype": "float16"}], "seed": [0, 1]},
        "fixed": {"net": "mlp", "dataset": "digits", "epochs": 1},
        "reference": {"setup": "F32"},
        "expected": [{"where": {"setup": "F16"}, "test_accuracy": 0.5, "source": "made up"}]})
    runs = expand(spec)
    out = tmp_path / "o"
    engine.open_folder(out, spec, False, runs)
    for r in runs[:3]:                     # the last run is left out: "not run yet"
        engine.append_result(out, execute(out / r.id, r.id, r.options))
    again = execute(out / runs[0].id, runs[0].id, runs[0].options)
    assert again.get("skipped") is True    # idempotent: a finished run is not trained again
    softmax, predictions = read_outputs(out / runs[0].id)
    (out / runs[0].id / OUTPUTS).unlink()  # killed after its summary, before its outputs:
    again = execute(out / runs[0].id, runs[0].id, runs[0].options)   # resumes 0 epochs
    assert again.get("resumed_from") == 1 and not again.get("skipped")
    softmax2, predictions2 = read_outputs(out / runs[0].id)
    assert softmax2.tobytes() == softmax.tobytes() and (predictions2 == predictions).all()
    table = report.build(out)
    assert (table.total, table.complete, table.missing) == (4, 3, 1)
    f32, f16 = table.groups
    assert f32.coords == {"setup": "F32"} and f16.expected["source"] == "made up"
    assert f32.agreement == [1.0, 1.0] and f32.lemma == [1.0, 1.0]
    assert len(f16.agreement) == 1 and 0.9 < f16.agreement[0] <= 1
    text = report.format_table(table)
    assert "F16" in text and "made up" in text and "50.00" in text
    data = json.loads(_cli("sweep", "report", str(out), "--json").output)
    assert data["groups"][0]["test_accuracy"]["n"] == 2 and data["missing"] == 1
    md = tmp_path / "t.md"
    r = _cli("sweep", "report", str(out), "--markdown", str(md), "--reference", "setup=F16")
    assert r.exit_code == 0 and "| setup |" in md.read_text()
    _one_line_error(_cli("sweep", "report", str(out), "--reference", "setup=F64"),
                    "no run has setup=F64")
    pytest.importorskip("matplotlib")
    png = tmp_path / "t.png"
    assert _cli("sweep", "report", str(out), "--plot", str(png)).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_gpu_workers_one_per_gpu_each_seeing_its_own(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    specs = engine.gpu_worker_specs(2)
    assert [s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for s in specs.values()] == ["0", "1"]
    assert all(s["options"]["resources"] == {"GPU": 1} and s["options"]["nthreads"] == 1
               for s in specs.values())
    monkeypatch.chdir(tmp_path)
    from minifp import backend
    if backend.gpu_available():
        pytest.skip("a GPU is here")
    _one_line_error(_cli("sweep", "fp8", "--quick", "--out", "g", "--device", "cuda"),
                    "no GPU here")
    assert not (tmp_path / "g").exists()


def test_a_folder_in_use_by_another_sweep_is_refused(tiny, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "o"
    out.mkdir()
    held = engine.lock_folder(out)
    if held is None:
        pytest.skip("no fcntl here")
    try:
        r = _cli("sweep", str(tiny), "--out", str(out), "--workers", "1")
        _one_line_error(r, "in use by another minifp sweep (pid ")
        assert not (out / engine.MANIFEST).exists()
    finally:
        held.close()
    # the lock file alone does not make the folder foreign
    spec = load_spec(str(tiny))
    assert engine.check_folder(out, spec, False) == out
