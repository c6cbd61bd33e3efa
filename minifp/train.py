"""The training loop shared by the CLI and the API: build a model, load a dataset, train
under a precision policy, evaluate, checkpoint and resume.

>>> from minifp.train import TrainConfig, train
>>> summary = train(TrainConfig(net="mlp", dataset="synthetic", dtype="float16",
...                             epochs=1, out=None, progress=False))   # doctest: +SKIP

Numerics: every forward and backward op follows the policy (formats per role,
accumulations per phase); the loss is averaged over the batch through the engine and
rounded to L; the optimizer updates in its format O (master weights when the policy asks);
loss scaling follows the policy's setting.  Shuffling uses a Generator seeded from
(seed, epoch), so an interrupted run resumed from its last checkpoint ends bit-identical.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .autograd import no_grad
from .errors import UserError
from .precision import Precision, get_precision, use

CHECKPOINT = "checkpoint.h5"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"


@dataclasses.dataclass
class TrainConfig:
    """What to train and how; every field has a CLI option of the same name."""

    net: str = "mlp"
    dataset: str = "mnist-5k"
    dtype: str = "float16"
    accumulate: str | None = None      # accumulator format of both phases (overrides)
    order: str | None = None           # accumulation order of both phases (overrides)
    rounding: str | None = None        # rounding mode of every role (overrides)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    out: str | None = "default"        # None: write nothing; "default": runs/<net>-<dtype>-<seed>
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_dir(self) -> Path | None:
        if self.out is None:
            return None
        if self.out == "default":
            return Path("runs") / f"{self.net}-{self.dtype}-{self.seed}"
        return Path(self.out)

    def same_run(self, other: dict) -> bool:
        """True when ``other`` (a saved config) describes the same run (all but out,
        progress and epochs, which a resumed run may extend)."""
        mine = self.to_dict()
        keys = [k for k in mine if k not in ("out", "progress", "epochs")]
        return all(other.get(k) == mine[k] for k in keys)


def make_policy(dtype, accumulate=None, order=None, rounding=None) -> Precision:
    """The policy named by ``dtype`` (preset, format name or JSON path), with the
    accumulator format / order of both phases and the rounding of every role replaced when
    given."""
    try:
        policy = get_precision(dtype)
    except ValueError as err:
        raise UserError(str(err)) from None
    if accumulate is None and order is None and rounding is None:
        return policy
    d = policy.to_dict()
    for phase in ("forward", "backward_acc"):
        acc = dict(d[phase])
        if accumulate is not None:
            acc["format"] = accumulate
        if order is not None:
            acc["order"] = order
        d[phase] = acc
    if rounding is not None:
        d["rounding"] = {role: rounding for role in d["rounding"]}
    suffix = "".join(f"+{k}={v}" for k, v in (("acc", accumulate), ("order", order),
                                                ("rounding", rounding)) if v is not None)
    d["name"] = f"{policy.name}{suffix}"
    try:
        return Precision.from_dict(d)
    except ValueError as err:
        raise UserError(str(err)) from None


def check_device(device: str) -> str:
    """Accept ``cpu``; ``gpu`` / ``cuda:N`` need CuPy and a device."""
    dev = str(device).lower()
    if dev == "cpu":
        return dev
    if dev == "gpu" or dev.startswith("cuda"):
        from .backend import gpu_available
        if not gpu_available():
            raise UserError(f"--device {device}: no GPU here (CuPy is not installed or sees "
                            "no CUDA device); use --device cpu")
        raise UserError(f"--device {device}: training on the GPU is not implemented yet "
                        "(CuPy kernels are planned); use --device cpu")
    raise UserError(f"unknown device {device!r} (use cpu, gpu or cuda:N)")


# ---- building blocks ------------------------------------------------------------------

def build(config: TrainConfig):
    """(dataset, model, policy, optimizer, scaler) for a config, from its seed."""
    from .data import load_dataset
    from .nn.zoo import build_model
    from .optim import LossScaler, build_optimizer

    check_device(config.device)
    policy = make_policy(config.dtype, config.accumulate, config.order, config.rounding)
    data = load_dataset(config.dataset)
    model = build_model(config.net, data.input_shape, data.classes, seed=config.seed)
    model.to(policy)
    kw = {"momentum": config.momentum} if config.optimizer.lower() == "sgd" else {}
    optimizer = build_optimizer(config.optimizer, model, config.lr, policy,
                                weight_decay=config.weight_decay, **kw)
    scaler = LossScaler.from_policy(policy)
    return data, model, policy, optimizer, scaler


def evaluate(model, x, y, policy, batch_size=256):
    """(mean loss, accuracy, predictions, softmax outputs) of ``model`` on (x, y) under
    ``policy`` in eval mode.  The per-sample losses come from ``F.cross_entropy`` (rounded
    to L); the reported loss is their plain float64 mean (a metric, not a rounded op)."""
    from . import functional as F
    from .data import batches

    model.eval()
    losses, preds, probs = [], [], []
    with use(policy), no_grad():
        for xb, yb in batches(x, y, batch_size, shuffle=False):
            logits = model(xb)
            losses.append(np.asarray(F.cross_entropy(logits, yb, reduction="none").data,
                                     np.float64))
            p = F.softmax(logits, axis=-1).data
            probs.append(np.asarray(p, np.float64))
            preds.append(np.argmax(np.asarray(logits.data, np.float64), axis=-1))
    model.train()
    loss = float(np.mean(np.concatenate(losses))) if losses else math.nan
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    acc = float(np.mean(pred == np.asarray(y))) if len(pred) else math.nan
    return loss, acc, pred, (np.concatenate(probs) if probs else None)


# ---- RNG state of a model (stochastic rounding streams, dropout masks) ---------------

def _generators(model):
    for path, mod in model.named_modules():
        for attr, value in list(vars(mod).items()):
            if isinstance(value, np.random.Generator):
                yield f"{path}:{attr}", value
            elif (isinstance(value, tuple) and len(value) == 2
                  and isinstance(value[1], np.random.Generator)):
                yield f"{path}:{attr}", value[1]


def rng_state(model, optimizer=None) -> dict:
    state = {k: g.bit_generator.state for k, g in _generators(model)}
    return state


def set_rng_state(model, state: dict):
    for k, g in _generators(model):
        if k in state:
            g.bit_generator.state = state[k]


# ---- the loop -------------------------------------------------------------------------

class NonFiniteLoss(UserError):
    """The loss became NaN or Inf (and no loss scaling can skip the step)."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`run` leaves: the summary (as in summary.json), the per-epoch metrics,
    the trained model and the dataset."""

    summary: dict
    history: list
    model: object
    data: object


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          echo=None, on_epoch=None) -> dict:
    """Train ``config.net`` on ``config.dataset`` under ``config.dtype``; returns the summary.

    With an output directory it writes ``config.json``, ``metrics.jsonl`` (one line per
    epoch), ``checkpoint.h5`` (after every epoch, atomically) and ``summary.json``.
    ``resume``: continue from the directory's checkpoint (bit-identical to an
    uninterrupted run).  ``echo``: a function taking a line (default: print).
    """
    return run(config, resume=resume, overwrite=overwrite, echo=echo,
               on_epoch=on_epoch).summary


def run(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
        echo=None, on_epoch=None) -> TrainResult:
    """:func:`train`, returning the model, the dataset and the history as well."""
    from . import functional as F
    from .checkpoint import load_checkpoint, restore, save_checkpoint
    from .data import batches, num_batches
    from .nn.zoo import count_parameters

    say = echo or (lambda line: print(line, flush=True))
    run_dir = config.run_dir()
    data, model, policy, optimizer, scaler = build(config)
    n_batches = num_batches(len(data.y_train), config.batch_size)   # UserError if < 1
    stream = _policy_stream(model, policy)
    start_epoch = 0
    history: list[dict] = []
    if run_dir is not None:
        start_epoch, history = _prepare_run_dir(run_dir, config, resume, overwrite)
        if start_epoch:
            ckpt = load_checkpoint(run_dir / CHECKPOINT)
            restore(model, optimizer, scaler, ckpt)
            set_rng_state(model, ckpt["rng_state"])

    say(str(policy))
    say(f"net {config.net}, dataset {config.dataset} ({len(data.y_train)} train, "
        f"{len(data.y_test)} test, input {tuple(data.input_shape)}, {data.classes} classes), "
        f"{count_parameters(model)} parameters, "
        f"optimizer {config.optimizer} lr {config.lr}, batch {config.batch_size}, "
        f"seed {config.seed}")
    if start_epoch:
        say(f"resuming from epoch {start_epoch} of {config.epochs} ({run_dir / CHECKPOINT})")
    t_start = time.perf_counter()
    wall_before = sum(h.get("seconds", 0.0) for h in history)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([config.seed, epoch])
        loss_sum, correct, seen = 0.0, 0, 0
        bar = _Progress(n_batches, f"epoch {epoch + 1}/{config.epochs}", config.progress)
        with use(policy, rng=stream):
            for step, (xb, yb) in enumerate(batches(data.x_train, data.y_train,
                                                    config.batch_size, rng=rng)):
                optimizer.zero_grad()
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                value = float(np.asarray(loss.data, np.float64))
                if not math.isfinite(value) and not scaler.enabled:
                    bar.close()
                    raise NonFiniteLoss(
                        f"the loss became {value} at epoch {epoch + 1}, step {step + 1} "
                        f"under {policy.name} without loss scaling; the last good checkpoint "
                        f"is {run_dir / CHECKPOINT if run_dir else 'not written (no --out)'}")
                scaler.scale_loss(loss).backward()
                scaler.step(optimizer)   # by name: each gradient unscaled into its layer's G
                pred = np.argmax(np.asarray(logits.data, np.float64), axis=-1)
                correct += int(np.sum(pred == yb))
                seen += len(yb)
                if math.isfinite(value):
                    loss_sum += value * len(yb)
                bar.update(f"loss {value:.4f} acc {correct / max(seen, 1):.4f}")
        bar.close()
        test_loss, test_acc, _, _ = evaluate(model, data.x_test, data.y_test, policy)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), "test_loss": test_loss,
               "test_accuracy": test_acc, "seconds": seconds,
               "loss_scale": scaler.scale, "skipped_steps": scaler.skipped}
        history.append(row)
        say(f"epoch {epoch + 1:3d}  train loss {row['train_loss']:.4f}  "
            f"test loss {test_loss:.4f}  test acc {test_acc:.4f}  {seconds:.1f}s"
            + (f"  (skipped {scaler.skipped})" if scaler.skipped else ""))
        if run_dir is not None:
            save_checkpoint(run_dir / CHECKPOINT, model, optimizer, scaler,
                            rng_state(model), epoch + 1, policy,
                            {"config": config.to_dict()})
            with open(run_dir / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
        if on_epoch is not None:
            on_epoch(row)
    wall = wall_before + (time.perf_counter() - t_start)
    final = history[-1] if history else {}
    summary = {
        "config": config.to_dict(), "policy": policy.to_dict(), "seed": config.seed,
        "epochs": config.epochs, "final": final, "wall_seconds": wall,
        "skipped_steps": scaler.skipped, "loss_scale": scaler.scale,
        "versions": versions(),
    }
    if run_dir is not None:
        _write_json_atomic(run_dir / SUMMARY, summary)
    return TrainResult(summary, history, model, data)


def _policy_stream(model, policy):
    """The stochastic-rounding Generator of a training run: the model's own stream."""
    return model._stream(policy) if hasattr(model, "_stream") else None


