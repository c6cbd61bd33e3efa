"""The optimizer base class: parameter bookkeeping, master weights, rounding, state dicts.

Numerics (shared by every optimizer of :mod:`minifp.optim`)
-----------------------------------------------------------
For each parameter with a gradient, one step:

1. reads the stored values: the gradient ``param.grad.data`` (already in the gradient
   format G), the optimizer state (in the optimizer format O) and the current weight
   ``w``: the master copy when ``policy.master_weights`` is set, else ``param.data``;
2. computes the whole update in float64 from those stored values;
3. rounds each new state tensor (momentum buffer, Adam ``m`` and ``v``) **once** to O with
   the policy's "optimizer" rounding mode;
4. with master weights: rounds the new weight once to O (the new master) and sets the
   parameter to the master rounded once to the layer's weights format W
   (``policy.for_layer(path).weights``, the "weights" rounding mode); without master
   weights: rounds the new weight once, directly to W.

The formats are those of ``policy.for_layer(path)`` where ``path`` is the module path of
the layer that owns the parameter ("features.0.weight" -> "features.0"; a top-level
"weight" -> ""), so per-layer overrides of W (and of O) apply.  The master copy is created
at the parameter's first step from its current value rounded to O.

The policy is the ``policy`` argument, else the model's policy (``module.policy``, set by
``model.to(policy)``), else :func:`minifp.precision.current` at construction.

Stochastic rounding (a role whose mode is ``stochastic``) draws from the optimizer's own
Generator, seeded from ``policy.seed``; its state is part of :meth:`Optimizer.state_dict`,
so a resumed run draws exactly what the uninterrupted one would have.

When the parameters come from a :class:`~minifp.nn.Module`, every step also stores the new
value in float64 as the module's master of that parameter (the O master with master
weights, else the new parameter value), so ``module.master_state_dict()`` and a later
``model.to(other_policy)`` start from the trained values rather than the initial ones.
"""
from __future__ import annotations

import json
import math

import numpy as np

from .. import precision as _precision
from ..autograd import Parameter, Tensor
from ..backend import array_module, asnumpy
from ..errors import UserError

__all__ = ["Optimizer", "PrecisionWarning", "layer_path_of", "named_params"]


class PrecisionWarning(UserWarning):
    """A setting that the chosen number format cannot represent as intended (e.g. an Adam
    epsilon that rounds to zero or to a subnormal in the optimizer format)."""


def layer_path_of(name: str) -> str:
    """The module path of the layer owning parameter ``name``: everything before the last
    dot ("features.0.weight" -> "features.0"; "weight" -> "")."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def _is_module(obj) -> bool:
    from ..nn.module import Module  # noqa: PLC0415 - minifp.nn imports autograd only
    return isinstance(obj, Module)


def named_params(params) -> list[tuple[str, Parameter]]:
    """Normalise ``params`` to a list of ``(name, Parameter)``: a Module (its
    ``named_parameters()``), an iterable of ``(name, Parameter)`` pairs, or an iterable of
    Tensors (named "0", "1", ...; their layer path is "")."""
    if _is_module(params):
        return list(params.named_parameters())
    if isinstance(params, Tensor):
        params = [params]
    try:
        items = list(params)
    except TypeError:
        raise UserError(f"optimizer parameters must be a Module or a list of (name, "
                        f"Parameter) pairs, not {type(params).__name__}") from None
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Tensor):
            name, p = str(i), item
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Tensor):
            name, p = str(item[0]), item[1]
        else:
            raise UserError(f"optimizer parameter #{i} is not a Tensor or a (name, Parameter) "
                            f"pair: {type(item).__name__}")
        out.append((name, p))
    return out


def _number(what: str, v, lo=0.0, hi=None, lo_open=False, hi_open=True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise UserError(f"{what} must be a number, not {v!r}")
    v = float(v)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo)
    if hi is not None:
        ok = ok and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, " + (
            f"{hi:g}{')' if hi_open else ']'}" if hi is not None else "inf)")
        raise UserError(f"{what} must be finite and in {rng}, not {v!r}")
    return v


def _user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called from this package that points at the
    first frame outside ``minifp.optim`` (the user's call)."""
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415
    here = os.path.dirname(os.path.abspath(__file__))
    f = sys._getframe(1)
    level = 1
    while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) == here:
        f = f.f_back
        level += 1
    return level


