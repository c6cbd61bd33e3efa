"""A-priori error bounds: unit roundoff u, gamma_n, and the bound every accumulation obeys.

The rounding model (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2-3):
every rounding ``R`` onto a format satisfies

    R(x) = x (1 + d) + e,     |d| <= u,   |e| <= eta,

where ``u`` is the unit roundoff of the format for the rounding mode (:func:`unit_roundoff`)
and ``eta`` the largest absolute error below the normal range (:func:`underflow_error`).
A product of k factors (1 + d_i) lies in [1 - gamma_k, 1 + gamma_k], gamma_k = k u / (1 - k u)
(:func:`gamma`), valid while k u < 1; for k u >= 1 the bound is *vacuous* (infinite).

:func:`accumulation_bound` turns this into the componentwise bound the engine
(:mod:`minifp.accumulate`) obeys for one output element, a sum of n products p_i = x_i y_i:

    |computed - sum_i p_i| <= relative * sum_i |p_i| + absolute

Assumptions, everywhere: no overflow (no intermediate value beyond the largest finite value
of the format it is rounded to; for posits, beyond maxpos, where posits clamp), finite inputs,
and products that are exact before any rounding the order defines (true for every operand
format of at most 26 significant bits, see :class:`minifp.accumulate.Accumulation`).
Stochastic rounding is covered in the worst case (each rounding is to one of the two
neighbours), not in expectation.
"""
from __future__ import annotations

import dataclasses
import functools
import math

from ..formats import Rounding, get_format, parse_rounding

__all__ = ["Bound", "unit_roundoff", "gamma", "underflow_error", "posit_relative_error",
           "accumulation_bound"]

_NEAREST = (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY)


def _is_posit(fmt) -> bool:
    return getattr(fmt, "kind", None) == "posit"


def unit_roundoff(fmt, mode="nearest_even") -> float:
    """Unit roundoff u of ``fmt`` (a Format or name) under rounding ``mode``.

    u = 2**-p for the nearest modes and u = 2**(1-p) for the others (toward zero, up,
    down, to odd, stochastic: the result may be either neighbour), p = ``fmt.precision``.
    It bounds the relative error |R(x) - x| / |x| in the normal range.

    For a posit, p is its *best* precision (next to 1.0): the relative error grows away
    from 1, so a posit has no single u; use :func:`posit_relative_error` for a range of
    magnitudes (as :func:`accumulation_bound` does).
    """
    fmt = get_format(fmt)
    mode = parse_rounding(mode)
    p = fmt.precision
    return 2.0 ** -p if mode in _NEAREST else 2.0 ** (1 - p)


def gamma(n, u) -> float:
    """gamma_n = n u / (1 - n u); ``math.inf`` (a vacuous bound) when n u >= 1; 0 for n <= 0.

    |prod_{i=1}^{n} (1 + d_i)^{+-1} - 1| <= gamma_n for |d_i| <= u (Higham, Lemma 3.1).
    """
    if n <= 0:
        return 0.0
    nu = n * u
    if nu >= 1:
        return math.inf
    return _up(nu / (1 - nu))


def underflow_error(fmt, mode="nearest_even") -> float:
    """eta: the largest absolute error of one rounding onto a float ``fmt`` that the relative
    model (1 + d) does not cover, i.e. for results below the smallest normal.

    With subnormals: half the smallest subnormal for the nearest modes, the smallest
    subnormal for the others. Without subnormals (``:ftz``): the smallest normal (a result
    below it may be flushed to zero). Not for posits (see :func:`posit_relative_error`).
    """
    fmt = get_format(fmt)
    if _is_posit(fmt):
        raise ValueError(f"{fmt.name} is a posit: its absolute error depends on the range "
                         "of magnitudes (see posit_relative_error)")
    mode = parse_rounding(mode)
    if fmt.smallest_subnormal < fmt.smallest_normal:
        return fmt.smallest_subnormal / 2 if mode in _NEAREST else fmt.smallest_subnormal
    return fmt.smallest_normal