def _prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool, overwrite: bool):
    """(start epoch, history) after checking that ``run_dir`` may hold this run."""
    cfg_path = run_dir / CONFIG
    ckpt = run_dir / CHECKPOINT
    if resume:
        missing = [p.name for p in (cfg_path, ckpt) if not p.exists()]
        if missing:
            raise UserError(f"--resume: {run_dir} holds no run to resume "
                            f"(no {' and no '.join(missing)})")
        saved = json.loads(cfg_path.read_text())
        if not config.same_run(saved):
            diff = sorted(k for k, v in config.to_dict().items()
                          if k not in ("out", "progress", "epochs") and saved.get(k) != v)
            raise UserError(f"--resume: {run_dir} holds a different run (differs in "
                            f"{', '.join(diff)})")
        from .checkpoint import load_checkpoint
        epoch = int(load_checkpoint(ckpt)["epoch"])
        history = []
        if (run_dir / METRICS).exists():
            for line in (run_dir / METRICS).read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row["epoch"] <= epoch:
                        history.append(row)
        _write_lines_atomic(run_dir / METRICS, [json.dumps(r) for r in history])
        _write_json_atomic(cfg_path, config.to_dict())
        return epoch, history
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UserError(f"{run_dir} already holds a run; use --resume to continue it or "
                            "--overwrite to replace it")
        for name in (CONFIG, METRICS, SUMMARY, CHECKPOINT):
            if (run_dir / name).exists():
                (run_dir / name).unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(cfg_path, config.to_dict())
    return 0, []


