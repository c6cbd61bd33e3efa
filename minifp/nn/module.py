"""Modules: parameters, buffers and children registered by attribute assignment.

Numerical semantics
-------------------
* **Master values.** Every parameter keeps a float64 *master* copy (``module._master``), set
  from its seeded float64 initialisation, by :meth:`Module.load_state_dict` and by
  :meth:`Module.commit_master`.  The master values never depend on a precision policy.
* **Rounding weights.** ``model.to(policy)`` stores the policy on every submodule and rounds
  each parameter *once*, from its master, to the weights format (role W) of
  ``policy.for_layer(path)`` with the weights rounding mode.  Calling ``to`` again re-rounds
  from the master, never from the already rounded values, so models for different policies
  built from the same seed start from the same (rounded) weights.
* **Calling.** ``module(x)`` takes the policy in force for the module — its own policy
  (set by ``to``), else the one of the enclosing module call, else
  ``minifp.precision.current()`` — and runs ``forward`` inside
  ``minifp.precision.layer_scope(path)`` (plus ``use(policy)`` when the policy differs from
  the one already in force), so ``precision.current()`` resolves the per-layer overrides
  for the module's dotted path and every functional op rounds and accumulates as that
  layer's policy says.  A module that was never given a policy has its parameters rounded
  from the master to the weights format in force at its first call (and again, from the
  master, whenever that format changes: call :meth:`Module.commit_master` first to keep
  trained values).  Raw float arrays passed to a module are rounded to the activations
  format (role F) and wrapped as Tensors.
* **Stochastic rounding.** When a module call puts its policy in force it also supplies the
  stream (a Generator seeded from ``policy.seed``, kept by the module and restarted by
  ``to``), so draws run on from step to step and replay exactly for the same seed.
* **Buffers** (e.g. BatchNorm running statistics) are state, not weights: they are rounded
  from their *current* values to the weights format (by ``to`` and when the weights format
  in force changes); ``functional.batch_norm`` updates them in place, rounded to W.

Paths are dotted attribute names from the root module (``"blocks.0.attn.qkv"``); the root's
path is ``""``.  They are fixed by the first ``to`` or top-level call on the root.
"""
from __future__ import annotations

import contextlib
import threading
import zlib
from collections import OrderedDict, namedtuple

import numpy as np

from .. import precision as _prec
from ..autograd import Parameter, Tensor
from ..backend import array_module
from ..formats import Rounding

__all__ = ["Module", "Sequential", "Residual", "Parameter", "StateDictError",
           "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictError(ValueError):
    """A state dict does not match the module (missing/unexpected keys, wrong shapes)."""


# --------------------------------------------------------------------------------------

def _precision():
    return _prec


def _get_precision(spec):
    return _prec.get_precision(spec)


_state = threading.local()


def _call_stack() -> list:
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def _weights_key(policy):
    """What the weights of a layer under ``policy`` are rounded to: (format, mode)."""
    fmt = policy.format_of("weights")
    mode = policy.rounding["weights"]
    return (fmt.name, mode.value)


def _is_stochastic(policy, role: str) -> bool:
    return policy.rounding[role] is Rounding.STOCHASTIC


def _rng_for(policy, full_name: str):
    """A reproducible Generator for stochastic rounding of one named array under ``policy``."""
    return np.random.default_rng([int(getattr(policy, "seed", 0) or 0),
                                  zlib.crc32(full_name.encode())])


def _round_role(policy, role: str, values, full_name: str):
    rng = _rng_for(policy, full_name) if _is_stochastic(policy, role) else None
    return policy.round(role, values, rng=rng)


def _as_float64(data):
    xp = array_module(data)
    return xp.array(data, dtype=xp.float64, copy=True)


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, Tensor)


# --------------------------------------------------------------------------------------

