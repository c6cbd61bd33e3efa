"""Precision policy: presets, serialisation, per-layer overrides, get_precision, context."""
import json
import threading

import numpy as np
import pytest

from minifp.accumulate.spec import Accumulation
from minifp.formats import Rounding, get_format
from minifp.precision import (PRESETS, ROLES, LossScaling, Precision, current, current_layer,
                              current_rng, get_precision, layer_scope, preset_names, use)

EXPECTED_ROLES = {
    # name: (weights, activations, loss, backward, gradients, optimizer)
    "float64": ("float64",) * 6,
    "float32": ("float32",) * 6,
    "float16": ("float16",) * 6,
    "float16-acc32": ("float16",) * 6,
    "mixed": ("float16", "float16", "float32", "float16", "float16", "float32"),
    "bfloat16": ("bfloat16",) * 6,
    "fp8": ("e4m3", "e4m3", "float32", "e5m2", "e5m2", "float32"),
    "posit8": ("posit8",) * 6,
    "posit16": ("posit16",) * 6,
    "posit8-mixed": ("posit8", "posit8", "posit16", "posit8", "posit8", "posit16"),
}
EXPECTED_ACC = {
    "float64": ("float64", "sequential"), "float32": ("float32", "sequential"),
    "float16": ("float16", "sequential"), "float16-acc32": ("float32", "sequential"),
    "mixed": ("float32", "sequential"), "bfloat16": ("float32", "sequential"),
    "fp8": ("float32", "sequential"), "posit8": ("posit8", "exact"),
    "posit16": ("posit16", "exact"), "posit8-mixed": ("posit8", "exact"),
}


def test_preset_list():
    assert preset_names() == list(EXPECTED_ROLES)
    assert set(PRESETS) == set(EXPECTED_ROLES)


@pytest.mark.parametrize("name", list(EXPECTED_ROLES))
def test_preset_roles_and_accumulation(name):
    p = get_precision(name)
    assert p is PRESETS[name] and p.name == name
    for role, fmt in zip(ROLES, EXPECTED_ROLES[name]):
        assert p.format_of(role) == get_format(fmt), role
        assert p.format_of(role).name == get_format(fmt).name
        assert p.rounding[role] is Rounding.NEAREST_EVEN
    fmt, order = EXPECTED_ACC[name]
    for phase in ("forward", "backward"):
        acc = p.accumulation(phase)
        assert acc.format == get_format(fmt) and acc.order.kind == order and acc.fma
    assert p.forward is p.accumulation("forward")
    assert p.backward_acc is p.accumulation("backward")


def test_preset_extras():
    m = PRESETS["mixed"]
    assert m.master_weights and m.loss_scaling == LossScaling("dynamic", 2.0 ** 16, 2000, 2.0)
    f8 = PRESETS["fp8"]
    assert f8.master_weights and f8.loss_scaling.mode == "dynamic"
    assert PRESETS["posit8-mixed"].master_weights
    for n in ("float64", "float32", "float16", "float16-acc32", "bfloat16", "posit8"):
        assert not PRESETS[n].master_weights and PRESETS[n].loss_scaling.mode == "none"
    assert str(PRESETS["posit8"].forward) == "exact (quire)"


@pytest.mark.parametrize("name", list(EXPECTED_ROLES))
def test_preset_prints_and_round_trips(name):
    p = PRESETS[name]
    text = str(p)
    assert name in text and str(p.forward) in text and str(p.backward_acc) in text
    for role in ROLES:
        assert role in text and p.format_of(role).name in text
    assert "loss scaling" in text and "master weights" in text
    d = p.to_dict()
    assert json.loads(json.dumps(d)) == d
    q = Precision.from_json(p.to_json())
    assert q == p and str(q) == str(p) and hash(q) == hash(p)
    assert Precision.from_dict(p.to_dict()) == p
    assert Precision.from_json(p.to_json(indent=None)) == p


def _with_overrides():
    return PRESETS["mixed"].replace(name="mixed-last32", overrides=[
        ("classifier.*", {"weights": "float32", "activations": "float32",
                          "forward": {"format": "float32", "order": "pairwise", "fma": True,
                                      "rounding": "nearest_even"}}),
        ("*.conv", {"activations": "bfloat16", "rounding": {"activations": "stochastic"}}),
        ("classifier.2", {"activations": "e5m2", "backward_acc": "float16:blocked:32"}),
    ])


