"""Running a sweep on Dask ``distributed``: a local cluster by default, any cluster beyond.

The sweep's folder ``DIR`` holds

* ``sweep.json``: the manifest (the spec's name, whether ``--quick``, the spec itself and
  the runs with their ids); a folder holding another sweep is refused;
* ``sweep.jsonl``: one strict-JSON line per run result, appended (and fsynced) as each
  arrives, so an interrupted sweep loses nothing it finished;
* ``<id>/``: each run's directory (:mod:`minifp.sweep.task`).

Each run is one task, submitted with the key ``<run id>@<folder tag>`` (the tag, a hash of
``DIR``'s absolute path, keeps two sweeps of the same runs on one shared scheduler apart)
and consumed with ``as_completed``.
The task is idempotent (:func:`minifp.sweep.task.execute`), so a worker that dies
mid-run costs only the epochs since its last checkpoint: the nanny restarts it, the
scheduler resubmits the task and it resumes.  A run whose workers die more often than the
scheduler's ``allowed-failures`` (Dask's default: 3) is recorded as failed with the
reason, and the sweep goes on.  Rerunning the same command continues a sweep: finished
runs are not submitted again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..jsonio import dumps, write_atomic
from . import task as _task
from .spec import Run, SweepSpec

#: seconds without a finished run after which the progress line is printed anyway
QUIET_SECONDS = 60.0
MANIFEST = "sweep.json"
LOCK = ".minifp-sweep.lock"
RESULTS = "sweep.jsonl"
INSTALL_HINT = ("minifp sweep runs its runs on Dask distributed, which is not installed: "
                "pip install 'minifp[sweep]' (or pip install distributed)")


def require_distributed():
    """The ``distributed`` module, or a one-line UserError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return distributed


# ---- the sweep's folder --------------------------------------------------------------

def spec_data(spec: SweepSpec) -> dict:
    return {"grid": spec.grid, "fixed": spec.fixed, "exclude": list(spec.exclude),
            "quick": spec.quick, "expected": list(spec.expected), "reference": spec.reference,
            "description": spec.description}


def read_manifest(out) -> dict | None:
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path} is not a minifp sweep manifest (unreadable)") from None
    if not isinstance(data, dict) or data.get("format") != "minifp-sweep":
        raise UserError(f"{path} is not a minifp sweep manifest")
    return data


def open_folder(out, spec: SweepSpec, quick: bool, runs: list[Run]) -> Path:
    """Check that ``out`` may hold this sweep (:func:`check_folder`) and write its
    manifest; a one-line UserError when it cannot be written."""
    out = check_folder(out, spec, quick)
    from .. import __version__
    data = {"format": "minifp-sweep", "version": 1, "name": spec.name, "quick": bool(quick),
            "source": spec.source, "spec": spec_data(spec), "minifp": __version__,
            "varying": varying_keys(spec, runs),
            "runs": [{"id": r.id, "options": r.options, "coords": r.coords} for r in runs]}
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / MANIFEST, data)
    except OSError as err:
        raise UserError(f"cannot write the sweep into {out} "
                        f"({err.strerror or err})") from None
    return out


def lock_folder(out: Path):
    """Hold ``out``'s lock file for the life of the returned handle (close it to let go),
    so that two ``minifp sweep`` processes never run into one folder at once; a one-line
    UserError naming the holder otherwise.  Where ``fcntl`` is missing, nothing is
    locked."""
    try:
        import fcntl
    except ImportError:          # not POSIX
        return None
    path = out / LOCK
    try:
        f = open(path, "a+")
    except OSError as err:
        raise UserError(f"cannot write the sweep into {out} "
                        f"({err.strerror or err})") from None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise UserError(f"--out {out} is in use by another minifp sweep ({holder}); wait "
                        f"for it, or use another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    f.flush()
    return f


def check_folder(out, spec: SweepSpec, quick: bool) -> Path:
    """Check, writing nothing, that ``out`` may hold this sweep: new, empty, or holding
    this same sweep (same name, same ``--quick``).  One-line UserErrors otherwise."""
    out = Path(out)
    label = f"{spec.name!r}{' (--quick)' if quick else ''}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None and out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        raise UserError(f"--out {out} holds files that are not a minifp sweep; use an empty "
                        f"or new folder")
    if manifest is not None and (manifest.get("name") != spec.name
                                 or bool(manifest.get("quick")) != bool(quick)):
        other = f"{manifest.get('name')!r}{' (--quick)' if manifest.get('quick') else ''}"
        raise UserError(f"--out {out} holds another sweep ({other}, not {label}); use "
                        f"another --out")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"cannot write the sweep into {out} ({parent} is a file)")
    return out


