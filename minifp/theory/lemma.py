"""The classification tolerance Gamma, the error delta, and the lemma of the 16-bit paper.

Yun, Kang, Fu et al. (arXiv 2301.12809): for a reference model M32 and a low-precision model
M16 with softmax outputs on an input x,

    delta(x) = max_i |M32(x)_i - M16(x)_i|                       (:func:`error`)
    Gamma(x) = M32(x)_(1) - M32(x)_(2)                           (:func:`tolerance`)

where M32(x)_(1) >= M32(x)_(2) are the largest and second-largest reference outputs.

**Lemma.** If Gamma(x) >= 2 delta(x), the reference's class k (any maximiser of M32(x)) is a
maximiser of M16(x); if Gamma(x) > 2 delta(x), k is the *unique* maximiser of both.

*Proof.* Write r = M32(x), l = M16(x). For every j != k: l_k >= r_k - delta and
l_j <= r_j + delta <= r_(2) + delta (r_j <= r_(2) since j is not the maximiser k), so
l_k - l_j >= r_k - r_(2) - 2 delta = Gamma - 2 delta >= 0. With strict inequality,
l_k > l_j for every j != k, and Gamma > 0 makes k the unique maximiser of r as well. []

Nothing in the proof uses that the outputs are probabilities: it holds for any two real
vectors (logits included), so the functions here do not require rows that sum to 1.

**Ties.** At Gamma = 2 delta the lemma gives l_k >= l_j, not l_k > l_j: the low-precision
model may tie the reference's class with another one (r = (0.25, 0.75), l = (0.5, 0.5):
Gamma = 0.5 = 2 delta). A plain ``argmax`` (first maximiser) would then pick class 0 and
"disagree" although the lemma's condition holds. So that the lemma holds *exactly*, the
predictions here are made as follows:

* the reference's class is ``np.argmax(p_ref)`` (the first maximiser; when the reference
  itself ties at the top, Gamma = 0 and a guarantee needs delta = 0, i.e. p_low == p_ref,
  so every maximiser of p_ref is one of p_low);
* the low-precision model *agrees* when the reference's class attains max(p_low) — ties in
  the low-precision output are broken in favour of the reference's class. Its prediction
  (``pred_low``) is the reference's class then, and ``np.argmax(p_low)`` otherwise.

:func:`lemma_report` also counts ``argmax_agree`` (plain ``np.argmax`` on both) and the
strict guarantee Gamma > 2 delta, under which the plain argmaxes always agree.

**Exactness.** :func:`tolerance` and :func:`error` return float64 values, each correctly
rounded (a difference of two float64 values rounded once; ``abs`` and ``max`` are exact).
:func:`guaranteed` decides Gamma >= 2 delta *exactly* for the values given (converted to
float64 exactly — float16, float32 and float64 inputs lose nothing): an error-free
transformation (TwoSum) tells whether each rounded difference is exact, and the few
samples whose rounded Gamma and 2 delta are too close to decide are compared in rational
arithmetic. A sample with a NaN or an infinity in either row is never guaranteed.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["tolerance", "error", "guaranteed", "guaranteed_strict", "lemma_report"]


# ---------------------------------------------------------------------------- helpers
def _as_rows(a, name):
    """``a`` as a float64 NumPy array of shape (N, C), and the leading shape to restore."""
    try:
        from ..backend import asnumpy
        a = asnumpy(a)
    except Exception:  # pragma: no cover - asnumpy handles NumPy and CuPy arrays
        pass
    arr = np.asarray(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == bool):
        raise ValueError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    if arr.dtype.itemsize > 8 and np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: dtype {arr.dtype} is wider than float64")
    if arr.ndim < 1:
        raise ValueError(f"{name} must have a class axis (shape (N, C)), got a scalar")
    if arr.shape[-1] < 2:
        raise ValueError(f"{name} needs at least 2 classes on its last axis, "
                         f"got shape {arr.shape}")
    lead = arr.shape[:-1]
    return arr.astype(np.float64).reshape(-1, arr.shape[-1]), lead


def _pair(p_ref, p_low):
    r, lead = _as_rows(p_ref, "p_ref")
    l, lead_low = _as_rows(p_low, "p_low")
    if r.shape != l.shape or lead != lead_low:
        raise ValueError(f"p_ref and p_low must have the same shape, got "
                         f"{np.shape(p_ref)} and {np.shape(p_low)}")
    return r, l, lead


def _top2(r):
    """The largest and second-largest value of each row (the second equals the first on a tie)."""
    part = np.partition(r, r.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


def _two_diff(a, b):
    """TwoSum of a and -b: s = fl(a - b) and e with s + e = a - b exactly (finite inputs,
    no overflow, round to nearest)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a - b
        bb = s - a
        aa = s - bb
        e = (a - aa) + (-b - bb)
    return s, e


