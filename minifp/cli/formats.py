"""``minifp formats``: list the named formats, show one (every code up to 8 bits), round numbers.

::

    minifp formats [--json]                        every named format, one line each
    minifp formats list [--json]                   the same table
    minifp formats show NAME [--json]              all properties (+ every code, <= 8 bits)
    minifp formats round NAME VALUE... [--mode M] [--seed S] [--json]

``--json`` may also be given to the group (``minifp formats --json show NAME``): it applies
to the subcommand.  JSON is strict (:func:`minifp.jsonio.dumps`: no NaN/Infinity).

Values typed on the command line are read exactly (see :mod:`minifp.formats.exactparse`),
so ``round`` shows the correctly rounded value of the number as written: for formats of at
most 51 bits, what the API's ``round`` gives for the value's float64 rounded to odd; for
float64 and its variants (the only wider formats the registry accepts), the value rounded
once to float64 in the mode, then flushed (:ftz) or saturated (:sat) as the API does.
Errors in what the user typed (unknown format, impossible parameters, unknown
mode, a value that is not a number) print one line ``minifp: error: ...`` on
stderr and exit with status 2.
"""
from __future__ import annotations

import math
import re
import sys
from decimal import Decimal, localcontext
from fractions import Fraction

import click
import numpy as np

from ..errors import CLIError, OneLineGroup
from ..jsonio import dumps
from ..formats.exactparse import parse_exact, parse_real, to_float64
from ..formats import MODE_NAMES, Rounding, get_format, named_formats, parse_rounding

SPELLINGS = "eXmY[bB][fn|fnuz|finite][:sat][:ftz] and posit(N,ES)"
TABLE_MAX_BITS = 8  # `formats show` lists every code up to this width