def test_overrides_round_trip_and_print():
    p = _with_overrides()
    q = get_precision(json.loads(p.to_json()))
    assert q == p and str(q) == str(p)
    text = str(p)
    assert "'classifier.*'" in text and "activations=bfloat16" in text
    assert "float16 blocked:32" in text


def test_for_layer_pattern_and_later_wins():
    p = _with_overrides()
    base = p.for_layer("features.0.fc")            # no pattern matches
    assert base.overrides == () and base.activations == get_format("float16")
    assert base.weights == p.weights and base.forward == p.forward
    c0 = p.for_layer("classifier.0")
    assert c0.weights == get_format("float32") and c0.activations == get_format("float32")
    assert c0.forward.order.kind == "pairwise" and c0.backward_acc == p.backward_acc
    c2 = p.for_layer("classifier.2")               # later override wins for activations
    assert c2.activations == get_format("e5m2") and c2.weights == get_format("float32")
    assert str(c2.backward_acc) == "float16 blocked:32 fma"
    conv = p.for_layer("features.1.conv")
    assert conv.activations == get_format("bfloat16")
    assert conv.rounding["activations"] is Rounding.STOCHASTIC
    assert conv.rounding["weights"] is Rounding.NEAREST_EVEN
    assert p.for_layer("features.1.conv.bias").activations == get_format("float16")
    assert PRESETS["float32"].for_layer("anything") is PRESETS["float32"]


@pytest.mark.parametrize("override, key", [
    ({"wieghts": "float32"}, "wieghts"),
    ({"seed": 3}, "seed"),
    ({"loss_scaling": "dynamic"}, "loss_scaling"),
])
def test_override_unknown_keys_rejected(override, key):
    with pytest.raises(ValueError, match=key):
        PRESETS["float32"].replace(overrides=[("fc*", override)])


def test_get_precision_forms(tmp_path):
    e5 = get_precision("e5m2")
    assert e5.name == "e5m2"
    assert all(e5.format_of(r) == get_format("e5m2") for r in ROLES)
    assert e5.forward == Accumulation("e5m2", "sequential") == e5.backward_acc
    assert get_precision("posit(16,1)").weights == get_format("posit16_1")
    assert get_precision(get_format("tf32")).loss == get_format("tf32")
    assert get_precision("  Mixed ") is PRESETS["mixed"]
    assert get_precision("bf16") is PRESETS["bfloat16"]       # alias of a preset name
    p = PRESETS["fp8"]
    assert get_precision(p) is p
    assert get_precision(p.to_dict()) == p
    assert get_precision(p.to_json()) == p
    f = tmp_path / "policy.json"
    f.write_text(_with_overrides().to_json())
    assert get_precision(str(f)) == _with_overrides()
    assert get_precision(f) == _with_overrides()
    # partial dict on a base preset
    q = get_precision({"base": "mixed", "name": "m2", "loss": "bfloat16", "seed": 7})
    assert q.name == "m2" and q.loss == get_format("bfloat16") and q.seed == 7
    assert q.activations == get_format("float16") and q.master_weights


