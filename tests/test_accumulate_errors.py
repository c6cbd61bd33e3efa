"""Bad input to the accumulation engine, its spec and the bounds: a ValueError whose
message names the culprit."""
from __future__ import annotations

import numpy as np
import pytest

from minifp.accumulate import Accumulation, dot, matmul, parse_order
from minifp.accumulate import sum as acc_sum
from minifp.theory.accumulation import accumulation_bound


@pytest.mark.parametrize("xs,ys", [((3, 4), (5, 2)), ((2, 3, 4), (2, 5, 6)), ((4,), (3,)),
                                   ((2, 3), (4,)), ((2, 2, 3), (3, 3, 2))])
def test_matmul_shape_mismatch_names_both_shapes(xs, ys):
    x, y = np.ones(xs, np.float16), np.ones(ys, np.float16)
    with pytest.raises(ValueError) as info:
        matmul(x, y, Accumulation("float16"))
    msg = str(info.value)
    assert str(xs) in msg and str(ys) in msg, msg


@pytest.mark.parametrize("xs,ys", [((3,), (4,)), ((2, 3), (3,)), ((3,), (3, 1))])
def test_dot_shape_mismatch_names_both_shapes(xs, ys):
    with pytest.raises(ValueError) as info:
        dot(np.ones(xs), np.ones(ys), Accumulation("float32"))
    msg = str(info.value)
    assert str(xs) in msg and str(ys) in msg, msg


def test_unknown_format_name():
    with pytest.raises(ValueError, match="float17"):
        Accumulation("float17")
    with pytest.raises(ValueError, match="float17"):
        Accumulation.parse("float17:sequential")
    with pytest.raises(ValueError, match="float17"):
        matmul(np.ones((2, 2)), np.ones((2, 2)), Accumulation("float32"), out="float17")


@pytest.mark.parametrize("spec", ["blocked:0", "blocked:-3", "blocked:x", "blocked"])
def test_bad_block_size(spec):
    with pytest.raises(ValueError, match="blocked"):
        parse_order(spec)
    with pytest.raises(ValueError, match="blocked"):
        Accumulation("float16", spec)


def test_unknown_order():
    with pytest.raises(ValueError, match="zigzag"):
        Accumulation("float16", "zigzag")
    with pytest.raises(ValueError, match="zigzag"):
        Accumulation.from_dict({"format": "float16", "order": "zigzag"})


def test_from_dict_unknown_keys():
    with pytest.raises(ValueError, match="colour"):
        Accumulation.from_dict({"format": "float16", "colour": "red"})
    acc = Accumulation("e4m3", "blocked:8", False, "toward_zero")
    assert Accumulation.from_dict(acc.to_dict()) == acc


def test_unknown_rounding_and_bad_fma():
    with pytest.raises(ValueError, match="sideways"):
        Accumulation("float16", "sequential", True, "sideways")
    with pytest.raises(ValueError, match="fma"):
        Accumulation("float16", "sequential", "yes")


def test_sum_bad_axis():
    with pytest.raises(ValueError, match="axis"):
        acc_sum(np.ones((2, 3)), axis=2, acc=Accumulation("float32"))


def test_non_real_input():
    with pytest.raises(ValueError, match="complex"):
        matmul(np.ones((2, 2), complex), np.ones((2, 2)), Accumulation("float32"))


def test_bounds_bad_arguments():
    with pytest.raises(ValueError, match="posit16"):
        accumulation_bound(Accumulation("posit16"), 10)          # needs magnitude=
    with pytest.raises(ValueError, match="n must"):
        accumulation_bound(Accumulation("float16"), -1)
    with pytest.raises(ValueError, match="magnitude"):
        accumulation_bound(Accumulation("float16"), 3, magnitude=-1.0)