# ---- number and code formatting -------------------------------------------------
def exact_str(v: float) -> str:
    """The exact decimal value of a float: ``repr`` when that is exact, else all digits."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    r = repr(v)
    if Decimal(r) == Decimal(v):
        return r
    return format(Decimal(v), "e")  # every digit of the (dyadic, terminating) value


def dyadic_str(v: float) -> str:
    """A finite float as ``M * 2^E`` with M odd (``2^E`` when M = 1, ``M`` when E = 0)."""
    q = Fraction(float(v))
    if q == 0:
        return "0"
    num, den = abs(q.numerator), q.denominator
    e = -(den.bit_length() - 1)
    while num % 2 == 0:
        num //= 2
        e += 1
    sign = "-" if q < 0 else ""
    if num == 1:
        return f"{sign}2^{e}"
    return f"{sign}{num}" if e == 0 else f"{sign}{num} * 2^{e}"


def property_str(v: float) -> str:
    """``repr`` (shortest round-trip decimal), plus the exact ``M * 2^E`` when
    ``v`` is a power of two or its ``repr`` is not exact."""
    v = float(v)
    r = repr(v)
    if not math.isfinite(v) or v == 0:
        return r
    m, _ = math.frexp(abs(v))
    if m == 0.5 or Decimal(r) != Decimal(v):
        return f"{r} (= {dyadic_str(v)})"
    return r


def short_num(v: float) -> str:
    """Compact number for tables: integers up to 10^7 in full, else 4 significant digits."""
    v = float(v)
    if math.isfinite(v) and v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.4g}"


def _layout(fmt) -> tuple[int, ...]:
    """Bit groups of a code: (sign, exponent, mantissa) for floats, (sign, rest) for posits."""
    if fmt.kind == "float":
        m = fmt.precision - 1
        return (1, fmt.bits - 1 - m, m)
    return (1, fmt.bits - 1)


def code_binary(fmt, code: int) -> str:
    """``code`` in binary, grouped: ``0.0111.000`` (floats), ``0.1000000`` (posits)."""
    text = format(int(code), f"0{fmt.bits}b")
    parts, i = [], 0
    for width in _layout(fmt):
        if width:
            parts.append(text[i:i + width])
        i += width
    return ".".join(parts)


def code_hex(fmt, code: int) -> str:
    return f"0x{int(code):0{(fmt.bits + 3) // 4}x}"


def code_class(fmt, code: int, value: float) -> str:
    """zero / subnormal / normal / inf / nan (posits: zero / normal / NaR)."""
    if math.isnan(value):
        return "NaR" if fmt.kind == "posit" else "nan"
    if math.isinf(value):
        return "inf"
    if fmt.kind == "float":
        mbits = fmt.precision - 1
        exp_field = (int(code) >> mbits) & ((1 << (fmt.bits - 1 - mbits)) - 1)
        if exp_field == 0 and int(code) & ((1 << mbits) - 1):
            return "subnormal" if value != 0 else "zero (flushed subnormal)"
    if value == 0:
        return "zero"
    return "normal"


def inf_nan_short(fmt) -> str:
    """The special-value convention in a few words."""
    if fmt.kind == "posit":
        return "NaR, no Inf"
    if fmt.has_inf:
        return "Inf, NaN (IEEE)" if fmt.has_nan else "Inf, no NaN"
    if fmt.has_nan:
        return "NaN, no Inf (fn)" if fmt.has_negative_zero else "NaN=0x80.., no Inf/-0 (fnuz)"
    return "no Inf/NaN (finite)"


def overflow_short(fmt) -> str:
    """Where finite overflow goes under round-to-nearest."""
    if fmt.kind == "posit":
        return "clamp"
    rule = getattr(fmt, "overflow", None)
    return {"saturate": "sat", "inf": "Inf", "nan": "NaN"}.get(rule, rule or "?")


def _table(headers, rows, right=()):
    """Plain text table with two blanks between columns; ``right`` = right-aligned columns."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def line(cells):
        out = [(str(c).rjust(w) if i in right else str(c).ljust(w))
               for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def _description(fmt) -> str:
    for name, _, note in named_formats():
        if name == fmt.name:
            return note
    return ""


def _format_record(name, fmt, note) -> dict:
    d = dict(fmt.describe())
    d["name"] = name
    d["description"] = note
    d["inf_nan"] = inf_nan_short(fmt)
    d["overflow"] = overflow_short(fmt)
    d["code_dtype"] = str(fmt.code_dtype)
    return d


# ---- commands -------------------------------------------------------------------
def _json_wanted(flag: bool) -> bool:
    """``--json`` given to the subcommand or to the ``formats`` group above it."""
    ctx = click.get_current_context().parent
    while ctx is not None:
        if ctx.command is formats and ctx.params.get("as_json"):
            return True
        ctx = ctx.parent
    return bool(flag)


JSON_HELP = "Print JSON (strict: no NaN/Infinity) instead of text."


def _print_table(as_json: bool) -> None:
    records = [_format_record(n, f, note) for n, f, note in named_formats()]
    if as_json:
        click.echo(dumps(records, indent=2))
        return
    headers = ["name", "bits", "p", "u", "max", "min normal", "min subnormal",
               "Inf/NaN", "overflow"]
    rows = [[r["name"], r["bits"], r["precision"], f"2^-{r['precision']}",
             short_num(r["max"]), short_num(r["smallest_normal"]),
             short_num(r["smallest_subnormal"]), r["inf_nan"], r["overflow"]]
            for r in records]
    click.echo(_table(headers, rows, right={1, 2, 3, 4, 5, 6}))
    click.echo()
    click.echo("Spellings: eXmY[bB][fn|fnuz|finite][:sat][:ftz] = X exponent bits, Y mantissa "
               "bits, bias B, no Inf (fn: NaN = S.1..1.1..1; fnuz: one NaN at 0x80.., no -0; "
               "finite: no NaN), :sat saturating overflow, :ftz flushed subnormals (e.g. "
               "e4m3b11fnuz, e5m2:sat); posit(N,ES) or positN_ES = N bits, ES exponent bits, "
               ":underflow PositNN's variant that rounds to 0 below minpos/useed. "
               "p = precision in bits, u = 2^-p. Details and codes: minifp formats show NAME")


@click.group(cls=OneLineGroup, invoke_without_command=True, epilog="""\b
Examples:
  minifp formats                      the table (same as: minifp formats list)
  minifp formats --json               the table as JSON
  minifp formats show e4m3            every property and all 256 codes
  minifp formats --json show posit8   (--json works before or after the subcommand)
  minifp formats round e4m3 0.3 1/3 --mode toward_zero
""")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON instead of text: the table, or the output of the subcommand "
                   "(list, show, round) that follows.")
