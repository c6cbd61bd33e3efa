"""The `minifp` command line (click.testing.CliRunner) and minifp.formats.exactparse."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from minifp import __version__
from minifp.cli import main
from minifp.jsonio import loads_strict
from minifp.formats.exactparse import neighbours, parse_exact, parse_real, round_to_odd, to_float64
from minifp.formats import MODE_NAMES, get_format, named_formats


def run(*args):
    return CliRunner().invoke(main, list(args))


def stderr_of(result) -> str:
    return result.stderr if result.stderr_bytes is not None else result.output


def assert_user_error(result, *needles):
    """Exit status 2, one line `minifp: error: ...` on stderr, no traceback."""
    assert result.exit_code == 2, result.output
    err = stderr_of(result)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minifp: error: ")
    assert "Traceback" not in result.output and "Traceback" not in err
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for n in needles:
        assert n in lines[0]


def round_rows(output: str) -> list[list[str]]:
    """Data rows of `formats round` (after the mode line and the header)."""
    return [line.split() for line in output.strip().splitlines()[2:]]


# ---- top level and `formats` --------------------------------------------------------
def test_version():
    r = run("--version")
    assert r.exit_code == 0
    assert __version__ in r.output


def test_formats_table_lists_every_named_format():
    r = run("formats")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["name", "bits", "p"]
    names = [line.split()[0] for line in lines[1:] if line.strip()]
    for name, fmt, _ in named_formats():
        assert name in names
        row = next(line.split() for line in lines[1:] if line.split()[:1] == [name])
        assert int(row[1]) == fmt.bits and int(row[2]) == fmt.precision
    assert "eXmY[bB][fn|fnuz|finite][:sat][:ftz]" in r.output
    assert "posit(N,ES)" in r.output


def test_formats_json_parses_and_matches_api():
    r = run("formats", "--json")
    assert r.exit_code == 0
    data = loads_strict(r.output)
    assert [d["name"] for d in data] == [n for n, _, _ in named_formats()]
    for d, (name, fmt, note) in zip(data, named_formats()):
        assert d["description"] == note
        for key, value in fmt.describe().items():
            if key != "name":
                assert d[key] == value, (name, key)


# ---- `formats show` ----------------------------------------------------------------
def code_rows(output: str) -> list[list[str]]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["code", "binary"])
    return [line.split(maxsplit=3) for line in lines[start + 1:] if line.strip()]


def test_show_e4m3_lists_256_codes_exactly():
    r = run("formats", "show", "e4m3")
    assert r.exit_code == 0, r.output
    assert "precision" in r.output and "smallest_subnormal" in r.output
    rows = code_rows(r.output)
    assert len(rows) == 256
    fmt = get_format("e4m3")
    codes, values = fmt.code_table()
    for (hx, binary, value, cls), c, v in zip(rows, codes.tolist(), values.tolist()):
        assert int(hx, 16) == c
        assert int(binary.replace(".", ""), 2) == c
        assert [len(g) for g in binary.split(".")] == [1, 4, 3]
        if math.isnan(v):
            assert value == "nan" and cls == "nan"
        else:
            assert Fraction(value) == Fraction(v)  # exact decimal
    assert rows[0x38][:3] == ["0x38", "0.0111.000", "1.0"]
    assert rows[0x38][3] == "normal"
    assert rows[0x01][3] == "subnormal" and rows[0x00][3] == "zero"
    assert rows[0x7E][2] == "448.0" and rows[0x7F][3] == "nan"
    assert rows[0x80][2] == "-0.0"


def test_show_e2m1_has_16_rows():
    r = run("formats", "show", "e2m1")
    assert r.exit_code == 0
    rows = code_rows(r.output)
    assert len(rows) == 16
    assert rows[7][:3] == ["0x7", "0.11.1", "6.0"]


def test_show_posit8_groups_sign_then_rest_and_nar():
    r = run("formats", "show", "posit8")
    assert r.exit_code == 0
    rows = code_rows(r.output)
    assert len(rows) == 256
    assert rows[0x40][:3] == ["0x40", "0.1000000", "1.0"]
    assert rows[0x80][1] == "1.0000000" and rows[0x80][3] == "NaR"
    # minpos = 2^-24, printed exactly
    assert Fraction(rows[0x01][2]) == Fraction(1, 2 ** 24)


def test_show_wide_format_has_properties_only():
    r = run("formats", "show", "bfloat16")
    assert r.exit_code == 0
    assert "carrier" in r.output and "float32" in r.output
    assert "2^-133" in r.output
    assert "0x0000" not in r.output


def test_show_json():
    r = run("formats", "show", "e5m2", "--json")
    assert r.exit_code == 0
    data = loads_strict(r.output)
    assert data["max"] == 57344.0 and len(data["codes"]) == 256
    assert data["codes"][0x7C] == {"hex": "0x7c", "binary": "0.11111.00", "value": "inf",
                                   "class": "inf"}


def test_show_float17_is_one_clear_line():
    r = run("formats", "show", "float17")
    assert_user_error(r, "unknown format", "float17")


# ---- `formats round` -----------------------------------------------------------------
def test_round_posit8_toward_zero():
    r = run("formats", "round", "posit8", "0.1", "1e9", "--mode", "toward_zero")
    assert r.exit_code == 0, r.output
    rows = round_rows(r.output)
    fmt = get_format("posit8")
    expect = fmt.round(np.array([0.1, 1e9]), "toward_zero")
    codes = fmt.encode(np.array([0.1, 1e9]), "toward_zero")
    assert [float(row[1]) for row in rows] == expect.tolist()
    assert [int(row[3], 16) for row in rows] == codes.tolist()
    assert rows[1][1] == "16777216.0"  # clamped to maxpos, not NaR
    assert float(rows[0][4]) == pytest.approx(abs(0.09375 - 0.1) / 0.1, rel=1e-3)


@pytest.mark.parametrize("name", ["e4m3", "e5m2", "e4m3fnuz", "bfloat16", "float16", "e2m1",
                                  "posit8", "posit16", "posit32", "e4m3b11fnuz:sat"])
@pytest.mark.parametrize("mode", MODE_NAMES)
def test_round_values_equal_api(name, mode):
    values = ["0.1", "-0.3", "1e9", "-1e-9", "3.14159", "-2.5", "0", "7", "1e-3"]
    r = run("formats", "round", name, *values, "--mode", mode, "--seed", "5")
    assert r.exit_code == 0, r.output
    rows = round_rows(r.output)
    fmt = get_format(name)
    x = np.array([parse_real(v) for v in values])  # what the CLI hands to the API
    expect = fmt.round(x, mode, np.random.default_rng(5)).astype(np.float64)
    got = np.array([float(row[1]) for row in rows])
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expect))
    codes = fmt.encode(expect)
    assert [int(row[3], 16) for row in rows] == codes.tolist()
    assert [int(row[2].replace(".", ""), 2) for row in rows] == codes.tolist()


def test_round_negative_and_special_values():
    r = run("formats", "round", "e5m2", "-0.5", "-inf", "inf", "nan", "-0", "0x1.8p-3")
    assert r.exit_code == 0, r.output
    rows = round_rows(r.output)
    assert [row[0] for row in rows] == ["-0.5", "-inf", "inf", "nan", "-0", "0x1.8p-3"]
    assert [row[1] for row in rows] == ["-0.5", "-inf", "inf", "nan", "-0.0", "0.1875"]
    assert rows[0][2] == "1.01110.00" and rows[0][3] == "0xb8"
    assert rows[1][3] == "0xfc"


def test_round_after_double_dash():
    r = run("formats", "round", "e4m3", "--", "-1.5")
    assert r.exit_code == 0
    assert round_rows(r.output)[0][1] == "-1.5"


def test_round_is_correct_where_float64_double_rounds():
    # 1 + 2^-11 is the float16 midpoint between 1 and 1 + 2^-10; the decimal is just
    # above it, but float("...") lands exactly on it and a tie would go down to 1.0.
    text = "1.00048828125000000000000001"
    assert float(text) == 1 + 2 ** -11
    r = run("formats", "round", "float16", text, "1.00048828125")
    rows = round_rows(r.output)
    assert rows[0][1] == "1.0009765625"
    assert rows[1][1] == "1.0"
    # float64 itself is rounded directly from the exact value in every mode
    r = run("formats", "round", "float64", "0.1", "--mode", "toward_zero")
    assert float(round_rows(r.output)[0][1]) == math.nextafter(0.1, 0)


def test_round_stochastic_is_reproducible():
    args = ["formats", "round", "bfloat16"] + ["0.3"] * 20 + ["--mode", "stochastic"]
    a, b = run(*args, "--seed", "7"), run(*args, "--seed", "7")
    assert a.exit_code == 0 and a.output == b.output
    assert len({row[1] for row in round_rows(a.output)}) == 2  # both neighbours occur


def test_round_nan_into_format_without_nan():
    r = run("formats", "round", "e2m1", "nan", "100")
    assert r.exit_code == 0, r.output
    rows = round_rows(r.output)
    assert rows[1][1] == "6.0"  # e2m1 saturates


def test_round_relative_error_is_exact():
    r = run("formats", "round", "e4m3", "1/3")
    rows = round_rows(r.output)
    assert rows[0][1] == "0.34375"
    assert rows[0][4] == f"{float((Fraction(11, 32) - Fraction(1, 3)) / Fraction(1, 3)):.3e}"


# ---- errors ----------------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["formats", "show", "float17"], "float17"),
    (["formats", "show", "e12m3"], "exponent bits"),
    (["formats", "show", "posit(40,2)"], "posit width"),
    (["formats", "show", "e4m3:foo"], "modifier"),
    (["formats", "round", "e4m3", "1", "--mode", "bogus"], "rounding mode"),
    (["formats", "round", "e4m3", "abc"], "not a number"),
    (["formats", "round", "e4m3", "1", "--seed", "x"], "--seed"),
    (["formats", "round", "e4m3", "1", "--mdoe", "up"], "--mdoe"),
    (["formats", "round", "e4m3"], "Missing argument"),
    (["formats", "show"], "Missing argument"),
    (["formats", "frobnicate"], "No such command"),
    (["--bogus"], "No such option"),
])
def test_errors_exit_2_with_one_line(args, needle):
    assert_user_error(run(*args), needle)


def test_help_works():
    for args in (["--help"], ["formats", "--help"], ["formats", "round", "--help"]):
        r = run(*args)
        assert r.exit_code == 0 and "Usage:" in r.output
    assert "reproducible" in run("formats", "round", "--help").output


# ---- exactparse ------------------------------------------------------------------
def _odd(x: float) -> bool:
    return bool(np.array(abs(x)).view(np.uint64) & 1)


def test_parse_real_above_float16_midpoint_rounds_up():
    text = "1.00048828125000000000000001"  # 1 + 2^-11 + 1e-26
    x = parse_real(text)
    assert x > 1 + 2 ** -11 and x == math.nextafter(1 + 2 ** -11, 2)
    f16 = get_format("float16")
    assert f16.round(np.array([x]))[0] == 1 + 2 ** -10
    assert f16.round(np.array([float(text)]))[0] == 1.0  # what double rounding gives
    # just below the midpoint: float("...") is the midpoint, round-to-odd stays below
    y = parse_real("1.00048828124999999999999999")
    assert y < 1 + 2 ** -11 and f16.round(np.array([y]))[0] == 1.0


def test_parse_real_exact_values_unchanged():
    for text, v in [("0.5", 0.5), ("-0.5", -0.5), ("1e9", 1e9), ("448", 448.0),
                    ("0x1.8p-3", 0.1875), ("-0X.1P4", -1.0), ("1_000", 1000.0),
                    ("3/4", 0.75), ("  2.5  ", 2.5), ("0x1p-1074", 5e-324)]:
        assert parse_real(text) == v, text


def test_parse_real_specials_and_signed_zero():
    assert parse_real("inf") == math.inf and parse_real("-Infinity") == -math.inf
    assert parse_real("+inf") == math.inf
    assert math.isnan(parse_real("nan")) and math.isnan(parse_real("-NaN"))
    z = parse_real("-0")
    assert z == 0 and math.copysign(1, z) == -1
    assert math.copysign(1, parse_real("0.0")) == 1


def test_parse_real_inexact_gives_odd_neighbour():
    for text in ["0.1", "-0.1", "1/3", "2.675", "1e-310", "123456789.123456789e-20",
                 "9007199254740993", "0x1.00000000000008p0"]:
        q, _ = parse_exact(text)
        x = parse_real(text)
        lo, hi = neighbours(q)
        assert lo < q < hi and x in (lo, hi) and _odd(x), text


def test_parse_real_extremes():
    big = float(np.finfo(np.float64).max)
    assert parse_real("1e400") == big and parse_real("-1e400") == -big
    assert parse_real("1e-400") == 5e-324 and parse_real("-1e-400") == -5e-324
    # beyond DBL_MAX every narrower format still sees an overflow
    assert get_format("float32").round(np.array([parse_real("1e400")]), "toward_zero")[0] \
        == np.finfo(np.float32).max
    assert np.isinf(get_format("float32").round(np.array([parse_real("1e400")]))[0])


@pytest.mark.parametrize("bad", ["", "abc", "1/0", "0x", "0xg", "1e", "--mode", "1.2.3"])
def test_parse_real_rejects_non_numbers(bad):
    with pytest.raises(ValueError):
        parse_real(bad)


def test_round_to_odd_then_round_is_correct_rounding():
    """Round-to-odd then one rounding = direct correct rounding (random decimals)."""
    rng = np.random.default_rng(1)
    f16 = get_format("float16")
    grid = [Fraction(v) for v in f16.code_table()[1].astype(np.float64).tolist()
            if math.isfinite(v) and v > 0]
    for _ in range(300):
        i = int(rng.integers(0, len(grid) - 1))
        lo, hi = grid[i], grid[i + 1]
        mid = (lo + hi) / 2
        # a decimal within 1e-25 of the midpoint, on a random side
        q = mid + Fraction(int(rng.integers(-5, 6)), 10 ** 25)
        x = round_to_odd(q)
        if q == mid:
            expect = lo if int(np.array(float(lo), np.float16).view(np.uint16)) % 2 == 0 else hi
        else:
            expect = lo if q < mid else hi
        assert f16.round(np.array([x]))[0] == float(expect)
        for mode, want in (("toward_zero", lo), ("up", lo if q == lo else hi), ("down", lo)):
            assert f16.round(np.array([x]), mode)[0] == float(want)


@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "toward_zero", "up", "down",
                                  "to_odd"])
def test_to_float64_matches_rounding_definition(mode):
    rng = np.random.default_rng(2)
    for _ in range(200):
        q = Fraction(int(rng.integers(-10 ** 18, 10 ** 18)), int(rng.integers(1, 10 ** 18)))
        if q == 0:
            continue
        lo, hi = neighbours(q)
        r = to_float64(q, mode)
        assert r in (lo, hi)
        if lo == hi:
            continue
        mid = (Fraction(lo) + Fraction(hi)) / 2
        want = {"toward_zero": lo if q > 0 else hi, "up": hi, "down": lo,
                "to_odd": lo if _odd(lo) else hi}.get(mode)
        if want is None:
            want = lo if q < mid else hi  # no exact ties among these random q
        assert r == want
    # ties
    tie = Fraction(1) + Fraction(1, 2 ** 53)
    assert to_float64(tie, "nearest_even") == 1.0
    assert to_float64(tie, "nearest_away") == 1 + 2 ** -52
    # overflow threshold 2^1024 - 2^970 is a tie between DBL_MAX (odd) and "2^1024"
    thr = Fraction(2) ** 1024 - Fraction(2) ** 970
    assert to_float64(thr, "nearest_even") == math.inf
    assert to_float64(thr - 1, "nearest_even") == float(np.finfo(np.float64).max)
    assert to_float64(-thr * 2, "toward_zero") == -float(np.finfo(np.float64).max)


def test_readme_python_example_runs():
    """Every Python example in README.md shows real output."""
    import doctest
    import pathlib

    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md not found")
    blocks = [b.split("```")[0] for b in readme.read_text().split("```python\n")[1:]]
    assert len(blocks) >= 2
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for i, block in enumerate(blocks):
        test = doctest.DocTestParser().get_doctest(block, {}, f"README.md[{i}]",
                                                   str(readme), 0)
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_readme_cli_outputs_are_current():
    """The command outputs quoted in README.md are what the commands print now."""
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md not found")
    text = readme.read_text()
    quoted = re.findall(r"\$ (minifp formats (?:show e2m1|round [^\n]*))\n(.*?)\n(?=\$|```)",
                        text, re.S)
    assert len(quoted) >= 3
    for cmd, shown in quoted:
        args = cmd.split()[1:]
        r = run(*args)
        assert r.exit_code == 0
        assert r.output.rstrip("\n") == shown.rstrip("\n"), cmd
