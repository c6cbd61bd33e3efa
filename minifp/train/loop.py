"""The training loop shared by the CLI, the API and sweeps: build a model, load a dataset,
train under a precision policy, evaluate, checkpoint, resume, and stop on failure.

Numerics: every forward and backward op follows the policy (formats per role,
accumulations per phase); the loss is averaged over the batch through the engine and
rounded to L; the optimizer updates in its format O (master weights when the policy asks);
loss scaling follows the policy's setting.  Shuffling uses a Generator seeded from
(seed, epoch), so an interrupted run resumed from its last checkpoint ends bit-identical.
The reported train loss is the float64 mean of the finite per-batch losses (a metric, not a
rounded op); batches whose loss is not finite are counted separately.

Failure is failure: a loss that becomes NaN or Inf without loss scaling, an epoch in which
every step was skipped, a test loss that is not finite, or an epoch in which no parameter
changed stop the run with :class:`RunFailed` (the CLI exits with status 3) after the good
epochs are saved; ``summary.json`` says ``status: failed`` and why.  The run directory's
files and states are described in :mod:`minifp.train.rundir`.
"""
from __future__ import annotations

import dataclasses
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from .. import progress as _progress
from . import rundir
from ..autograd import no_grad
from .. import kernels
from ..backend import asnumpy
from ..errors import UserError
from .frozen import frozen_cause, snapshot, unchanged
from ..precision import Precision, get_precision, use

