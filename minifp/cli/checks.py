"""Checks of the paths and numbers a user typed, shared by the commands: each failure is a
one-line :class:`minifp.errors.UserError`, raised before any long work starts."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

PLOT_MISSING = "--plot needs matplotlib: pip install -e '.[plot]'"


def require_matplotlib():
    """Fail in one line when matplotlib (the plot extra) is missing."""
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        raise UserError(PLOT_MISSING) from None


def check_seed(seed, option="--seed"):
    if seed < 0:
        raise UserError(f"{option} must be a non-negative integer, got {seed}")


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(path, option="--out"):
    """``path`` can be (or become) a run directory: not a file, under a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {path} is a file, not a directory")
    base = _existing_ancestor(p)
    if not base.is_dir():
        raise UserError(f"{option} {path}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: {base} is not writable")


def check_out_file(path, option):
    """``path`` can be written as a file: not a directory, its folder exists and is
    writable.  Checked before the (possibly long) work that produces the file."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {path} is a directory, not a file")
    parent = p.absolute().parent
    if not parent.exists():
        raise UserError(f"{option} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UserError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{option} {path}: not writable")


def check_plot_path(path, option="--plot"):
    """A writable file whose suffix (if any) matplotlib can draw; needs matplotlib."""
    if path is None:
        return
    check_out_file(path, option)
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix:
        from matplotlib.backend_bases import FigureCanvasBase  # noqa: PLC0415
        kinds = FigureCanvasBase.get_supported_filetypes()
        if suffix not in kinds:
            raise UserError(f"{option} {path}: matplotlib cannot write .{suffix} files "
                            f"(use one of {', '.join(sorted(kinds))})")


def write_text(path, text, option):
    """Write ``text`` to ``path``; an OSError becomes a one-line user error."""
    try:
        Path(path).write_text(text)
    except OSError as err:
        raise UserError(f"{option} {path}: cannot write ({err.strerror or err})") from None


def os_error_text(err: OSError) -> str:
    where = f"{err.filename}: " if getattr(err, "filename", None) else ""
    return f"{where}{err.strerror or err}"
