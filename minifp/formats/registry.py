"""Format names: the registry of named formats and the parser for spelled ones.

Grammar (case-insensitive; the registry is consulted first)::

    eXmY[bB][ieee|fn|fnuz|finite][:sat][:ftz]
    posit(N,ES) | positN_ES | positN   (positN alone: es = 2, the 2022 standard)

``eXmY`` alone is IEEE-style (Inf and NaN at exponent all-ones) with bias
2**(X-1)-1. Giving a bias ``bB`` without a convention means the Graphcore style
of Noune et al. (no Inf, single NaN at the -0 code: ``fnuz``), as in ml_dtypes'
``float8_e4m3b11fnuz``. ``:sat`` saturates overflow to ±max; ``:ftz`` flushes
subnormal results to zero. Registered names (``e4m3``, ``float16`` ...) may
also take ``:sat`` / ``:ftz``.

X is 1..11 and Y 0..50 (precision at most 51 bits: rounding through float64
with round-to-odd is one correct rounding only that far); Y = 51 or 52 is
accepted only for float64's own layout (``e11m52``, bias 1023, IEEE specials,
i.e. ``float64``, ``float64:sat``, ``float64:ftz``), anything else is refused
by :class:`FloatFormat` with a one-line ``ValueError``.
"""
from __future__ import annotations

import dataclasses
import difflib
import re

from .base import Format
from .ieee import FloatFormat
from .posit import PositFormat


def _f(name, e, m, bias=None, specials="ieee", overflow=None, subnormals=True):
    return FloatFormat(e, m, bias, subnormals, specials, overflow, name=name)


# name -> (format, short description). Order is the order `minifp formats` lists them.
_NAMED: dict[str, tuple[Format, str]] = {}


def _register(fmt: Format, note: str, *aliases: str):
    _NAMED[fmt.name] = (fmt, note)
    for a in aliases:
        _ALIASES[a] = fmt.name


_ALIASES: dict[str, str] = {}

_register(_f("float64", 11, 52), "IEEE binary64", "binary64", "fp64", "double")
_register(_f("float32", 8, 23), "IEEE binary32", "binary32", "fp32", "single")
_register(_f("tf32", 8, 10), "NVIDIA TensorFloat-32 (19 bits)")
_register(_f("float16", 5, 10), "IEEE binary16", "binary16", "fp16", "half")
_register(_f("bfloat16", 8, 7), "Google brain float", "bf16")
_register(_f("e5m2", 5, 2), "OCP FP8 E5M2 (IEEE-like)", "float8_e5m2")
_register(_f("e4m3", 4, 3, 7, "fn"), "OCP FP8 E4M3 (bias 7, max 448, NaN = S.1111.111)",
          "e4m3fn", "float8_e4m3fn")
_register(_f("e4m3fnuz", 4, 3, 8, "fnuz"), "FP8 E4M3 FNUZ (bias 8, max 240)",
          "float8_e4m3fnuz")
_register(_f("e5m2fnuz", 5, 2, 16, "fnuz"), "FP8 E5M2 FNUZ (bias 16)", "float8_e5m2fnuz")
_register(_f("e4m3b11fnuz", 4, 3, 11, "fnuz"), "Graphcore-style 1.4.3, bias 11",
          "float8_e4m3b11fnuz", "e4m3b11")
_register(_f("e3m2", 3, 2, 3, "finite"), "OCP MX FP6 E3M2 (no Inf/NaN)", "float6_e3m2fn")
_register(_f("e2m3", 2, 3, 1, "finite"), "OCP MX FP6 E2M3 (no Inf/NaN)", "float6_e2m3fn")
_register(_f("e2m1", 2, 1, 1, "finite"), "OCP MX FP4 E2M1 (no Inf/NaN)", "float4_e2m1fn")
_register(PositFormat(8, 2, name="posit8"), "posit(8,2), 2022 standard")
_register(PositFormat(16, 2, name="posit16"), "posit(16,2), 2022 standard")
_register(PositFormat(32, 2, name="posit32"), "posit(32,2), 2022 standard")
_register(PositFormat(8, 0, name="posit8_0"), "posit(8,0), SoftPosit / pre-2022")
_register(PositFormat(16, 1, name="posit16_1"), "posit(16,1), SoftPosit / pre-2022")
_register(PositFormat(32, 2, name="posit32_2"), "posit(32,2), SoftPosit's posit32 = posit32")