ADAMW_WEIGHT_DECAY = 0.01
#: Options that do not change what a run computes: a resumed run may give them anew.
PRESENTATION = ("out", "progress", "quiet", "save_every", "epochs", "device")
#: Options that are part of the default run directory's readable name.
NAMED = ("net", "dtype", "seed")


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
    weight_decay: float | None = None  # None: the optimizer's default (adamw 0.01, else 0)
    eps: float | None = None           # Adam/AdamW (None: 1e-8)
    betas: str | None = None           # Adam/AdamW "b1,b2" (None: 0.9,0.999)
    nesterov: bool = False             # SGD with momentum
    schedule: str = "constant"         # minifp.optim.schedule
    seed: int = 0
    # per-stage changes to the policy (minifp.train.policy_flags; None: the policy's own)
    weights: str | None = None
    activations: str | None = None
    loss: str | None = None
    backward: str | None = None
    gradients: str | None = None
    optimizer_format: str | None = None
    forward_accumulate: str | None = None
    forward_order: str | None = None
    backward_accumulate: str | None = None
    backward_order: str | None = None
    loss_scaling: str | None = None
    master_weights: bool | None = None
    loss_stage: str | None = None
    overrides: tuple = ()
    device: str = "cpu"
    init_from: str | None = None       # start from the weights of this checkpoint
    save_every: int = 1                # checkpoint every N epochs (and after the last)
    out: str | None = "default"        # None: write nothing; "default": see run_dir()
    progress: bool = True
    quiet: bool = False

    def __post_init__(self):
        self.overrides = tuple(self.overrides or ())        # (JSON gives a list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "TrainConfig":
        """A config from a saved ``config.json`` (unknown keys are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in fields})

    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return ADAMW_WEIGHT_DECAY if self.optimizer.lower() == "adamw" else 0.0

    def defining(self) -> dict:
        """The fields that decide what the run computes (all but :data:`PRESENTATION`),
        with the weight decay resolved."""
        d = {k: v for k, v in self.to_dict().items() if k not in PRESENTATION}
        d["weight_decay"] = self.resolved_weight_decay()
        return d

    def differences(self, saved: dict) -> list[str]:
        """The defining fields in which the saved config ``saved`` differs from this one."""
        other = TrainConfig.from_dict(saved).defining()
        return [k for k, v in self.defining().items() if other.get(k) != v]

    def run_dir(self) -> Path | None:
        """``out``; for ``"default"``, ``runs/<net>-[<dataset>-]<dtype>-<seed>`` (the dataset
        when it is not the default) with ``-<hash>`` added
        when any other defining option differs from its default or ``dtype`` is a policy
        file or inline JSON (so different runs never share a directory)."""
        if self.out is None:
            return None
        if self.out != "default":
            return Path(self.out)
        label = rundir.dtype_label(self.dtype)
        default = TrainConfig().defining()
        data = "" if self.dataset == default["dataset"] else \
            rundir.dtype_label(Path(str(self.dataset)).stem) + "-"
        name = f"{self.net}-{data}{label}-{self.seed}"
        mine = self.defining()
        others = [k for k in mine if k not in (*NAMED, "dataset") and mine[k] != default[k]]
        if others or label != str(self.dtype).strip():
            name += "-" + rundir.config_digest(mine, [*others, "dtype"])
        return Path("runs") / name


def make_policy(dtype, accumulate=None, order=None, rounding=None, changes=None) -> Precision:
    """The policy named by ``dtype`` (preset, format name, JSON file or inline JSON), with
    the per-stage ``changes`` of :mod:`minifp.train.policy_flags` applied (``accumulate``,
    ``order`` and ``rounding`` are three of them) and a name that says what changed."""
    from .policy_flags import apply_changes
    try:
        policy = get_precision(dtype)
    except ValueError as err:
        raise UserError(str(err)) from None
    policy = _named_after_base(policy, dtype)
    all_changes = {k: v for k, v in (("accumulate", accumulate), ("order", order),
                                     ("rounding", rounding)) if v is not None}
    all_changes.update(changes or {})
    return apply_changes(policy, all_changes)


def _named_after_base(policy, dtype):
    """An inline-JSON or file policy that changes a ``base`` and gives no ``name`` is
    named ``base+key+key`` after what it sets, not after its base alone."""
    import json
    text = str(dtype).strip()
    try:
        if text.startswith("{"):
            d = json.loads(text)
        elif text.lower().endswith(".json") and Path(text).is_file():
            d = json.loads(Path(text).read_text())
        else:
            return policy
    except (OSError, ValueError):
        return policy
    if not isinstance(d, dict) or "name" in d or "base" not in d:
        return policy
    keys = sorted(k for k in d if k not in ("base", "seed"))
    if not keys:
        return policy
    return policy.replace(name=f"{d['base']}+" + "+".join(keys))


def check_device(device: str) -> str:
    """The canonical name of a device (``cpu``, ``cuda:N``); UserError in one line for
    an unknown name or a GPU that is not there."""
    from ..device import parse_device
    return str(parse_device(device))


# ---- building blocks ------------------------------------------------------------------

def build(config: TrainConfig, init_weights: bool = True):
    """(dataset, model, policy, optimizer, scaler) for a config, from its seed; with
    ``config.init_from`` (and ``init_weights``) the weights of that checkpoint."""
    from ..data import load_dataset
    from ..nn.zoo import build_model
    from ..optim import LossScaler, build_optimizer

    from ..device import parse_device

    device = parse_device(config.device)
    from .policy_flags import changes_of, check_overrides_match
    changes = changes_of(config)
    policy = make_policy(config.dtype, changes=changes)
    data = load_dataset(config.dataset)
    model = build_model(config.net, data.input_shape, data.classes, seed=config.seed)
    check_overrides_match(model, changes)
    if config.init_from is not None and init_weights:
        init_from_checkpoint(model, config.init_from, config.net)
    model.to(policy, device=device)
    optimizer = build_optimizer(config.optimizer, model, config.lr, policy,
                                weight_decay=config.resolved_weight_decay(),
                                **optimizer_options(config))
    scaler = LossScaler.from_policy(policy)
    return data, model, policy, optimizer, scaler


def optimizer_options(config) -> dict:
    """The optimizer's own options from a config: momentum and nesterov for SGD, eps and
    betas for Adam/AdamW; UserError naming the flag that does not apply."""
    from ..optim.schedule import Schedule
    Schedule.parse(config.schedule)                       # a bad schedule: one line
    sgd = config.optimizer.lower() == "sgd"
    if sgd:
        for flag, value in (("--eps", config.eps), ("--betas", config.betas)):
            if value is not None:
                raise UserError(f"{flag} applies to adam and adamw only (the optimizer is sgd)")
        if config.nesterov and not config.momentum > 0:
            raise UserError("--nesterov needs a momentum above 0")
        return {"momentum": config.momentum, "nesterov": bool(config.nesterov)}
    if config.nesterov:
        raise UserError(f"--nesterov applies to sgd only (the optimizer is {config.optimizer})")
    out = {}
    if config.eps is not None:
        if not config.eps > 0:
            raise UserError(f"--eps must be positive, got {config.eps}")
        out["eps"] = float(config.eps)
    if config.betas is not None:
        try:
            b1, b2 = (float(v) for v in str(config.betas).split(","))
        except ValueError:
            raise UserError(f"--betas {config.betas!r}: expected two numbers b1,b2 in "
                            "[0, 1), e.g. 0.9,0.999") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise UserError(f"--betas {config.betas!r}: both must lie in [0, 1)")
        out["betas"] = (b1, b2)
    return out


def init_from_checkpoint(model, path, net=None):
    """Make the trained weights of the checkpoint at ``path`` the float64 masters of
    ``model`` (restored under the checkpoint's own policy, then ``commit_master``), so that
    the next ``model.to(policy)`` rounds them once to the new policy's weights formats.
    Optimizer and loss-scaler state are not taken: the new run starts them afresh."""
    from ..checkpoint import load_checkpoint, restore
    ckpt = load_checkpoint(path)
    saved = (ckpt.get("extra") or {}).get("config") or {}
    if net is not None and saved.get("net") not in (None, net):
        raise UserError(f"--init-from {path} holds a {saved['net']} network, not {net}")
    try:
        restore(model, None, None, ckpt)
    except UserError as err:
        raise UserError(f"--init-from {path}: {err}") from None
    model.commit_master()
    return ckpt


def evaluate(model, x, y, policy, batch_size=256, progress=False, desc="test",
             position=0):
    """(mean loss, accuracy, predictions, softmax outputs) of ``model`` on (x, y) under
    ``policy`` in eval mode.  The per-sample losses come from ``F.cross_entropy`` (rounded
    to L); the reported loss is their plain float64 mean (a metric, not a rounded op).
    ``progress``: a bar over the batches."""
    from .. import functional as F
    from ..data import batches, num_batches

    model.eval()
    losses, preds, probs = [], [], []
    bar = _progress.bar(num_batches(len(y), batch_size), desc, progress, unit="batch",
                        position=position)
    with use(policy), no_grad(), bar:
        for xb, yb in batches(x, y, batch_size, shuffle=False):
            bar.update()
            dev = model.device
            logits = model(dev.put(xb))                  # each batch moves once
            losses.append(np.asarray(asnumpy(F.cross_entropy(logits, dev.put(yb),
                                                             reduction="none").data),
                                     np.float64))
            p = F.softmax(logits, axis=-1).data
            probs.append(np.asarray(asnumpy(p), np.float64))
            preds.append(np.argmax(np.asarray(asnumpy(logits.data), np.float64), axis=-1))
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


def rng_state(model) -> dict:
    return {k: g.bit_generator.state for k, g in _generators(model)}


def set_rng_state(model, state: dict):
    for k, g in _generators(model):
        if k in state:
            g.bit_generator.state = state[k]


# ---- the loop -------------------------------------------------------------------------

class RunFailed(UserError):
    """Training diverged or stopped learning (NaN/Inf loss, every step skipped, a
    non-finite test loss, no parameter changed).  The CLI exits with status 3."""

    exit_code = 3


@dataclasses.dataclass
class TrainResult:
    """What :func:`run` leaves: the summary (as in summary.json), the per-epoch metrics,
    the trained model and the dataset."""

    summary: dict
    history: list
    model: object
    data: object
    policy: object = None


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          echo=None, on_epoch=None) -> dict:
    """Train ``config.net`` on ``config.dataset`` under ``config.dtype``; returns the summary.

    With an output directory it writes ``config.json``, ``metrics.jsonl`` (one line per
    epoch), ``checkpoint.h5`` (every ``save_every`` epochs and after the last, atomically),
    ``best.h5`` and ``summary.json`` (see :mod:`minifp.train.rundir`).  ``resume``: continue from
    the directory's checkpoint (bit-identical to an uninterrupted run).  ``echo``: a
    function taking a line (default: print).
    """
    return run(config, resume=resume, overwrite=overwrite, echo=echo,
               on_epoch=on_epoch).summary


class _Run:
    """The state of one training run while it goes: what is saved, the best epoch, the
    summary it leaves."""

    def __init__(self, config, run_dir, policy, scaler, history, saved_epoch, say):
        self.config, self.dir, self.policy, self.scaler = config, run_dir, policy, scaler
        self.history, self.saved_epoch, self.say = history, saved_epoch, say
        finite = [h for h in history if _finite(h.get("test_accuracy"))]
        best = max(finite, key=lambda h: h["test_accuracy"], default=None)
        self.best_acc = best["test_accuracy"] if best else None
        self.best_epoch = best["epoch"] if best else None
        self.t_start = time.perf_counter()
        self.wall_before = sum(h.get("seconds", 0.0) or 0.0 for h in history)

    def where_saved(self) -> str:
        """Which checkpoint really exists, in words."""
        if self.dir is None:
            return "nothing was saved (no run directory)"
        if not self.saved_epoch:
            return f"no checkpoint was written in {self.dir}"
        return f"the last checkpoint is {self.dir / rundir.CHECKPOINT} (epoch {self.saved_epoch})"

    def summary(self, status, reason="") -> dict:
        cfg = self.config
        final = self.history[-1] if self.history else {}
        nonfinite = sum(int(h.get("nonfinite_batches", 0) or 0) for h in self.history)
        out = {
            "status": status, "reason": reason, "config": cfg.to_dict(),
            "policy": self.policy.to_dict(), "seed": cfg.seed, "epochs": cfg.epochs,
            "epochs_done": int(final.get("epoch", 0)), "final": final,
            "best": {"epoch": self.best_epoch, "test_accuracy": self.best_acc,
                     "checkpoint": (str(self.dir / rundir.BEST)
                                    if self.dir is not None and self.best_epoch else None)},
            "checkpoint": (str(self.dir / rundir.CHECKPOINT)
                           if self.dir is not None and self.saved_epoch else None),
            "saved_epoch": self.saved_epoch,
            "wall_seconds": self.wall_before + (time.perf_counter() - self.t_start),
            "skipped_steps": self.scaler.skipped, "loss_scale": self.scaler.scale,
            "nonfinite_batches": nonfinite, "weight_decay": cfg.resolved_weight_decay(),
            "versions": versions(), "engine": kernels.engine_info(),
        }
        if self.dir is not None:
            rundir.write_summary(self.dir, out)
        return out

    def fail(self, reason):
        """Record the failure and raise :class:`RunFailed` naming what was saved."""
        self.summary("failed", reason)
        raise RunFailed(f"{reason}; {self.where_saved()}") from None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def run(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
        echo=None, on_epoch=None, bar_position: int = 0) -> TrainResult:
    """:func:`train`, returning the model, the dataset and the history as well."""
    from ..checkpoint import restore
    from ..data import num_batches
    from ..nn.zoo import count_parameters

    say = echo or (lambda line: print(line, flush=True))
    info = (lambda line: None) if config.quiet else say
    bars = config.progress and not config.quiet
    run_dir = config.run_dir()
    st = rundir.state(run_dir) if run_dir is not None else None
    resuming = resume and st is not None and st.kind in ("resumable", "complete")
    data, model, policy, optimizer, scaler = build(config, init_weights=not resuming)
    n_batches = num_batches(len(data.y_train), config.batch_size)   # UserError if < 1
    stream = _policy_stream(model, policy)
    start_epoch, history = 0, []
    if run_dir is not None:
        start_epoch, history, ckpt = _open_run_dir(run_dir, config, resume, overwrite, info,
                                                   st)
        if ckpt is not None:
            restore(model, optimizer, scaler, ckpt)
            set_rng_state(model, ckpt["rng_state"])
            model.to(device=model.device)       # a checkpoint loads on the host
            optimizer.to(model.device)
    state = _Run(config, run_dir, policy, scaler, history, start_epoch, say)

    info(str(policy))
    info(f"explicit orders computed by the {engine_label(model.device)}")
    info(f"net {config.net}, dataset {config.dataset} ({len(data.y_train)} train, "
         f"{len(data.y_test)} test, input {tuple(data.input_shape)}, {data.classes} classes), "
         f"{count_parameters(model)} parameters, optimizer {config.optimizer} lr {config.lr}"
         + (f" weight decay {config.resolved_weight_decay()}"
            if config.resolved_weight_decay() else "")
         + f", batch {config.batch_size}, seed {config.seed}"
         + (f", initialised from {config.init_from}" if config.init_from else ""))
    if start_epoch:
        info(f"resuming from epoch {start_epoch} of {config.epochs} "
             f"({run_dir / rundir.CHECKPOINT})")
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            row = _train_epoch(model, optimizer, scaler, policy, stream, data, config,
                               epoch, n_batches, bars, bar_position, state)
            _after_epoch(row, model, optimizer, scaler, policy, data, config, epoch, state,
                         info, bars, bar_position)
            if on_epoch is not None:
                on_epoch(row)
    except KeyboardInterrupt:
        state.summary("interrupted", f"interrupted in epoch {epoch + 1}")
        hint = (f"; resume with: minifp train --resume {run_dir}"
                if run_dir is not None and state.saved_epoch else "")
        print(f"minifp: interrupted in epoch {epoch + 1}; {state.where_saved()}{hint}",
              file=sys.stderr, flush=True)
        raise
    summary = state.summary("complete")
    say(_closing_line(config, policy, state, summary))
    return TrainResult(summary, history, model, data, policy)


def _train_epoch(model, optimizer, scaler, policy, stream, data, config, epoch, n_batches,
                 bars, bar_position, state) -> dict:
    """One epoch of training; the metrics row (before evaluation)."""
    from .. import functional as F
    from ..data import batches

    t0 = time.perf_counter()
    model.train()
    rng = np.random.default_rng([config.seed, epoch])
    skipped_before = scaler.skipped
    loss_sum, finite_batches, nonfinite, correct, seen = 0.0, 0, 0, 0, 0
    before = snapshot(model, policy.master_weights)
    bar = _progress.bar(n_batches, f"epoch {epoch + 1}/{config.epochs}", bars,
                        position=bar_position)
    from ..autograd import underflow_counts
    from ..optim.schedule import Schedule
    schedule = Schedule.parse(config.schedule)
    underflow_counts(reset=True)
    with use(policy, rng=stream), bar:
        for step, (xb, yb) in enumerate(batches(data.x_train, data.y_train,
                                                config.batch_size, rng=rng)):
            if schedule.parts:       # float64 from the global step, rounded once to O
                optimizer.lr = schedule.rate(config.lr, epoch * n_batches + step, n_batches,
                                             config.epochs * n_batches, policy.optimizer)
            optimizer.zero_grad()
            logits = model(model.device.put(xb))         # each batch moves once
            loss = F.cross_entropy(logits, model.device.put(yb))
            value = float(np.asarray(asnumpy(loss.data), np.float64))
            if not math.isfinite(value) and not scaler.enabled:
                bar.close()
                state.fail(f"the loss became {value} at epoch {epoch + 1}, step {step + 1} "
                           f"under {policy.name} without loss scaling")
            scaler.scale_loss(loss).backward()
            scaler.step(optimizer)   # by name: each gradient unscaled into its layer's G
            pred = np.argmax(np.asarray(asnumpy(logits.data), np.float64), axis=-1)
            correct += int(np.sum(pred == yb))
            seen += len(yb)
            if math.isfinite(value):
                loss_sum += value
                finite_batches += 1
            else:
                nonfinite += 1
            bar.update()
            bar.set_postfix_str(
                f"loss {loss_sum / max(finite_batches, 1):.4f} acc {correct / max(seen, 1):.4f}",
                refresh=False)
    return {"epoch": epoch + 1,
            "train_loss": loss_sum / finite_batches if finite_batches else None,
            "train_accuracy": correct / max(seen, 1),
            "nonfinite_batches": nonfinite,
            "skipped_in_epoch": scaler.skipped - skipped_before,
            # nonzero gradient elements that rounded to 0 (B and G), over the epoch
            "gradient_underflows": {("B" if k == "backward" else "G"): v
                                    for k, v in sorted(underflow_counts(reset=True).items())},
            "_seconds_train": time.perf_counter() - t0, "_before": before,
            "_batches": n_batches}


def _after_epoch(row, model, optimizer, scaler, policy, data, config, epoch, state, info,
                 bars, bar_position):
    """Evaluate, record the metrics, check for failure, save what is good."""
    from ..checkpoint import save_checkpoint

    t0 = time.perf_counter()
    before, n_batches = row.pop("_before"), row.pop("_batches")
    train_seconds = row.pop("_seconds_train")
    test_loss, test_acc, _, _ = evaluate(model, data.x_test, data.y_test, policy,
                                         progress=bars, desc=f"test {epoch + 1}",
                                         position=bar_position)
    row.update({"test_loss": test_loss, "test_accuracy": test_acc,
                "seconds": train_seconds + (time.perf_counter() - t0),
                "loss_scale": scaler.scale, "skipped_steps": scaler.skipped})
    state.history.append(row)
    info(_epoch_line(row))
    run_dir = state.dir
    if run_dir is not None:
        rundir.append_metrics(run_dir, row)        # before the checkpoint: never a gap
    if row["skipped_in_epoch"] >= n_batches:
        state.fail(f"every step of epoch {epoch + 1} was skipped (non-finite gradients "
                   f"under loss scale {scaler.scale:g})")
    if not math.isfinite(test_loss):
        state.fail(f"the test loss is {test_loss} after epoch {epoch + 1} under {policy.name}")
    if unchanged(before, snapshot(model, policy.master_weights)):
        state.fail(f"no parameter changed in epoch {epoch + 1}: "
                   + frozen_cause(model, optimizer, policy, data, config))
    if run_dir is None:
        return
    last = epoch + 1 == config.epochs
    saved = False
    if last or (epoch + 1) % config.save_every == 0:
        save_checkpoint(run_dir / rundir.CHECKPOINT, model, optimizer, scaler,
                        rng_state(model), epoch + 1, policy,
                        {"config": config.to_dict(), "history": state.history})
        state.saved_epoch, saved = epoch + 1, True
    if state.best_acc is None or test_acc > state.best_acc:
        state.best_acc, state.best_epoch = test_acc, epoch + 1
        if saved:
            rundir.copy_atomic(run_dir / rundir.CHECKPOINT, run_dir / rundir.BEST)
        else:
            save_checkpoint(run_dir / rundir.BEST, model, optimizer, scaler,
                            rng_state(model), epoch + 1, policy,
                            {"config": config.to_dict(), "history": state.history})


def _epoch_line(row) -> str:
    loss = row["train_loss"]
    text = (f"epoch {row['epoch']:3d}  train loss "
            + (f"{loss:.4f}" if loss is not None else "  n/a ")
            + f"  test loss {row['test_loss']:.4f}  test acc {row['test_accuracy']:.4f}"
            + f"  {row['seconds']:.1f}s")
    if row["skipped_in_epoch"]:
        text += f"  (skipped {row['skipped_in_epoch']} steps)"
    if row["nonfinite_batches"]:
        text += f"  ({row['nonfinite_batches']} batches with a non-finite loss)"
    return text


def _closing_line(config, policy, state, summary) -> str:
    final = summary["final"] or {}
    wall = summary["wall_seconds"]
    text = f"done: {config.net} under {policy.name}, {summary['epochs_done']} epochs in {wall:.1f} s"
    if final:
        text += f"; test acc {final['test_accuracy']:.4f}"
        if state.best_epoch is not None:
            text += f" (best {state.best_acc:.4f} at epoch {state.best_epoch})"
    if state.dir is not None:
        text += f"; saved in {state.dir} (checkpoint.h5, best.h5, metrics.jsonl, summary.json)"
    return text


def engine_label(device) -> str:
    """What computes the explicit orders on ``device``: the C kernels (or the NumPy
    engine) on the CPU, the CUDA kernels on a GPU."""
    if getattr(device, "is_gpu", False):
        return f"CUDA kernels on {device}"
    return kernels.describe()


def _policy_stream(model, policy):
    """The stochastic-rounding Generator of a training run: the model's own stream."""
    return model._stream(policy) if hasattr(model, "_stream") else None


def _open_run_dir(run_dir: Path, config: TrainConfig, resume: bool, overwrite: bool, info,
                  st):
    """(start epoch, history, checkpoint or None) after checking that ``run_dir`` may hold
    this run, cleaning the temporaries of killed writers and replacing a failed run."""
    rundir.clean_temporaries(run_dir)   # ``st`` (rundir.state) leaves temporaries out
    if resume:
        if st.kind in ("empty", "foreign"):
            raise UserError(f"--resume: {run_dir} holds no run to resume (no "
                            f"{rundir.CONFIG})")
        saved = rundir.read_config(run_dir)
        diff = config.differences(saved)
        if diff:
            raise UserError(f"--resume: {run_dir} holds a different run (differs in "
                            f"{', '.join(diff)})")
        if st.kind == "failed":
            info(f"{run_dir} holds no checkpoint ({st.reason}): starting it again")
            rundir.clear(run_dir)
            rundir.write_config(run_dir, config.to_dict())
            return 0, [], None
        if config.epochs < st.epochs_done:
            raise UserError(f"--resume: {run_dir} has already trained {st.epochs_done} "
                            f"epochs; --epochs can only go up (got {config.epochs})")
        ckpt = st.checkpoint           # read and verified once, by rundir.state
        history = (ckpt.get("extra") or {}).get("history")
        if not isinstance(history, list):      # checkpoints before the history was kept
            history = rundir.read_metrics(run_dir, up_to=st.epochs_done)
        history = [h for h in history if h.get("epoch", 0) <= st.epochs_done]
        rundir.write_metrics(run_dir, history)
        rundir.write_config(run_dir, config.to_dict())
        return st.epochs_done, history, ckpt
    if st.kind == "failed":
        info(f"replacing the failed run in {run_dir} ({st.reason})")
        rundir.clear(run_dir)
    elif st.kind != "empty":
        if not overwrite:
            hint = {"complete": f"--resume {run_dir} --epochs N to train it further, ",
                    "resumable": f"--resume {run_dir} to continue it, "}.get(st.kind, "")
            raise UserError(f"{run_dir} already holds {st.describe()}; use {hint}"
                            f"--overwrite to replace it, or another --out")
        rundir.clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_config(run_dir, config.to_dict())
    return 0, [], None


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
