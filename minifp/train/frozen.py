"""Is anything learning?  The check behind "no parameter changed in an epoch" and the
words that explain why.

:func:`snapshot` copies the weights the optimizer really updates (the parameters, and the
masters when the policy keeps master weights); :func:`unchanged` compares two snapshots by
value (a zero that changed sign did not move); :func:`frozen_cause` looks at one batch to say
whether every weight gradient is zero (underflow in B or G) or every update lr*grad is below
half the gap between a weight and its neighbours in the weights format W, so the rounded
weight stays where it was.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import asnumpy
from ..precision import use

__all__ = ["snapshot", "unchanged", "frozen_cause"]


def snapshot(model, masters: bool) -> list:
    """Copies of every parameter and, with master weights (``masters``), of its master:
    the weights the optimizer really updates."""
    out = []
    for mpath, m in model.named_modules():
        for name, prm in m._parameters.items():
            if prm is not None:
                out.append(np.array(asnumpy(prm.data)))
                if masters and m._master.get(name) is not None:
                    out.append(np.array(asnumpy(m._master[name])))
    return out


def unchanged(before, after) -> bool:
    """No value moved (a zero that changed sign did not move)."""
    return len(before) == len(after) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(before, after))


def frozen_cause(model, optimizer, policy, data, config) -> str:
    """Why no weight moved, from one batch: per layer the largest |lr * gradient| next to
    the smallest half-gap between the layer's weights and their neighbours in the weights
    format (an update below it rounds back to the same weight)."""
    from .. import functional as F
    from ..data import batches

    xb, yb = next(batches(data.x_train, data.y_train, config.batch_size, shuffle=False))
    optimizer.zero_grad()
    with use(policy):
        model.train()
        F.cross_entropy(model(xb), yb).backward()
    parts, zero = [], True
    for mpath, m in model.named_modules():
        for name, prm in m._parameters.items():
            if prm is None or prm.grad is None:
                continue
            g = np.abs(np.asarray(asnumpy(getattr(prm.grad, "data", prm.grad)), np.float64))
            step_max = config.lr * float(g.max()) if g.size else 0.0
            zero = zero and step_max == 0
            fmt = policy.for_layer(m.path).format_of("weights")
            half = _half_gap(fmt, np.asarray(asnumpy(prm.data), np.float64))
            parts.append(f"{mpath + '.' if mpath else ''}{name} ({fmt.name}): "
                         f"|lr*grad| <= {step_max:.3g}, half-gap >= {half:.3g}")
    optimizer.zero_grad()
    if zero:
        return (f"every weight gradient is zero on the first batch (they underflow in the "
                f"backward format {policy.format_of('backward').name} or the gradient "
                f"format {policy.format_of('gradients').name}, or every unit is dead)")
    shown = "; ".join(parts[:4]) + ("; ..." if len(parts) > 4 else "")
    return (f"every update was below half an ulp of the weights format, so the rounded "
            f"weights stayed the same ({shown})")


def _half_gap(fmt, w) -> float:
    """The smallest half-distance from a weight in ``w`` to its neighbours in ``fmt``."""
    w = w.ravel()
    w = w[np.isfinite(w)]
    if w.size == 0:
        return math.inf
    up = np.asarray(fmt.round(np.nextafter(w, np.inf), "up"), np.float64)
    down = np.asarray(fmt.round(np.nextafter(w, -np.inf), "down"), np.float64)
    with np.errstate(invalid="ignore"):
        gaps = np.minimum(up - w, w - down)
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    return float(gaps.min()) / 2 if gaps.size else math.inf
