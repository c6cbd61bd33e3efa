"""`minifp bounds`: the error-bound calculator (minifp.cli.bounds)."""
import math

import pytest
from click.testing import CliRunner

from minifp.accumulate.spec import Accumulation
from minifp.theory.accumulation import accumulation_bound, gamma, unit_roundoff
from minifp.cli.bounds import higham_mary, largest_n, order_k
from minifp.cli import main
from minifp.jsonio import loads_strict


def run(*args):
    return CliRunner().invoke(main, ["bounds", *args])


def run_json(*args):
    res = run(*args, "--json")
    assert res.exit_code == 0, res.output
    return loads_strict(res.output)


def test_float16_784_text():
    res = run("--format", "float16", "--n", "784")
    assert res.exit_code == 0, res.output
    out = res.output
    u = unit_roundoff("float16")
    assert u == 2.0 ** -11
    assert f"u        = {u:.4g} (2^-11)" in out
    assert f"gamma_n  = {gamma(784, u):.4g}" in out
    for order in ("sequential", "pairwise", "blocked:32", "exact", "native"):
        b = accumulation_bound(Accumulation("float16", order), 784)
        assert f"B = {b.relative:.4g}   A = {b.absolute:.4g}" in out, order
    assert "*sequential" in out
    assert "Higham & Mary 2019" in out and "independent, mean zero" in out
    assert "largest n for sequential: 1023" in out
    assert "vacuous" not in out


def test_float16_784_json_matches_bounds_module():
    d = run_json("--format", "float16", "--n", "784")
    u = 2.0 ** -11
    assert d["u"] == u and d["n"] == 784 and d["format"] == "float16"
    assert d["gamma_n"] == gamma(784, u) and not d["gamma_n_vacuous"]
    assert math.isclose(d["gamma_n"], 784 * u / (1 - 784 * u), rel_tol=1e-14)
    rows = {r["order"]: r for r in d["bounds"]}
    assert list(rows) == ["sequential", "pairwise", "blocked:32", "exact", "native"]
    for order, r in rows.items():
        b = accumulation_bound(Accumulation("float16", order), 784)
        assert r["relative"] == b.relative and r["absolute"] == b.absolute
        assert r["vacuous"] is False and r["formula"] == b.formula
    # the module nudges each bound up by a few ulps (never below the real formula)
    assert gamma(784, u) <= rows["sequential"]["relative"]
    assert math.isclose(rows["sequential"]["relative"], gamma(784, u), rel_tol=1e-14)
    assert rows["pairwise"]["k"] == 10
    assert math.isclose(rows["pairwise"]["relative"], gamma(10, u), rel_tol=1e-14)
    assert rows["blocked:32"]["k"] == 25
    assert d["largest_n"] == 1023
    p = d["probabilistic"]
    lam = math.sqrt(2 * math.log(2 * 784 / 1e-6)) / (1 - u)
    assert p["available"] and math.isclose(p["lambda"], lam, rel_tol=1e-15)
    assert math.isclose(p["first_order"], lam * math.sqrt(784) * u, rel_tol=1e-15)
    assert p["first_order"] < p["gamma_tilde"] < d["gamma_n"]
    assert "independent" in p["assumptions"] and "mean zero" in p["assumptions"]
    # failure probability P: 2 n exp(-lambda^2 (1-u)^2 / 2) = P
    assert math.isclose(2 * 784 * math.exp(-(lam * (1 - u)) ** 2 / 2), 1e-6, rel_tol=1e-9)


def test_vacuous_float16_4096_sequential():
    res = run("--format", "float16", "--n", "4096", "--order", "sequential")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    seq = next(x for x in lines if x.strip().startswith("*sequential"))
    assert seq.split(None, 1)[1] == "vacuous (n·u >= 1)"
    assert "gamma_n  = vacuous (n·u >= 1)" in res.output
    nat = next(x for x in lines if x.strip().startswith("native"))
    assert "vacuous (n·u >= 1)" in nat
    pw = next(x for x in lines if x.strip().startswith("pairwise"))
    assert "B = " in pw and "vacuous" not in pw
    d = run_json("--format", "float16", "--n", "4096")
    rows = {r["order"]: r for r in d["bounds"]}
    assert rows["sequential"]["vacuous"] and rows["sequential"]["relative"] is None
    assert d["gamma_n"] is None and d["gamma_n_vacuous"]


