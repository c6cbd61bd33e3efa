"""``minifp train``, ``minifp eval`` and ``minifp compare``: thin layers over
:mod:`minifp.train`.

Exit status: 0 done; 2 bad input (one line ``minifp: error: ...``); 3 the run failed
(diverged or stopped learning, see :class:`minifp.train.RunFailed`; what was good is
saved); 130 interrupted (Ctrl-C or SIGTERM; the message says which checkpoint exists and
how to resume).
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from .. import progress as _progress
from ..errors import UserError
from .checks import (check_out_dir, check_out_file, check_plot_path, check_seed,
                     os_error_text, require_matplotlib, write_text)

NETS_HELP = ("network: mlp, lenet5, cnn, resnetN (resnet8, resnet20, ...; resnetN-a: "
             "parameter-free option-A shortcuts), alexnet, vgg11, vgg16, vit")
DTYPE_HELP = ("precision policy, in one of four forms: a preset (float32, float16, "
              "float16-acc32, mixed, bfloat16, fp8, posit8, posit16, posit8-mixed, "
              "float64); a format name (every role in it, e.g. e5m2 or 'posit(8,2)'); a "
              "policy JSON file (path ending in .json); or inline JSON, e.g. "
              "'{\"base\": \"fp8\", \"loss_scaling\": {\"mode\": \"static\", "
              "\"scale\": 1024}}'.  The per-stage options below change it")


def _stage_options(f):
    """The per-stage changes to --dtype (train, compare, eval): minifp.train.policy_flags."""
    role = "format of the {} role (overrides the policy's)"
    opts = [
        click.option("--weights", default=None, metavar="FORMAT", help=role.format("weights W")),
        click.option("--activations", default=None, metavar="FORMAT",
                     help=role.format("activations F")),
        click.option("--loss", default=None, metavar="FORMAT", help=role.format("loss L")),
        click.option("--backward", default=None, metavar="FORMAT",
                     help=role.format("backward B (activation gradients)")),
        click.option("--gradients", default=None, metavar="FORMAT",
                     help=role.format("weight gradients G")),
        click.option("--optimizer-format", default=None, metavar="FORMAT",
                     help=role.format("optimizer O (state, masters)")),
        click.option("--forward-accumulate", default=None, metavar="FORMAT",
                     help="accumulator format of the forward phase"),
        click.option("--forward-order", default=None, metavar="ORDER",
                     help="accumulation order of the forward phase"),
        click.option("--backward-accumulate", default=None, metavar="FORMAT",
                     help="accumulator format of the backward phase"),
        click.option("--backward-order", default=None, metavar="ORDER",
                     help="accumulation order of the backward phase"),
        click.option("--loss-scaling", default=None, metavar="SPEC",
                     help="none, static:S or dynamic[:S[:interval]]"),
        click.option("--master-weights/--no-master-weights", default=None,
                     help="keep float64-rounded-to-O master weights (or update W directly)"),
        click.option("--loss-stage", default=None, type=click.Choice(["L", "float64"]),
                     help="cross-entropy's softmax, loss and gradient: in L arithmetic (L, "
                          "the default of every preset: PositNN, pure 16-bit training) or the "
                          "float64 reference, rounded once to L and B (float64)"),
        click.option("--override", "overrides", multiple=True, metavar="PATTERN=ROLE:FORMAT,...",
                     help="per-layer formats for the layers whose path matches PATTERN "
                          "(fnmatch; repeatable), e.g. 'body.4=weights:float32' or "
                          "'*norm*=weights:float32'"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


TRAIN_EXAMPLES = """\b
Examples:
  minifp train --dtype float16 --net mlp          # the README's main job
  minifp train --dtype mixed --net lenet5 --epochs 5 --out runs/lenet-mixed
  minifp train --resume runs/lenet-mixed --epochs 10
  minifp train --dtype posit8 --init-from runs/lenet-mixed/best.h5 --epochs 2
  minifp train --dtype float16 --accumulate float32 --order pairwise --quiet
  minifp train --dtype fp8 --loss-scaling static:1024 --override 'body.4=weights:float32'
  minifp train --dtype posit8 --loss posit16 --optimizer-format posit16 --schedule step:4:0.5
  minifp train --dtype float16 --optimizer adam --lr 0.001 --eps 1e-4 --schedule warmup:50,cosine
