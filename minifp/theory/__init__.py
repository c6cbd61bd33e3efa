"""The theory: what error a computation may have, proven a priori or bounded on its data.

* :mod:`~minifp.theory.accumulation`: u, gamma_n and the a-priori bound of every
  accumulation order (sequential, pairwise, blocked:b, exact, native) in any accumulator
  format, posits included;
* :mod:`~minifp.theory.ops`: a componentwise error bound for every op of a recorded
  forward pass on its actual data, propagated op by op;
* :mod:`~minifp.theory.gradients`: the same for the gradients of a recorded backward pass,
  in reverse;
* :mod:`~minifp.theory.lemma`: the 16-bit paper's classification tolerance Gamma, error
  delta and its lemma Gamma >= 2 delta => same class.

:mod:`minifp.inspect` runs networks against a reference and reports these bounds next to
the measured errors.
"""
from .accumulation import Bound, accumulation_bound, gamma, unit_roundoff
from .lemma import error, lemma_report, tolerance

__all__ = ["Bound", "accumulation_bound", "gamma", "unit_roundoff", "error", "lemma_report",
           "tolerance"]