def test_get_precision_errors(tmp_path):
    with pytest.raises(ValueError, match="'mixd'.*did you mean.*mixed") as e:
        get_precision("mixd")
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.json"
    d = PRESETS["float32"].to_dict()
    d["activation_format"] = "float16"
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="activation_format"):
        get_precision(str(bad))
    d = PRESETS["float32"].to_dict()
    d["forward"]["order"] = "blocked:0"
    with pytest.raises(ValueError, match="blocked:0"):
        Precision.from_dict(d)
    d = PRESETS["float32"].to_dict()
    d["loss_scaling"]["spam"] = 1
    with pytest.raises(ValueError, match="spam"):
        Precision.from_dict(d)
    d = PRESETS["float32"].to_dict()
    d["rounding"]["weights"] = "nearestish"
    with pytest.raises(ValueError, match="nearestish"):
        Precision.from_dict(d)
    with pytest.raises(ValueError, match="missing.json"):
        get_precision(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        Precision.from_json("{nope")
    with pytest.raises(ValueError, match="e9m9x"):
        Precision(weights="e9m9x")
    with pytest.raises(ValueError, match="colour"):
        PRESETS["float32"].replace(colour="red")
    with pytest.raises(ValueError, match="role"):
        PRESETS["float32"].format_of("bias")
    with pytest.raises(ValueError, match="phase"):
        PRESETS["float32"].accumulation("sideways")


@pytest.mark.parametrize("kw, key", [
    (dict(mode="adaptive"), "adaptive"),
    (dict(mode="static", scale=0.0), "scale"),
    (dict(mode="static", scale=float("inf")), "scale"),
    (dict(mode="dynamic", factor=1.0), "factor"),
    (dict(mode="dynamic", growth_interval=0), "growth_interval"),
    (dict(mode="dynamic", growth_interval=2.5), "growth_interval"),
])
def test_loss_scaling_validation(kw, key):
    with pytest.raises(ValueError, match=key):
        LossScaling(**kw)


def test_format_of_letters_and_replace():
    p = PRESETS["fp8"]
    assert p.format_of("G") is p.gradients and p.format_of("F") is p.activations
    q = p.replace(rounding={"gradients": "stochastic"}, seed=3)
    assert q.rounding["gradients"] is Rounding.STOCHASTIC
    assert q.rounding["activations"] is Rounding.NEAREST_EVEN and q.seed == 3
    assert p.replace(rounding="toward_zero").rounding["loss"] is Rounding.TOWARD_ZERO
    assert p.replace() == p


def test_round_uses_role_format_and_mode():
    p = PRESETS["fp8"]
    x = np.array([0.1, 1.06, -3.3, 500.0])
    np.testing.assert_array_equal(p.round("activations", x),
                                  get_format("e4m3").round(x, "nearest_even"))
    np.testing.assert_array_equal(p.round("gradients", x), get_format("e5m2").round(x))
    assert p.round("weights", x).dtype == get_format("e4m3").carrier
    q = p.replace(rounding={"gradients": "toward_zero"})
    np.testing.assert_array_equal(q.round("gradients", x),
                                  get_format("e5m2").round(x, "toward_zero"))
    s = p.replace(rounding={"backward": "stochastic"})
    y = np.full(2000, 1.1)
    a = s.round("backward", y, rng=np.random.default_rng(5))
    b = s.round("backward", y, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {1.0, 1.25}                 # both neighbours occur
    assert abs(float(a.mean()) - 1.1) < 0.02                # unbiased on average
    with use(s):                                            # no rng: the block's stream
        c = s.round("backward", y)
    with use(s):
        d = s.round("backward", y)
    np.testing.assert_array_equal(c, d)


def test_context_stack_nesting():
    assert current() is PRESETS["float32"]
    with use("mixed") as m:
        assert m is PRESETS["mixed"] and current() is m
        with use("posit8"):
            assert current().name == "posit8"
            with use({"base": "float16", "name": "inner"}):
                assert current().name == "inner"
            assert current().name == "posit8"
        assert current() is m
    assert current() is PRESETS["float32"]
    with pytest.raises(RuntimeError):
        with use("fp8"):
            raise RuntimeError
    assert current() is PRESETS["float32"]


def test_context_layer_overrides_and_cache():
    p = _with_overrides()
    assert current_layer() is None
    with use(p):
        assert current() is p
        with layer_scope("classifier.2"):
            assert current_layer() == "classifier.2"
            r = current()
            assert r == p.for_layer("classifier.2") and r.activations == get_format("e5m2")
            assert current() is r                           # cached per path
            with layer_scope("features.3.conv"):
                assert current().activations == get_format("bfloat16")
            assert current_layer() == "classifier.2"
        assert current() is p
    with layer_scope("classifier.0"):                     # default policy has no overrides
        assert current() is PRESETS["float32"]
    assert current_layer() is None


def test_rng_determinism_and_per_block():
    with use(PRESETS["float32"].replace(seed=11)):
        a = current_rng().random(5)
        assert current_rng().random(1)[0] != a[0]           # one stream per block
    with use(PRESETS["float32"].replace(seed=11)):
        b = current_rng().random(5)
    with use(PRESETS["float32"].replace(seed=12)):
        c = current_rng().random(5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g = np.random.default_rng(99)
    with use("float16", rng=g):
        assert current_rng() is g


def test_context_is_thread_local():
    seen = {}

    def worker():
        seen["policy"] = current().name

    with use("posit8"):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen["policy"] == "float32"