def test_largest_n_by_order():
    u16 = 2.0 ** -11
    assert largest_n("sequential", u16, True) == (1023, "1023")
    assert gamma(1023, u16) < 1 <= gamma(1024, u16)
    n, text = largest_n("pairwise", u16, True)
    assert n is None and text == "2^1023"
    assert largest_n("pairwise", u16, False)[1] == "2^1022"
    assert largest_n("blocked:32", u16, True)[0] == 1023 * 32
    assert gamma(order_k("blocked:32", 1023 * 32, True), u16) < 1
    assert gamma(order_k("blocked:32", 1023 * 32 + 1, True), u16) >= 1
    assert largest_n("blocked:32", u16, False)[0] == 1022 * 32
    assert largest_n("exact", u16, True)[0] is None
    ub = unit_roundoff("bfloat16")
    assert largest_n("sequential", ub, True)[0] == 127
    assert largest_n("pairwise", 2.0 ** -3, False) == (4, "4")    # k = 3 <= K = 3
    assert gamma(order_k("pairwise", 4, False), 2.0 ** -3) < 1
    assert gamma(order_k("pairwise", 5, False), 2.0 ** -3) >= 1
    assert largest_n("pairwise", 2.0 ** -3, True) == (8, "8")
    assert largest_n("pairwise", 0.5, True) == (0, "none")
    assert largest_n("sequential", 0.5, True) == (0, "none")
    assert gamma(order_k("pairwise", 8, True), 2.0 ** -3) < 1
    assert gamma(order_k("pairwise", 9, True), 2.0 ** -3) >= 1
    d = run_json("--format", "float16", "--n", "100", "--order", "blocked:64")
    assert d["order"] == "blocked:64" and d["largest_n"] == 1023 * 64
    assert [r["order"] for r in d["bounds"]][2] == "blocked:64"


def test_options_fma_rounding_out_block():
    d = run_json("--format", "bfloat16", "--n", "300", "--no-fma", "--rounding",
                 "toward_zero", "--out", "e4m3", "--block", "16", "--order", "pairwise")
    assert d["u"] == 2.0 ** -7 and d["fma"] is False and d["out"] == "e4m3"
    rows = {r["order"]: r for r in d["bounds"]}
    for order in ("sequential", "pairwise", "blocked:16", "exact", "native"):
        b = accumulation_bound(Accumulation("bfloat16", order, False, "toward_zero"), 300,
                               "e4m3")
        assert rows[order]["relative"] == (None if b.vacuous else b.relative)
    assert d["probabilistic"]["k"] == order_k("pairwise", 300, False) == 10


def test_higham_mary_function():
    p = higham_mary(1000, 1000, 2.0 ** -24, 1e-3)
    assert p["k"] == 1000
    assert math.isclose(p["first_order"], p["lambda"] * math.sqrt(1000) * 2.0 ** -24)
    assert p["gamma_tilde"] >= p["first_order"]


def test_posits_need_magnitude():
    res = run("--format", "posit16", "--n", "100")
    assert res.exit_code == 2
    assert res.output.startswith("minifp: error: posit16 is a posit")
    assert "--magnitude" in res.output and len(res.output.strip().splitlines()) == 1
    d = run_json("--format", "posit16", "--n", "100", "--magnitude", "10")
    rows = {r["order"]: r for r in d["bounds"]}
    b = accumulation_bound(Accumulation("posit16", "sequential"), 100, magnitude=10.0)
    assert rows["sequential"]["relative"] == b.relative and rows["sequential"]["valid_up_to"] == 10
    assert d["probabilistic"]["available"] is False
    n = d["largest_n"]
    assert not accumulation_bound("posit16:sequential", n + 1, magnitude=10.0).relative < 1 \
        or accumulation_bound("posit16:sequential", n + 1, magnitude=10.0).vacuous
    assert accumulation_bound("posit16:sequential", n, magnitude=10.0).relative < 1


@pytest.mark.parametrize("args, needle", [
    (["--format", "nosuch", "--n", "10"], "unknown format"),
    (["--format", "float16", "--n", "0"], "--n must be at least 1"),
    (["--format", "float16", "--n", "-5"], "--n must be at least 1"),
    (["--format", "float16", "--n", "10", "--order", "zigzag"], "unknown accumulation order"),
    (["--format", "float16", "--n", "10", "--order", "blocked:0"], "blocked"),
    (["--format", "float16", "--n", "10", "--order", "blocked:8", "--block", "4"], "disagree"),
    (["--format", "float16", "--n", "10", "--rounding", "sideways"], "sideways"),
    (["--format", "float16", "--n", "10", "--failure-probability", "2"], "failure-probability"),
    (["--format", "float16", "--n", "10", "--magnitude", "-1"], "magnitude"),
    (["--format", "float16", "--n", "ten"], "ten"),
])
def test_bad_input_one_line_exit_2(args, needle):
    res = run(*args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minifp: error: ")
    assert needle in lines[0]
    assert "Traceback" not in res.output
