"""`minifp formats round` agrees with the API and with the exact reference (issue 12,
defect 4), for every format and mode.

Hypothesis draws a format (every registered name, with :sat / :ftz where it is a float;
spelled eXmY[bB][ieee|fn|fnuz|finite][:sat][:ftz] with any bias the registry accepts;
the float64 variants; posit(N,ES) for N 2..32, ES 0..4), a mode (all seven), a seed and
typed values whose exact value the test knows (it wrote them): decimals of any length,
fractions, hex floats, exact decimals of dyadic numbers, the rounding boundaries of the
format (arithmetic midpoints of floats; for posits the value of the extended bit string)
and numbers a tiny relative distance either side of them, values beyond max and below the
smallest subnormal or minpos, out of float64's range, zeros, inf and nan. It runs
``minifp formats round NAME -- VALUE... --mode M --seed S --json`` through click's
CliRunner and checks, value by value:

* the CLI equals the API: for formats of at most 51 bits, ``fmt.round`` (same seed) of
  the float64s obtained from the exact values by round-to-odd (computed here with the
  reference, not with minifp's parser); for float64 and its variants, the exact value
  rounded once (the reference), and ``fmt.round`` where the value is a float64;
* the CLI equals the exact reference rounding of the exact Fraction in every
  deterministic mode (posits included); stochastic results are one of the two
  neighbours of the exact value;
* the code is the code of that value (NaN results: a NaN code, or none in formats
  without NaN), and ``rounded`` is null exactly where the value is not finite.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exact_reference import posit_decode, reference_round, same_float
from minifp.cli import main
from minifp.formats import MODE_NAMES, get_format, named_formats
from minifp.jsonio import loads_strict

F64 = get_format("float64")
SPECIALS = ("ieee", "fn", "fnuz", "finite")
SETTINGS = settings(max_examples=600, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

REGISTERED = [n for n, _, _ in named_formats()]
REGISTERED += [f"{n}{mod}" for n, f, _ in named_formats() if f.kind == "float"
               for mod in (":sat", ":ftz")] + ["fp64:sat:ftz", "e4m3fn", "bf16:ftz"]


# ---- formats ---------------------------------------------------------------------------
def _top_field(e, m, sp):
    return (1 << e) - 2 if sp == "ieee" or (sp == "fn" and m == 0) else (1 << e) - 1


@st.composite
def spelled_float(draw):
    e = draw(st.integers(1, 11))
    m = draw(st.integers(0, 50))
    sp = draw(st.sampled_from(SPECIALS))
    lo, hi = _top_field(e, m, sp) - 1023, 1023
    if lo > hi:
        sp = "ieee"
        lo, hi = _top_field(e, m, sp) - 1023, 1023
    default = (1 << (e - 1)) - (0 if sp == "fnuz" else 1)
    bias = draw(st.one_of(st.just(min(max(default, lo), hi)),
                          st.integers(max(lo, -8), max(lo, min(hi, 16))),
                          st.integers(lo, hi)))
    return f"e{e}m{m}b{bias}{sp}" + draw(st.sampled_from(["", ":sat", ":ftz", ":sat:ftz"]))


@st.composite
def spelled_posit(draw):
    return f"posit({draw(st.integers(2, 32))},{draw(st.integers(0, 4))})"


def _usable(name):
    try:
        return get_format(name)
    except ValueError:                 # no normal number / no finite value at that bias
        return None


formats = st.one_of(st.sampled_from(REGISTERED), spelled_float(), spelled_posit(),
                    st.sampled_from(["float64", "float64:ftz", "float64:sat",
                                     "float64:sat:ftz", "e11m52ieee:ftz"])).map(
    lambda n: (n, _usable(n))).filter(lambda t: t[1] is not None)


# ---- typed values with their exact values ---------------------------------------------
def dyadic_decimal(q: Fraction) -> str:
    """The exact decimal spelling of a dyadic rational: N e-K."""
    k = q.denominator.bit_length() - 1
    assert q.denominator == 1 << k
    return f"{'-' if q < 0 else ''}{abs(q.numerator) * 5 ** k}e-{k}"


def hex_float(q: Fraction) -> str:
    k = q.denominator.bit_length() - 1
    return f"{'-' if q < 0 else ''}0x{abs(q.numerator):x}p-{k}"


def as_text(draw, q: Fraction) -> str:
    """Spell the exact rational q (a dyadic one exactly, any way; else as a fraction)."""
    if q.denominator & (q.denominator - 1):
        return f"{q.numerator}/{q.denominator}"
    how = draw(st.sampled_from(["decimal", "hex", "fraction"]))
    if how == "decimal":
        return dyadic_decimal(q)
    if how == "hex":
        return hex_float(q)
    return f"{q.numerator}/{q.denominator}"


def _values_of(fmt, c):
    """Finite positive values of codes c and c+1 (Fractions), or None."""
    if fmt.kind == "posit":
        a, b = posit_decode(fmt.n, fmt.es, c), posit_decode(fmt.n, fmt.es, c + 1)
    else:
        dec = fmt.decode(np.array([c, c + 1], dtype=np.uint64).astype(fmt.code_dtype))
        a, b = (float(v) for v in dec.astype(np.float64))
        if not (math.isfinite(a) and math.isfinite(b)):
            return None
        a, b = Fraction(a), Fraction(b)
    return None if a is None or b is None else (a, b)


def boundary(fmt, c):
    """Where rounding to nearest switches between codes c and c+1: the arithmetic
    midpoint for floats; for posits the value of the bit string c followed by a 1."""
    if fmt.kind == "posit":
        return posit_decode(fmt.n + 1, fmt.es, 2 * c + 1)
    ab = _values_of(fmt, c)
    return None if ab is None else (ab[0] + ab[1]) / 2


def top_code(fmt) -> int:
    return (1 << (fmt.n - 1)) - 1 if fmt.kind == "posit" else fmt.max_code_magnitude


@st.composite
def typed_value(draw, fmt):
    """(text, exact): exact is a Fraction, or a float for -0, inf, -inf, nan."""
    kind = draw(st.sampled_from(["boundary", "boundary", "decimal", "log", "fraction",
                                 "edge", "special"]))
    sign = draw(st.sampled_from([1, -1]))
    lo_e = math.floor(math.log2(fmt.smallest_subnormal)) - 4
    hi_e = math.ceil(math.log2(fmt.max)) + 3
    if kind == "boundary":
        c = draw(st.integers(0 if fmt.kind == "float" else 1, max(top_code(fmt) - 1, 1)))
        mid = boundary(fmt, c)
        if mid is None:
            return "0", Fraction(0)
        shift = draw(st.sampled_from([None, 1, 2, 20, 52, 53, 54, 60, 120]))
        q = mid if shift is None else mid * (1 + draw(st.sampled_from([1, -1]))
                                             * Fraction(1, 1 << shift))
        return as_text(draw, sign * q), sign * q
    if kind == "decimal":         # a decimal of 1 to 30 digits near a random magnitude
        k = draw(st.integers(lo_e, hi_e))
        v = math.ldexp(draw(st.floats(1, 2, exclude_max=True)), min(k, 1023))
        text = f"{sign * v:.{draw(st.integers(0, 29))}e}"
        return text, Fraction(text)
    if kind == "log":             # an exact binary number with up to 80 bits
        k = draw(st.integers(lo_e, hi_e))
        bits = draw(st.integers(1, 80))
        mant = draw(st.integers(1 << (bits - 1), (1 << bits) - 1))
        q = sign * Fraction(mant) * Fraction(2) ** (k - bits + 1)
        return as_text(draw, q), q
    if kind == "fraction":
        num = draw(st.integers(1, 10 ** 30))
        den = draw(st.integers(1, 10 ** 30))
        q = sign * Fraction(num, den) * Fraction(2) ** draw(st.integers(lo_e, hi_e))
        return f"{q.numerator}/{q.denominator}", q
    if kind == "edge":            # max, minimum, their halves and doubles, beyond float64
        base = draw(st.sampled_from([Fraction(fmt.max), Fraction(fmt.smallest_subnormal),
                                     Fraction(fmt.smallest_normal), Fraction(2) ** 1024,
                                     Fraction(2) ** -1075, Fraction(10) ** 400,
                                     Fraction(1, 10 ** 400)]))
        q = sign * base * draw(st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(3, 2),
                                                Fraction(2), Fraction(1, 3)]))
        return as_text(draw, q), q
    return draw(st.sampled_from([("inf", math.inf), ("-inf", -math.inf), ("nan", math.nan),
                                 ("0", Fraction(0)), ("-0", -0.0), ("-0.0", -0.0),
                                 ("1e400", Fraction(10) ** 400),
                                 ("-1e-400", -Fraction(1, 10 ** 400))]))


@st.composite
def cli_case(draw):
    name, fmt = draw(formats)
    values = draw(st.lists(typed_value(fmt), min_size=1, max_size=6))
    mode = draw(st.sampled_from(MODE_NAMES))
    seed = draw(st.integers(0, 2 ** 31))
    return name, fmt, values, mode, seed


# ---- the checks ------------------------------------------------------------------------
def run_cli(name, texts, mode, seed):
    args = ["formats", "round", name, "--mode", mode, "--seed", str(seed), "--json", "--",
            *texts]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, (args, res.output, res.exception)
    return loads_strict(res.stdout)


def round_to_odd(exact) -> float:
    """The float64 of the exact value by round-to-odd (the reference's to_odd onto
    float64), zeros and non-finite values as they are."""
    if isinstance(exact, float):
        return exact
    if exact == 0:
        return 0.0
    return reference_round(F64, exact, "to_odd")


def reference(fmt, exact, mode) -> float:
    return reference_round(fmt, exact, mode)


def code_of(fmt, value: float):
    if math.isnan(value) and not fmt.has_nan:
        return None
    return int(fmt.encode(np.array([value]))[0])


def check_case(name, fmt, values, mode, seed):
    texts = [t for t, _ in values]
    out = run_cli(name, texts, mode, seed)
    assert out["format"] == fmt.name and out["rounding"] == mode
    got = [float(r["rounded_repr"]) for r in out["values"]]
    codes = [r["code"] for r in out["values"]]
    assert [r["input"] for r in out["values"]] == texts
    for r, g in zip(out["values"], got):
        assert (r["rounded"] is None) == (not math.isfinite(g)), r
        if r["rounded"] is not None:
            assert r["rounded"] == g

    exacts = [q for _, q in values]
    if fmt.precision <= 51:
        # the API, applied to the float64s by round-to-odd, with the same generator
        x = np.array([round_to_odd(q) for q in exacts], dtype=np.float64)
        api = fmt.round(x, mode, np.random.default_rng(seed)).astype(np.float64)
        for i, (g, a) in enumerate(zip(got, api.tolist())):
            assert same_float(g, a), (name, texts[i], mode, g, a)
            assert codes[i] == code_of(fmt, a) or (math.isnan(a) and codes[i] is not None)
    else:
        assert fmt.is_float64_layout
        for i, q in enumerate(exacts):        # where the value is a float64: the API itself
            is_float64 = isinstance(q, float) or (abs(q) <= Fraction(F64.max)
                                                  and Fraction(float(q)) == q)
            if is_float64 and mode != "stochastic":
                x = np.array([float(q)])
                assert same_float(got[i], float(fmt.round(x, mode)[0])), (name, texts[i])

    for i, q in enumerate(exacts):
        if mode == "stochastic":
            neighbours = (reference(fmt, q, "toward_zero"), reference(fmt, q, "up"),
                          reference(fmt, q, "down"))
            assert any(same_float(got[i], n) for n in neighbours), (name, texts[i], got[i])
            continue
        want = reference(fmt, q, mode)
        assert same_float(got[i], want), (name, texts[i], mode, got[i], want)
        if math.isnan(want):
            assert codes[i] is None if not fmt.has_nan else \
                math.isnan(float(fmt.decode(np.array([codes[i]], dtype=np.uint64)
                                            .astype(fmt.code_dtype))[0]))
        else:
            assert codes[i] == code_of(fmt, want), (name, texts[i], codes[i])


@SETTINGS
@given(cli_case())
def test_cli_round_equals_api_and_reference(case):
    check_case(*case)


def test_the_strategies_cover_the_formats_and_values():
    seen_formats, kinds = set(), set()

    @settings(SETTINGS, max_examples=400)
    @given(formats)
    def collect(t):
        seen_formats.add(t[1].name)
        kinds.add((t[1].kind, t[1].precision > 51, getattr(t[1], "subnormals", True),
                   getattr(t[1], "overflow", None)))

    collect()
    assert len(seen_formats) > 150
    assert ("float", True, False, "inf") in kinds          # float64:ftz
    assert ("float", True, True, "saturate") in kinds      # float64:sat
    assert any(k[0] == "posit" for k in kinds)


# ---- the issue's reproducers, literally ----------------------------------------------------
def _one(name, text, mode="nearest_even"):
    return run_cli(name, [text], mode, 0)["values"][0]


def test_issue_12_float64_ftz_flushes():
    r = _one("float64:ftz", "1e-310")
    assert r["rounded_repr"] == "0.0" and r["code"] == 0
    r = _one("float64:ftz", "-1e-310", "down")
    assert r["rounded_repr"] == "-0.0" and r["code"] == 1 << 63
    r = _one("float64:ftz", "2.2250738585072014e-308")        # the smallest normal stays
    assert r["rounded"] == 2.0 ** -1022


def test_float64_variants_overflow_like_the_api():
    assert _one("float64", "1e400")["rounded_repr"] == "inf"
    assert _one("float64", "1e400", "toward_zero")["rounded"] == F64.max
    assert _one("float64:sat", "1e400")["rounded"] == F64.max
    assert _one("float64:sat", "-1e400", "down")["rounded"] == -F64.max
    assert _one("float64:sat", "inf")["rounded_repr"] == "inf"   # Inf stays Inf under :sat
    assert _one("float64", "1e-400", "up")["rounded"] == 2.0 ** -1074
    assert _one("float64:ftz", "1e-400", "up")["rounded_repr"] == "0.0"
    # 1 + 2**-53 + 2**-80 rounds up (above the midpoint), read exactly
    assert _one("float64", "0x1.00000000000008000001p0")["rounded"] == 1 + 2.0 ** -52


@pytest.mark.parametrize("name,text", [("e8m52", "1e300"), ("e8m52", "1e-300"),
                                       ("e11m51", "1"), ("e11m51b1000fn", "1")])
def test_issue_12_wide_formats_are_refused_in_one_line(name, text):
    res = CliRunner().invoke(main, ["formats", "round", name, text])
    assert res.exit_code == 2
    err = res.stderr if res.stderr_bytes is not None else res.output
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minifp: error: ")
    assert "51 bits" in lines[0] and "float64" in lines[0]
