"""The exact order's float64 BLAS path (orders.exact_by_float64) against Fraction sums:
where it answers, every output is the exact sum; where the certificate cannot hold, it
declines and the engine takes the Kulisch path."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from minifp.accumulate import Accumulation, engine, orders


def exact_sums(x, y):
    B, m, K = x.shape
    n = y.shape[-1]
    return [[[sum((Fraction(float(x[b, i, k])) * Fraction(float(y[b, k, j]))
                   for k in range(K)), Fraction(0)) for j in range(n)] for i in range(m)]
            for b in range(B)]


def _check(got, x, y):
    want = exact_sums(x, y)
    B, m, n = got.shape
    for b in range(B):
        for i in range(m):
            for j in range(n):
                assert Fraction(float(got[b, i, j])) == want[b][i][j]


def test_float16_data_are_answered_exactly():
    rng = np.random.default_rng(11)
    for K in (1, 5, 64, 300):
        x = rng.standard_normal((2, 3, K)).astype(np.float16).astype(np.float64)
        y = (rng.standard_normal((2, K, 4)) / np.sqrt(K)).astype(np.float16).astype(np.float64)
        got = orders.exact_by_float64(x, y, (11, 11), (-24, -24))
        assert got is not None, K
        _check(got, x, y)


def test_float32_data_exact_where_answered():
    """Few-bit values are answered; full 24-bit values over a wide range may not be
    (48-bit products spread over more than 53 bits), but never wrongly.  The bits are
    measured, as the engine measures them for float64 data."""
    rng = np.random.default_rng(24)
    answered = 0
    for K in (1, 5, 64, 300):
        v = rng.standard_normal((2, 3, K))
        w = rng.standard_normal((2, K, 4))
        for x, y in ((np.round(v * 64) / 64, np.round(w * 64) / 64),
                     (v.astype(np.float32).astype(np.float64),
                      w.astype(np.float32).astype(np.float64))):
            bits = (orders.significant_bits(x), orders.significant_bits(y))
            got = orders.exact_by_float64(x, y, bits, (-1074, -1074))
            if got is not None:
                answered += 1
                _check(got, x, y)
    assert answered >= 4


def test_zero_sums_are_positive_zero():
    x = np.array([[[-1.0, 1.0]]])
    y = np.array([[[0.0], [-0.0]]])
    got = orders.exact_by_float64(x, y, (11, 11), (-24, -24))
    assert got is not None and np.signbit(got).sum() == 0


def test_declines_what_it_cannot_certify():
    # cancellation across 2**-60 .. 2**60: more than 53 bits apart
    x = np.array([[[2.0 ** 60, 1.0, -(2.0 ** 60)]]])
    y = np.array([[[1.0], [2.0 ** -60], [1.0]]])
    assert orders.exact_by_float64(x, y, (24, 24), (-149, -149)) is None
    assert orders.exact_by_float64(x, y, (53, 1), (-1074, -1074)) is None     # > 53 bits
    with np.errstate(invalid="ignore"):
        z = np.array([[[np.inf, 1.0]]])
        assert orders.exact_by_float64(z, y[:, :2], (24, 24), (-149, -149)) is None
    # and the engine still gives the exact sum (rounded to float16: 2**-60 is lost)
    acc = Accumulation("float64", "exact")
    assert float(engine.matmul(x[0], y[0], acc)[0, 0]) == 2.0 ** -60
