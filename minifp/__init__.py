"""minifp: low-precision neural-network numerics with explicit formats, rounding and accumulation."""
from .formats import Format, FloatFormat, PositFormat, Rounding, get_format, round_to

__version__ = "0.1.0"
__all__ = ["Format", "FloatFormat", "PositFormat", "Rounding", "get_format", "round_to",
           "__version__"]