@click.pass_context
def formats(ctx, as_json):
    """Number formats. Without a subcommand: a table of every named format."""
    if ctx.invoked_subcommand is not None:
        return
    _print_table(as_json)


@formats.command("list", short_help="Table of every named format (same as `minifp formats`).",
                 epilog="""\b
Examples:
  minifp formats list
  minifp formats list --json
""")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_cmd(as_json):
    """A table of every named format (the same as a bare `minifp formats`): bits,
    precision p, unit roundoff u, max, smallest normal and subnormal, Inf/NaN, overflow."""
    _print_table(_json_wanted(as_json))


@formats.command("show", short_help="Every property of a format and, up to 8 bits, every code.",
                 epilog="""\b
Examples:
  minifp formats show e4m3
  minifp formats show 'posit(8,2)'
  minifp formats show e5m2 --json
  minifp formats --json show bfloat16
""")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print properties (and codes) as JSON.")
def show(name, as_json):
    """All properties of format NAME and, for 8 bits or fewer, every code.

    Codes are shown in hex and in binary, grouped sign.exponent.mantissa for
    floats (e.g. 0.0111.000) and sign.rest for posits; values are exact.
    """
    as_json = _json_wanted(as_json)
    fmt = get_format(name)
    props = dict(fmt.describe())
    props["code_dtype"] = str(fmt.code_dtype)
    note = _description(fmt)
    rows = []
    if fmt.bits <= TABLE_MAX_BITS:
        codes, values = fmt.code_table()
        for c, v in zip(codes.tolist(), values.tolist()):
            rows.append((code_hex(fmt, c), code_binary(fmt, c), exact_str(v),
                         code_class(fmt, c, v)))
    if as_json:
        out = {"description": note, **props}
        if rows:
            out["codes"] = [dict(zip(("hex", "binary", "value", "class"), r)) for r in rows]
        click.echo(dumps(out, indent=2))
        return
    click.echo(f"{fmt.name}" + (f": {note}" if note else ""))
    if fmt.kind == "float":
        _, e, m = _layout(fmt)
        layout = f"1 sign, {e} exponent, {m} mantissa bits"
        bias = getattr(fmt, "bias", None)
        if bias is not None:
            layout += f"; bias {bias}"
    else:
        layout = f"1 sign, then regime, up to {getattr(fmt, 'es', '?')} exponent bits, fraction"
    props = {k: v for k, v in [*list(props.items())[:3], ("layout", layout),
                                *list(props.items())[3:]]}
    width = max(len(k) for k in props)
    for key, value in props.items():
        if isinstance(value, float):
            value = property_str(value)
        click.echo(f"  {key.ljust(width)}  {value}")
    if not rows:
        click.echo(f"\n(2^{fmt.bits} codes: the code table is listed for formats of "
                   f"{TABLE_MAX_BITS} bits or fewer)")
        return
    group = "sign.exponent.mantissa" if fmt.kind == "float" else "sign.rest"
    click.echo(f"\n{len(rows)} codes (binary grouped {group}; values exact):")
    click.echo(_table(["code", "binary", "value", "class"], rows, right={2}))


