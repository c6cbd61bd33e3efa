"""PositNN's posit underflow variant, posit(n,es):underflow, against the Fraction
reference (exact_reference: 0 is the neighbour below minpos and the standard bit-string
rounding applies), in every deterministic mode, on every code value, every midpoint and
its float64 neighbours, and a dense sweep below minpos; stochastic rounding from given
words; the C kernels alike."""
from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import pytest

from exact_reference import posit_values, reference_round
from minifp.formats import Rounding, get_format

FORMATS = ["posit(8,2):underflow", "posit(8,0):underflow", "posit(6,1):underflow",
           "posit(16,1):underflow"]
MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "to_odd"]


@functools.lru_cache(maxsize=None)
def _values(n, es):
    return posit_values(n, es)            # (65536 Fraction decodes for posit16: once)


def _inputs(fmt):
    vals = _values(fmt.n, fmt.es)
    pos = [v for v in vals if v > 0]
    if fmt.n > 8:                                 # posit16: the lowest codes only
        pos = pos[:16]
    xs = set()
    for a, b in zip([Fraction(0)] + pos, pos):
        for v in (a, b, (a + b) / 2):
            f = float(v)
            xs.update((f, float(np.nextafter(f, 0)), float(np.nextafter(f, np.inf))))
    minpos = fmt.smallest_normal
    t = fmt.underflow_threshold
    for k in range(0, 64):                        # geometric sweep below minpos
        xs.add(minpos * 2.0 ** (-k / 4))
        xs.add(t * (1 + k / 64))
    xs = np.array(sorted(x for x in xs if x >= 0))
    return np.concatenate([xs, -xs])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FORMATS)
def test_matches_the_fraction_reference(name, mode):
    fmt = get_format(name)
    assert fmt.underflow and fmt.name.endswith(":underflow")
    x = _inputs(fmt)
    got = fmt.round(x, mode, dtype=np.float64)
    want = np.array([reference_round(fmt, v, mode) for v in x])
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    assert not bad.any(), (name, mode, x[bad][:5], got[bad][:5], want[bad][:5])


def test_the_threshold_and_the_standard_posit():
    f, std = get_format("posit8:underflow"), get_format("posit8")
    t, minpos = f.underflow_threshold, f.smallest_normal
    assert t == 2.0 ** -28 and minpos == 2.0 ** -24        # minpos / useed, useed = 16
    x = np.array([t / 2, t, t * 1.01, minpos / 2, minpos, 1.0, 3e9])
    assert list(f.round(x, dtype=np.float64)) == [0, 0, minpos, minpos, minpos, 1.0,
                                                  std.max]
    assert list(std.round(x[:4], dtype=np.float64)) == [minpos] * 4   # never 0
    assert f != std and get_format("posit(8,2):underflow") == f


def test_stochastic_rounding_below_minpos_uses_the_word():
    f = get_format("posit8:underflow")
    minpos = f.smallest_normal
    x = np.full(4, 0.3 * minpos)
    units = np.array([0.1, 0.29, 0.31, 0.9])
    words = (units * 2.0 ** 53).astype(np.uint64) << np.uint64(11)
    got = f.round(x, "stochastic", words=words, dtype=np.float64)
    assert list(got) == [minpos, minpos, 0.0, 0.0]           # minpos with p = 0.3
    rng = np.random.default_rng(0)
    many = f.round(np.full(20000, 0.3 * minpos), "stochastic", rng, dtype=np.float64)
    assert abs(np.mean(many == minpos) - 0.3) < 0.02


def test_bad_spellings():
    with pytest.raises(ValueError, match="posits only"):
        get_format("e4m3:underflow")
    with pytest.raises(ValueError, match="posits take ':underflow'"):
        get_format("posit8:sat")


def test_kernels_round_alike(kernels_built):
    from minifp.kernels.host import round_array
    from minifp.formats.stream import draw_key
    for name in FORMATS:
        f = get_format(name)
        x = np.concatenate([_inputs(f), np.random.default_rng(1).standard_normal(5000)
                            * f.smallest_normal * 4])
        for mode in MODES + ["stochastic"]:
            want = f.round(x, mode, np.random.default_rng(3), dtype=np.float64)
            got = round_array(f, x, Rounding(mode), key=draw_key(np.random.default_rng(3)))
            assert ((want == got) | (np.isnan(want) & np.isnan(got))).all(), (name, mode)
