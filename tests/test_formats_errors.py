"""Bad names, impossible parameters, unknown modes and missing generators all
raise ValueError with a message that says what is wrong."""
from __future__ import annotations

import numpy as np
import pytest

from minifp.formats import FloatFormat, PositFormat, Rounding, get_format, parse_rounding


@pytest.mark.parametrize("name", ["nope", "float17", "posit", "e4m3xyz", "bf", "e4", "m3",
                                  "posit(8)", "posit(8,2,1)", ""])
def test_unknown_format_name(name):
    with pytest.raises(ValueError, match="unknown format") as err:
        get_format(name)
    assert repr(name) in str(err.value)
    assert "posit(N,ES)" in str(err.value)      # says how names are spelled


def test_unknown_format_name_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean.*float16"):
        get_format("float17")
    with pytest.raises(ValueError, match="did you mean.*bfloat16"):
        get_format("bfloat15")


@pytest.mark.parametrize("spec", [3, None, 1.5, b"e4m3"])
def test_format_name_must_be_a_string(spec):
    with pytest.raises(ValueError, match="string"):
        get_format(spec)


@pytest.mark.parametrize("name,message", [
    ("posit(8,5)", r"es.*(0 to 4|too large)"),
    ("posit8_5", r"es.*(0 to 4|too large)"),
    ("posit(16,9)", r"es.*(0 to 4|too large)"),
    ("posit33", r"width n.*2 to 32"),
    ("posit(33,2)", r"width n.*2 to 32"),
    ("posit(64,2)", r"width n.*2 to 32"),
    ("posit(1,0)", r"width n.*2 to 32"),
    ("posit(0,0)", r"width n.*2 to 32"),
])
def test_impossible_posit_parameters(name, message):
    with pytest.raises(ValueError, match=message) as err:
        get_format(name)
    assert repr(name) in str(err.value)       # the message names what was asked for


@pytest.mark.parametrize("n,es", [(8, 5), (33, 2), (1, 0), (8, -1), (2.0, 0), (8, "2")])
def test_impossible_posit_constructor_arguments(n, es):
    with pytest.raises(ValueError, match="posit"):
        PositFormat(n, es)


# eXmY spells exponent fields of 1..11 bits and mantissas of 0..52 bits (the
# float64 work type); e9m3 and e4m30 are therefore valid names (carrier float64).
@pytest.mark.parametrize("name,message", [
    ("e12m3", "exponent bits"),
    ("e99m3", "exponent bits"),
    ("e0m3", "exponent bits"),
    ("e4m53", "mantissa bits"),
    ("e5m60", "mantissa bits"),
])
def test_impossible_float_parameters(name, message):
    with pytest.raises(ValueError, match=message) as err:
        get_format(name)
    assert repr(name) in str(err.value)


@pytest.mark.parametrize("kwargs,message", [
    (dict(ebits=12, mbits=3), "exponent bits"),
    (dict(ebits=0, mbits=3), "exponent bits"),
    (dict(ebits=4, mbits=53), "mantissa bits"),
    (dict(ebits=4, mbits=-1), "mantissa bits"),
    (dict(ebits=4, mbits=3, specials_kind="weird"), "special-value convention"),
    (dict(ebits=4, mbits=3, overflow="wrap"), "overflow rule"),
    (dict(ebits=4, mbits=3, specials_kind="fnuz", overflow="inf"), "Inf"),
    (dict(ebits=2, mbits=1, specials_kind="finite", overflow="nan"), "NaN"),
    (dict(ebits=11, mbits=3, bias=-2000), "float64"),       # range beyond float64
])
def test_impossible_float_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FloatFormat(**kwargs)


@pytest.mark.parametrize("name,message", [
    ("e4m3:foo", "unknown modifier"),
    ("posit8:sat", "float formats only"),
    ("posit16:ftz", "float formats only"),
    ("e4m3fnuz:inf", "Inf"),
    ("e2m1:nan", "NaN"),
])
def test_bad_modifiers(name, message):
    with pytest.raises(ValueError, match=message):
        get_format(name)


@pytest.mark.parametrize("name", ["e4m3", "float16", "posit8", "posit32", "e2m1"])
@pytest.mark.parametrize("mode", ["nearest_odd", "round", "", "stochastic_odd", 3, None])
def test_unknown_rounding_mode(name, mode):
    fmt = get_format(name)
    with pytest.raises(ValueError, match="unknown rounding mode") as err:
        fmt.round([1.0], mode)
    assert "nearest_even" in str(err.value)       # lists the known modes
    with pytest.raises(ValueError, match="unknown rounding mode"):
        fmt.encode([1.0], mode)


def test_mode_names_and_aliases_parse():
    for m in Rounding:
        assert parse_rounding(m.value) is m
        assert parse_rounding(m.value.upper()) is m
        assert parse_rounding(m) is m
    assert parse_rounding("rne") is Rounding.NEAREST_EVEN
    assert parse_rounding("toward-zero") is Rounding.TOWARD_ZERO
    assert parse_rounding("sr") is Rounding.STOCHASTIC


@pytest.mark.parametrize("name", ["e4m3", "float16", "bfloat16", "float32", "posit8", "posit32",
                                  "e2m1"])
def test_stochastic_without_generator(name):
    fmt = get_format(name)
    with pytest.raises(ValueError, match=r"stochastic.*rng=numpy\.random\.default_rng"):
        fmt.round(np.array([1.1]), "stochastic")
    with pytest.raises(ValueError, match="random generator"):
        fmt.encode(np.array([1.1]), "stochastic")
    with pytest.raises(ValueError, match="random generator"):
        fmt.round(np.array([1.1]), Rounding.STOCHASTIC, None)
    # the other modes ignore rng
    fmt.round(np.array([1.1]), "nearest_even", None)


@pytest.mark.parametrize("name", ["e2m1", "e3m2", "e2m3"])
def test_encoding_nan_without_a_nan_code(name):
    fmt = get_format(name)
    with pytest.raises(ValueError, match="no NaN"):
        fmt.encode([1.0, np.nan])


def test_bad_codes():
    fmt = get_format("e4m3")
    with pytest.raises(ValueError, match=r"\[0, 2\*\*8\)"):
        fmt.decode(np.array([256]))
    with pytest.raises(ValueError, match=r"\[0, 2\*\*8\)"):
        fmt.decode(np.array([-1]))
    with pytest.raises(ValueError, match="integers"):
        fmt.decode(np.array([1.0]))
    with pytest.raises(ValueError, match=r"2\*\*4\)"):
        get_format("posit(4,0)").decode(np.array([16]))


def test_output_dtype_too_narrow():
    with pytest.raises(ValueError, match="cannot hold"):
        get_format("float32").round([1.0], dtype=np.float16)
    with pytest.raises(ValueError, match="cannot hold"):
        get_format("posit32").round([1.0], dtype=np.float16)
    out = get_format("e4m3").round([1.0], dtype=np.float64)     # wider is fine
    assert out.dtype == np.float64


def test_code_table_of_a_wide_format():
    with pytest.raises(ValueError, match="too many"):
        get_format("posit32").code_table()
    with pytest.raises(ValueError, match="too many"):
        get_format("float32").code_table()
