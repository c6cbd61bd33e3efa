"""``minifp train``, ``minifp eval`` and ``minifp compare``: thin layers over
:mod:`minifp.train`.  User errors print one line ``minifp: error: ...`` and exit 2."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import click

from ..errors import UserError
from .checks import (check_out_dir, check_out_file, check_plot_path, check_seed,
                     os_error_text, require_matplotlib, write_text)

NETS_HELP = "mlp, lenet5, cnn, resnet (resnet8, resnet20, ...), vit"


def _config_options(f):
    """The options that describe a run (shared by train and compare)."""
    opts = [
        click.option("--net", default="mlp", show_default=True, help=NETS_HELP),
        click.option("--dataset", default="mnist-5k", show_default=True,
                     help="a dataset name (see `minifp data list`) or a path to an .h5"),
        click.option("--accumulate", default=None,
                     help="accumulator format of both phases (overrides the policy)"),
        click.option("--order", default=None,
                     help="accumulation order: sequential, pairwise, blocked:B, exact, native"),
        click.option("--rounding", default=None, help="rounding mode of every role"),
        click.option("--epochs", type=int, default=None, help="epochs [default: 10]"),
        click.option("--batch-size", type=int, default=128, show_default=True),
        click.option("--lr", type=float, default=0.01, show_default=True),
        click.option("--optimizer", default="sgd", show_default=True,
                     type=click.Choice(["sgd", "adam", "adamw"])),
        click.option("--momentum", type=float, default=0.9, show_default=True,
                     help="SGD momentum"),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="cpu", show_default=True, help="cpu, gpu or cuda:N"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _make_config(dtype, out, progress, **kw):
    from ..train import TrainConfig
    if kw.get("epochs") is None:
        kw["epochs"] = TrainConfig.epochs
    for name in ("epochs", "batch_size"):
        if kw[name] < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {kw[name]}")
    if not kw["lr"] > 0:
        raise UserError(f"--lr must be positive, got {kw['lr']}")
    check_seed(kw["seed"])
    return TrainConfig(dtype=dtype, out=out, progress=progress, **kw)


def _progress_default(progress):
    return sys.stderr.isatty() if progress is None else progress


@click.command("train")
@click.option("--dtype", default="float16", show_default=True,
              help="a precision preset (float32, float16, float16-acc32, mixed, bfloat16, "
                   "fp8, posit8, posit8-mixed, ...), a format name, or a policy JSON file")
@_config_options
@click.option("--out", default=None, help="run directory [default: runs/<net>-<dtype>-<seed>]")
@click.option("--resume", "resume_dir", default=None, metavar="DIR",
              help="continue the interrupted run in DIR (its saved options are used)")
@click.option("--overwrite", is_flag=True, help="replace a run already in --out")
@click.option("--progress/--no-progress", default=None,
              help="progress bar on stderr [default: when stderr is a terminal]")
def train_command(dtype, out, resume_dir, overwrite, progress, **kw):
    """Train a network under a precision policy; prints the policy, a per-epoch line, and
    writes metrics.jsonl, summary.json and checkpoint.h5 to the run directory."""
    from ..train import TrainConfig, train
    if resume_dir is not None:
        cfg_path = Path(resume_dir) / "config.json"
        if not cfg_path.exists():
            raise UserError(f"--resume: {resume_dir} holds no run to resume (no config.json)")
        try:
            saved = json.loads(cfg_path.read_text())
            if not isinstance(saved, dict):
                raise ValueError(f"expected a JSON object, got {type(saved).__name__}")
            fields = {f.name for f in dataclasses.fields(TrainConfig)}
            config = TrainConfig(**{k: v for k, v in saved.items() if k in fields})
        except (ValueError, TypeError) as err:
            raise UserError(f"--resume: {cfg_path} is not a minifp run config ({err})") from None
        except OSError as err:
            raise UserError(f"--resume: cannot read {cfg_path} ({err.strerror or err})") \
                from None
        config.out = str(resume_dir)
        if kw.get("epochs") is not None:
            if kw["epochs"] < 1:
                raise UserError(f"--epochs must be at least 1, got {kw['epochs']}")
            config.epochs = kw["epochs"]
        config.progress = _progress_default(progress)
        try:
            train(config, resume=True)
        except OSError as err:
            raise UserError(f"--resume {resume_dir}: {os_error_text(err)}") from None
        return
    if out is not None:
        check_out_dir(out)
    config = _make_config(dtype, out if out is not None else "default",
                          _progress_default(progress), **kw)
    try:
        train(config, overwrite=overwrite)
    except OSError as err:
        raise UserError(f"cannot write the run: {os_error_text(err)}") from None


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dtype", default=None,
              help="evaluate under this policy too and report the agreement with the "
                   "checkpoint's own policy")
@click.option("--dataset", default=None, help="[default: the checkpoint's dataset]")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--json", "json_path", default=None, help="also write the results to FILE")
def eval_command(checkpoint, dtype, dataset, batch_size, json_path):
    """Evaluate a checkpoint under its own policy (and under --dtype): accuracy, loss and
    the agreement of the predictions."""
    from ..train import evaluate_checkpoint
    check_out_file(json_path, "--json")
    res = evaluate_checkpoint(checkpoint, dtype, dataset, batch_size)
    rows = res["rows"]
    click.echo(f"checkpoint {checkpoint}: net {res['net']}, dataset {res['dataset']} "
               f"({res['samples']} test samples), epoch {res['epoch']}")
    click.echo(f"{'policy':24s} {'accuracy':>9s} {'loss':>9s} {'agreement':>10s}")
    for r in rows:
        click.echo(f"{r['policy']:24s} {r['accuracy']:9.4f} {r['loss']:9.4f} "
                   f"{r['agreement']:10.4f}")
    if json_path:
        write_text(json_path, json.dumps(res, indent=2) + "\n", "--json")


@click.command("compare")
@click.option("--dtypes", default="float32,float16,float16-acc32,mixed,bfloat16",
              show_default=True, help="comma-separated policies; the first is the reference")
@_config_options
@click.option("--out", default=None, help="also keep each run in OUT/<dtype>/")
@click.option("--json", "json_path", default=None, help="write the table to FILE")
@click.option("--plot", "plot_path", default=None,
              help="draw loss and accuracy curves to FILE.png (needs the plot extra)")
@click.option("--progress/--no-progress", default=None)
def compare_command(dtypes, out, json_path, plot_path, progress, **kw):
    """Train the same network from the same initial weights under several policies and
    print one table: test accuracy, test loss, agreement with the first policy, skipped
    steps, seconds per epoch."""
    from ..train import compare
    names = [d.strip() for d in dtypes.split(",") if d.strip()]
    if not names:
        raise UserError("--dtypes names no policy")
    dup = sorted({d for d in names if names.count(d) > 1})
    if dup and out is not None:
        raise UserError(f"--dtypes names {', '.join(dup)} twice; with --out each policy "
                        "needs its own OUT/<dtype>/ folder")
    if plot_path is not None:
        require_matplotlib()
        check_plot_path(plot_path)
    check_out_file(json_path, "--json")
    if out is not None:
        check_out_dir(out)
        for d in names:
            check_out_dir(Path(out) / d, "--out")
    configs = [_make_config(d, None if out is None else str(Path(out) / d),
                            _progress_default(progress), **kw) for d in names]
    try:
        result = compare(configs, echo=click.echo)
    except OSError as err:
        raise UserError(f"cannot write the runs: {os_error_text(err)}") from None
    click.echo("")
    click.echo(format_compare_table(result))
    if json_path:
        write_text(json_path, json.dumps(result, indent=2) + "\n", "--json")
    if plot_path:
        try:
            plot_compare(result, plot_path)
        except OSError as err:
            raise UserError(f"--plot {plot_path}: cannot write ({err.strerror or err})") \
                from None


def format_compare_table(result) -> str:
    lines = [f"{'policy':16s} {'test acc':>9s} {'test loss':>10s} {'agree':>7s} "
             f"{'skipped':>8s} {'s/epoch':>8s}"]
    for r in result["rows"]:
        lines.append(f"{r['dtype']:16s} {r['test_accuracy']:9.4f} {r['test_loss']:10.4f} "
                     f"{r['agreement']:7.4f} {r['skipped_steps']:8d} "
                     f"{r['seconds_per_epoch']:8.2f}")
    return "\n".join(lines)


def plot_compare(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for r in result["rows"]:
        ep = [h["epoch"] for h in r["history"]]
        ax1.plot(ep, [h["test_loss"] for h in r["history"]], marker="o", label=r["dtype"])
        ax2.plot(ep, [h["test_accuracy"] for h in r["history"]], marker="o", label=r["dtype"])
    ax1.set_xlabel("epoch"), ax1.set_ylabel("test loss"), ax1.legend()
    ax2.set_xlabel("epoch"), ax2.set_ylabel("test accuracy"), ax2.legend()
    fig.suptitle(f"{result['net']} on {result['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
