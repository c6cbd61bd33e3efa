"""``minifp sweep SPEC --out DIR`` (a grid of training runs on Dask) and
``minifp sweep report DIR`` (its table)."""
from __future__ import annotations

import sys

import click

from ..errors import OneLineCommand, OneLineGroup, UserError

SWEEP_EXAMPLES = """\b
Examples:
  minifp sweep positnn --quick --out sweeps/positnn --dry-run
  minifp sweep positnn --quick --out sweeps/positnn --workers 2
  minifp sweep my_grid.toml --out /shared/sweeps/grid --scheduler tcp://head:8786
  minifp sweep report sweeps/positnn --markdown positnn.md --plot positnn.png
"""


class _SweepGroup(OneLineGroup):
    """``minifp sweep SPEC ...`` is ``minifp sweep run SPEC ...``; ``report`` is the other
    subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("sweep", cls=_SweepGroup, epilog=SWEEP_EXAMPLES,
             context_settings={"help_option_names": ["-h", "--help"]})
def sweep_command():
    """Run a sweep: `minifp sweep SPEC --out DIR` expands SPEC (a TOML file, or the name
    of a shipped spec: yun16, positnn, fp8) into training runs and runs them on Dask,
    one run per worker process; `minifp sweep report DIR` prints its table."""


@sweep_command.command("run", cls=OneLineCommand, epilog=SWEEP_EXAMPLES)
@click.argument("spec")
@click.option("--out", required=True, metavar="DIR",
              help="the sweep's folder: DIR/<run id>/ per run, DIR/sweep.json, DIR/sweep.jsonl")
@click.option("--workers", type=click.IntRange(1), default=None, metavar="N",
              help="local worker processes (default: one per core, at most one per run; "
                   "with --device cuda: one per GPU)")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="run on an existing Dask cluster (tcp://host:8786); minifp must be "
                   "installed on every worker and DIR be on a shared filesystem")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, metavar="SECONDS",
              help="how long to wait for the scheduler at --scheduler")
@click.option("--device", default="cpu", show_default=True,
              help="cpu, or cuda: one worker per GPU, each run asking for a GPU resource")
@click.option("--quick", is_flag=True, help="the spec's [quick] values (minutes on 2 cores)")
@click.option("--dry-run", is_flag=True, help="list the runs, their ids and states; run nothing")
@click.option("--report/--no-report", "show_report", default=True, show_default=True,
              help="print the sweep's table at the end")
def run_command(spec, out, workers, scheduler, timeout, device, quick, dry_run,
                show_report):
    """Expand SPEC into runs and run them.  SPEC's [grid] holds lists of `minifp train`
    options (as config fields: batch_size, loss_scaling, ...); [fixed] single values;
    exclude rules; [quick] values for --quick.  Each run's id is a short hash of its
    canonical configuration; a finished run is not run again, an interrupted one resumes
    from its checkpoint, so rerunning the same command continues the sweep."""
    from ..sweep import expand, load_spec
    from ..sweep import engine
    if workers is not None and scheduler:
        raise UserError("--workers and --scheduler exclude each other (the cluster at "
                        "--scheduler has its own workers)")
    device = _device(device)
    s = load_spec(spec)
    runs = expand(s, quick=quick)
    if dry_run:
        _dry_run(s, runs, out, quick, device)
        return
    outcome = engine.run_sweep(s, runs, out, quick=quick, workers=workers,
                               scheduler=scheduler, device=device, timeout=timeout)
    if show_report:
        from ..sweep import report
        click.echo(report.format_table(report.build(outcome.out)))
    diverged = len(outcome.failed) - len(outcome.errors)
    if diverged:
        click.echo(f"{diverged} of {len(outcome.rows)} runs diverged (a result, kept: "
                   f"rerunning would reproduce it); reasons in {outcome.out / engine.RESULTS}",
                   err=True)
    if outcome.errors:
        err = UserError(f"{len(outcome.errors)} of {len(outcome.rows)} runs failed (not by "
                        f"diverging); their reasons are in {outcome.out / engine.RESULTS}; "
                        f"rerunning the same command retries them")
        err.exit_code = 3
        raise err


def _device(device: str) -> str:
    text = str(device).strip().lower()
    if text in ("cpu",):
        return "cpu"
    if text in ("cuda", "gpu"):
        return "cuda"
    raise UserError(f"--device {device!r}: use cpu or cuda (a sweep puts one worker on "
                    "each GPU)")


def _dry_run(s, runs, out, quick, device):
    from pathlib import Path

    from ..sweep import engine
    from ..train import rundir
    varying = engine.varying_keys(s, runs) or list(s.grid)
    from ..sweep.task import config_of, finished
    click.echo(f"sweep {s.name}{' (quick)' if quick else ''}: {len(runs)} runs into "
               f"{out}/<id>/")
    for r in runs:
        run_dir = Path(out) / r.id
        summary = finished(run_dir, config_of(run_dir, r.options, device))
        if summary is not None:
            what = "complete" if summary.get("status") == "complete" else \
                f"diverged: {summary.get('reason', '')}"
        else:
            st = rundir.state(run_dir)
            what = {"empty": "to run",
                    "resumable": f"resumes at epoch {st.epochs_done}",
                    "complete": "to run again (its summary records another run)",
                    "failed": f"to run again ({st.reason})",
                    "foreign": "blocked: the folder holds files that are not a minifp run"
                    }[st.kind]
        click.echo(f"  {r.id}  {r.label(varying)}  ({what})")


@sweep_command.command("report", cls=OneLineCommand)
@click.argument("out", metavar="DIR")
@click.option("--json", "as_json", is_flag=True, help="the table as JSON on stdout")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None, metavar="FILE.md",
              help="also write the table as Markdown")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="also plot accuracy per configuration and the training curves "
                   "(needs matplotlib: the plot extra)")
@click.option("--reference", default=None, metavar="KEY=VALUE",
              help="the reference runs for agreement, e.g. dtype=float32 (default: the "
                   "spec's reference, else the first value of the first varying key)")
def report_command(out, as_json, markdown, plot, reference):
    """The table of the sweep in DIR: per configuration, mean ± std over seeds of the
    test accuracy and loss, the agreement of predictions with the reference runs (same
    seed), the 16-bit paper's lemma share (Gamma >= 2 delta), skipped steps, seconds per
    epoch, and the spec's expected (published) values beside them."""
    from ..sweep import report
    table = report.build(out, reference=reference)
    if as_json:
        from ..jsonio import dumps
        click.echo(dumps(report.to_json(table), indent=2))
    else:
        click.echo(report.format_table(table))
    if markdown:
        report.write_markdown(table, markdown)
        print(f"wrote {markdown}", file=sys.stderr)
    if plot:
        report.plot(table, plot)
        print(f"wrote {plot}", file=sys.stderr)
