"""One run of a sweep, as a worker executes it: train (or resume, or skip) in ``DIR/<id>/``.

:func:`execute` is the function a Dask worker calls.  It is idempotent: a run whose
``summary.json`` records the same configuration is not trained again (its result is
returned as it was), a run with a checkpoint resumes from it (bit-identical to an
uninterrupted run, as ``minifp train --resume``), anything else starts afresh.  So a task
that Dask reschedules after its worker died continues from the last epoch saved.

Besides the files of :mod:`minifp.train.rundir`, a sweep run writes

* ``log.txt``: what ``minifp train`` would print (appended to, one block per attempt);
* ``outputs.npz``: the final model on the test set, as :func:`minifp.train.loop.evaluate`
  computes it under the run's policy: ``softmax`` (its softmax outputs, rounded to the
  loss format L, held in float64, shape (N, classes)) and ``predictions`` (the argmax of
  its logits, the predictions the test accuracy counts); the reports compare them with a
  reference run's (prediction agreement, and the 16-bit paper's lemma,
  :func:`minifp.theory.lemma_report`).
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path

LOG = "log.txt"
OUTPUTS = "outputs.npz"


def config_of(run_dir, options: dict, device: str = "cpu"):
    """The TrainConfig of a sweep run: its options, written into ``run_dir``, without
    progress bars (its lines go to ``log.txt``)."""
    from ..train import TrainConfig
    return TrainConfig(**options, out=str(run_dir), progress=False, quiet=False,
                       device=device)


def same_run(config, summary: dict | None) -> bool:
    """Whether ``summary`` (a summary.json) records the run ``config`` defines: the same
    defining options and the same number of epochs."""
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        return False
    saved = summary["config"]
    return not config.differences(saved) and saved.get("epochs") == config.epochs


def finished(run_dir, config) -> dict | None:
    """The summary of a run that need not run again: complete, or failed by diverging (a
    deterministic outcome, reproduced by every retry), for this very configuration."""
    from ..train import rundir
    summary = rundir.read_summary(run_dir)
    if not same_run(config, summary):
        return None
    if summary.get("status") == "complete":      # (its outputs too: a kill between the
        complete = rundir.state(run_dir).kind == "complete"     # two resumes 0 epochs)
        return summary if complete and (Path(run_dir) / OUTPUTS).is_file() else None
    if summary.get("status") == "failed":
        return summary
    return None


def result_of(run_id: str, options: dict, summary: dict, **extra) -> dict:
    """The line of ``sweep.jsonl`` for a run that left ``summary``."""
    final = summary.get("final") or {}
    history_seconds = final.get("seconds")
    done = int(summary.get("epochs_done") or 0)
    wall = summary.get("wall_seconds")
    row = {"id": run_id, "status": summary.get("status"), "reason": summary.get("reason", ""),
           "options": options, "epochs_done": done,
           "test_accuracy": final.get("test_accuracy"), "test_loss": final.get("test_loss"),
           "train_loss": final.get("train_loss"),
           "skipped_steps": summary.get("skipped_steps"),
           "seconds_per_epoch": (wall / done if done and wall is not None else history_seconds),
           "wall_seconds": wall,
           # a run that failed by diverging (NaN loss, every step skipped, frozen weights):
           # a result, which every retry would reproduce
           "diverged": summary.get("status") == "failed"}
    row.update(extra)
    return row


def _log(run_dir: Path):
    path = run_dir / LOG

    def echo(line: str):
        with open(path, "a") as f:
            f.write(line.rstrip("\n") + "\n")
    return echo


def execute(run_dir, run_id: str, options: dict, device: str = "cpu", on_epoch=None) -> dict:
    """Train the run ``options`` in ``run_dir`` (resuming or skipping as the module says)
    and return its result row (see :func:`result_of`).  A run that fails, by diverging or
    with an error, returns a row with status ``failed`` and the reason; only the death of
    the process itself escapes (Dask then reschedules the task).  ``on_epoch(run_dir,
    row)``: called after each epoch's checkpoint (tests kill workers from it)."""
    from ..train import rundir
    from ..train.loop import RunFailed, evaluate, run

    run_dir = Path(run_dir)
    started = time.time()
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    config = config_of(run_dir, options, device)
    done = finished(run_dir, config)
    if done is not None:
        return result_of(run_id, options, done, skipped=True, **where)
    run_dir.mkdir(parents=True, exist_ok=True)
    st = rundir.state(run_dir)
    resume = st.kind in ("resumable", "complete")
    echo = _log(run_dir)
    echo(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {where['host']} pid {where['pid']}: "
         + (f"resuming from epoch {st.epochs_done}" if resume else "starting"))
    try:
        hook = None if on_epoch is None else (lambda row: on_epoch(run_dir, row))
        result = run(config, resume=resume, overwrite=not resume, echo=echo, on_epoch=hook)
        _, _, pred, probs = evaluate(result.model, result.data.x_test, result.data.y_test,
                                     result.policy)
        if probs is not None:
            _save_outputs(run_dir / OUTPUTS, probs, pred)
        summary = result.summary
    except RunFailed as err:
        echo(f"failed: {err}")
        summary = rundir.read_summary(run_dir) or {}
        summary = dict(summary, status="failed", reason=str(err))
    except Exception as err:      # noqa: BLE001 - a run's error is its result, not the sweep's
        echo(traceback.format_exc())
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        return {"id": run_id, "status": "failed", "reason": reason, "options": options,
                "resumed_from": st.epochs_done if resume else None,
                "seconds": time.time() - started, **where}
    return result_of(run_id, options, summary, resumed_from=st.epochs_done if resume else None,
                     seconds=time.time() - started, **where)


def _save_outputs(path: Path, probs, predictions) -> None:
    import numpy as np

    from ..jsonio import replacing
    with replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, softmax=np.asarray(probs, np.float64),
                     predictions=np.asarray(predictions, np.int64))


def read_outputs(run_dir):
    """(softmax, predictions) saved by a run, or None when it has none readable."""
    import numpy as np
    path = Path(run_dir) / OUTPUTS
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["softmax"], data["predictions"]
    except (OSError, ValueError, KeyError):
        return None


