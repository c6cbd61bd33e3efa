"""Progress display: a tqdm bar (ETA, it/s, a running postfix such as the mean loss) on a
terminal, nothing otherwise; the commands print their plain per-epoch lines either way.

``bar(total, desc, enabled)`` returns a tqdm bar, or a silent stand-in with the same
methods when ``enabled`` is false, so callers never test for it.  Bars write to stderr and
leave no line behind (``leave=False``); nested bars (``compare``'s overall bar over each
run's epoch bar) are stacked with ``position``.
"""
from __future__ import annotations

import sys

__all__ = ["bar", "default_enabled", "Silent"]


def default_enabled(flag=None, quiet=False) -> bool:
    """Bars are shown when asked (``--progress``), else when stderr is a terminal; never
    under ``--quiet``."""
    if quiet:
        return False
    return sys.stderr.isatty() if flag is None else bool(flag)


class Silent:
    """A bar that shows nothing (progress off, or not a terminal)."""

    n = 0

    def __init__(self, total=None, **_):
        self.total = total

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, *_a, **_k):
        pass

    def set_description_str(self, *_a, **_k):
        pass

    def write(self, *_a, **_k):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def bar(total, desc, enabled, unit="step", position=0, leave=False):
    """A progress bar over ``total`` items labelled ``desc`` (a :class:`Silent` one when not
    ``enabled``)."""
    if not enabled:
        return Silent(total)
    from tqdm import tqdm  # noqa: PLC0415
    return tqdm(total=total, desc=desc, unit=unit, position=position, leave=leave,
                file=sys.stderr, dynamic_ncols=True, mininterval=0.2, smoothing=0.1)


def writer(echo, enabled):
    """A line printer that keeps bars intact: ``tqdm.write`` while bars are shown (it
    clears them, prints the line on stdout and redraws them), ``echo`` otherwise."""
    if not enabled:
        return echo
    from tqdm import tqdm  # noqa: PLC0415
    return lambda line: tqdm.write(str(line), file=sys.stdout)