# ---------------------------------------------------------------------------- posits
@functools.lru_cache(maxsize=None)
def _posit_gaps(n: int, es: int):
    """The binades of posit(n, es) as ``(a, b, f)``: from 2**a (a posit) to 2**b (the next
    power of two that is a posit). ``f`` is the number of fraction bits kept in [2**a, 2**b)
    when b == a + 1 (values 2**a (1 + j 2**-f)); ``None`` when exponent bits are cut off,
    so 2**a and 2**b (b - a >= 2) are neighbours.

    For the scale a = k 2**es + ex the regime takes min(k + 2 (k >= 0) or 1 - k (k < 0),
    n - 1) bits; ``avail`` = n - 1 - regime bits remain for exponent and fraction.
    """
    max_scale = (n - 2) << es
    gaps = []
    a = -max_scale
    while a < max_scale:
        k = a >> es
        rlen = min(k + 2 if k >= 0 else 1 - k, n - 1)
        avail = n - 1 - rlen
        if avail >= es:
            gaps.append((a, a + 1, avail - es))
            a += 1
        else:
            b = a + (1 << (es - avail))
            gaps.append((a, b, None))
            a = b
    return tuple(gaps)


def _gap_error(a: int, b: int, f, nearest: bool) -> float:
    """Largest |R(x) - x| / |x| for x in [2**a, 2**b] (see posit_relative_error)."""
    if f is not None:
        return 2.0 ** -(f + 1) if nearest else 2.0 ** -f
    s = b - a
    return 2.0 ** (s / 2) - 1 if nearest else 2.0 ** s - 1


def posit_relative_error(fmt, lo, hi, mode="nearest_even") -> float:
    """Largest relative error |R(x) - x| / |x| of rounding onto the posit ``fmt`` for
    lo <= |x| <= hi (``math.inf`` if hi > maxpos: clamping to maxpos is an overflow).

    Derived from the posit layout, binade by binade (see ``_posit_gaps``):

    * where f >= 0 fraction bits remain, neighbours are 2**(a-f) apart and the bit-string
      midpoint is the arithmetic one: 2**-(f+1) (nearest), 2**-f (directed, stochastic);
    * where exponent bits are cut, the neighbours are 2**a and 2**b, s = b - a >= 2, and
      the bit-string midpoint is the code with the first cut exponent bit set,
      2**(a + s/2): 2**(s/2) - 1 (nearest), 2**s - 1 (directed: x just above 2**a
      rounded up).

    Below minpos no relative bound exists (posits never round to 0); callers cover
    |x| < lo with an absolute error (see :func:`accumulation_bound`).
    """
    fmt = get_format(fmt)
    if not _is_posit(fmt):
        raise ValueError(f"{fmt.name} is not a posit")
    nearest = parse_rounding(mode) in _NEAREST
    if hi > fmt.max:
        return math.inf
    worst = 0.0
    for a, b, f in _posit_gaps(fmt.n, fmt.es):
        if 2.0 ** b <= lo or 2.0 ** a > hi:
            continue
        worst = max(worst, _gap_error(a, b, f, nearest))
    return worst


# ---------------------------------------------------------------------------- bound
@dataclasses.dataclass(frozen=True)
class Bound:
    """|computed - exact| <= relative * sum_i |x_i y_i| + absolute.

    ``vacuous``: no finite bound (some gamma_k has k u >= 1, or the magnitudes may
    overflow); ``relative`` and ``absolute`` are then ``math.inf``. ``formula``: how the
    numbers were obtained. ``valid_up_to``: the bound holds for sum_i |x_i y_i| up to this
    value (only finite when a posit is involved or ``magnitude`` was given).
    """

    relative: float
    absolute: float
    vacuous: bool
    formula: str
    valid_up_to: float = math.inf

    def value(self, sum_abs) -> float:
        """relative * sum_abs + absolute; ``math.inf`` when vacuous or beyond ``valid_up_to``."""
        sum_abs = float(sum_abs)
        if self.vacuous or sum_abs > self.valid_up_to:
            return math.inf
        return _up(self.relative * sum_abs + self.absolute)

    def __str__(self) -> str:
        if self.vacuous:
            return f"vacuous ({self.formula})"
        return f"{self.relative:.3g} * sum|x*y| + {self.absolute:.3g}  ({self.formula})"


def _up(x: float) -> float:
    """Nudge a computed bound up by a few ulps, so float64 evaluation never makes it smaller
    than the real-number formula."""
    if x == 0 or math.isinf(x):
        return x
    return x * (1 + 2.0 ** -50)


