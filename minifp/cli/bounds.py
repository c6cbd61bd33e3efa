"""``minifp bounds``: the a-priori error bounds of one accumulation, as a calculator.

::

    minifp bounds --format float16 --n 784 [--order sequential] [--block 32] [--fma/--no-fma]
                  [--rounding nearest_even] [--out FORMAT] [--magnitude M]
                  [--failure-probability 1e-6] [--json]

For a sum of n products in the accumulator ``--format`` it prints

* u (:func:`minifp.theory.accumulation.unit_roundoff`) and gamma_n = n u / (1 - n u)
  (:func:`minifp.theory.accumulation.gamma`);
* the worst-case bound |computed - sum p_i| <= B sum |p_i| + A of every order (sequential,
  pairwise, blocked:b, exact, native) from :func:`minifp.theory.accumulation.accumulation_bound`, with
  the formula it uses; a vacuous bound (some k u >= 1) prints ``vacuous (n·u >= 1)``;
* the probabilistic bound of Higham & Mary (see :func:`higham_mary`) for the chosen order;
* the largest n for which the chosen order's worst-case factor gamma_k stays below 1
  (see :func:`largest_n`).

Posits have no single u (their relative error depends on the magnitude): ``--magnitude M``,
an upper bound on sum |x_i y_i|, is required for them and the bounds hold only up to it.
"""
from __future__ import annotations

import math
from fractions import Fraction

import click

from ..accumulate.spec import Accumulation, parse_order
from ..theory.accumulation import accumulation_bound, gamma, unit_roundoff
from ..errors import OneLineCommand, UserError
from ..jsonio import dumps
from ..formats import get_format, parse_rounding

__all__ = ["bounds_command", "higham_mary", "largest_n", "order_k"]

POSIT_SEARCH_LIMIT = 2 ** 40

HM_THEOREM = (
    "Higham & Mary (2019), 'A new approach to probabilistic rounding error analysis', "
    "SIAM J. Sci. Comput. 41(5): Theorem 2.4: if d_1..d_k are independent random variables "
    "of mean zero with |d_i| <= u, then for any lambda > 0, |prod (1+d_i)^(+-1) - 1| <= "
    "gamma~_k(lambda) = exp(lambda sqrt(k) u + k u^2/(1-u)) - 1 with probability at least "
    "P(lambda) = 1 - 2 exp(-lambda^2 (1-u)^2 / 2). Theorem 3.1 (inner products, any order): "
    "|computed - exact| <= gamma~_n(lambda) sum |x_i y_i| with probability at least "
    "1 - n (1 - P(lambda)) (a union bound over the n terms).")
HM_ASSUMPTIONS = (
    "Model 2.1: the rounding errors d of every operation are independent random variables "
    "of mean zero (|d| <= u); no underflow or overflow. Not a worst-case guarantee: "
    "rounding errors that are correlated (e.g. many equal terms, or a sum that grows "
    "monotonically) can exceed it; stochastic rounding satisfies the mean-zero assumption.")