def varying_keys(spec: SweepSpec, runs: list[Run]) -> list[str]:
    """The grid keys that take more than one value among ``runs``."""
    return [k for k in spec.grid if len({repr(r.coords.get(k, r.options.get(k)))
                                         for r in runs}) > 1]


def read_results(out) -> list[dict]:
    """The rows of ``sweep.jsonl`` (a line cut short by a kill is dropped)."""
    path = Path(out) / RESULTS
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "id" in row:
                rows.append(row)
    return rows


def append_result(out, row: dict) -> None:
    """Append one result line to ``sweep.jsonl`` and fsync it."""
    with open(Path(out) / RESULTS, "a") as f:
        f.write(dumps(dict(row, time=time.strftime("%Y-%m-%dT%H:%M:%S"))) + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclasses.dataclass
class Plan:
    """Which runs are finished already (with their summaries) and which are to run."""
    finished: list        # (Run, summary)
    todo: list            # Run
    resumable: int = 0    # of todo: with a checkpoint


def plan(out, runs: list[Run], device: str = "cpu") -> Plan:
    """Split ``runs`` into finished ones (their summary.json records the same run) and the
    ones to submit."""
    from ..train import rundir
    p = Plan([], [])
    for r in runs:
        run_dir = Path(out) / r.id
        config = _task.config_of(run_dir, r.options, device)
        summary = _task.finished(run_dir, config)
        if summary is not None:
            p.finished.append((r, summary))
            continue
        st = rundir.state(run_dir)
        if st.kind == "foreign":
            raise UserError(f"{run_dir} holds files that are not a minifp run; move them away")
        if st.kind in ("resumable", "complete"):
            diff = config.differences(rundir.read_config(run_dir))
            if diff:
                raise UserError(f"{run_dir} holds a different run (differs in "
                                f"{', '.join(diff)}); move it away")
            p.resumable += 1
        p.todo.append(r)
    return p


def check_datasets(runs: list[Run]) -> None:
    """A one-line UserError, before anything runs, when a run's dataset is not here
    (a cluster's workers find theirs on their own filesystem)."""
    from ..data import datasets
    for name in dict.fromkeys(str(r.options.get("dataset", datasets.DEFAULT_DATASET))
                              for r in runs):
        try:
            datasets.dataset_path(name)
        except UserError as err:
            raise UserError(f"{err}; or run the sweep with --quick on the shipped "
                            "datasets") from None


# ---- the cluster ---------------------------------------------------------------------

def gpu_worker_specs(n_gpus: int) -> dict:
    """Dask SpecCluster worker specs for one worker per GPU: each sees only its GPU
    (``CUDA_VISIBLE_DEVICES``), runs one task at a time and offers the resource ``GPU=1``."""
    from distributed import Nanny
    return {f"gpu{i}": {"cls": Nanny,
                        "options": {"nthreads": 1, "resources": {"GPU": 1},
                                    "env": {"CUDA_VISIBLE_DEVICES": str(i)},
                                    "host": "127.0.0.1", "dashboard_address": None}}
            for i in range(n_gpus)}


def gpu_cluster(n_gpus: int):
    """A local Dask cluster of one single-threaded worker per GPU (:func:`gpu_worker_specs`),
    on loopback, without dashboards."""
    import distributed
    return distributed.SpecCluster(
        workers=gpu_worker_specs(n_gpus),
        scheduler={"cls": distributed.Scheduler,
                   "options": {"host": "127.0.0.1", "dashboard_address": None}},
        silence_logs=logging.ERROR)


def _gpu_count() -> int:
    from ..backend import cupy_module, gpu_available
    if not gpu_available():
        raise UserError("--device cuda: no GPU here (CuPy is not installed or sees no CUDA "
                        "device)")
    return int(cupy_module().cuda.runtime.getDeviceCount())


def connect(workers: int | None, scheduler: str | None, device: str, n_runs: int,
            timeout: float = 10.0):
    """(client, cluster or None): a client of the scheduler at ``scheduler``, or of a new
    local cluster of ``workers`` single-threaded worker processes on loopback (on GPUs:
    one worker per GPU)."""
    distributed = require_distributed()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=f"{float(timeout)}s")
        except (OSError, TimeoutError) as err:
            why = str(err).splitlines()[0] if str(err) else "timed out"
            raise UserError(f"cannot reach the Dask scheduler at {scheduler} "
                            f"({type(err).__name__}: {why})") from None
        except ValueError as err:
            raise UserError(f"--scheduler {scheduler}: {err}") from None
        return client, None
    if device != "cpu":
        cluster = gpu_cluster(_gpu_count() if workers is None else int(workers))
    else:
        n = workers if workers is not None else max(1, min(os.cpu_count() or 1, n_runs))
        cluster = distributed.LocalCluster(n_workers=int(n), threads_per_worker=1,
                                           processes=True, dashboard_address=None,
                                           host="127.0.0.1", scheduler_port=0,
                                           silence_logs=logging.ERROR)
    return distributed.Client(cluster), cluster


