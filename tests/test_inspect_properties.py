"""Property tests of :func:`minifp.inspect.inspect` on whole networks of the zoo.

For every record of every run (models mlp, lenet5, cnn, resnet, vit on small inputs;
policies float16, bfloat16, fp8, e4m3, posit8 and accumulation-order overrides;
``model.train()`` and ``model.eval()`` where batch norm makes them differ; inputs of
several magnitudes, mixed magnitudes, near-underflow and near-overflow):

* ``|local - local_exact| <= bound`` elementwise (the local error: this layer's roundings
  on the rounded reference input, against the same layer in float64 with exact sums);
* ``|output - reference| <= propagated_bound`` elementwise (everything up to this layer:
  the input and weight roundings included);
* ``ratio`` and ``propagated_ratio`` lie in [0, 1].

The largest finite error / bound ratios seen are printed at the end of the module (``-s``);
``MINIFP_PROPERTY_SCALE=N`` multiplies the number of Hypothesis examples.  Bugs these
properties found are kept as regression tests at the end of the module.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minifp.inspect import abs_error, inspect
from minifp.nn.zoo import build_model
from minifp.precision import get_precision

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
#: MINIFP_PROPERTY_SCALE=20 runs 20 times as many examples (a longer local search; CI: 1)
SCALE = max(float(os.environ.get("MINIFP_PROPERTY_SCALE", "1")), 0.01)


def _n(k: int) -> int:
    return max(1, int(round(k * SCALE)))


PRESETS = ("float16", "bfloat16", "fp8", "e4m3", "posit8")
OVERRIDES = (
    {"base": "float16", "forward": "float16:pairwise"},
    {"base": "float16", "forward": "float16:blocked:4"},
    {"base": "float16", "forward": "float16:exact"},
    {"base": "bfloat16", "forward": "bfloat16:sequential"},
    {"base": "bfloat16", "forward": "bfloat16:native"},
    {"base": "e4m3", "forward": "e4m3:exact"},
    {"base": "posit8", "forward": "posit8:sequential"},
    {"base": "float16", "rounding": "stochastic", "forward": "float16:sequential:stochastic"},
)
#: name -> input shape (C, H, W)
MODELS = {"mlp": (1, 8, 8), "lenet5": (1, 8, 8), "cnn": (3, 8, 8), "resnet": (3, 8, 8),
          "vit": (1, 8, 8)}
HAS_BATCH_NORM = {"cnn", "resnet"}


def _pid(p) -> str:
    return p if isinstance(p, str) else "+".join(str(v) for v in p.values())


@functools.lru_cache(maxsize=None)
def _model(name, seed, shape=None):
    return build_model(name, shape or MODELS[name], 4, seed=seed)


# ------------------------------------------------------------------------ ratios
#: key -> (largest finite local ratio, largest finite propagated ratio, records checked)
RATIOS: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _report_ratios():
    yield
    if RATIOS:
        print("\nlargest error/bound ratio per model (local, propagated; finite bounds):")
        for key in sorted(RATIOS):
            lo, pr, n = RATIOS[key]
            print(f"  {key:<10}{lo:<22.16g}{pr:<22.16g}({n} records)")
        print(f"  overall:  {max(v[0] for v in RATIOS.values()):<22.16g}"
              f"{max(v[1] for v in RATIOS.values()):.16g}")


def _max_ratio(err, bound):
    with np.errstate(all="ignore"):
        q = np.where(err == 0, 0.0, err / bound)
    q = q[np.isfinite(bound) & np.isfinite(q)]
    return float(q.max()) if q.size else 0.0


# ------------------------------------------------------------------------ inputs
KINDS = ("normal", "mixed", "tiny", "huge", "sparse")


def _input(rng, shape, kind, scale):
    if kind == "normal":
        return rng.standard_normal(shape) * scale
    if kind == "mixed":
        return rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-4, 3, shape)
    if kind == "tiny":          # around float16's smallest normals / e4m3's subnormals
        return rng.standard_normal(shape) * 10.0 ** rng.uniform(-7, -3)
    if kind == "huge":          # past e4m3's max (448); float16's (65504) for scale 1e3
        return rng.standard_normal(shape) * scale * 300
    return rng.standard_normal(shape) * scale * (rng.random(shape) < 0.2)


def _check_within(where, what, computed, reference, bound, ratio, shown):
    """error(computed, reference) <= bound elementwise, ratio in [0, 1]; the max ratio."""
    err = abs_error(computed, reference)
    assert bound.shape == computed.shape, where
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{where}: {what} error {err[bad][:4].tolist()} > bound {bound[bad][:4].tolist()}; "
        f"{shown[0]} {computed[bad][:4].tolist()}, {shown[1]} {reference[bad][:4].tolist()}")
    assert ratio is not None and 0.0 <= ratio <= 1.0, (where, what, ratio)
    return _max_ratio(err, bound)


def check_records(key, recs, pol):
    lo_max = pr_max = 0.0
    for r in recs:
        where = f"{key} {_pid(pol)} record {r.index} {r.path!r} ({r.kind})"
        if r.bound is not None:
            lo_max = max(lo_max, _check_within(where, "local", r.local, r.local_exact, r.bound,
                                               r.ratio, ("local", "exact")))
        if r.propagated_bound is not None:
            pr_max = max(pr_max, _check_within(where, "propagated", r.output, r.reference,
                                               r.propagated_bound, r.propagated_ratio,
                                               ("output", "reference")))
    old = RATIOS.get(key, (0.0, 0.0, 0))
    RATIOS[key] = (max(old[0], lo_max), max(old[1], pr_max), old[2] + len(recs))


def _draw_case(data, name):
    seed = data.draw(st.integers(0, 2), label="model seed")
    batch = data.draw(st.integers(1, 3), label="batch")
    kind = data.draw(st.sampled_from(KINDS), label="input kind")
    scale = data.draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3]), label="scale")
    xseed = data.draw(st.integers(0, 2 ** 32 - 1), label="input seed")
    train = name in HAS_BATCH_NORM and data.draw(st.booleans(), label="train")
    model = _model(name, seed)
    model.train(train)
    x = _input(np.random.default_rng(xseed), (batch,) + MODELS[name], kind, scale)
    return model, x


# ------------------------------------------------------------------------ tests
@pytest.mark.parametrize("pol", PRESETS, ids=_pid)
@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=_n(2), **SETTINGS)
@given(data=st.data())
def test_network_records_within_bounds(name, pol, data):
    model, x = _draw_case(data, name)
    check_records(name, inspect(model, x, pol), pol)


@pytest.mark.parametrize("pol", OVERRIDES, ids=_pid)
@pytest.mark.parametrize("name", ["mlp", "lenet5", "cnn"])
@settings(max_examples=_n(2), **SETTINGS)
@given(data=st.data())
def test_network_records_within_bounds_accumulation_orders(name, pol, data):
    model, x = _draw_case(data, name)
    check_records(name, inspect(model, x, get_precision(pol)), pol)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("pol", ["float16", "bfloat16", "e4m3", "posit8"])
def test_batch_norm_train_and_eval(pol, train):
    """cnn (and resnet under float16 / posit8) with batch norm in both modes on one input:
    batch statistics in train mode, the running statistics in eval mode; every record
    within its bounds."""
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8))
    for name in ("cnn", "resnet") if pol in ("float16", "posit8") else ("cnn",):
        model = _model(name, 0)
        model.train(train)
        recs = inspect(model, x, pol)
        bn = [r for r in recs if "BatchNorm" in r.kind]
        assert bn and all(r.bound is not None for r in bn)
        check_records(name, recs, pol)


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_float32_reference(name):
    """Against a float32 reference the propagated bound adds the reference run's own
    error bound: still every record within it."""
    x = np.random.default_rng(5).standard_normal((2,) + MODELS[name])
    for pol in ("float16", "bfloat16", "posit8"):
        check_records(name, inspect(_model(name, 1), x, pol, reference="float32"), pol)


@pytest.mark.parametrize("shape,pol", [((1, 8, 8), "float16"), ((3, 8, 8), "bfloat16")])
def test_resnet_both_input_shapes(shape, pol):
    x = np.random.default_rng(6).standard_normal((1,) + shape)
    check_records("resnet", inspect(_model("resnet", 2, shape), x, pol), pol)


def test_ratio_of_nonfinite_error_within_infinite_bound():
    """Regression (found by test_network_records_within_bounds[mlp-e4m3]): an element
    whose error and bound are both infinite gave ratio = inf (inf / inf taken as inf)."""
    model = build_model("mlp", (1, 2, 2), 2, seed=0)
    x = np.array([[[[1.0, 500.0], [0.5, -2.0]]]])   # 500 > 448: NaN in e4m3
    recs = inspect(model, x, "e4m3")
    flatten = recs[0]
    err = abs_error(flatten.local, flatten.local_exact)
    assert np.all(err <= flatten.bound)              # the bound holds (inf <= inf)
    assert np.isinf(err).any()
    for r in recs:                                   # and so every ratio is in [0, 1]
        assert 0.0 <= r.ratio <= 1.0, (r.path, r.ratio)
        assert 0.0 <= r.propagated_ratio <= 1.0, (r.path, r.propagated_ratio)


def test_abs_error_of_zero_dim_arrays():
    """Regression: abs_error assigned into np.abs(a - r), a NumPy scalar for 0-d inputs."""
    assert abs_error(np.array(0.0), np.array(1.0)) == 1.0