"""
COMPARE_EXAMPLES = """\b
Examples:
  minifp compare --net mlp --epochs 3
  minifp compare --dtypes float32,float16,bfloat16,fp8 --net lenet5 --out runs/cmp
  minifp compare --dtypes float32,posit8,posit16 --json cmp.json --plot cmp.png
"""
EVAL_EXAMPLES = """\b
Examples:
  minifp eval runs/mlp-float16-0/checkpoint.h5
  minifp eval runs/mlp-float16-0/best.h5 --dtype fp8 --json eval.json
"""


def _config_options(f):
    """The options that describe a run (shared by train and compare)."""
    opts = [
        click.option("--net", default="mlp", show_default=True, help=NETS_HELP),
        click.option("--dataset", default="mnist-5k", show_default=True,
                     help="a dataset name (see `minifp data list`) or a path to an .h5"),
        click.option("--accumulate", default=None, metavar="FORMAT",
                     help="accumulator format of both phases (overrides the policy)"),
        click.option("--order", default=None,
                     help="accumulation order of both phases: sequential, pairwise, "
                          "blocked:B, exact, native (overrides the policy)"),
        click.option("--rounding", default=None, metavar="MODE",
                     help="rounding mode of every role (nearest_even, stochastic, ...)"),
        click.option("--epochs", type=int, default=None,
                     help="epochs to train [default: 10; with --resume: the saved number, "
                          "and only upward]"),
        click.option("--batch-size", type=int, default=128, show_default=True,
                     help="training batch size (the last batch may be smaller)"),
        click.option("--lr", type=float, default=0.01, show_default=True,
                     help="learning rate"),
        click.option("--optimizer", default="sgd", show_default=True,
                     type=click.Choice(["sgd", "adam", "adamw"]),
                     help="optimizer, updating in the policy's optimizer format O"),
        click.option("--momentum", type=float, default=0.9, show_default=True,
                     help="SGD momentum, in [0, 1)"),
        click.option("--nesterov", is_flag=True, help="SGD: Nesterov momentum"),
        click.option("--eps", type=float, default=None,
                     help="Adam/AdamW epsilon [default: 1e-8; float16 optimizer state needs "
                          "about 1e-4]"),
        click.option("--betas", default=None, metavar="B1,B2",
                     help="Adam/AdamW moment decays [default: 0.9,0.999]"),
        click.option("--schedule", default="constant", show_default=True, metavar="SPEC",
                     help="learning rate: constant, step:EVERY:FACTOR (epochs), cosine, "
                          "warmup:N (steps), or joined with commas (warmup:100,cosine); "
                          "computed in float64 and rounded once to O"),
        click.option("--weight-decay", type=float, default=None,
                     help="weight decay [default: 0.01 for adamw (decoupled), else 0]"),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="seed of the initial weights, the shuffling and stochastic "
                          "rounding (same seed, same bits)"),
        click.option("--device", default="cpu", show_default=True,
                     help="cpu, gpu or cuda:N"),
        click.option("--save-every", type=int, default=1, show_default=True, metavar="N",
                     help="write checkpoint.h5 every N epochs (and after the last)"),
        click.option("--quiet", is_flag=True,
                     help="print only the closing summary line (and errors)"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return _stage_options(f)


def _stage_changes(kw) -> dict:
    """The per-stage changes among the options (and --accumulate, --order, --rounding)."""
    from ..train.policy_flags import FLAGS
    out = {}
    for field, _, _ in FLAGS:
        v = kw.get(field)
        if v is not None and not (isinstance(v, (tuple, list)) and not v):
            out[field] = tuple(v) if isinstance(v, list) else v
    return out


def _make_config(dtype, out, progress, **kw):
    """A checked :class:`~minifp.train.TrainConfig` from the options."""
    from ..train import TrainConfig
    if kw.get("epochs") is None:
        kw["epochs"] = TrainConfig.epochs
    for name in ("epochs", "batch_size", "save_every"):
        if kw[name] < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {kw[name]}")
    if not kw["lr"] > 0:
        raise UserError(f"--lr must be positive, got {kw['lr']}")
    if not 0 <= kw["momentum"] < 1:
        raise UserError(f"--momentum must be in [0, 1), got {kw['momentum']}")
    if kw.get("weight_decay") is not None and not kw["weight_decay"] >= 0:
        raise UserError(f"--weight-decay must be >= 0, got {kw['weight_decay']}")
    check_seed(kw["seed"])
    config = TrainConfig(dtype=dtype, out=out, progress=progress, **kw)
    from ..train.loop import optimizer_options
    optimizer_options(config)                 # the optimizer flags: one line if they clash
    return config


def _typed(ctx, names) -> list[str]:
    """The options among ``names`` that the user gave (not their defaults)."""
    return [n for n in names
            if ctx.get_parameter_source(n) in (ParameterSource.COMMANDLINE,
                                               ParameterSource.ENVIRONMENT)]


def _option(name) -> str:
    return "--" + name.replace("_", "-")


class _TermAsInterrupt:
    """While active, SIGTERM stops the run as Ctrl-C does (summary, message, exit 130)."""

    def __enter__(self):
        self.old = None
        try:
            self.old = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:            # not the main thread
            pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


@click.command("train", epilog=TRAIN_EXAMPLES)
@click.option("--dtype", default="float16", show_default=True, help=DTYPE_HELP)
@_config_options
@click.option("--init-from", default=None, metavar="CHECKPOINT",
              help="start from the trained weights of CHECKPOINT (a checkpoint.h5 or "
                   "best.h5 of the same net), rounded once to this run's policy; "
                   "optimizer state starts afresh")
@click.option("--out", default=None,
              help="run directory [default: runs/<net>-<dtype>-<seed>, plus -<hash> when "
                   "other options differ from their defaults]")
@click.option("--resume", "resume_dir", default=None, metavar="DIR",
              help="continue the run in DIR exactly (bit-identical); options that differ "
                   "from its config are an error, except a larger --epochs")
@click.option("--overwrite", is_flag=True,
              help="replace a complete or unfinished run already in --out (a failed run "
                   "is replaced without it)")
@click.option("--progress/--no-progress", default=None,
              help="progress bars on stderr [default: when stderr is a terminal]")
@click.pass_context
def train_command(ctx, dtype, out, resume_dir, overwrite, progress, **kw):
    """Train a network under a precision policy.

    Prints the policy, one line per epoch and a closing summary; writes config.json,
    metrics.jsonl, checkpoint.h5 (the last epoch), best.h5 (the best test accuracy) and
    summary.json to the run directory.  A run that diverges or stops learning stops with
    exit status 3 after saving its good epochs; re-running the same command replaces a run
    that failed before its first checkpoint.
    """
    from ..train import train
    show = _progress.default_enabled(progress, kw["quiet"])
    if resume_dir is not None:
        config = _resume_config(ctx, resume_dir, dtype, out, overwrite, show, kw)
        resume = True
    else:
        if out is not None:
            check_out_dir(out)
        config = _make_config(dtype, out if out is not None else "default", show, **kw)
        resume = False
    if "momentum" in _typed(ctx, ["momentum"]) and config.optimizer != "sgd":
        raise UserError(f"--momentum applies to sgd only (the optimizer is "
                        f"{config.optimizer}; Adam's moments are set by its betas)")
    try:
        with _TermAsInterrupt():
            train(config, resume=resume, overwrite=overwrite,
                  echo=_progress.writer(click.echo, show))
    except OSError as err:
        raise UserError(f"cannot write the run: {os_error_text(err)}") from None


def _resume_config(ctx, resume_dir, dtype, out, overwrite, show, kw):
    """The saved config of ``resume_dir``; options typed with --resume must agree with it
    (a larger --epochs, --save-every, --device, --quiet and --progress may change)."""
    from ..train import rundir
    from ..train import PRESENTATION, TrainConfig
    if overwrite:
        raise UserError("--resume continues a run; it cannot be combined with --overwrite")
    if out is not None and Path(out).resolve() != Path(resume_dir).resolve():
        raise UserError(f"--resume {resume_dir} continues the run where it is; --out {out} "
                        "names another directory")
    check_out_dir(resume_dir, "--resume")
    saved = rundir.read_config(resume_dir)
    try:
        config = TrainConfig.from_dict(saved)
    except TypeError as err:
        raise UserError(f"--resume: {resume_dir}/config.json is not a minifp run config "
                        f"({err})") from None
    given = dict(kw, dtype=dtype)
    diffs = []
    for name in _typed(ctx, list(given)):
        if name in PRESENTATION:
            continue
        have = getattr(config, name, None)
        if name == "weight_decay":
            have = config.resolved_weight_decay()
        if given[name] != have:
            diffs.append(f"{_option(name)} {given[name]} (the run has {have})")
    if diffs:
        raise UserError(f"--resume {resume_dir}: options differ from the run's config: "
                        f"{'; '.join(diffs)} (drop them, or start a new run with --out or "
                        f"--init-from)")
    if kw.get("epochs") is not None:
        if kw["epochs"] < 1:
            raise UserError(f"--epochs must be at least 1, got {kw['epochs']}")
        config.epochs = kw["epochs"]
    if "save_every" in _typed(ctx, ["save_every"]):
        if kw["save_every"] < 1:
            raise UserError(f"--save-every must be at least 1, got {kw['save_every']}")
        config.save_every = kw["save_every"]
    if "device" in _typed(ctx, ["device"]):       # the bits do not depend on it
        config.device = kw["device"]
    config.out = str(resume_dir)
    config.progress = show
    config.quiet = kw["quiet"]
    return config


@click.command("eval", epilog=EVAL_EXAMPLES)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dtype", default=None,
              help="evaluate under this policy too (the trained weights rounded once to "
                   "it) and report the agreement with the checkpoint's own policy")
@click.option("--dataset", default=None, help="[default: the checkpoint's dataset]")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="evaluation batch size")
@click.option("--device", default="cpu", show_default=True, help="cpu, gpu or cuda:N")
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="also write the results to FILE (strict JSON)")
@_stage_options
def eval_command(checkpoint, dtype, dataset, batch_size, device, json_path, **stages):
    """Evaluate a checkpoint under its own policy (and under --dtype): accuracy, loss and
    the agreement of the predictions."""
    from ..jsonio import dumps
    from ..train import evaluate_checkpoint
    check_out_file(json_path, "--json")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    changes = _stage_changes(stages)
    if changes and dtype is None:
        raise UserError(f"--{next(iter(changes)).replace('_', '-')} changes the --dtype "
                        "policy: give --dtype too (the checkpoint's own policy stays as saved)")
    res = evaluate_checkpoint(checkpoint, dtype, dataset, batch_size, device, changes)
    rows = res["rows"]
    click.echo(f"checkpoint {checkpoint}: net {res['net']}, dataset {res['dataset']} "
               f"({res['samples']} test samples), epoch {res['epoch']}")
    click.echo(f"{'policy':24s} {'accuracy':>9s} {'loss':>9s} {'agreement':>10s}")
    for r in rows:
        click.echo(f"{r['policy']:24s} {r['accuracy']:9.4f} {r['loss']:9.4f} "
                   f"{r['agreement']:10.4f}")
    if json_path:
        write_text(json_path, dumps(res, indent=2) + "\n", "--json")


@click.command("compare", epilog=COMPARE_EXAMPLES)
@click.option("--dtypes", default="float32,float16,float16-acc32,mixed,bfloat16",
              show_default=True,
              help="comma-separated policies (as --dtype of train); the first is the "
                   "reference for the agreement column")
@_config_options
@click.option("--out", default=None, help="also keep each run in OUT/<dtype>/")
@click.option("--overwrite", is_flag=True, help="replace runs already in OUT/<dtype>/")
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="write the table and every run's history to FILE (strict JSON)")
@click.option("--plot", "plot_path", default=None, metavar="FILE",
              help="draw loss and accuracy curves to FILE.png (needs the plot extra)")
@click.option("--progress/--no-progress", default=None,
              help="an overall bar and each run's bars on stderr [default: when stderr "
                   "is a terminal]")
def compare_command(dtypes, out, overwrite, json_path, plot_path, progress, **kw):
    """Train the same network from the same initial weights under several policies and
    print one table: test accuracy, test loss, agreement with the first policy, skipped
    steps, seconds per epoch.

    Every policy name is checked before the first run starts.  A run that fails (diverges
    or stops learning) is marked in the table, the others still run, and the exit status
    is then 3.
    """
    from ..jsonio import dumps
    from ..train import compare, make_policy
    names = [d.strip() for d in dtypes.split(",") if d.strip()]
    if not names:
        raise UserError("--dtypes names no policy")
    dup = sorted({d for d in names if names.count(d) > 1})
    if dup and out is not None:
        raise UserError(f"--dtypes names {', '.join(dup)} twice; with --out each policy "
                        "needs its own OUT/<dtype>/ folder")
    for d in names:
        make_policy(d, changes=_stage_changes(kw))
    from ..device import parse_device
    parse_device(kw["device"])              # before the first run, as the names
    if plot_path is not None:
        require_matplotlib()
        check_plot_path(plot_path)
    check_out_file(json_path, "--json")
    if out is not None:
        check_out_dir(out)
        for d in names:
            check_out_dir(Path(out) / _dir_name(d), "--out")
    show = _progress.default_enabled(progress, kw["quiet"])
    configs = [_make_config(d, None if out is None else str(Path(out) / _dir_name(d)), show,
                            **kw) for d in names]
    try:
        with _TermAsInterrupt():
            result = compare(configs, echo=click.echo, overwrite=overwrite, progress=show)
    except OSError as err:
        raise UserError(f"cannot write the runs: {os_error_text(err)}") from None
    if not kw["quiet"]:
        click.echo("")
        click.echo(format_compare_table(result))
    if json_path:
        write_text(json_path, dumps(result, indent=2) + "\n", "--json")
    if plot_path:
        try:
            plot_compare(result, plot_path)
        except OSError as err:
            raise UserError(f"--plot {plot_path}: cannot write ({err.strerror or err})") \
                from None
    click.echo(_compare_closing(result, out))
    failed = [r for r in result["rows"] if r["status"] != "complete"]
    if failed:
        click.echo(f"minifp: error: {len(failed)} of {len(result['rows'])} runs failed: "
                   + ", ".join(r["dtype"] for r in failed), err=True)
        sys.exit(3)


def _dir_name(dtype) -> str:
    from ..train.rundir import dtype_label
    return dtype_label(dtype)


def _compare_closing(result, out) -> str:
    done = [r for r in result["rows"] if r["status"] == "complete"]
    text = (f"done: {len(result['rows'])} policies, {result['net']} on {result['dataset']}, "
            f"{result['epochs']} epochs each, in {result['wall_seconds']:.1f} s")
    if done:
        best = max(done, key=lambda r: r["test_accuracy"])
        text += f"; best test acc {best['test_accuracy']:.4f} ({best['dtype']})"
    if out is not None:
        text += f"; runs in {out}/"
    return text


def _num(v, width, digits) -> str:
    return f"{v:{width}.{digits}f}" if v is not None else f"{'-':>{width}s}"


def format_compare_table(result) -> str:
    """The comparison as a plain table (failed runs say so in place of their numbers)."""
    lines = [f"{'policy':16s} {'test acc':>9s} {'test loss':>10s} {'agree':>7s} "
             f"{'skipped':>8s} {'s/epoch':>8s}"]
    for r in result["rows"]:
        if r["status"] != "complete":
            lines.append(f"{r['dtype']:16s} FAILED: {r['reason']}")
            continue
        lines.append(f"{r['dtype']:16s} {_num(r['test_accuracy'], 9, 4)} "
                     f"{_num(r['test_loss'], 10, 4)} {_num(r['agreement'], 7, 4)} "
                     f"{r['skipped_steps']:8d} {_num(r['seconds_per_epoch'], 8, 2)}")
    return "\n".join(lines)


def plot_compare(result, path):
    """Test loss and accuracy against the epoch (integer ticks), one line per policy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for r in result["rows"]:
        ep = [h["epoch"] for h in r["history"]]
        ax1.plot(ep, [h["test_loss"] for h in r["history"]], marker="o", label=r["dtype"])
        ax2.plot(ep, [h["test_accuracy"] for h in r["history"]], marker="o", label=r["dtype"])
    for ax, name in ((ax1, "test loss"), (ax2, "test accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.suptitle(f"{result['net']} on {result['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
