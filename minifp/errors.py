"""Errors a user can cause (bad names, files, options): one line, no traceback at the CLI."""


class UserError(ValueError):
    """A problem with the user's input; the CLI prints ``minifp: error: <message>``, exit 2."""
