"""Number formats: IEEE-like floats, 8-bit floats, posits, and rounding onto them.

>>> from minifp.formats import get_format
>>> f = get_format("e4m3")
>>> f.round([0.1, 500.0]).tolist()        # nearest-even; 500 overflows to NaN in OCP E4M3
[0.1015625, nan]
>>> f.encode([1.0]).tolist()
[56]
"""
from .base import Format
from .ieee import FloatFormat
from .modes import MODE_NAMES, Rounding, parse_rounding
from .posit import PositFormat
from .registry import get_format, named_formats

__all__ = ["Format", "FloatFormat", "PositFormat", "Rounding", "MODE_NAMES",
           "parse_rounding", "get_format", "named_formats", "round_to"]


def round_to(x, fmt, mode="nearest_even", rng=None):
    """Round ``x`` to the format ``fmt`` (a name or a Format); see :meth:`Format.round`."""
    return get_format(fmt).round(x, mode, rng)