# ---- progress ------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The sweep's progress line: runs done, running, failed and left, and an ETA from the
    mean time per run finished so far times the runs left, over the runs in parallel."""

    def __init__(self, total: int, done: int, failed: int, echo):
        self.total, self.done, self.failed, self.echo = total, done, failed, echo
        self.t0 = time.perf_counter()
        self.finished_here = 0
        self.running = 0

    def line(self) -> str:
        left = self.total - self.done - self.failed - self.running
        text = (f"{self.done}/{self.total} done, {self.running} running, "
                f"{self.failed} failed, {left} left")
        if self.finished_here:
            rate = (time.perf_counter() - self.t0) / self.finished_here
            remaining = self.total - self.done - self.failed
            text += f", ETA {_duration(rate * remaining)}"
        return text

    def record(self, row: dict, label: str):
        self.finished_here += 1
        if row.get("status") == "complete":
            self.done += 1
            acc = row.get("test_accuracy")
            what = "complete" + (f", test accuracy {100 * acc:.2f}%"
                                 if isinstance(acc, (int, float)) else "")
            if row.get("resumed_from"):
                what += f" (resumed from epoch {row['resumed_from']})"
        else:
            self.failed += 1
            what = f"failed: {row.get('reason', '')}"
        self.echo(f"  {row['id']}  {label}: {what}  [{self.line()}]")


# ---- the sweep -----------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    """What a sweep left: every run's result row, in the spec's order."""
    out: Path
    rows: list
    submitted: int

    @property
    def failed(self) -> list:
        return [r for r in self.rows if r.get("status") != "complete"]

    @property
    def errors(self) -> list:
        """The failed runs that did not fail by diverging (killed workers, errors)."""
        return [r for r in self.failed if not r.get("diverged")]


def _killed_reason(err, allowed: int | None) -> str:
    times = f"{allowed + 1} times" if allowed is not None else "repeatedly"
    return f"its worker died {times} while running it ({type(err).__name__})"


def run_sweep(spec: SweepSpec, runs: list[Run], out, *, quick: bool = False,
              workers: int | None = None, scheduler: str | None = None,
              device: str = "cpu", echo=None, on_epoch=None, poll: float = 0.2,
              timeout: float = 10.0, execute=None) -> Outcome:
    """Run ``runs`` (expanded from ``spec``) into ``out``: the finished ones are kept, the
    others are submitted to a Dask cluster (see :func:`connect`) and their results
    appended to ``sweep.jsonl`` as they arrive.  ``on_epoch(run_dir, row)``: called in
    every run after each epoch (tests use it to kill a worker mid-run).  ``timeout``:
    seconds to wait for the scheduler at ``scheduler``.  ``execute``: the function each
    task calls (default :func:`minifp.sweep.task.execute`; benchmarks replace it).
    Nothing is written into ``out`` before the folder is checked and the cluster
    reached."""
    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    require_distributed()
    if not scheduler:
        check_datasets(runs)
    # absolute: a cluster's workers do not share this process's working directory
    out = check_folder(Path(out).absolute(), spec, quick)
    p = plan(out, runs, device)
    client, cluster = connect(workers, scheduler, device, len(p.todo), timeout) \
        if p.todo else (None, None)
    lock = None
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot write the sweep into {out} "
                            f"({err.strerror or err})") from None
        lock = lock_folder(out)
        open_folder(out, spec, quick, runs)
        rows = _keep_finished(out, p)
        say(f"sweep {spec.name}{' (quick)' if quick else ''}: {len(runs)} runs in {out}: "
            f"{len(p.finished)} finished before, {len(p.todo)} to run"
            + (f" ({p.resumable} from their checkpoints)" if p.resumable else ""))
        if p.todo:
            _submit_and_collect(client, scheduler, out, spec, runs, p, rows, device,
                                on_epoch, poll, say, execute or _task.execute)
    finally:
        _close(client, cluster)
        if lock is not None:
            lock.close()
    return Outcome(out, [rows[r.id] for r in runs if r.id in rows], len(p.todo))


def _keep_finished(out: Path, p: Plan) -> dict:
    """The result rows of the runs finished before (logged in sweep.jsonl if a kill of
    the driver kept them out)."""
    logged = {row["id"] for row in read_results(out)}
    rows = {}
    for r, summary in p.finished:
        rows[r.id] = _task.result_of(r.id, r.options, summary, skipped=True)
        if r.id not in logged:
            append_result(out, rows[r.id])
    return rows


def _submit_and_collect(client, scheduler, out, spec, runs, p: Plan, rows: dict, device,
                        on_epoch, poll, say, execute) -> None:
    """Submit ``p.todo`` (key = run id, a GPU resource on GPUs), then append each result
    to sweep.jsonl as it arrives, with the progress line."""
    import dask
    from distributed import as_completed
    varying = varying_keys(spec, runs) or list(spec.grid)
    n_failed = sum(1 for row in rows.values() if row.get("status") != "complete")
    progress = Progress(len(runs), len(rows) - n_failed, n_failed, say)
    allowed = dask.config.get("distributed.scheduler.allowed-failures", None)
    n_workers = len(client.scheduler_info().get("workers", {}))
    say(f"  on {n_workers} Dask worker{'s' if n_workers != 1 else ''} "
        f"({'scheduler ' + scheduler if scheduler else 'local cluster'}, "
        f"{client.scheduler.address})")
    resources = {"GPU": 1} if device != "cpu" else None
    # the key is the run id, tagged with the folder: a scheduler shared by two sweeps of
    # the same runs into two folders must not take them for one task
    tag = hashlib.sha256(str(out).encode()).hexdigest()[:6]
    futures = {}
    for r in p.todo:
        fut = client.submit(execute, str(out / r.id), r.id, r.options,
                            "cuda" if device != "cpu" else "cpu", on_epoch,
                            key=f"{r.id}@{tag}", resources=resources, retries=0)
        futures[fut.key] = (r, fut)
    ours = set(futures)
    pending = as_completed([f for _, f in futures.values()])
    last_poll = 0.0
    last_line = time.perf_counter()
    try:
        while not pending.is_empty():
            if not pending.has_ready():
                now = time.perf_counter()
                if now - last_poll > 1.0:
                    last_poll = now
                    progress.running = _running(client, ours)
                if now - last_line > QUIET_SECONDS:      # long runs: a line now and then
                    last_line = now
                    say(f"  [{progress.line()}]")
                time.sleep(poll)
                continue
            last_line = time.perf_counter()
            for fut in pending.next_batch(block=False):
                r, _ = futures[fut.key]
                ours.discard(fut.key)
                row = _collect(fut, r, allowed)
                rows[r.id] = row
                append_result(out, row)
                progress.running = _running(client, ours)
                progress.record(row, r.label(varying))
    except KeyboardInterrupt:
        say(f"minifp sweep: interrupted; {len(rows)} of {len(runs)} runs finished are in "
            f"{out / RESULTS}; rerun the same command to continue")
        raise


def _running(client, ours) -> int:
    """Runs executing now: a worker runs at most its thread count of the tasks the
    scheduler has assigned to it (the others wait in its queue)."""
    try:
        processing, threads = client.processing(), client.nthreads()
    except Exception:        # noqa: BLE001 - the progress line must never stop a sweep
        return 0
    return sum(min(threads.get(w, 1), sum(1 for k in keys if k in ours))
               for w, keys in processing.items())


def _collect(fut, r: Run, allowed) -> dict:
    from distributed.scheduler import KilledWorker
    try:
        return fut.result()
    except KilledWorker as err:
        return {"id": r.id, "status": "failed", "reason": _killed_reason(err, allowed),
                "options": r.options}
    except Exception as err:      # noqa: BLE001 - one run's error is recorded, not raised
        text = str(err).splitlines()[0] if str(err) else ""
        return {"id": r.id, "status": "failed", "options": r.options,
                "reason": f"{type(err).__name__}: {text}".rstrip(": ")}


def _close(client, cluster):
    for thing in (client, cluster):
        if thing is None:
            continue
        try:
            thing.close()
        except Exception:        # noqa: BLE001 - closing is best effort
            pass