def _fmt_u(u: float) -> str:
    e = math.log2(u) if 0 < u < math.inf else None
    return f"2^{int(e)}" if e is not None and e == int(e) else f"{u:.3g}"


@dataclasses.dataclass(frozen=True)
class _Site:
    """Error constants of one kind of rounding: u (relative) and eta (absolute)."""

    name: str
    u: float
    eta: float
    note: str = ""


def _site(fmt, mode, range_hi, floor) -> _Site:
    """u and eta of a rounding onto ``fmt`` whose arguments have magnitude <= range_hi."""
    mode = parse_rounding(mode)
    if _is_posit(fmt):
        u = posit_relative_error(fmt, floor, range_hi, mode)
        return _Site(fmt.name, u, floor, f"posit over [{floor:.3g}, {range_hi:.3g}]")
    if range_hi > fmt.max:
        return _Site(fmt.name, math.inf, math.inf, "may overflow")
    return _Site(fmt.name, unit_roundoff(fmt, mode), underflow_error(fmt, mode))


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0


def _core(order, n, block, fma, acc_fmt, mode, out_fmt, out_mode, hi, floors):
    """(relative, absolute, formula) for arguments of magnitude <= hi."""
    fl_acc, fl_out = floors
    acc = _site(acc_fmt, mode, hi, fl_acc) if acc_fmt is not None else None
    terms = []
    if order == "exact":
        rel, eta_sum = 0.0, 0.0
        terms.append("exact: the exact sum, no rounding before the output")
    elif order == "sequential":
        # every term passes through at most n roundings (term 1: R(p_1) or the product
        # rounding, then n-1 additions; term k >= 2: n-k+1 additions, +1 product rounding)
        rel = gamma(n, acc.u)
        count = n if fma else 2 * n - 1
        eta_sum = count * acc.eta
        terms.append(f"sequential: gamma_{n}(u_acc)")
    elif order == "pairwise":
        depth = _ceil_log2(n)
        k = max(depth, 1) if fma else depth + 1
        rel = gamma(k, acc.u)
        count = max(n - 1, 1) if fma else 2 * n - 1
        eta_sum = count * acc.eta
        terms.append(f"pairwise: gamma_{k}(u_acc), k = " +
                     ("max(ceil(log2 n), 1)" if fma else "ceil(log2 n) + 1"))
    elif order == "blocked":
        m = -(-n // block)
        k = m + (0 if fma else 1)
        u64 = 2.0 ** -53
        rel = (1 + gamma(k, acc.u)) * (1 + u64) - 1
        count = m + (m - 1) + (0 if fma else n)
        eta_sum = count * acc.eta + m * 2.0 ** -1075
        terms.append(f"blocked:{block}: (1+u64)(1+gamma_{k}(u_acc)) - 1, k = ceil(n/b)"
                     + ("" if fma else " + 1"))
    elif order == "native":
        import numpy as np
        dname = {np.dtype(np.float16): "float16", np.dtype(np.float32): "float32",
                 np.dtype(np.float64): "float64"}[np.dtype(acc_fmt.carrier)]
        dfmt = get_format(dname)
        d = _site(dfmt, "nearest_even", hi, 0.0)
        rel = gamma(n, d.u)
        eta_sum = (2 * n - 1) * d.eta
        terms.append(f"native: gamma_{n}(u_{dname}), any order, products rounded or fused")
        if dfmt != acc_fmt:
            rel = (1 + rel) * (1 + acc.u) - 1
            eta_sum = eta_sum * (1 + acc.u) + acc.eta
            terms.append(f"then one rounding to {acc_fmt.name}")
    else:  # pragma: no cover - Order is validated by the spec
        raise ValueError(f"unknown accumulation order {order!r}")
    absolute = eta_sum * (1 + rel) if eta_sum else 0.0
    # every rounded quantity so far is a partial sum (or product): |.| <= hi (1+rel) + absolute
    inner = (rel, absolute)
    if acc is not None and order != "exact":
        terms.append(f"u_acc = {_fmt_u(acc.u)} ({acc.name}{', ' + acc.note if acc.note else ''})")
    if out_fmt is not None:
        o = _site(out_fmt, out_mode, hi * (1 + rel) + absolute if order != "exact" else hi,
                  fl_out)
        rel, absolute = (1 + rel) * (1 + o.u) - 1, absolute * (1 + o.u) + o.eta
        terms.append(f"output rounding to {o.name}: (1+B)(1+u_out) - 1, u_out = {_fmt_u(o.u)}"
                     + (f" ({o.note})" if o.note else ""))
    if math.isinf(rel) or math.isnan(rel) or math.isinf(absolute):
        return math.inf, math.inf, "; ".join(terms), inner
    return _up(rel), _up(absolute), "; ".join(terms), inner


def accumulation_bound(acc, n, out=None, *, out_rounding="nearest_even", magnitude=None,
                       floor=None) -> Bound:
    """The a-priori bound for one output element of a sum of ``n`` products under ``acc``
    (an :class:`~minifp.accumulate.Accumulation` or its ``parse`` string), rounded to
    ``out`` (a format; None = the accumulator format) with ``out_rounding``:

        |computed - sum p_i| <= B * sum |p_i| + A

    u_acc = :func:`unit_roundoff` of the accumulator under ``acc.rounding``; eta its
    :func:`underflow_error`. By order (before the output rounding):

    ``sequential``  B = gamma_n(u_acc), with and without fma. Term 1 passes through n
                    roundings (R(p_1), or the product rounding, then n - 1 additions);
                    term k >= 2 through n - k + 1 additions, plus its product rounding
                    without fma: at most n either way (Higham, eq. (3.5)). fma only helps
                    terms 2..n. Roundings that may underflow: n (fma), 2n - 1 (no fma).
    ``pairwise``    B = gamma_k(u_acc), k = max(ceil(log2 n), 1) with fma (a term meets at
                    most one addition per tree level; n = 1 allows one rounding of the
                    lone product), k = ceil(log2 n) + 1 without fma (+ the product rounding).
                    Underflowing roundings: n - 1 (at least 1), or 2n - 1 without fma.
    ``blocked:b``   m = ceil(n/b) blocks. A block sum is exact (its products rounded to the
                    accumulator first without fma), rounded once to float64 (u64 = 2**-53,
                    nearest even) and once to the accumulator: factor (1+d64)(1+d_acc);
                    block 1 then meets m - 1 sequential additions, block j >= 2 m - j + 1:
                    B = (1 + u64)(1 + gamma_k(u_acc)) - 1, k = m (fma) or m + 1 (no fma).
                    Underflowing roundings: 2m - 1 (+ n) in the accumulator, m in float64
                    (eta64 = 2**-1075).
    ``exact``       B = 0, A = 0: the exact sum; only the output rounding remains (it is
                    always applied: into ``out`` with ``out_rounding``, or, when ``out``
                    is None, into the accumulator format with ``acc.rounding``).
    ``native``      B = gamma_n(u_D) in D, the accumulator's carrier dtype (float16,
                    float32 or float64), in any order, fused or not (Higham (3.5) holds
                    for every order), then one rounding to the accumulator when it is not
                    D itself: (1 + B)(1 + u_acc) - 1.

    Absolute term: every rounding may add eta; what later roundings do to it is at most
    the factor (1 + B), so A = (number of roundings) * eta * (1 + B).

    Output: when ``out`` is a format other than the accumulator's (or the order is
    ``exact``), one more rounding: B' = (1 + B)(1 + u_out) - 1, A' = A (1 + u_out) + eta_out.
    Rounding a value of the accumulator format to that same format is exact, so nothing is
    added when ``out`` is None or the accumulator format.

    Vacuous (``Bound.vacuous``, infinite value) when some gamma_k has k u >= 1, or when
    ``magnitude`` is given and the partial sums may exceed a format's largest value.

    Posits (accumulator or output): the relative error depends on the magnitude. Pass
    ``magnitude`` = an upper bound on sum |p_i| (required); the bound is only valid for
    sums with sum |p_i| <= magnitude (``Bound.valid_up_to``). Every rounded quantity is a
    partial sum (or a product), so its magnitude is at most M = magnitude (1 + B) + A;
    this is solved as a fixed point. Roundings of magnitudes in [floor, M] use
    u = :func:`posit_relative_error` over that range; a magnitude below ``floor`` (a posit
    value; partial sums may cancel to anything) is covered by eta = floor, since
    R(x) lies in (0, floor] then. ``floor`` defaults to the power of two that minimises
    the bound at sum |p_i| = magnitude. Posits clamp at maxpos: M > maxpos is vacuous.
    """
    if isinstance(acc, str):
        from ..accumulate.spec import Accumulation
        acc = Accumulation.parse(acc)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    acc_fmt = get_format(acc.format)
    order = acc.order.kind
    block = acc.order.block
    mode = parse_rounding(acc.rounding)
    out_mode = parse_rounding(out_rounding)
    out_fmt = None if out is None else get_format(out)
    if order == "exact":
        if out_fmt is None:          # the quire rounds into A with the accumulation's mode
            out_fmt, out_mode = acc_fmt, mode
        acc_fmt_used = None
    else:
        acc_fmt_used = acc_fmt
        if out_fmt == acc_fmt:
            out_fmt = None
    if n == 0:
        return Bound(0.0, 0.0, False, "empty sum: exactly 0")
    posits = [f for f in (acc_fmt_used, out_fmt) if f is not None and _is_posit(f)]
    if posits and magnitude is None:
        raise ValueError(f"{posits[0].name}: a posit's relative error depends on the "
                         "magnitude; pass magnitude= (an upper bound on sum |x_i y_i|)")
    hi0 = math.inf if magnitude is None else float(magnitude)
    if magnitude is not None and not hi0 > 0:
        raise ValueError(f"magnitude must be positive, got {magnitude!r}")

    def solve(floors):
        """Fixed point M >= magnitude (1 + B(M)) + A(M); (rel, abs, formula, M)."""
        if magnitude is None:
            rel, ab, text, _ = _core(order, n, block, acc.fma, acc_fmt_used, mode, out_fmt,
                                     out_mode, 0.0, floors)
            return rel, ab, text, math.inf
        hi = hi0
        for _ in range(10_000):
            rel, ab, text, (irel, iab) = _core(order, n, block, acc.fma, acc_fmt_used, mode,
                                               out_fmt, out_mode, hi, floors)
            if math.isinf(rel):
                return rel, ab, text, hi
            need = hi0 * (1 + irel) + iab
            if need <= hi:
                return rel, ab, text, hi
            hi = need
        return math.inf, math.inf, text, hi  # pragma: no cover - bounded by the binades

    def own_floor(fmt, candidate):
        """The largest power of two of the posit ``fmt`` at most ``candidate`` (or minpos)."""
        if fmt is None or not _is_posit(fmt):
            return 0.0
        powers = [2.0 ** a for a, _, _ in _posit_gaps(fmt.n, fmt.es)] + [fmt.max]
        below = [p for p in powers if p <= candidate]
        return below[-1] if below else powers[0]

    if floor is not None:
        candidates = [float(floor)]
    elif posits:
        top = min(hi0, max(f.max for f in posits))
        candidates = sorted({2.0 ** a for f in posits for a, _, _ in _posit_gaps(f.n, f.es)
                             if 2.0 ** a <= top}) or [min(f.smallest_normal for f in posits)]
    else:
        candidates = [0.0]
    best = None
    for cand in candidates:
        floors = (own_floor(acc_fmt_used, cand), own_floor(out_fmt, cand))
        rel, ab, text, hi = solve(floors)
        score = rel * hi0 + ab if magnitude is not None else rel
        if best is None or score < best[0]:
            best = (score, rel, ab, text, floors)
    _, rel, ab, text, (fa, fo) = best
    prefix = f"n={n}, {acc}"
    if posits:
        used = [f"floor {fl:.3g} for {f.name}" for f, fl in ((acc_fmt_used, fa), (out_fmt, fo))
                if f is not None and _is_posit(f)]
        text += "; posit magnitudes below the floor count as absolute error (" + \
            ", ".join(used) + ")"
    valid = math.inf if magnitude is None else hi0
    if math.isinf(rel) or math.isinf(ab):
        return Bound(math.inf, math.inf, True, f"{prefix}: {text}", valid)
    return Bound(rel, ab, False, f"{prefix}: {text}", valid)
