"""The Accumulation spec: which format a sum is kept in, in which order it is added, with
or without fused multiply-add, and how each partial sum is rounded.

Orders (the contract of ../shared/DESIGN.md, "Semantics" 4):

``sequential``  one term at a time in index order: ``s = R(s + x_k*y_k)`` with fma, or
                ``s = R(s + R(x_k*y_k))`` without; ``R`` rounds to the accumulator format.
``pairwise``    a fixed tree: at each level, neighbours (0,1), (2,3), ... are added and
                rounded; an odd last term moves up a level unchanged.  Products are
                rounded to the accumulator first when fma is off.
``blocked:b``   blocks of b consecutive products are summed exactly and the block sum is
                rounded once to float64 ("summed in float64") and then to the accumulator
                format; blocks are then accumulated sequentially (the tensor-core model).
``exact``       the exact sum of the exact products, rounded once (quire / Kulisch
                accumulator) to the output format: with the accumulation's ``rounding``
                when no output format is given (the result is in the accumulator format),
                else with the output rounding.  No partial sum is rounded.
``native``      the backend's BLAS in the narrowest native dtype that holds the accumulator
                format, rounded once to it: fast, order unspecified, labelled as such.
"""
from __future__ import annotations

import dataclasses
import re

from ..formats import Format, Rounding, get_format, parse_rounding

ORDERS = ("sequential", "pairwise", "blocked", "exact", "native")


@dataclasses.dataclass(frozen=True)
class Order:
    """An accumulation order; ``block`` is set only for ``blocked``."""

    kind: str
    block: int | None = None

    def __str__(self) -> str:
        return f"blocked:{self.block}" if self.kind == "blocked" else self.kind

    @property
    def deterministic(self) -> bool:
        """False only for ``native``, whose summation order is the library's business."""
        return self.kind != "native"


def parse_order(spec) -> Order:
    """Parse ``sequential``, ``pairwise``, ``blocked:32``, ``exact`` or ``native``."""
    if isinstance(spec, Order):
        return spec
    text = str(spec).strip().lower()
    if text in ("sequential", "pairwise", "exact", "native"):
        return Order(text)
    m = re.fullmatch(r"blocked(?::(\S*))?", text)
    if m:
        arg = m.group(1)
        if arg is None or not re.fullmatch(r"[0-9]+", arg) or int(arg) < 1:
            raise ValueError(
                f"bad accumulation order {spec!r}: blocked needs a block size b >= 1, "
                "as in 'blocked:32'")
        return Order("blocked", int(arg))
    raise ValueError(f"unknown accumulation order {spec!r} "
                     "(known: sequential, pairwise, blocked:B, exact, native)")


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """How a reduction is computed: ``Accumulation(format, order, fma, rounding)``.

    format    accumulator format (any registry name or Format); partial sums are rounded
              to it with ``rounding`` after every addition the order defines.
    order     ``sequential`` | ``pairwise`` | ``blocked:b`` | ``exact`` | ``native``.
    fma       True: each product enters the sum exactly (fused multiply-add); False: it is
              rounded to the accumulator format first.  Products whose operands have at
              most 53 significant bits together are exact in float64; wider ones (posit32,
              eXmY over 26 bits, float64 data) are carried exactly (TwoProduct or an
              exact two-term sum); a float64 accumulator is plain float64 arithmetic.
    rounding  rounding mode of every partial sum (stochastic needs an rng at call time).
    """

    format: Format = dataclasses.field(default_factory=lambda: get_format("float32"))
    order: Order = Order("sequential")
    fma: bool = True
    rounding: Rounding = Rounding.NEAREST_EVEN

    def __post_init__(self):
        object.__setattr__(self, "format", get_format(self.format))
        object.__setattr__(self, "order", parse_order(self.order))
        if not isinstance(self.fma, bool):
            raise ValueError(f"fma must be True or False, not {self.fma!r}")
        object.__setattr__(self, "rounding", parse_rounding(self.rounding))

    @property
    def format_name(self) -> str:
        return getattr(self.format, "name", str(self.format))

    def __str__(self) -> str:
        if self.order.kind == "exact":
            return "exact (quire)" if self.format_name.startswith("posit") else "exact (Kulisch)"
        label = f"{self.format_name} {self.order}"
        if self.order.kind == "native":
            return label + " (order unspecified)"
        parts = [label, "fma" if self.fma else "no-fma"]
        if self.rounding is not Rounding.NEAREST_EVEN:
            parts.append(self.rounding.value)
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {"format": self.format_name, "order": str(self.order), "fma": self.fma,
                "rounding": self.rounding.value}

    @classmethod
    def from_dict(cls, d: dict) -> "Accumulation":
        known = {"format", "order", "fma", "rounding"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown accumulation key(s) {sorted(unknown)} "
                             f"(known: {sorted(known)})")
        return cls(**d)

    @classmethod
    def parse(cls, text: str) -> "Accumulation":
        """Parse ``FORMAT[:ORDER][:nofma][:MODE]``, e.g. ``float16:sequential``,
        ``float32:blocked:32``, ``posit16:exact``, ``float16:pairwise:nofma:stochastic``."""
        parts = [p for p in str(text).strip().split(":")]
        if not parts or not parts[0]:
            raise ValueError(f"bad accumulation {text!r}: expected FORMAT[:ORDER]")
        fmt, rest = parts[0], parts[1:]
        kw: dict = {"format": fmt}
        i = 0
        if i < len(rest) and rest[i].lower().startswith(ORDERS):
            if rest[i].lower() == "blocked" and i + 1 < len(rest):
                kw["order"] = f"blocked:{rest[i + 1]}"
                i += 2
            else:
                kw["order"] = rest[i]
                i += 1
        for p in rest[i:]:
            low = p.lower()
            if low in ("fma", "nofma", "no-fma"):
                kw["fma"] = low == "fma"
            else:
                kw["rounding"] = p
        return cls(**kw)