class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, then assign :class:`Parameter` s, child
    modules and (through :meth:`register_buffer`) buffers as attributes; registration order
    is kept.  ``forward`` does the computation through :mod:`minifp.functional`.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_master", {})
        object.__setattr__(self, "_rounded_for", {})
        object.__setattr__(self, "_policy", None)
        object.__setattr__(self, "_path", None)
        object.__setattr__(self, "training", True)

    # ---- registration ---------------------------------------------------------------

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__(): call super().__init__() "
                f"first in {type(self).__name__}.__init__")
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
            self._master[name] = _as_float64(value.data)
            self._rounded_for[name] = None
        elif isinstance(value, Module):
            self._forget(name)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} "
                                "(expected a Parameter or None)")
            params[name] = None
            self._master.pop(name, None)
            self._rounded_for.pop(name, None)
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to child module "
                                f"{name!r} (expected a Module or None)")
            mods[name] = None
        elif name in bufs:
            bufs[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._master.pop(name, None)
        self._rounded_for.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param):
        """Register ``param`` (a Parameter or None, e.g. an absent bias) under ``name``."""
        if param is None:
            self._forget(name)
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, array):
        """Register a non-trainable array (or None) saved in the state dict, e.g. running
        statistics.  Buffers are plain xp arrays, not Tensors."""
        self._forget(name)
        self._buffers[name] = array

    def add_module(self, name: str, module):
        """Register a child module under ``name`` (any string, e.g. ``"0"``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        self._forget(name)
        self._modules[name] = module

    # ---- traversal ------------------------------------------------------------------

    def children(self):
        """Direct child modules, in registration order."""
        for m in self._modules.values():
            if m is not None:
                yield m

    def named_children(self):
        for n, m in self._modules.items():
            if m is not None:
                yield n, m

    def named_modules(self, prefix: str = "", _seen=None):
        """(dotted path, module) for this module and every descendant, each module once."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted path, Parameter) in registration order, each Parameter once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mpath, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mpath}.{name}" if mpath else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = ""):
        for mpath, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mpath}.{name}" if mpath else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ---- modes, gradients -----------------------------------------------------------

    def train(self, mode: bool = True):
        """Set ``training`` on this module and every descendant; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """``train(False)``; returns self."""
        return self.train(False)

    def zero_grad(self):
        """Drop the gradients of every parameter (``grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ---- precision ------------------------------------------------------------------

    @property
    def policy(self):
        """The policy stored by :meth:`to` (a Precision), or None."""
        return self._policy

    @property
    def path(self) -> str:
        """This module's dotted path from its root ("" for the root)."""
        return self._path or ""

    def _assign_paths(self):
        for path, m in self.named_modules():
            object.__setattr__(m, "_path", path)

    def to(self, policy=None, device=None):
        """Move this module to ``device`` and/or put it under ``policy``; returns self.

        ``device`` (``cpu``, ``gpu``, ``cuda:N`` or a :class:`~minifp.device.Device`):
        every parameter, gradient, float64 master and buffer of this module and its
        descendants is copied there, bits unchanged.  ``module.to("gpu")`` alone moves.

        ``policy`` (anything ``get_precision`` takes): stored on this module and every
        descendant, and every parameter is rounded once from its float64 master to the
        weights format of ``policy.for_layer(path)`` (per-layer overrides), with the
        weights rounding mode (stochastic rounding draws from a stream seeded by the
        policy's ``seed`` and the parameter's path).  Gradients are then dropped; buffers
        are rounded from their current values."""
        from ..device import parse_device  # noqa: PLC0415
        if device is None and isinstance(policy, str) \
                and policy.strip().lower().split(":")[0] in ("cpu", "gpu", "cuda"):
            policy, device = None, policy
        if device is not None:
            self._move(parse_device(device))
        if policy is None:
            return self
        p = _get_precision(policy)
        if self._path is None:
            self._assign_paths()
        for _, m in self.named_modules():
            object.__setattr__(m, "_policy", p)
            object.__setattr__(m, "_sr_stream", None)
            m._round_weights(p.for_layer(m.path), force=True)
        return self

    def _move(self, dev):
        """Copy every array of this module tree to Device ``dev`` (bits unchanged)."""
        for _, m in self.named_modules():
            for name in list(m._master):
                m._master[name] = dev.put(m._master[name])
            for prm in m._parameters.values():
                if prm is not None:
                    prm.data = dev.put(prm.data)
                    if prm.grad is not None:
                        prm.grad.data = dev.put(prm.grad.data)
            for name, buf in m._buffers.items():
                if buf is not None:
                    m._buffers[name] = dev.put(buf)
            object.__setattr__(m, "_device", dev)

    @property
    def device(self):
        """The :class:`~minifp.device.Device` this module's arrays live on."""
        from ..device import CPU  # noqa: PLC0415
        return self.__dict__.get("_device", CPU)

    def _round_weights(self, layer_policy, force: bool = False):
        """Round this module's own parameters from master to ``layer_policy``'s weights
        format (those not already rounded for it, or all with ``force``); buffers from
        their current values."""
        key = _weights_key(layer_policy)
        for name, prm in self._parameters.items():
            if prm is None or (not force and self._rounded_for.get(name) == key):
                continue
            full = f"{self.path}.{name}" if self.path else name
            prm.data = _round_role(layer_policy, "weights", self._master[name], full)
            prm.grad = None
            self._rounded_for[name] = key
        if self._buffers and (force or self.__dict__.get("_buffers_for") != key):
            for name, buf in self._buffers.items():
                if buf is not None:
                    full = f"{self.path}.{name}" if self.path else name
                    self._buffers[name] = _round_role(layer_policy, "weights", buf, full)
            object.__setattr__(self, "_buffers_for", key)

    def commit_master(self):
        """Make the current parameter values (converted exactly to float64) the masters,
        e.g. after training, so that a later ``to`` starts from them.  Returns self."""
        for m in self.modules():
            for name, prm in m._parameters.items():
                if prm is not None:
                    m._master[name] = _as_float64(prm.data)
        return self

    def master_state_dict(self) -> "OrderedDict[str, object]":
        """Dotted path -> float64 master copy of every parameter."""
        out = OrderedDict()
        for mpath, m in self.named_modules():
            for name, prm in m._parameters.items():
                if prm is not None:
                    key = f"{mpath}.{name}" if mpath else name
                    if key not in out:
                        out[key] = m._master[name].copy()
        return out

    # ---- calling --------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        prec = _precision()
        stack = _call_stack()
        if not stack and self._path is None:
            self._assign_paths()
        inherited = stack[-1] if stack else prec.current()
        base = self._policy if self._policy is not None else inherited
        layer_policy = self._layer_policy(base)
        self._round_weights(layer_policy)
        stack.append(base)
        try:
            with contextlib.ExitStack() as ctx:
                # A new ``use`` frame only when the policy changes: the frame owns the
                # stochastic-rounding stream, which must run on across layers.
                if base is not inherited and base != inherited:
                    ctx.enter_context(prec.use(base, rng=self._stream(base)))
                ctx.enter_context(prec.layer_scope(self.path))
                args = tuple(self._wrap_input(a, layer_policy) for a in args)
                return self.forward(*args, **kwargs)
        finally:
            stack.pop()

    def _stream(self, base):
        """The stochastic-rounding Generator of calls that put ``base`` in force here:
        seeded from ``base.seed`` and kept by the module, so the draws run on from call to
        call (step to step) instead of restarting, and a model rebuilt with the same seed
        and policy replays them exactly."""
        st = self.__dict__.get("_sr_stream")
        if st is None or st[0] is not base:
            st = (base, np.random.default_rng(base.seed))
            object.__setattr__(self, "_sr_stream", st)
        return st[1]

    def _layer_policy(self, base):
        """``base.for_layer(self.path)``, cached per (base, path)."""
        cache = self.__dict__.get("_lp_cache")
        if cache is not None and cache[0] is base and cache[1] == self.path:
            return cache[2]
        lp = base.for_layer(self.path)
        object.__setattr__(self, "_lp_cache", (base, self.path, lp))
        return lp

    @staticmethod
    def _wrap_input(a, layer_policy):
        if _is_array(a) and a.dtype.kind == "f":
            return Tensor(layer_policy.round("activations", a))  # stochastic: current_rng()
        return a

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # ---- state dict -----------------------------------------------------------------

    def state_dict(self) -> "OrderedDict[str, object]":
        """Dotted path -> copy of every parameter's current (rounded) values, then buffers."""
        out = OrderedDict()
        for mpath, m in self.named_modules():
            for name, prm in m._parameters.items():
                if prm is not None:
                    key = f"{mpath}.{name}" if mpath else name
                    out.setdefault(key, prm.data.copy())
            for name, buf in m._buffers.items():
                if buf is not None:
                    key = f"{mpath}.{name}" if mpath else name
                    out.setdefault(key, buf.copy())
        return out

    def load_state_dict(self, state, strict: bool = True):
        """Load arrays by dotted path.  Loaded parameter values become the new float64
        masters; a module with a policy (set by ``to``) rounds them to its weights format
        at once, others at their next call.  ``strict``: missing or unexpected keys raise
        :class:`StateDictError` naming them; a shape mismatch always raises.  Returns
        ``IncompatibleKeys(missing_keys, unexpected_keys)``."""
        slots = OrderedDict()
        for mpath, m in self.named_modules():
            for store in ("_parameters", "_buffers"):
                for name, v in getattr(m, store).items():
                    if v is not None:
                        slots.setdefault(f"{mpath}.{name}" if mpath else name, (m, store, name))
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys: " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected keys: " + ", ".join(unexpected))
            raise StateDictError(f"state dict does not match {type(self).__name__}: "
                                 + "; ".join(parts))
        for key, (m, store, name) in slots.items():
            if key not in state:
                continue
            value = state[key]
            cur = getattr(m, store)[name]
            cur_arr = cur.data if store == "_parameters" else cur
            xp = array_module(cur_arr)
            new = xp.asarray(value.data if isinstance(value, Tensor) else value)
            if tuple(new.shape) != tuple(cur_arr.shape):
                raise StateDictError(f"shape mismatch for {key!r}: state dict has "
                                     f"{tuple(new.shape)}, module has {tuple(cur_arr.shape)}")
            if store == "_parameters":
                m._master[name] = _as_float64(new)
                m._rounded_for[name] = None
                cur.data = m._master[name].copy()
                cur.grad = None
            else:
                m._buffers[name] = xp.array(new, copy=True)
        for _, m in self.named_modules():
            if m._policy is not None:
                m._round_weights(m._policy.for_layer(m.path), force=False)
        return IncompatibleKeys(missing, unexpected)

    # ---- printing -------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        kids = list(self.named_children())
        if not kids:
            return head + ")"
        lines = [head]
        for name, child in kids:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Children ``"0"``, ``"1"``, ... applied in order (no arithmetic of its own)."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class Residual(Module):
    """``body(x) + shortcut(x)`` (shortcut: identity by default).  The addition is
    ``functional.add``: computed in float64, rounded once to the activations format F."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.add_module("shortcut", shortcut)

    def forward(self, x):
        from .. import functional as F
        y = self.body(x)
        s = self.shortcut(x) if self._modules.get("shortcut") is not None else x
        return F.add(y, s)