def _f64(a):
    xp = array_module(a)
    return xp.asarray(a, dtype=np.float64)


class Optimizer:
    """Base class: holds ``(name, Parameter)`` pairs, the policy, per-parameter state and
    the stochastic-rounding Generator.  Subclasses set ``name`` (registry name),
    ``state_keys`` (names of their state arrays) and implement
    :meth:`_update(name, w, g, state, lp) -> new float64 weight` which updates ``state``
    through :meth:`_store` (rounding to O)."""

    name = "optimizer"
    state_keys: tuple = ()
    hyper_keys: tuple = ()

    def __init__(self, params, policy=None):
        module = params if _is_module(params) else None
        self.params = named_params(params)
        if not self.params:
            raise UserError("optimizer got no parameters to optimize")
        seen = set()
        for n, p in self.params:
            if n in seen:
                raise UserError(f"optimizer got two parameters named {n!r}")
            seen.add(n)
        if policy is None and module is not None and module.policy is not None:
            policy = module.policy
        if policy is None:
            policy = _precision.current()
        try:
            self.policy = _precision.get_precision(policy)
        except ValueError as err:
            raise UserError(str(err)) from None
        self._layer_policy = {n: self.policy.for_layer(layer_path_of(n))
                              for n, _ in self.params}
        # the module owning each parameter (for master sync), when given a Module
        self._owner: dict = {}
        if module is not None:
            ids = {id(p): n for n, p in self.params}
            for _, m in module.named_modules():
                for attr, p in m._parameters.items():
                    if p is not None and id(p) in ids and ids[id(p)] not in self._owner:
                        self._owner[ids[id(p)]] = (m, attr)
        self.state: dict[str, dict] = {}
        self.step_count = 0
        self.rng = np.random.default_rng(self.policy.seed)

    # ------------------------------------------------------------------ helpers
    @property
    def master_weights(self) -> bool:
        return self.policy.master_weights

    def optimizer_formats(self) -> list:
        """The distinct optimizer formats O in use (one unless overrides change it)."""
        seen = {}
        for n, _ in self.params:
            f = self._layer_policy[n].optimizer
            seen.setdefault(f.name, f)
        return list(seen.values())

    def _round(self, lp, role, x):
        """Round ``x`` once to ``role`` of the layer policy ``lp`` (its rounding mode;
        stochastic draws from the optimizer's Generator)."""
        return lp.round(role, x, rng=self.rng)

    def _store(self, state, key, lp, value64):
        """Round a new float64 state tensor once to O and store it; returns the stored
        array (the value later arithmetic must use)."""
        state[key] = self._round(lp, "optimizer", value64)
        return state[key]

    def to(self, device):
        """Copy the optimizer state (momentum, Adam moments, O masters) to ``device``,
        bits unchanged; returns self.  Its random stream stays on the host."""
        from ..device import parse_device  # noqa: PLC0415
        dev = parse_device(device)
        for st in self.state.values():
            for key, value in list(st.items()):
                if hasattr(value, "shape") and hasattr(value, "dtype"):
                    st[key] = dev.put(value)
        return self

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (``grad = None``)."""
        for _, p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient (see the module
        docstring for the numerics).  Parameters without ``grad`` are skipped (their state
        is untouched)."""
        mw = self.policy.master_weights
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for name, p in self.params:
                if p.grad is None:
                    continue
                lp = self._layer_policy[name]
                st = self.state.setdefault(name, {})
                if mw and "master" not in st:
                    st["master"] = self._round(lp, "optimizer", _f64(p.data))
                w = _f64(st["master"] if mw else p.data)
                g = _f64(p.grad.data if isinstance(p.grad, Tensor) else p.grad)
                if tuple(g.shape) != tuple(w.shape):
                    raise UserError(f"gradient of {name!r} has shape {tuple(g.shape)}, the "
                                    f"parameter {tuple(w.shape)}")
                new = self._update(name, w, g, st, lp)
                if mw:
                    st["master"] = self._round(lp, "optimizer", new)
                    p.data = self._round(lp, "weights", st["master"])
                    value = st["master"]
                else:
                    p.data = self._round(lp, "weights", new)
                    value = p.data
                owner = self._owner.get(name)
                if owner is not None:
                    m, attr = owner
                    m._master[attr] = array_module(value).array(value, dtype=np.float64,
                                                                copy=True)
        self.step_count += 1

    def _update(self, name, w, g, state, lp):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ state dict
    def hyperparameters(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((k, getattr(self, k)) for k in self.hyper_keys)}

    def state_dict(self) -> dict:
        """Everything a resume needs, as plain data: ``{"optimizer": name,
        "hyperparameters": {...}, "step": int, "master_weights": bool, "formats":
        {param name: O format name}, "state": {param name: {key: array (O carrier dtype,
        NumPy), "step": int (Adam)}}, "rng_state": JSON string (the stochastic-rounding
        Generator), "flags": {...}}``.  Arrays are copies; :meth:`load_state_dict` of the
        result restores the optimizer bit for bit."""
        state = {}
        for n, st in self.state.items():
            state[n] = {k: (np.array(asnumpy(v), copy=True) if hasattr(v, "shape") else v)
                        for k, v in st.items()}
        return {
            "optimizer": self.name,
            "hyperparameters": self.hyperparameters(),
            "step": int(self.step_count),
            "master_weights": bool(self.policy.master_weights),
            "formats": {n: self._layer_policy[n].optimizer.name for n in self.state},
            "state": state,
            "rng_state": json.dumps(self.rng.bit_generator.state),
            "flags": self._flags(),
        }

    def _flags(self) -> dict:
        return {}

    def _load_flags(self, flags: dict) -> None:
        pass

    def load_state_dict(self, sd: dict) -> None:
        """Restore a :meth:`state_dict` (of an optimizer of the same kind over parameters
        of the same names and shapes).  Hyperparameters, step counts, state arrays and the
        Generator are restored exactly; state saved under another optimizer format is
        rounded to the current one.  Mismatches raise :class:`~minifp.errors.UserError`."""
        if not isinstance(sd, dict) or "state" not in sd:
            raise UserError("optimizer state is not a minifp optimizer state dict")
        kind = sd.get("optimizer")
        if kind != self.name:
            raise UserError(f"optimizer state is for {kind!r}, this optimizer is {self.name!r}")
        names = {n: p for n, p in self.params}
        new_state = {}
        for n, st in sd["state"].items():
            if n not in names:
                raise UserError(f"optimizer state has parameter {n!r}, which this optimizer "
                                f"does not have")
            p = names[n]
            lp = self._layer_policy[n]
            xp = array_module(p.data)
            out = {}
            for k, v in st.items():
                if k == "step":
                    out[k] = int(v)
                    continue
                if k != "master" and k not in self.state_keys:
                    raise UserError(f"optimizer state of {n!r} has unknown entry {k!r}")
                a = np.asarray(v)
                if tuple(a.shape) != tuple(p.shape):
                    raise UserError(f"optimizer state {n}.{k} has shape {tuple(a.shape)}, "
                                    f"the parameter {tuple(p.shape)}")
                fmt = lp.optimizer
                saved_fmt = sd.get("formats", {}).get(n, fmt.name)
                if saved_fmt == fmt.name and a.dtype == fmt.carrier:
                    out[k] = xp.array(a, copy=True)
                else:
                    out[k] = lp.round("optimizer", xp.asarray(a), rng=self.rng)
            new_state[n] = out
        for k, v in sd.get("hyperparameters", {}).items():
            if k in self.hyper_keys:
                setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.state = new_state
        for n, st in new_state.items():
            owner = self._owner.get(n)
            if owner is not None and "master" in st:
                m, attr = owner
                m._master[attr] = array_module(st["master"]).array(st["master"],
                                                                   dtype=np.float64, copy=True)
        self.step_count = int(sd.get("step", 0))
        if sd.get("rng_state") is not None:
            rs = sd["rng_state"]
            self.rng.bit_generator.state = json.loads(rs) if isinstance(rs, str) else rs
        self._load_flags(sd.get("flags", {}))

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper_keys)
        return (f"{type(self).__name__}({len(self.params)} parameters, {hp}, "
                f"policy={self.policy.name!r})")
