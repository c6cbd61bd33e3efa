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


# ---- 52 and 53 significant bits: only float64 itself (issue 12, defect 3) -------------
# Rounding through float64 with round-to-odd is one correct rounding only up to 51 bits,
# so every layout with 51 or 52 mantissa bits is refused except binary64's own.
WIDE_REFUSED = "significant bits .* are refused: minifp rounds through float64 with " \
               "round-to-odd, a single correct rounding only up to 51 bits"


def _wide_spellings():
    for e in range(1, 12):
        for m in (51, 52):
            for sp in ("", "ieee", "fn", "fnuz", "finite"):
                for b in ("", "b1023", "b1022", "b1024", "b0", "b-1", "b15", "b127"):
                    for mod in ("", ":sat", ":ftz", ":sat:ftz"):
                        yield f"e{e}m{m}{b}{sp}{mod}"


def _is_float64_spelling(name: str) -> bool:
    base = name.split(":")[0]
    return base in ("e11m52", "e11m52ieee", "e11m52b1023ieee")


def test_every_spelling_with_51_or_52_mantissa_bits_is_refused_but_float64():
    allowed, refused = [], 0
    for name in _wide_spellings():
        if _is_float64_spelling(name):
            fmt = get_format(name)
            assert (fmt.ebits, fmt.mbits, fmt.bias, fmt.specials_kind) == (11, 52, 1023, "ieee")
            allowed.append(name)
            continue
        with pytest.raises(ValueError, match=WIDE_REFUSED) as err:
            get_format(name)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(repr(name)), msg   # one line, names it
        assert "float64:sat" in msg and "float64:ftz" in msg         # says what is allowed
        refused += 1
    assert refused == 11 * 2 * 5 * 8 * 4 - len(allowed) and len(allowed) == 3 * 4


@pytest.mark.parametrize("kwargs", [
    dict(ebits=11, mbits=51), dict(ebits=8, mbits=51), dict(ebits=8, mbits=52),
    dict(ebits=11, mbits=52, bias=1022), dict(ebits=11, mbits=52, specials_kind="fn"),
    dict(ebits=11, mbits=52, specials_kind="fnuz", bias=1023),
    dict(ebits=11, mbits=52, specials_kind="finite", bias=1023),
    dict(ebits=10, mbits=51, subnormals=False, overflow="saturate"),
])
def test_wide_float_constructor_arguments_are_refused(kwargs):
    with pytest.raises(ValueError, match=WIDE_REFUSED):
        FloatFormat(**kwargs)


@pytest.mark.parametrize("name", ["float64", "float64:sat", "float64:ftz", "float64:sat:ftz",
                                  "e11m52", "e11m52:ftz", "fp64:sat", "double:ftz"])
def test_float64_and_its_variants_are_allowed(name):
    fmt = get_format(name)
    assert fmt.precision == 53 and fmt.carrier == np.float64
    x = np.array([1e-310, -1e-310, 1.5, np.inf])
    want = [0.0, -0.0, 1.5, np.inf] if not fmt.subnormals else [1e-310, -1e-310, 1.5, np.inf]
    got = fmt.round(x)
    assert got.tolist() == want and np.signbit(got).tolist() == [False, True, False, False]


@pytest.mark.parametrize("order", ["sequential", "pairwise", "blocked:4", "exact", "native"])
def test_accumulation_in_a_52_bit_format_is_refused(order):
    # issue 12's reproducer: this was 1.0 (rounded twice) instead of 1 + 2**-51
    from minifp.accumulate import Accumulation
    for name in ("e11m51", "e8m51", "e8m52"):
        with pytest.raises(ValueError, match=WIDE_REFUSED):
            Accumulation(name, order)