_FLOAT_RE = re.compile(r"^e(\d+)m(\d+)(?:b(-?\d+))?(ieee|fnuz|fn|finite)?$")
_POSIT_RE = re.compile(r"^posit(?:\((\d+),(\d+)\)|(\d+)(?:_(\d+))?)$")


def named_formats() -> list[tuple[str, Format, str]]:
    """Every registered format as (name, format, description), in listing order."""
    return [(name, fmt, note) for name, (fmt, note) in _NAMED.items()]


def get_format(spec) -> Format:
    """Return the format named by ``spec`` (a name or a :class:`Format`).

    Raises ``ValueError`` with the known names for anything it cannot parse.
    """
    if isinstance(spec, Format):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"a format name must be a string, got {type(spec).__name__}")
    text = spec.strip().lower().replace(" ", "")
    base, *mods = text.split(":")
    fmt = _parse_base(base, spec)
    for mod in mods:
        fmt = _apply_modifier(fmt, mod, spec)
    return fmt


def _parse_base(base: str, original: str) -> Format:
    base = _ALIASES.get(base, base)
    if base in _NAMED:
        return _NAMED[base][0]
    m = _FLOAT_RE.match(base)
    if m:
        e, mb = int(m.group(1)), int(m.group(2))
        if not 1 <= e <= 11:
            raise ValueError(f"{original!r}: exponent bits must be from 1 to 11 in eXmY")
        if not 0 <= mb <= 52:
            raise ValueError(f"{original!r}: mantissa bits must be from 0 to 52 in eXmY")
        bias = None if m.group(3) is None else int(m.group(3))
        specials = m.group(4) or ("fnuz" if bias is not None else "ieee")
        try:
            fmt = FloatFormat(e, mb, bias, True, specials)
        except ValueError as err:
            raise ValueError(f"{original!r}: {err}") from None
        return fmt
    m = _POSIT_RE.match(base)
    if m:
        if m.group(1) is not None:
            n, es = int(m.group(1)), int(m.group(2))
        else:
            n, es = int(m.group(3)), (2 if m.group(4) is None else int(m.group(4)))
        try:
            return PositFormat(n, es, name=f"posit{n}_{es}" if (n, es) not in
                               ((8, 2), (16, 2), (32, 2)) else f"posit{n}")
        except ValueError as err:
            raise ValueError(f"{original!r}: {err}") from None
    known = list(_NAMED) + list(_ALIASES)
    close = difflib.get_close_matches(base, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown format {original!r}{hint} (see `minifp formats`; "
                     f"spellings: eXmY[bB][fn|fnuz|finite][:sat][:ftz], posit(N,ES)[:underflow])")


def _apply_modifier(fmt: Format, mod: str, original: str) -> Format:
    if isinstance(fmt, PositFormat):
        if mod != "underflow":
            raise ValueError(f"{original!r}: modifier ':{mod}' applies to float formats only "
                             "(posits take ':underflow')")
        return dataclasses.replace(fmt, underflow=True,
                                   name=fmt.name.split(":")[0] + ":underflow")
    if mod == "underflow":
        raise ValueError(f"{original!r}: ':underflow' applies to posits only")
    if not isinstance(fmt, FloatFormat):
        raise ValueError(f"{original!r}: modifier ':{mod}' applies to float formats only")
    if mod in ("sat", "saturate"):
        changes = {"overflow": "saturate"}
    elif mod == "ftz":
        changes = {"subnormals": False}
    elif mod in ("inf", "nan"):
        changes = {"overflow": mod}
    else:
        raise ValueError(f"{original!r}: unknown modifier ':{mod}' (known: :sat, :ftz)")
    try:
        new = dataclasses.replace(fmt, name="", **changes)
    except ValueError as err:
        raise ValueError(f"{original!r}: {err}") from None
    base_name = fmt.name.split(":")[0]
    default_overflow = {"ieee": "inf", "fn": "nan", "fnuz": "nan",
                        "finite": "saturate"}[new.specials_kind]
    suffix = ""
    if new.overflow != default_overflow:
        suffix += ":sat" if new.overflow == "saturate" else f":{new.overflow}"
    if not new.subnormals:
        suffix += ":ftz"
    return dataclasses.replace(new, name=base_name + suffix)
