"""Run directories: the files of one training run and the state they are in.

A run directory holds

* ``config.json``: the :class:`minifp.train.TrainConfig` that defines the run;
* ``metrics.jsonl``: one strict-JSON line per finished epoch;
* ``checkpoint.h5``: the last saved epoch (written atomically, see
  :mod:`minifp.checkpoint`; it also carries the metrics history up to that epoch, so the
  pair can always be made consistent again), and ``best.h5``: the epoch with the best test
  accuracy;
* ``summary.json``: written when the run stops, with ``status`` ``complete``, ``failed``
  or ``interrupted`` and, unless complete, the ``reason``.

Whatever the moment a run is killed, the directory is in one of three states
(:func:`state`): **complete** (a summary with status complete), **resumable** (a
checkpoint exists) or **failed** (no checkpoint: the run stopped, or was killed, before
its first checkpoint, and holds nothing worth keeping).  Metrics are appended before the
checkpoint is renamed into place, so a kill between the two leaves a metrics line too
many, never a gap; resuming rewrites ``metrics.jsonl`` from the checkpoint's history.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from ..errors import UserError
from ..jsonio import dumps, replacing, write_atomic, write_lines_atomic

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.h5"
BEST = "best.h5"
RUN_FILES = (CONFIG, METRICS, SUMMARY, CHECKPOINT, BEST)
_TMP = re.compile(r"\.tmp-(\d+)$")


@dataclasses.dataclass
class RunState:
    """What a directory holds: ``kind`` is ``empty``, ``complete``, ``resumable``,
    ``failed`` or ``foreign`` (files, but no minifp run)."""

    kind: str
    path: Path
    epochs_done: int = 0
    reason: str = ""
    summary: dict | None = None
    checkpoint: dict | None = None     # the loaded (verified) checkpoint.h5, when readable

    def describe(self) -> str:
        """A few words for messages: ``a complete run (10 epochs)`` and the like."""
        if self.kind == "complete":
            return f"a complete run ({self.epochs_done} epochs)"
        if self.kind == "resumable":
            why = f"; {self.reason}" if self.reason else ""
            return f"an unfinished run (checkpoint at epoch {self.epochs_done}{why})"
        if self.kind == "failed":
            return f"a failed run ({self.reason or 'stopped before its first checkpoint'})"
        if self.kind == "foreign":
            return "files that are not a minifp run"
        return "nothing"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_checkpoint(path: Path) -> dict | None:
    """A readable (checksum-verified) checkpoint, None when it is missing or unreadable."""
    if not path.is_file():
        return None
    from ..checkpoint import load_checkpoint  # noqa: PLC0415
    try:
        return load_checkpoint(path)
    except UserError:
        return None


def state(run_dir) -> RunState:
    """The state of ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return RunState("empty", run_dir)
    names = [p.name for p in run_dir.iterdir() if not _TMP.search(p.name)]
    if not names:
        return RunState("empty", run_dir)
    if CONFIG not in names:
        return RunState("foreign", run_dir)
    summary = _read_json(run_dir / SUMMARY)
    summary = summary if isinstance(summary, dict) else None
    status = (summary or {}).get("status")
    ckpt = _read_checkpoint(run_dir / CHECKPOINT)
    epoch = None if ckpt is None else int(ckpt["epoch"])
    if summary is not None and status in (None, "complete") and epoch is not None:
        return RunState("complete", run_dir, epoch, "", summary, ckpt)
    reason = (summary or {}).get("reason", "")
    if epoch is not None:
        return RunState("resumable", run_dir, epoch, reason, summary, ckpt)
    if (run_dir / CHECKPOINT).exists():
        reason = f"{CHECKPOINT} is unreadable" + (f"; {reason}" if reason else "")
    return RunState("failed", run_dir, 0,
                    reason or "stopped or killed before its first checkpoint", summary)


def clean_temporaries(run_dir) -> list[str]:
    """Remove the ``*.tmp-<pid>`` files that a killed writer left in ``run_dir`` (those of
    live processes other than this one are kept).  Returns the names removed."""
    run_dir = Path(run_dir)
    removed = []
    if not run_dir.is_dir():
        return removed
    for p in run_dir.iterdir():
        m = _TMP.search(p.name)
        if not m or not p.is_file():
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and _alive(pid):
            continue
        try:
            p.unlink()
            removed.append(p.name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clear(run_dir) -> None:
    """Delete the run files of ``run_dir`` (and only those)."""
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        p = run_dir / name
        if p.is_file() or p.is_symlink():
            p.unlink()


def read_config(run_dir) -> dict:
    """``config.json`` of ``run_dir`` as a dict; a one-line UserError otherwise."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise UserError(f"{run_dir} holds no minifp run (no {CONFIG})")
    try:
        saved = json.loads(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or err})") from None
    except ValueError as err:
        raise UserError(f"{path} is not a minifp run config ({err})") from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} is not a minifp run config (expected a JSON object, got "
                        f"{type(saved).__name__})")
    return saved


def write_config(run_dir, config: dict) -> None:
    write_atomic(Path(run_dir) / CONFIG, config)


def read_metrics(run_dir, up_to: int | None = None) -> list[dict]:
    """The rows of ``metrics.jsonl`` (at most up to epoch ``up_to``); unreadable lines,
    such as one cut short by a kill, are dropped."""
    path = Path(run_dir) / METRICS
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            if up_to is None or row["epoch"] <= up_to:
                rows.append(row)
    return rows


def write_metrics(run_dir, rows) -> None:
    write_lines_atomic(Path(run_dir) / METRICS, [dumps(r) for r in rows])


def append_metrics(run_dir, row: dict) -> None:
    """Append one strict-JSON line and fsync it (before the checkpoint is renamed)."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_summary(run_dir) -> dict | None:
    """``summary.json`` of ``run_dir`` as a dict; None when it is missing or unreadable."""
    summary = _read_json(Path(run_dir) / SUMMARY)
    return summary if isinstance(summary, dict) else None


def write_summary(run_dir, summary: dict) -> None:
    write_atomic(Path(run_dir) / SUMMARY, summary)


def copy_atomic(src, dst) -> None:
    """Copy ``src`` over ``dst`` through a temporary file and a rename."""
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)


_SAFE = re.compile(r"[^A-Za-z0-9_.+=:,()-]")


def dtype_label(dtype: str) -> str:
    """A file-name-safe label of a ``--dtype`` value: the preset or format name itself, the
    stem of a policy file, ``policy`` for inline JSON."""
    text = str(dtype).strip()
    if text.startswith("{"):
        return "policy"
    if os.sep in text or "/" in text or text.lower().endswith(".json"):
        return _SAFE.sub("_", Path(text).stem) or "policy"
    return _SAFE.sub("_", text)


def config_digest(config: dict, keys) -> str:
    """A short, stable hash of ``config``'s ``keys`` (policy files by their content)."""
    data = {k: config.get(k) for k in sorted(keys)}
    dtype = str(config.get("dtype", ""))
    if dtype and not dtype.strip().startswith("{") and Path(dtype).is_file():
        data["dtype"] = Path(dtype).read_text()
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()) \
        .hexdigest()[:8]