def _write_json_atomic(path: Path, obj):
    _write_lines_atomic(path, [json.dumps(obj, indent=2, default=_json_default)])


def _write_lines_atomic(path: Path, lines):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def versions() -> dict:
    from importlib import metadata

    def version(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None
    return {"minifp": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scipy": version("scipy"), "h5py": version("h5py"),
            "click": version("click"), "platform": platform.platform()}


class _Progress:
    """A one-line progress bar on stderr (a no-op when disabled or not a terminal)."""

    def __init__(self, total, label, enabled):
        self.total, self.label, self.n = total, label, 0
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def update(self, text):
        self.n += 1
        if not self.enabled:
            return
        width = 24
        done = int(width * self.n / max(self.total, 1))
        rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
        sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] "
                         f"{self.n}/{self.total} {text} {rate:.1f} it/s")
        sys.stderr.flush()

    def close(self):
        if self.enabled and self.n:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


# ---- evaluation of checkpoints and comparisons ---------------------------------------

def evaluate_checkpoint(path, dtype=None, dataset=None, batch_size=256) -> dict:
    """Accuracy and loss of a checkpoint under its own policy, and under ``dtype`` with
    the agreement of its predictions with those of the checkpoint's policy.

    Under another policy the trained weights (decoded from the checkpoint) become the
    float64 masters and are rounded once to that policy's weights formats."""
    from .checkpoint import load_checkpoint, restore
    from .data import load_dataset
    from .nn.zoo import build_model

    ckpt = load_checkpoint(path)
    saved = (ckpt.get("extra") or {}).get("config") or {}
    if "net" not in saved:
        raise UserError(f"{path}: the checkpoint does not say which network it holds")
    own = Precision.from_json(ckpt["policy"]) if isinstance(ckpt["policy"], str) \
        else Precision.from_dict(ckpt["policy"])
    data = load_dataset(dataset or saved.get("dataset", "mnist-5k"))
    model = build_model(saved["net"], data.input_shape, data.classes,
                        seed=int(saved.get("seed", 0)))
    model.to(own)
    restore(model, None, None, ckpt)
    loss, acc, ref_pred, _ = evaluate(model, data.x_test, data.y_test, own, batch_size)
    rows = [{"policy": own.name, "accuracy": acc, "loss": loss, "agreement": 1.0}]
    if dtype is not None:
        other = make_policy(dtype)
        model.commit_master()
        model.to(other)
        loss2, acc2, pred2, _ = evaluate(model, data.x_test, data.y_test, other, batch_size)
        rows.append({"policy": other.name, "accuracy": acc2, "loss": loss2,
                     "agreement": float(np.mean(pred2 == ref_pred))})
    return {"checkpoint": str(path), "net": saved["net"],
            "dataset": dataset or saved.get("dataset"), "epoch": int(ckpt["epoch"]),
            "samples": int(len(data.y_test)), "rows": rows}


def compare(configs, echo=None) -> dict:
    """Train the same network (same seed, hence the same float64 initial weights) under
    each config's policy; the first is the reference for prediction agreement."""
    say = echo or (lambda line: print(line, flush=True))
    rows = []
    ref_pred = None
    for config in configs:
        say(f"== {config.dtype} ==")
        res = run(config, overwrite=True, echo=say)
        summary, hist = res.summary, res.history
        policy = make_policy(config.dtype, config.accumulate, config.order, config.rounding)
        loss, acc, pred, _ = evaluate(res.model, res.data.x_test, res.data.y_test, policy)
        if ref_pred is None:
            ref_pred = pred
        rows.append({"dtype": config.dtype, "test_accuracy": acc, "test_loss": loss,
                     "agreement": float(np.mean(pred == ref_pred)),
                     "skipped_steps": int(summary["skipped_steps"]),
                     "seconds_per_epoch": float(np.mean([h["seconds"] for h in hist]))
                     if hist else 0.0,
                     "history": hist})
    first = configs[0]
    return {"net": first.net, "dataset": first.dataset, "epochs": first.epochs,
            "seed": first.seed, "rows": rows}