def _gap(r):
    first, second = _top2(r)
    with np.errstate(invalid="ignore", over="ignore"):
        return first - second


def _delta(r, l):
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(r - l)
    return d.max(axis=1)


# ---------------------------------------------------------------------------- public API
def tolerance(p_ref):
    """Gamma(x): the largest minus the second-largest reference output, per sample.

    ``p_ref``: array of shape (N, C) (or (..., C): the last axis is the class axis), any
    real values (softmax outputs in the paper; the lemma does not need them to be
    probabilities). Returns float64 of shape (N,) (or (...)), each value the correctly
    rounded difference. A tie at the top gives 0; a NaN in a row gives NaN.
    """
    r, lead = _as_rows(p_ref, "p_ref")
    return _gap(r).reshape(lead)


def error(p_ref, p_low):
    """delta(x) = max_i |p_ref_i - p_low_i|, per sample: float64 of shape (N,) (or (...)).

    Each |p_ref_i - p_low_i| is rounded once to float64 (rounding is monotone, so the
    maximum is the correctly rounded delta). NaN in either row gives NaN.
    """
    r, l, lead = _pair(p_ref, p_low)
    return _delta(r, l).reshape(lead)


def _decide(r, l, strict):
    """Exact Gamma >= 2 delta (or Gamma > 2 delta when ``strict``) per row of r, l."""
    n = r.shape[0]
    finite = np.isfinite(r).all(axis=1) & np.isfinite(l).all(axis=1)
    out = np.zeros(n, dtype=bool)
    if not finite.any():
        return out
    rf, lf = r[finite], l[finite]
    first, second = _top2(rf)
    g, ge = _two_diff(first, second)            # Gamma = g + ge exactly
    d, de = _two_diff(rf, lf)                   # r_i - l_i = d + de exactly
    ok = np.isfinite(g) & np.isfinite(ge) & np.isfinite(d).all(axis=1) & \
        np.isfinite(de).all(axis=1)
    # enclosures [lo, hi] of Gamma and of delta in float64 (a point where the difference
    # was exact; else the rounded value and its neighbour on the side of the error)
    g_lo = np.where(ge < 0, np.nextafter(g, -np.inf), g)
    g_hi = np.where(ge > 0, np.nextafter(g, np.inf), g)
    ad = np.abs(d)
    ade = np.where(d < 0, -de, de)              # |r - l| = ad + ade (where d != 0)
    ade = np.where(d == 0, np.abs(de), ade)
    dlo = np.where(ade < 0, np.nextafter(ad, -np.inf), ad).max(axis=1)
    dhi = np.where(ade > 0, np.nextafter(ad, np.inf), ad).max(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        two_lo, two_hi = 2 * dlo, 2 * dhi       # exact unless they overflow
        ok &= np.isfinite(two_hi) & np.isfinite(g_hi)
        if strict:
            yes = ok & (g_lo > two_hi)
            no = ok & (g_hi <= two_lo)
        else:
            yes = ok & (g_lo >= two_hi)
            no = ok & (g_hi < two_lo)
    res = yes.copy()
    for i in np.flatnonzero(~(yes | no)):       # too close to call in float64: exactly
        row_r, row_l = rf[i], lf[i]
        top = sorted((Fraction(float(v)) for v in row_r), reverse=True)
        gam = top[0] - top[1]
        dlt = max(abs(Fraction(float(a)) - Fraction(float(b))) for a, b in zip(row_r, row_l))
        res[i] = gam > 2 * dlt if strict else gam >= 2 * dlt
    out[finite] = res
    return out


def guaranteed(p_ref, p_low):
    """Per sample, whether Gamma >= 2 delta holds (decided exactly): bool of shape (N,).

    Where it holds, the reference's class is a maximiser of ``p_low`` (the lemma, see the
    module docstring): the two models are guaranteed to agree, ties in ``p_low`` broken in
    favour of the reference's class. False wherever a row holds NaN or an infinity.
    """
    r, l, lead = _pair(p_ref, p_low)
    return _decide(r, l, strict=False).reshape(lead)


def guaranteed_strict(p_ref, p_low):
    """Per sample, whether Gamma > 2 delta (decided exactly). Where it holds, both models
    have a unique top class and plain ``np.argmax`` agrees on it."""
    r, l, lead = _pair(p_ref, p_low)
    return _decide(r, l, strict=True).reshape(lead)


def lemma_report(p_ref, p_low) -> dict:
    """The lemma over a batch: counts and per-sample arrays.

    Counts (ints):

    ``samples``                 N
    ``guaranteed``              samples with Gamma >= 2 delta (exact comparison)
    ``guaranteed_strict``       samples with Gamma > 2 delta
    ``agree``                   the reference's class (``np.argmax(p_ref)``) attains
                                max(p_low) — ties in p_low in favour of the reference
    ``disagree``                N - agree
    ``guaranteed_but_disagree`` guaranteed and not agree: always 0 (the lemma)
    ``argmax_agree``            plain ``np.argmax(p_ref) == np.argmax(p_low)``
    ``strict_but_argmax_disagree``  Gamma > 2 delta and plain argmaxes differ: always 0
    ``low_ties``                samples whose p_low has a tie at the top

    Arrays (NumPy, shape (N,)): ``tolerance`` (Gamma), ``error`` (delta), ``is_guaranteed``,
    ``is_guaranteed_strict``, ``agrees``, ``pred_ref``, ``pred_low`` (the reference's class
    where it attains max(p_low), else ``np.argmax(p_low)``).

    Samples with NaN or infinities are never guaranteed; NaN in p_low counts as disagreement.
    """
    r, l, _ = _pair(p_ref, p_low)
    gam = _gap(r)
    dlt = _delta(r, l)
    is_g = _decide(r, l, strict=False)
    is_s = _decide(r, l, strict=True)
    pred_ref = np.argmax(r, axis=1)
    rows = np.arange(r.shape[0])
    with np.errstate(invalid="ignore"):
        low_max = l.max(axis=1)
        agrees = l[rows, pred_ref] == low_max      # False where p_low has a NaN
        low_ties = (l == low_max[:, None]).sum(axis=1) > 1
    plain = np.argmax(l, axis=1)
    pred_low = np.where(agrees, pred_ref, plain)
    argmax_agree = plain == pred_ref
    n = int(r.shape[0])
    return {
        "samples": n,
        "guaranteed": int(is_g.sum()),
        "guaranteed_strict": int(is_s.sum()),
        "agree": int(agrees.sum()),
        "disagree": n - int(agrees.sum()),
        "guaranteed_but_disagree": int((is_g & ~agrees).sum()),
        "argmax_agree": int(argmax_agree.sum()),
        "strict_but_argmax_disagree": int((is_s & ~argmax_agree).sum()),
        "low_ties": int(low_ties.sum()),
        "tolerance": gam,
        "error": dlt,
        "is_guaranteed": is_g,
        "is_guaranteed_strict": is_s,
        "agrees": agrees,
        "pred_ref": pred_ref,
        "pred_low": pred_low,
    }