# ---------------------------------------------------------------------------- theory
def order_k(order, n: int, fma: bool) -> int:
    """k: the number of accumulator roundings a term passes through (gamma_k of the bound).

    sequential and native: n; pairwise: max(ceil(log2 n), 1) with fma, ceil(log2 n) + 1
    without; blocked:b: ceil(n/b) with fma, ceil(n/b) + 1 without; exact: 0.
    """
    o = parse_order(order)
    if o.kind in ("sequential", "native"):
        return n
    if o.kind == "pairwise":
        depth = (n - 1).bit_length() if n > 1 else 0
        return max(depth, 1) if fma else depth + 1
    if o.kind == "blocked":
        return -(-n // o.block) + (0 if fma else 1)
    return 0


def _k_max(u: float) -> int:
    """The largest integer k with k u < 1/2, i.e. gamma_k(u) < 1 (0 if there is none)."""
    q = Fraction(1, 2) / Fraction(u)
    k = math.ceil(q) - 1
    return max(k, 0)


def largest_n(order, u: float, fma: bool):
    """The largest n for which gamma_k(u) < 1 (k = :func:`order_k`), i.e. k u < 1/2.

    Returns ``(n, text)``: n an int, or None when every n qualifies (``exact``: one rounding,
    no gamma) or when it is too large to write out (pairwise: n = 2^K); ``text`` is how it
    prints ("1023", "2^1022", "every n", "none"). With K = the largest k with k u < 1/2:
    sequential/native n = K; pairwise 2^K (fma) or 2^(K-1); blocked:b K b (fma) or (K-1) b.
    """
    o = parse_order(order)
    if o.kind == "exact":
        return None, "every n (one rounding, no gamma_k)"
    K = _k_max(u)
    if o.kind in ("sequential", "native"):
        n = K
    elif o.kind == "pairwise":
        e = K if fma else K - 1                   # k >= 1 always: K = 0 leaves no n
        if K < 1 or e < 0:
            n = 0
        elif e > 62:
            return None, f"2^{e}"
        else:
            n = 2 ** e
    else:  # blocked
        m = K if fma else K - 1
        n = max(m, 0) * o.block
    return n, (str(n) if n >= 1 else "none")


def _largest_n_posit(fmt_name, order, fma, rounding, out, magnitude):
    """Posits: the largest n (searched up to POSIT_SEARCH_LIMIT) for which
    accumulation_bound(...) is finite with relative factor B < 1."""
    def ok(n):
        b = accumulation_bound(Accumulation(fmt_name, order, fma, rounding), n, out,
                               magnitude=magnitude)
        return not b.vacuous and b.relative < 1
    if order.kind == "exact":
        return (None, "every n (one rounding)") if ok(1) else (0, "none")
    if not ok(1):
        return 0, "none"
    lo, hi = 1, 2
    while hi <= POSIT_SEARCH_LIMIT and ok(hi):
        lo, hi = hi, hi * 2
    if hi > POSIT_SEARCH_LIMIT:
        return None, f">= {lo} (search stopped at 2^40)"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, str(lo)


def higham_mary(n: int, k: int, u: float, failure_probability: float) -> dict:
    """The probabilistic bound of Higham & Mary (2019) for an inner product of n terms in
    which every term meets k roundings with unit roundoff u.

    Theorem (their Thm 2.4 and 3.1, see ``HM_THEOREM``): under Model 2.1 (independent
    rounding errors of mean zero, |d| <= u), |computed - exact| <= gamma~_k(lambda)
    sum |x_i y_i|, gamma~_k(lambda) = exp(lambda sqrt(k) u + k u^2/(1-u)) - 1
    = lambda sqrt(k) u + O(u^2), with probability at least 1 - n 2 exp(-lambda^2 (1-u)^2/2).
    (Thm 3.1 states it with k = n for every order; each term's perturbation is a product
    of k <= n factors, so Thm 2.4 gives it with the order's own k.)

    For a total failure probability P (for the whole sum) we solve
    2 n exp(-lambda^2 (1-u)^2 / 2) = P:  lambda = sqrt(2 ln(2 n / P)) / (1 - u).
    """
    P = float(failure_probability)
    # log(2n) - log(P), not log(2n/P): 2n/P overflows float64 for a tiny P or a huge n
    lam = math.sqrt(2 * (math.log(2 * n) - math.log(P))) / (1 - u)
    first = lam * math.sqrt(k) * u
    expo = lam * math.sqrt(k) * u + k * u * u / (1 - u)
    tilde = math.expm1(expo) if expo < 700 else math.inf
    return {"failure_probability": P, "lambda": lam, "k": k, "first_order": first,
            "gamma_tilde": tilde}


# ---------------------------------------------------------------------------- command
def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def _vacuous_text(kind, k, u, is_posit):
    if is_posit:
        return "vacuous (posit: k·u >= 1 or the magnitudes may exceed maxpos)"
    if u is not None and k * u >= 1:
        if kind in ("sequential", "native"):
            return "vacuous (n·u >= 1)"
        return f"vacuous (k·u >= 1, k = {k})"
    return "vacuous (the magnitude may overflow the format)"


@click.command("bounds", cls=OneLineCommand, epilog="""\b
Examples:
  minifp bounds --n 784                                  float16, sequential
  minifp bounds --format float16 --n 4096 --order pairwise
  minifp bounds --format float32 --n 1000000 --order blocked:32 --no-fma
  minifp bounds --format bfloat16 --n 784 --out e4m3 --json
  minifp bounds --format posit16 --n 784 --magnitude 100  (posits need --magnitude)
""")
@click.option("--format", "fmt_name", default="float16", show_default=True,
              help="Accumulator format (any name `minifp formats` knows).")
@click.option("--n", "n", type=int, required=True, help="Number of products summed.")
@click.option("--order", default="sequential", show_default=True,
              help="The order to focus on: sequential, pairwise, blocked:B, exact, native.")
@click.option("--block", type=int, default=None,
              help="Block size of the blocked order [default: 32, or B of --order blocked:B].")
@click.option("--fma/--no-fma", default=True, show_default=True,
              help="Products enter the sum exactly (fma) or rounded to the accumulator.")
@click.option("--rounding", default="nearest_even", show_default=True,
              help="Rounding mode of the partial sums.")
@click.option("--out", "out_name", default=None,
              help="Output format (one more rounding at the end) [default: the accumulator].")
@click.option("--magnitude", type=float, default=None,
              help="Upper bound on sum |x_i y_i| (required for posits; for floats it "
                   "checks overflow). The bounds hold only up to it.")
@click.option("--failure-probability", "failure_probability", type=float, default=1e-6,
              show_default=True, help="Failure probability of the Higham-Mary bound.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON instead of text (strict: an infinite or undefined number "
                   "is null).")
def bounds_command(fmt_name, n, order, block, fma, rounding, out_name, magnitude,
                   failure_probability, as_json):
    """The worst-case and probabilistic error bounds of a sum of N products.

    |computed - sum x_i y_i| <= B * sum |x_i y_i| + A, by order (minifp.theory.accumulation); the
    Higham-Mary probabilistic bound lambda*sqrt(k)*u (independent mean-zero rounding
    errors); and the largest n with gamma_k < 1 (k*u < 1/2).
    """
    fmt = get_format(fmt_name)                       # ValueError: unknown format
    mode = parse_rounding(rounding)
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    chosen = parse_order(order)
    if chosen.kind == "blocked":
        if block is not None and block != chosen.block:
            raise UserError(f"--order {chosen} and --block {block} disagree")
        block = chosen.block
    block = 32 if block is None else block
    if block < 1:
        raise UserError(f"--block must be at least 1, got {block}")
    if not (0 < failure_probability < 1):
        raise UserError(f"--failure-probability must lie in (0, 1), got {failure_probability}")
    if magnitude is not None and not (magnitude > 0 and math.isfinite(magnitude)):
        raise UserError(f"--magnitude must be a positive finite number, got {magnitude}")
    out_fmt = get_format(out_name) if out_name is not None else None
    posits = [f.name for f in (fmt, out_fmt) if f is not None and f.kind == "posit"]
    if posits and magnitude is None:
        raise UserError(f"{posits[0]} is a posit: its relative error depends on the "
                        "magnitude of the sums; pass --magnitude M, an upper bound on "
                        "sum |x_i y_i| (the bounds then hold for sums up to M)")
    is_posit = fmt.kind == "posit"

    orders = [parse_order(o) for o in ("sequential", "pairwise", f"blocked:{block}",
                                       "exact", "native")]
    if chosen.kind == "blocked":
        chosen = orders[2]
    u = unit_roundoff(fmt, mode)
    rows = []
    for o in orders:
        acc = Accumulation(fmt, o, fma, mode)
        b = accumulation_bound(acc, n, out_fmt, magnitude=magnitude)
        k = order_k(o, n, fma)
        if o.kind == "native":
            import numpy as np
            carrier = {np.dtype(np.float16): "float16", np.dtype(np.float32): "float32",
                       np.dtype(np.float64): "float64"}[np.dtype(fmt.carrier)]
            ku = unit_roundoff(carrier, "nearest_even")
        else:
            ku = u
        rows.append({"order": str(o), "k": k, "relative": _num(b.relative),
                     "absolute": _num(b.absolute), "vacuous": b.vacuous,
                     "text": _vacuous_text(o.kind, k, ku, is_posit) if b.vacuous else None,
                     "formula": b.formula, "u_k": ku,
                     "valid_up_to": _num(b.valid_up_to)})
    chosen_row = next(r for r in rows if r["order"] == str(chosen))

    # largest n
    if is_posit or (out_fmt is not None and out_fmt.kind == "posit"):
        big_n, big_text = _largest_n_posit(fmt, chosen, fma, mode, out_fmt, magnitude)
        big_rule = ("largest n with a finite bound and factor B < 1 "
                    "(searched with the posit bound at --magnitude)")
    else:
        big_n, big_text = largest_n(chosen, chosen_row["u_k"], fma)
        big_rule = "largest n with gamma_k(u) < 1, i.e. k·u < 1/2"

    # probabilistic bound (not for posits: no single u; nothing to do for exact)
    if is_posit:
        prob = {"available": False,
                "reason": "a posit has no single unit roundoff (its relative error "
                          "depends on the magnitude); Model 2.1 needs |d| <= u"}
    elif chosen.kind == "exact":
        prob = {"available": False,
                "reason": "exact: a single rounding, nothing to accumulate"}
    else:
        prob = {"available": True,
                **higham_mary(n, chosen_row["k"], chosen_row["u_k"], failure_probability),
                "u": chosen_row["u_k"]}
        prob["note"] = ("accumulation only" + (
            "; the float64 rounding of each block sum and the output rounding add "
            "their worst case" if chosen.kind == "blocked" or out_fmt is not None else ""))
    prob["theorem"] = HM_THEOREM
    prob["assumptions"] = HM_ASSUMPTIONS

    g_n = gamma(n, u)
    result = {
        "format": fmt.name, "n": n, "order": str(chosen), "block": block, "fma": fma,
        "rounding": mode.value, "out": out_fmt.name if out_fmt is not None else None,
        "magnitude": magnitude, "u": u,
        "gamma_n": _num(g_n), "gamma_n_vacuous": math.isinf(g_n),
        "bounds": [{k: v for k, v in r.items() if k != "text"} for r in rows],
        "largest_n": big_n, "largest_n_text": big_text, "largest_n_rule": big_rule,
        "probabilistic": prob,
    }
    if as_json:
        click.echo(dumps(result, indent=2))
        return
    _print_text(result, rows, fmt, is_posit)


def _g(v):
    return f"{v:.4g}"


def _print_text(res, rows, fmt, is_posit):
    echo = click.echo
    head = f"{res['format']}, n = {res['n']}, " + ("fma" if res["fma"] else "no fma") + \
        f", rounding {res['rounding']}"
    if res["out"]:
        head += f", output {res['out']}"
    if res["magnitude"] is not None:
        head += f", sum|x*y| <= {res['magnitude']:g}"
    echo(head)
    u = res["u"]
    note = " (best precision, next to 1; a posit's u depends on the magnitude)" if is_posit \
        else ""
    echo(f"u        = {_g(u)} (2^{math.log2(u):g}){note}")
    echo("gamma_n  = " + (_g(res["gamma_n"]) if not res["gamma_n_vacuous"]
                          else "vacuous (n·u >= 1)") + f"   (n·u = {_g(res['n'] * u)}"
         + (", at the best-precision u)" if is_posit else ")"))
    echo("")
    echo("worst case: |computed - sum x_i y_i| <= B * sum|x_i y_i| + A")
    width = max(len(r["order"]) for r in rows)
    for r in rows:
        mark = "*" if r["order"] == res["order"] else " "
        if r["vacuous"]:
            val = r["text"]
        else:
            val = f"B = {_g(r['relative'])}   A = {_g(r['absolute'])}"
        echo(f" {mark}{r['order']:<{width}}  {val}")
    echo("   (* = --order; formulas: --json, or help(minifp.theory.accumulation.accumulation_bound))")
    echo("")
    p = res["probabilistic"]
    echo(f"probabilistic (Higham & Mary 2019), order {res['order']}:")
    if p["available"]:
        echo(f"  with probability >= 1 - {p['failure_probability']:g}: "
             f"|error| <= {_g(p['gamma_tilde'])} * sum|x_i y_i|")
        echo(f"  lambda·sqrt(k)·u = {_g(p['first_order'])}  (first order; k = {p['k']}, "
             f"lambda = sqrt(2 ln(2n/P))/(1-u) = {_g(p['lambda'])}, u = {_g(p['u'])})")
        echo("  theorem: |prod(1+d_i)^(±1) - 1| <= exp(lambda·sqrt(k)·u + k·u²/(1-u)) - 1 "
             "with probability >= 1 - 2·exp(-lambda²(1-u)²/2) (Thm 2.4); union over the "
             "n terms (Thm 3.1)")
        echo("  assumes: rounding errors independent, mean zero, |d| <= u (their Model 2.1); "
             "no underflow/overflow; not a worst-case bound")
        if p.get("note") and p["note"] != "accumulation only":
            echo(f"  ({p['note']})")
    else:
        echo(f"  not computed: {p['reason']}")
    echo("")
    echo(f"largest n for {res['order']}: {res['largest_n_text']}   ({res['largest_n_rule']})")
