"""minifp: low-precision neural-network numerics with explicit formats, rounding and
accumulation.

Public names:

* formats: :class:`Format`, :class:`FloatFormat`, :class:`PositFormat`, :class:`Rounding`,
  :func:`get_format`, :func:`round_to` (values of a format live in its carrier dtype;
  every rounding is a single correct rounding in the chosen mode);
* :class:`Accumulation` (accumulator format, order, fma, rounding) and the engine in
  :mod:`minifp.accumulate` (``dot``, ``matmul``, ``sum``, ``mean``): every sum in minifp;
* :class:`Precision` (formats per role, accumulations per phase, rounding, loss scaling),
  :func:`get_precision` and the context :func:`use`;
* :class:`Tensor`, :class:`Parameter`, :func:`no_grad` (reverse-mode autodiff whose ops
  round their outputs to the role formats of the policy in force);
* :mod:`minifp.functional` (ops) and :mod:`minifp.nn` (layers, ``model.to(policy)``);
* :mod:`minifp.theory` (u, gamma_n, the a-priori bound of each accumulation order, the
  bounds of every op and gradient, the lemma).
"""
from . import functional, nn, theory
from .accumulate import Accumulation
from .autograd import Parameter, Tensor, no_grad
from .formats import FloatFormat, Format, PositFormat, Rounding, get_format, round_to
from .precision import Precision, get_precision, use

__version__ = "0.1.0"
__all__ = ["Format", "FloatFormat", "PositFormat", "Rounding", "get_format", "round_to",
           "Accumulation", "Precision", "get_precision", "use", "Tensor", "Parameter",
           "no_grad", "functional", "nn", "theory", "__version__"]
