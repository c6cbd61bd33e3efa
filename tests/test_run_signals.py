"""Kills and interrupts of `minifp train` at fixed points, in a subprocess: whatever the
moment, the run directory stays complete, resumable or failed, and resuming (or re-running
the same command) ends bit-identical to a run that was never stopped, with no gap in
metrics.jsonl."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from minifp.train import rundir
from minifp.checkpoint import load_checkpoint
from minifp.cli import main
from minifp.jsonio import loads_strict

ARGS = ["train", "--dataset", "digits", "--batch-size", "256", "--no-progress",
        "--epochs", "3"]

# Runs the CLI with one function wrapped so that the process stops itself at a point:
#   in-epoch E        after the 2nd training batch of epoch E
#   after-metrics E   the metrics line of epoch E is written, its checkpoint not renamed
#   mid-checkpoint E  the temporary checkpoint of epoch E is written, not renamed
#   after-checkpoint E  the checkpoint of epoch E is in place
# with SIGKILL, SIGINT or SIGTERM sent to itself.
DRIVER = r"""
import os, signal, sys
point, epoch, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
import minifp.checkpoint as ck, minifp.data as data, minifp.train.rundir as rd
def stop():
    os.kill(os.getpid(), sig)
if point == "after-metrics":
    orig_m = rd.append_metrics
    def append_metrics(d, row):
        orig_m(d, row)
        if row["epoch"] == epoch:
            stop()
    rd.append_metrics = append_metrics
elif point in ("mid-checkpoint", "after-checkpoint"):
    orig_w, orig_s = ck._write_file, ck.save_checkpoint
    def write_file(tmp, model, opt, sc, rng, ep, *a):
        orig_w(tmp, model, opt, sc, rng, ep, *a)
        if point == "mid-checkpoint" and ep == epoch and "best" not in tmp:
            stop()
    def save_checkpoint(path, *a, **k):
        out = orig_s(path, *a, **k)
        if point == "after-checkpoint" and a[4] == epoch and "best" not in str(path):
            stop()
        return out
    ck._write_file, ck.save_checkpoint = write_file, save_checkpoint
elif point == "in-epoch":
    orig_b, seen = data.batches, {"epoch": 0}
    def batches(*a, **k):
        shuffled = k.get("rng") is not None
        if shuffled:
            seen["epoch"] += 1
        for i, b in enumerate(orig_b(*a, **k)):
            if shuffled and seen["epoch"] == epoch and i == 2:
                stop()
            yield b
    data.batches = batches
from minifp.cli import main
main(sys.argv[4:])
"""


def stopped_run(out, point, epoch, sig="SIGKILL"):
    proc = subprocess.run([sys.executable, "-c", DRIVER, point, str(epoch), sig, *ARGS,
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def assert_same_as(reference, out):
    pa = load_checkpoint(reference / "checkpoint.h5")["params"]
    pb = load_checkpoint(out / "checkpoint.h5")["params"]
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    ma, mb = rundir.read_metrics(reference), rundir.read_metrics(out)
    assert [m["epoch"] for m in mb] == [1, 2, 3]          # no gap, no duplicate
    assert [m["test_loss"] for m in ma] == [m["test_loss"] for m in mb]
    for line in (out / "metrics.jsonl").read_text().splitlines():
        loads_strict(line)
    assert loads_strict((out / "summary.json").read_text())["status"] == "complete"


def resume(out):
    r = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("point, epoch, kind, saved", [
    ("in-epoch", 1, "failed", 0),
    ("after-metrics", 2, "resumable", 1),       # the kill between metrics and checkpoint
    ("mid-checkpoint", 2, "resumable", 1),
    ("after-checkpoint", 2, "resumable", 2),
    ("in-epoch", 3, "resumable", 2),
])
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference, point, epoch, kind,
                                              saved):
    out = tmp_path / "run"
    proc = stopped_run(out, point, epoch)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    st = rundir.state(out)
    assert (st.kind, st.epochs_done) == (kind, saved)
    if point == "mid-checkpoint":
        assert any(".tmp-" in p.name for p in out.iterdir())
    if kind == "failed":       # the same command again replaces it, no --overwrite
        r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
        assert r.exit_code == 0 and "replacing the failed run" in r.output, r.output
    else:
        r = resume(out)
        assert f"resuming from epoch {saved} of 3" in r.output
    assert not any(".tmp-" in p.name for p in out.iterdir())
    assert_same_as(reference, out)


@pytest.mark.parametrize("point, epoch, sig, saved", [
    ("in-epoch", 2, "SIGINT", 1),
    ("after-metrics", 2, "SIGINT", 1),
    ("in-epoch", 2, "SIGTERM", 1),
    ("in-epoch", 1, "SIGINT", 0),
])
def test_interrupt_says_where_and_how_to_resume(tmp_path, reference, point, epoch, sig,
                                                saved):
    out = tmp_path / "run"
    proc = stopped_run(out, point, epoch, sig)
    assert proc.returncode == 130, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert err[-1] == "minifp: interrupted"
    summary = loads_strict((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["saved_epoch"] == saved
    if saved:
        assert err[-2] == (f"minifp: interrupted in epoch {epoch}; the last checkpoint is "
                           f"{out / 'checkpoint.h5'} (epoch {saved}); resume with: "
                           f"minifp train --resume {out}")
        r = resume(out)
        assert f"resuming from epoch {saved} of 3" in r.output
    else:
        assert err[-2] == f"minifp: interrupted in epoch 1; no checkpoint was written in {out}"
        assert rundir.state(out).kind == "failed"
        r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert_same_as(reference, out)


def test_stale_temporary_of_a_live_process_is_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    mine = out / f"checkpoint.h5.tmp-{os.getppid()}"      # a live process (our parent)
    dead = out / "checkpoint.h5.tmp-999999999"
    mine.write_bytes(b"x")
    dead.write_bytes(b"x")
    assert rundir.clean_temporaries(out) == [dead.name]
    assert mine.exists()
