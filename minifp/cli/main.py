"""The ``minifp`` command group: every subcommand, and how errors reach the user.

::

    minifp formats [list|show|round]   number formats            (minifp.cli.formats)
    minifp data [list|show|import]     datasets                  (minifp.cli.data)
    minifp train | eval | compare      training runs             (minifp.cli.train)
    minifp inspect                     layer-by-layer error      (minifp.cli.inspect)
    minifp bounds                      the a-priori bounds       (minifp.cli.bounds)

Errors in what the user typed (an unknown name, a bad option, a file that cannot be read
or written) print one line ``minifp: error: ...`` on stderr and exit with status 2; a
``ValueError`` escaping a command is treated as such an error.  Ctrl-C exits with status
130 after the command has said what it saved.
"""
from __future__ import annotations

import sys
import warnings

import click

from .. import __version__
from ..errors import OneLineGroup, one_line


class MinifpGroup(OneLineGroup):
    """Top-level group: ValueErrors and usage errors as one line, Ctrl-C as exit 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:  # bare `minifp`: show the help
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            click.echo(f"minifp: error: {one_line(err.format_message())}{hint}", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("minifp: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=MinifpGroup)
@click.version_option(__version__, "--version", prog_name="minifp",
                      message="%(prog)s %(version)s")
def main():
    """minifp: low-precision numerics with explicit formats, rounding and accumulation.

    Every number format, rounding mode and accumulation (format, order, fma) is a named
    choice; `minifp COMMAND --help` shows each command's options and examples.
    """
    previous = warnings.formatwarning
    warnings.formatwarning = one_line_warning
    click.get_current_context().call_on_close(
        lambda: setattr(warnings, "formatwarning", previous))


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line: ``minifp: warning: <one line>``, no source path."""
    return f"minifp: warning: {one_line(message)}\n"


def _register():
    from .bounds import bounds_command
    from .data import data
    from .formats import formats
    from .inspect import inspect_command
    from .sweep import sweep_command
    from .train import compare_command, eval_command, train_command
    for command in (formats, data, train_command, eval_command, compare_command,
                    inspect_command, bounds_command, sweep_command):
        main.add_command(command)


_register()
