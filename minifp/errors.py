"""Errors a user can cause (bad names, files, options): one line, no traceback at the CLI."""
import click


class UserError(ValueError):
    """A problem with the user's input; the CLI prints ``minifp: error: <message>``, exit 2."""


def one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) turned into one space."""
    return " ".join(str(text).split())


class CLIError(click.ClickException):
    """A user error at the command line: ``minifp: error: <one line>`` on stderr, exit 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"minifp: error: {one_line(self.format_message())}", err=True)
