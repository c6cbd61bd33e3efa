"""Learning-rate schedules: ``constant``, ``step:EVERY:FACTOR``, ``cosine`` and
``warmup:N``, composed with commas (``warmup:100,cosine``; ``warmup:N`` multiplies the
others).

The rate of global step t (0-based, over all epochs) is computed in float64 from the base
rate and rounded once to the optimizer format O (the rate the update then uses):

  constant            lr
  step:EVERY:FACTOR   lr * FACTOR ** floor(epoch / EVERY)   (PositNN: step:4:0.5)
  cosine              lr * (1 + cos(pi * t / T)) / 2, T = the run's total steps
  warmup:N            times min(1, (t + 1) / N)

The rate is a function of the step alone, so a resumed run follows the same schedule bit
for bit; checkpoints record the schedule and the last rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError

_USAGE = ("expected constant, step:EVERY:FACTOR, cosine or warmup:N, or several joined by "
          "commas (e.g. warmup:100,cosine)")


@dataclass(frozen=True)
class Schedule:
    """A parsed ``--schedule``: the factors, in order."""
    parts: tuple = ()
    text: str = "constant"

    @classmethod
    def parse(cls, text) -> "Schedule":
        raw = str(text if text is not None else "constant").strip().lower()
        parts = []
        kinds = []
        for item in raw.split(","):
            fields = item.strip().split(":")
            kind = fields[0]
            try:
                if kind == "constant" and len(fields) == 1:
                    continue
                if kind == "cosine" and len(fields) == 1:
                    parts.append(("cosine",))
                elif kind == "step" and len(fields) == 3:
                    every, factor = int(fields[1]), float(fields[2])
                    if every < 1 or not (0 < factor) or not math.isfinite(factor):
                        raise ValueError
                    parts.append(("step", every, factor))
                elif kind == "warmup" and len(fields) == 2:
                    n = int(fields[1])
                    if n < 1:
                        raise ValueError
                    parts.append(("warmup", n))
                else:
                    raise ValueError
            except ValueError:
                raise UserError(f"--schedule {text!r}: {_USAGE}") from None
            kinds.append(kind)
        if kinds.count("cosine") + kinds.count("step") > 1 or kinds.count("warmup") > 1:
            raise UserError(f"--schedule {text!r}: at most one of step/cosine and one warmup")
        return cls(tuple(parts), raw)

    def factor(self, step: int, steps_per_epoch: int, total_steps: int) -> float:
        """The float64 factor of global step ``step`` (0-based)."""
        f = 1.0
        for part in self.parts:
            if part[0] == "step":
                f *= part[2] ** (step // max(1, steps_per_epoch) // part[1])
            elif part[0] == "cosine":
                f *= 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
            else:
                f *= min(1.0, (step + 1) / part[1])
        return f

    def rate(self, lr: float, step: int, steps_per_epoch: int, total_steps: int, fmt):
        """``lr`` times the factor, in float64, rounded once to ``fmt`` (O)."""
        value = float(lr) * self.factor(step, steps_per_epoch, total_steps)
        import numpy as np  # noqa: PLC0415
        return float(fmt.round(np.array([value]), dtype=np.float64)[0])