@formats.command("round", context_settings={"ignore_unknown_options": True},
                 short_help="Round values to a format: value, code, relative error.",
                 epilog="""\b
Examples:
  minifp formats round e4m3 0.3 -17 1/3 0x1.8p-3
  minifp formats round float16 65520 --mode toward_zero
  minifp formats round posit8 0.1 --mode stochastic --seed 7
  minifp formats round bfloat16 -- -2.5e-40     (after --, values may start with -)
  minifp formats round e5m2 1000 --json
""")
@click.argument("name")
@click.argument("values", nargs=-1, required=True, metavar="VALUE...")
@click.option("--mode", default="nearest_even", show_default=True, metavar="MODE",
              help=f"Rounding mode: {', '.join(MODE_NAMES)} (aliases such as rne, rtz, sr work).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the random generator for --mode stochastic; the same seed "
                   "gives the same result (reproducible).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: format, rounding, seed and one record per value (input, "
                   "rounded, its repr, code, binary, hex, relative error; non-finite "
                   "numbers are null, their *_repr/*_text fields say which).")
def round_cmd(name, values, mode, seed, as_json):
    """Round each VALUE to format NAME and show value, code and relative error.

    VALUEs are read exactly: decimals (-0.5, 1e9), fractions (1/3), hex floats
    (0x1.8p-3), inf, -inf, nan. The result is the correctly rounded value of
    the number as written (no double rounding through float64), shown as the
    shortest decimal that reads back as the same float, with its code in
    binary and hex and the exact relative error |rounded - value| / |value|.
    Negative values can be given directly or after `--`.
    """
    as_json = _json_wanted(as_json)
    fmt = get_format(name)
    rmode = parse_rounding(mode)
    if seed < 0:
        raise CLIError(f"--seed must be a non-negative integer, got {seed}")
    lift = _long_integers()           # for the whole command: parse_real reads again below
    lift.__enter__()
    click.get_current_context().call_on_close(lambda: lift.__exit__(None, None, None))
    exact = []
    for text in values:
        _check_exponent(text)
        try:
            exact.append(parse_exact(text)[0])
        except ValueError:
            if text.startswith("--"):
                raise click.NoSuchOption(text.split("=")[0]) from None
            raise
    rng = np.random.default_rng(seed)
    if fmt.precision <= 51:
        # round to odd into float64, then the format's own rounding: one correct rounding
        x = np.array([parse_real(t) for t in values], dtype=np.float64)
        rounded = [float(v) for v in fmt.round(x, rmode, rng).tolist()]
    else:  # float64 and its variants (the registry refuses every other format this wide)
        rounded = [_round_float64_exact(fmt, q, parse_real(text), rmode, rng)
                   for text, q in zip(values, exact)]
    r_arr = np.array(rounded, dtype=np.float64)
    encodable = ~np.isnan(r_arr) | fmt.has_nan
    codes = [None] * len(rounded)
    if encodable.any():
        enc = fmt.encode(r_arr[encodable]).tolist()
        for i, c in zip(np.flatnonzero(encodable).tolist(), enc):
            codes[i] = int(c)
    if as_json:
        records = []
        for text, q, r, c in zip(values, exact, rounded, codes):
            err = _rel_error_value(q, r)
            records.append({"input": text, "rounded": r, "rounded_repr": repr(r), "code": c,
                            "binary": code_binary(fmt, c) if c is not None else None,
                            "hex": code_hex(fmt, c) if c is not None else None,
                            "relative_error": _rel_error_float(err),
                            "relative_error_text": _rel_error(q, r)})
        click.echo(dumps({"format": fmt.name, "rounding": rmode.value,
                          "seed": seed if rmode is Rounding.STOCHASTIC else None,
                          "values": records}, indent=2))
        return
    rows = []
    for text, q, r, c in zip(values, exact, rounded, codes):
        rows.append([text, repr(r),
                     code_binary(fmt, c) if c is not None else "(no NaN code)",
                     code_hex(fmt, c) if c is not None else "-",
                     _rel_error(q, r)])
    header = f"{fmt.name}, rounding {rmode.value}"
    if rmode is Rounding.STOCHASTIC:
        header += f", seed {seed}"
    click.echo(header)
    click.echo(_table(["input", "rounded", "binary", "hex", "rel. error"], rows, right={1, 4}))


