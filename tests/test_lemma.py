"""minifp.theory.lemma: the classification tolerance Gamma, the error delta, the 16-bit paper's lemma."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from minifp.theory.lemma import error, guaranteed, guaranteed_strict, lemma_report, tolerance


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _exact_condition(r, l, strict=False):
    out = []
    for rr, ll in zip(np.asarray(r, np.float64), np.asarray(l, np.float64)):
        top = sorted((Fraction(float(v)) for v in rr), reverse=True)
        gam = top[0] - top[1]
        dlt = max(abs(Fraction(float(a)) - Fraction(float(b))) for a, b in zip(rr, ll))
        out.append(gam > 2 * dlt if strict else gam >= 2 * dlt)
    return np.array(out, dtype=bool)


def test_tolerance_and_error_values():
    r = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.5, 0.5, 0.0]])
    l = np.array([[0.6, 0.3, 0.1], [0.1, 0.45, 0.45], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(tolerance(r), [0.5, 0.1, 0.0])
    np.testing.assert_allclose(error(r, l), [0.1, 0.05, 0.0])
    assert tolerance(r).shape == (3,) and error(r, l).shape == (3,)
    assert tolerance(r).dtype == np.float64


def test_boundary_gamma_equals_two_delta_is_guaranteed_and_agrees():
    # dyadic values: every difference is exact, Gamma = 2 delta exactly
    r = np.array([[0.75, 0.25], [0.25, 0.75]])
    l = np.array([[0.5, 0.5], [0.5, 0.5]])       # low model ties at the top
    assert (tolerance(r) == 2 * error(r, l)).all()
    assert guaranteed(r, l).all()
    assert not guaranteed_strict(r, l).any()
    rep = lemma_report(r, l)
    assert rep["guaranteed"] == 2 and rep["agree"] == 2
    assert rep["guaranteed_but_disagree"] == 0
    # the tie is broken in favour of the reference class ...
    assert rep["pred_low"].tolist() == [0, 1] and rep["pred_ref"].tolist() == [0, 1]
    # ... while a plain argmax (first maximiser) would disagree on the second sample
    assert rep["argmax_agree"] == 1 and rep["low_ties"] == 2
    assert rep["strict_but_argmax_disagree"] == 0


def test_just_beyond_the_boundary_is_not_guaranteed():
    r = np.array([[0.75, 0.25]])
    l = np.array([[np.nextafter(0.5, 0.0), np.nextafter(0.5, 1.0)]])
    assert not guaranteed(r, l)[0]              # delta just above Gamma / 2
    rep = lemma_report(r, l)
    assert rep["guaranteed"] == 0 and rep["disagree"] == 1
    l2 = np.array([[np.nextafter(0.5, 1.0), np.nextafter(0.5, 0.0)]])
    assert guaranteed_strict(r, l2)[0] and guaranteed(r, l2)[0]


def test_boundary_with_inexact_differences_is_decided_exactly():
    # differences that float64 cannot represent: the decision must match exact arithmetic
    r = np.array([[1.0, 1e-30, 0.0], [0.6, 0.4, 0.0], [0.6, 0.4, 0.0]])
    l = np.array([[0.5 + 5e-31, 0.5, 0.0], [0.55, 0.45, 0.0], [0.55, 0.45000000000000007, 0]])
    assert guaranteed(r, l).tolist() == _exact_condition(r, l).tolist()
    assert guaranteed_strict(r, l).tolist() == _exact_condition(r, l, strict=True).tolist()


def test_ties_in_the_reference():
    r = np.array([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2]])
    l = np.array([[0.4, 0.4, 0.2], [0.4, 0.41, 0.19]])
    assert tolerance(r).tolist() == [0.0, 0.0]
    assert guaranteed(r, l).tolist() == [True, False]  # Gamma = 0 needs delta = 0
    rep = lemma_report(r, l)
    assert rep["agree"] == 1 and rep["guaranteed_but_disagree"] == 0
    assert rep["pred_ref"].tolist() == [0, 0] and rep["pred_low"].tolist() == [0, 1]


def test_nonfinite_rows_are_never_guaranteed():
    r = np.array([[0.9, 0.1], [np.nan, 0.1], [np.inf, 0.0], [0.9, 0.1]])
    l = np.array([[0.9, 0.1], [0.9, 0.1], [np.inf, 0.0], [np.nan, 0.1]])
    assert guaranteed(r, l).tolist() == [True, False, False, False]
    rep = lemma_report(r, l)
    assert rep["guaranteed_but_disagree"] == 0
    assert not rep["agrees"][3]


def test_report_counts_and_arrays():
    rng = np.random.default_rng(0)
    r = _softmax(rng.normal(size=(200, 10)) * 3)
    l = _softmax(np.log(r) + rng.normal(scale=0.3, size=r.shape))
    rep = lemma_report(r, l)
    assert rep["samples"] == 200
    assert rep["agree"] + rep["disagree"] == 200
    assert 0 < rep["guaranteed"] < 200 and rep["disagree"] > 0
    assert rep["guaranteed_but_disagree"] == 0
    np.testing.assert_array_equal(rep["tolerance"], tolerance(r))
    np.testing.assert_array_equal(rep["error"], error(r, l))
    np.testing.assert_array_equal(rep["is_guaranteed"], guaranteed(r, l))
    assert rep["is_guaranteed"].dtype == bool and rep["is_guaranteed"].shape == (200,)
    # float16 / float32 inputs are taken exactly
    r16, l16 = r.astype(np.float16), l.astype(np.float16)
    np.testing.assert_array_equal(guaranteed(r16, l16), _exact_condition(r16, l16))


def test_lead_axes_and_bad_input():
    r = np.full((2, 3, 4), 0.25)
    r[..., 0] = 0.4
    assert tolerance(r).shape == (2, 3) and guaranteed(r, r).all()
    with pytest.raises(ValueError, match="same shape"):
        error(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2 classes"):
        tolerance(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="class axis"):
        tolerance(np.float64(1.0))


_probs = hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 6)),
                    elements=st.floats(-6, 6, allow_nan=False))


@st.composite
def _pairs(draw):
    z = draw(_probs)
    r = _softmax(z)
    kind = draw(st.sampled_from(["noise", "boundary", "tie", "coarse"]))
    if kind == "noise":
        scale = draw(st.sampled_from([1e-8, 1e-4, 1e-2, 0.1]))
        noise = draw(hnp.arrays(np.float64, z.shape, elements=st.floats(-1, 1)))
        l = r + scale * noise
    elif kind == "boundary":
        # move the reference class down and the runner-up up by exactly Gamma / 2
        # (up to rounding): delta hits Gamma / 2 and p_low ties at the top
        order = np.argsort(-r, axis=1, kind="stable")
        rows = np.arange(r.shape[0])
        gam = r[rows, order[:, 0]] - r[rows, order[:, 1]]
        l = r.copy()
        l[rows, order[:, 0]] -= gam / 2
        l[rows, order[:, 1]] += gam / 2
        nudge = draw(st.sampled_from([0.0, 1e-17, -1e-17, 1e-16]))
        l[rows, order[:, 1]] += nudge
    elif kind == "tie":
        r = r.copy()
        r[:, 1] = r[:, 0]
        l = r + draw(st.sampled_from([0.0, 1e-12]))
    else:  # values from a coarse dyadic grid: many exact ties and exact boundaries
        g = draw(hnp.arrays(np.int64, z.shape, elements=st.integers(0, 8)))
        h = draw(hnp.arrays(np.int64, z.shape, elements=st.integers(0, 8)))
        r, l = g / 8.0, h / 8.0
    return r, l


@settings(max_examples=400, deadline=None)
@given(_pairs())
def test_property_no_guaranteed_sample_disagrees(pair):
    r, l = pair
    rep = lemma_report(r, l)
    assert rep["guaranteed_but_disagree"] == 0
    assert rep["strict_but_argmax_disagree"] == 0
    # the guarantee is the exact condition Gamma >= 2 delta
    np.testing.assert_array_equal(rep["is_guaranteed"], _exact_condition(r, l))
    np.testing.assert_array_equal(rep["is_guaranteed_strict"], _exact_condition(r, l, True))
    # and the lemma itself, checked in exact arithmetic
    for rr, ll, g in zip(r, l, rep["is_guaranteed"]):
        if g:
            k = int(np.argmax(rr))
            assert all(Fraction(float(ll[k])) >= Fraction(float(v)) for v in ll)
