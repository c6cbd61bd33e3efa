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


class OneLineErrors:
    """Mixin for click commands and groups: a ``ValueError`` (``UserError`` included) that
    escapes the command becomes :class:`CLIError` (one line on stderr), keeping its
    ``exit_code`` attribute when it has one (else 2), also when the command runs on its
    own rather than under ``minifp``."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ValueError as err:
            error = CLIError(str(err))
            error.exit_code = getattr(err, "exit_code", CLIError.exit_code)
            raise error from None


class OneLineGroup(OneLineErrors, click.Group):
    """A click group whose ValueErrors print as one line (see :class:`OneLineErrors`)."""


class OneLineCommand(OneLineErrors, click.Command):
    """A click command whose ValueErrors print as one line (see :class:`OneLineErrors`)."""
