"""``minifp sweep SPEC --out DIR``: a grid of training runs from a TOML spec."""
from __future__ import annotations

import click

from ..errors import OneLineErrors, UserError

SWEEP_EXAMPLES = """\b
Examples:
  minifp sweep my_grid.toml --out sweeps/grid --dry-run
"""


class _Command(OneLineErrors, click.Command):
    pass


@click.command("sweep", cls=_Command, epilog=SWEEP_EXAMPLES)
@click.argument("spec")
@click.option("--out", required=True, metavar="DIR",
              help="the sweep's folder: one DIR/<run id>/ per run, and DIR/sweep.jsonl")
@click.option("--quick", is_flag=True, help="the spec's [quick] values (minutes on 2 cores)")
@click.option("--dry-run", is_flag=True, help="list the runs and their ids, run nothing")
def sweep_command(spec, out, quick, dry_run):
    """Expand SPEC (a TOML file, or the name of a shipped spec) into training runs: a
    [grid] of lists of `minifp train` options (as config fields: batch_size,
    loss_scaling, ...), optional [fixed] values, exclude rules and [quick] values.  Each
    run's id is a short hash of its canonical configuration."""
    from ..sweep import expand, load_spec
    s = load_spec(spec)
    runs = expand(s, quick=quick)
    varying = [k for k in s.grid if len({repr(r.options.get(k)) for r in runs}) > 1]
    if dry_run:
        click.echo(f"sweep {s.name}{' (quick)' if quick else ''}: {len(runs)} runs into "
                   f"{out}/<id>/")
        for r in runs:
            click.echo(f"  {r.id}  {r.label(varying or list(s.grid))}")
        return
    raise UserError("minifp sweep: running a sweep needs its Dask engine, which is the next "
                    "step of this command; use --dry-run to list the runs")
