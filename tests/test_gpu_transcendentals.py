"""exp, log, tanh, erf on the device may differ from glibc in their last bits; minifp's
rounded results must not (functional.portable).  The stand-in's device library is made
to differ on purpose: its results are moved by a few float64 ulps, as CUDA's may be."""
from __future__ import annotations

import numpy as np
import pytest

import minifp.functional as F
from minifp.backend import asnumpy
from minifp.functional import portable as portable_module
from minifp.precision import get_precision, use

pytestmark = pytest.mark.gpu


def _shifted(cupy, name, ulps):
    """cupy.<name> whose results lie ``ulps`` float64 ulps away from NumPy's."""
    base = getattr(np, name)

    def fn(x, *args, **kw):
        r = base(cupy.asnumpy(x), *args, **kw)
        with np.errstate(all="ignore"):
            r = r + np.spacing(r) * ulps * np.where(np.arange(r.size).reshape(r.shape) % 2, 1, -1)
        return cupy.asarray(r)
    return fn


def _near_boundaries():
    """Inputs whose exp/tanh/log land next to float16 and bfloat16 rounding boundaries."""
    h = np.arange(1, 0x7BFF, 7, dtype=np.uint16).view(np.float16).astype(np.float64)
    mids = np.concatenate([h, h + np.spacing(h.astype(np.float16)).astype(np.float64) / 2])
    return np.concatenate([np.log(mids[mids > 0]), np.arctanh(np.clip(mids, -0.999, 0.999)),
                           np.linspace(-8, 8, 2001)])


OPS = {"exp": F.exp, "tanh": F.tanh, "sigmoid": F.sigmoid, "gelu": F.gelu,
       "log": lambda t: F.log(F.exp(t))}


@pytest.mark.parametrize("policy", ["float16", "bfloat16", "e4m3"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_rounded_results_are_the_hosts(cupy, monkeypatch, op, policy):
    xa = x = _near_boundaries()          # float64 inputs, results rounded to F
    pol = get_precision(policy)
    with use(pol):
        want = np.asarray(OPS[op](xa).data, np.float64)
    for name in ("exp", "tanh", "log"):
        monkeypatch.setattr(cupy, name, _shifted(cupy, name, 3), raising=False)
    monkeypatch.setattr(cupy.cupyx_scipy_special, "erf", _erf_shifted(cupy), raising=False)
    with use(pol):
        got = np.asarray(asnumpy(OPS[op](cupy.asarray(xa)).data), np.float64)
    same = (want == got) | (np.isnan(want) & np.isnan(got))
    assert same.all(), (op, policy, x[~same][:4], want[~same][:4], got[~same][:4])
    # and the check is sensitive: without the window the shifted library shows through
    monkeypatch.setattr(portable_module, "RELATIVE", 0.0)
    with use(pol):
        raw = np.asarray(asnumpy(OPS[op](cupy.asarray(xa)).data), np.float64)
    if policy != "e4m3" and op in ("exp", "tanh", "log"):
        assert not ((want == raw) | (np.isnan(want) & np.isnan(raw))).all()


def _erf_shifted(cupy):
    from scipy.special import erf

    def fn(x):
        r = erf(cupy.asnumpy(x))
        return cupy.asarray(r + np.spacing(r) * 3)
    return fn