def _round_float64_exact(fmt, q, x: float, mode: Rounding, rng) -> float:
    """The exact value ``q`` rounded to ``fmt``, a format with float64's values (float64,
    float64:ftz, float64:sat, float64:nan): ``q`` is rounded once to float64 in ``mode``
    (IEEE overflow: ±inf, or ±DBL_MAX where the mode rounds toward zero), then the format
    does what it does to a float64 input: a finite value that overflowed goes to the
    format's overflow value (±max under :sat, NaN under :nan), a subnormal result is
    flushed to zero under :ftz. ``x`` is ``q`` rounded to odd (used for 0, ±inf, nan)."""
    if isinstance(q, float) or q == 0:  # inf, nan, ±0: the float64 itself
        return float(fmt.round(np.array([x]), mode, rng)[0])
    r = to_float64(q, mode, rng)
    if math.isinf(r) and fmt.overflow != "inf":
        r = math.copysign(fmt.max, r) if fmt.overflow == "saturate" else math.nan
    # r is a float64: the format only flushes it (:ftz); no rounding, no random draw
    return float(fmt.round(np.array([r]), Rounding.TOWARD_ZERO)[0])


# Exponents beyond these are far outside every format (float64: 1e-324 .. 1e308) and would
# make the exact reading build integers of billions of digits (minutes, gigabytes).
MAX_DECIMAL_EXPONENT = 1_000_000
MAX_BINARY_EXPONENT = 4_000_000
_EXP_RE = re.compile(r"^\s*[+-]?(0x[0-9a-f_.]*p|[0-9_.]*e)([+-]?[0-9_]+)\s*$", re.IGNORECASE)


def _check_exponent(text: str) -> None:
    """A value with an absurd exponent (``1e999999999``) is refused in one line."""
    m = _EXP_RE.match(text)
    if not m:
        return
    try:
        e = int(m.group(2).replace("_", ""))
    except ValueError:  # more digits than int() reads: surely too large
        e = math.inf
    hexa = m.group(1).lower().startswith("0x")
    limit = MAX_BINARY_EXPONENT if hexa else MAX_DECIMAL_EXPONENT
    if abs(e) > limit:
        raise CLIError(f"exponent of {text!r} is too large to read exactly (at most "
                       f"{'2' if hexa else '10'}^\u00b1{limit}; every format overflows or "
                       f"underflows long before)")


class _long_integers:
    """Lift Python's limit on the digits of an integer read from text (4300 by default),
    so that a long decimal such as 0.1111...1 (5000 digits) is read exactly."""

    def __enter__(self):
        self.old = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") \
            else None
        if self.old is not None:
            sys.set_int_max_str_digits(0)

    def __exit__(self, *exc):
        if self.old is not None:
            sys.set_int_max_str_digits(self.old)
        return False


def _rel_error_value(q, r: float):
    """|r - q| / |q| computed exactly: a Fraction, math.inf, or None when undefined."""
    if isinstance(q, float):  # inf or nan as input
        return Fraction(0) if (math.isinf(q) and r == q) else None
    if math.isnan(r) or math.isinf(r):
        return math.inf
    if q == 0:
        return Fraction(0) if r == 0 else math.inf
    return abs(Fraction(r) - q) / abs(q)


def _rel_error(q, r: float) -> str:
    """|r - q| / |q| computed exactly, shown to 4 digits (``-`` when undefined)."""
    err = _rel_error_value(q, r)
    if err is None:
        return "-"
    if err == math.inf:
        return "inf"
    if err == 0:
        return "0"
    if err > _FLOAT_MAX:  # e.g. 1e-400 rounded up to a subnormal: beyond any float
        with localcontext() as ctx:
            ctx.prec, ctx.Emax = 30, 10 ** 8
            return f"{Decimal(err.numerator) / Decimal(err.denominator):.3e}"
    return f"{float(err):.3e}"


_FLOAT_MAX = Fraction(sys.float_info.max)


def _rel_error_float(err):
    """The relative error as a float for JSON: inf (shown as null) beyond float64."""
    if err is None or err == math.inf:
        return err
    return math.inf if err > _FLOAT_MAX else float(err)
