"""Training checkpoints in HDF5: bit-exact, atomic, checksummed.

``save_checkpoint(path, model, optimizer, scaler, rng_state, epoch, policy, extra)``
writes everything a resumed run needs so that continuing training is bit-identical to
never having stopped; ``load_checkpoint(path)`` reads it back (verifying the checksum) and
``restore(model, optimizer, scaler, ckpt)`` puts it back into live objects.

File layout (``h5ls -r``)::

    /                      attrs: minifp_checkpoint (layout version, int), epoch (int),
                           policy (Precision JSON), rng_state (JSON), extra (JSON),
                           model (JSON: the zoo config, or null), module_rng (JSON: the
                           stochastic-rounding / dropout Generator states of the modules),
                           sha256 (hex digest, see below)
    /params/<name>         the parameter's codes (``fmt.encode(values)``, uint8..uint64);
                           attrs format (format name), dtype (the array's dtype)
    /masters/<name>        float64 master copy (``model.master_state_dict()``)
    /buffers/<name>        buffers (BatchNorm running statistics) as float64 (exact for
                           every float carrier; checked), attr dtype (the original dtype)
    /optimizer, /scaler    the state dicts, as a tree (see below); attr __kind__ = "none" when
                           no optimizer / scaler was given

Nested state (optimizer, scaler): a dict is a group (attr ``__kind__ = "dict"``, attr
``__keys__``: JSON list of ``[key, child name]`` pairs, so int keys and key order survive;
child names are the keys, or ``__itemI`` where a key cannot be one); a list or tuple
holding arrays is a group of ``__kind__`` ``list`` / ``tuple`` (``__length__``) with
children ``0, 1, ...``;
a NumPy (or CuPy) array is a dataset of its own dtype (bit-exact), a NumPy scalar a 0-d
dataset (attr ``kind = "scalar"``); anything else (None, bool, int, float, str and
lists/tuples of them) is a JSON attr of the parent group named after the child.

Checksum: SHA-256 over, in sorted path order, every group's and dataset's path, every
attribute (name, then its type, shape and bytes) and every dataset's dtype, shape and
bytes; the root attr ``sha256`` itself is left out.  ``load_checkpoint`` recomputes it.

Atomicity: the file is written as ``<path>.tmp-<pid>`` in the destination directory,
flushed, closed, fsynced and moved over ``path`` with ``os.replace`` (then the directory is
fsynced), so ``path`` always holds either the previous checkpoint or the complete new one.
On an error the temporary file is removed.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict

import numpy as np

from .backend import array_module, asnumpy
from .errors import UserError
from .formats import get_format

__all__ = ["save_checkpoint", "load_checkpoint", "restore", "checkpoint_digest",
           "LAYOUT_VERSION"]

#: Version of the file layout, stored as the root attr ``minifp_checkpoint``.
LAYOUT_VERSION = 1

_ROOT_ATTRS = ("minifp_checkpoint", "epoch", "policy", "rng_state", "extra", "sha256")
_GROUPS = ("params", "masters", "buffers", "optimizer", "scaler")


def _h5py():
    try:
        import h5py  # noqa: PLC0415
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise UserError("checkpoints need h5py (pip install h5py)") from None
    return h5py


# ---- JSON ------------------------------------------------------------------------------

def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "shape") and hasattr(o, "dtype"):
        return asnumpy(o).tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _json_pack(v):
    """Tuples survive JSON as {"__tuple__": [...]}."""
    if isinstance(v, tuple):
        return {"__tuple__": [_json_pack(x) for x in v]}
    if isinstance(v, list):
        return [_json_pack(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_pack(x) for k, x in v.items()}
    return v


def _json_unpack(v):
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_json_unpack(x) for x in v["__tuple__"])
        return {k: _json_unpack(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_unpack(x) for x in v]
    return v


def _dumps(what: str, value) -> str:
    try:
        return json.dumps(_json_pack(value), default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise UserError(f"checkpoint {what} is not JSON serialisable: {err}") from None


# ---- nested state trees ------------------------------------------------------------------

def _is_array(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, np.generic)


def _holds_arrays(v) -> bool:
    if _is_array(v) or isinstance(v, (np.generic, dict)):
        return True
    if isinstance(v, (list, tuple)):
        return any(_holds_arrays(x) for x in v)
    return False


def _child_name(key, used: set) -> str:
    name = str(key)
    if (not name or "/" in name or name in (".", "..") or name.startswith("__")
            or name in used):
        name = f"__item{len(used)}"
    used.add(name)
    return name


def _write_array(group, name, arr, **attrs):
    a = np.array(asnumpy(arr), order="C", copy=True)
    if a.dtype.kind not in "biuf":
        raise UserError(f"checkpoint cannot store an array of dtype {a.dtype} ({name!r})")
    ds = group.create_dataset(name, data=a, track_times=False)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _write_tree(group, value, what: str):
    """Fill ``group`` with the nested ``value`` (dict / list / tuple holding arrays)."""
    if isinstance(value, dict):
        group.attrs["__kind__"] = "dict"
        pairs, used = [], set()
        for k, v in value.items():
            if isinstance(k, bool) or not isinstance(k, (str, int, np.integer)):
                raise UserError(f"checkpoint {what}: keys must be strings or ints, got {k!r}")
            k = int(k) if isinstance(k, np.integer) else k
            name = _child_name(k, used)
            pairs.append([k, name])
            _write_node(group, name, v, what)
        group.attrs["__keys__"] = json.dumps(pairs)
    elif isinstance(value, (list, tuple)):
        group.attrs["__kind__"] = "tuple" if isinstance(value, tuple) else "list"
        group.attrs["__length__"] = len(value)
        for i, v in enumerate(value):
            _write_node(group, str(i), v, what)
    else:
        raise UserError(f"checkpoint {what} must be a dict, got {type(value).__name__}")


def _write_node(group, name, v, what):
    if isinstance(v, np.generic) and v.dtype.kind in "biuf":
        _write_array(group, name, np.asarray(v), kind="scalar")
    elif _is_array(v):
        _write_array(group, name, v)
    elif isinstance(v, (dict, list, tuple)) and _holds_arrays(v):
        _write_tree(group.create_group(name, track_order=True), v, what)
    else:
        group.attrs[name] = _dumps(what, v)


def _read_tree(group):
    kind = group.attrs.get("__kind__", "dict")
    if kind == "none":
        return None

    def child(name):
        if name in group:
            obj = group[name]
            if hasattr(obj, "dtype"):        # dataset
                a = obj[()]
                if obj.attrs.get("kind") == "scalar":
                    return np.asarray(a)[()]
                return np.asarray(a)
            return _read_tree(obj)
        if name in group.attrs:
            return _json_unpack(json.loads(group.attrs[name]))
        raise KeyError(f"{group.name}/{name}")

    if kind == "dict":
        pairs = json.loads(group.attrs["__keys__"])
        return {k: child(n) for k, n in pairs}
    if kind in ("list", "tuple"):
        items = [child(str(i)) for i in range(int(group.attrs["__length__"]))]
        return tuple(items) if kind == "tuple" else items
    raise KeyError(f"{group.name}: unknown kind {kind!r}")


# ---- checksum ------------------------------------------------------------------------------

def _hash_attr(h, name, value):
    h.update(b"A" + name.encode() + b"\0")
    if isinstance(value, bytes):
        h.update(b"b" + value)
    elif isinstance(value, str):
        h.update(b"s" + value.encode("utf-8", "surrogatepass"))
    else:
        a = np.asarray(value)
        if a.dtype.kind in "OUS":
            h.update(b"o" + repr(a.tolist()).encode())
        else:
            h.update(a.dtype.str.encode() + repr(a.shape).encode() + a.tobytes())
    h.update(b"\0")


def checkpoint_digest(f) -> str:
    """SHA-256 (hex) of an open checkpoint file ``f`` (h5py.File), the root ``sha256``
    attr excluded: paths, attributes, dtypes, shapes and bytes of every dataset."""
    h = hashlib.sha256()

    def visit(obj, path):
        h.update(b"P" + path.encode() + b"\0")
        for name in sorted(obj.attrs):
            if path == "/" and name == "sha256":
                continue
            _hash_attr(h, name, obj.attrs[name])
        if hasattr(obj, "dtype"):
            a = np.asarray(obj[()], order="C")
            h.update(b"D" + a.dtype.str.encode() + repr(a.shape).encode() + b"\0")
            h.update(a.tobytes())
            return
        for name in sorted(obj):
            visit(obj[name], (path.rstrip("/") + "/" + name))

    visit(f, "/")
    return h.hexdigest()


# ---- model pieces ----------------------------------------------------------------------------

def _get_precision(policy):
    from .precision import get_precision  # noqa: PLC0415
    try:
        return get_precision(policy)
    except (ValueError, TypeError) as err:
        raise UserError(f"checkpoint policy: {err}") from None


def _weights_key(layer_policy):
    from .nn.module import _weights_key as wk  # noqa: PLC0415
    return wk(layer_policy)


def _param_slots(model):
    """(dotted name, module, attribute name, Parameter), each Parameter once."""
    seen, out = set(), []
    for mpath, m in model.named_modules():
        for name, prm in m._parameters.items():
            if prm is None or id(prm) in seen:
                continue
            seen.add(id(prm))
            out.append((f"{mpath}.{name}" if mpath else name, m, name, prm))
    return out


def _buffer_slots(model):
    seen, out = set(), []
    for mpath, m in model.named_modules():
        for name, buf in m._buffers.items():
            key = f"{mpath}.{name}" if mpath else name
            if buf is None or key in seen:
                continue
            seen.add(key)
            out.append((key, m, name, buf))
    return out


def _bits_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tobytes() == b.tobytes()


def _encode_param(values, fmt):
    """Codes of ``values`` in ``fmt`` if they decode back bit for bit, else None."""
    try:
        codes = asnumpy(fmt.encode(values))
        back = asnumpy(fmt.decode(codes)).astype(values.dtype)
    except (ValueError, TypeError, OverflowError):
        return None
    return codes if _bits_equal(back, values) else None


def _module_rng_states(model) -> dict:
    """Generator states a module keeps: its stochastic-rounding stream and (Dropout) rng."""
    out = {}
    for mpath, m in model.named_modules():
        entry = {}
        st = m.__dict__.get("_sr_stream")
        if st is not None:
            entry["sr_stream"] = st[1].bit_generator.state
        rng = m.__dict__.get("rng")
        if isinstance(rng, np.random.Generator):
            entry["rng"] = rng.bit_generator.state
        if entry:
            out[mpath] = entry
    return out


# ---- save ------------------------------------------------------------------------------------

def _fsync_path(path, directory=False):
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:        # some platforms cannot open directories
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _write_file(tmp, model, optimizer, scaler, rng_state, epoch, policy, extra):
    h5py = _h5py()
    base = model.policy if model.policy is not None else policy
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["minifp_checkpoint"] = LAYOUT_VERSION
        f.attrs["epoch"] = int(epoch)
        f.attrs["policy"] = policy.to_json(indent=None)
        f.attrs["engine"] = _engine_label()
        f.attrs["rng_state"] = _dumps("rng_state", rng_state)
        f.attrs["extra"] = _dumps("extra", extra if extra is not None else {})
        cfg = model.config() if callable(getattr(model, "config", None)) else None
        f.attrs["model"] = _dumps("model config", cfg)
        f.attrs["module_rng"] = _dumps("module rng state", _module_rng_states(model))

        gp = f.create_group("params", track_order=True)
        gm = f.create_group("masters", track_order=True)
        masters = model.master_state_dict()
        for key, m, name, prm in _param_slots(model):
            values = np.asarray(asnumpy(prm.data))
            fmt = base.for_layer(m.path).format_of("weights")
            codes = _encode_param(values, fmt)
            if codes is None:        # not (bit-exactly) in W: store the carrier's bits
                fmt = get_format(values.dtype.name)
                codes = _encode_param(values, fmt)
            if codes is None:
                raise UserError(f"parameter {key!r} ({values.dtype}) cannot be stored "
                                f"bit-exactly")
            _write_array(gp, key, codes, format=fmt.name, dtype=values.dtype.name)
            _write_array(gm, key, np.asarray(asnumpy(masters[key]), dtype=np.float64))

        gb = f.create_group("buffers", track_order=True)
        for key, _m, _name, buf in _buffer_slots(model):
            b = np.asarray(asnumpy(buf))
            wide = b.astype(np.float64) if b.dtype.kind in "fiub" else None
            if wide is not None and _bits_equal(wide.astype(b.dtype), b):
                _write_array(gb, key, wide, dtype=b.dtype.name)
            else:
                _write_array(gb, key, b, dtype=b.dtype.name)

        for gname, obj in (("optimizer", optimizer), ("scaler", scaler)):
            g = f.create_group(gname, track_order=True)
            if obj is None:
                g.attrs["__kind__"] = "none"
            else:
                _write_tree(g, obj.state_dict(), gname + " state")

        f.flush()
        f.attrs["sha256"] = checkpoint_digest(f)
        f.flush()


def _engine_label() -> str:
    from . import kernels  # noqa: PLC0415
    return kernels.describe()


def save_checkpoint(path, model, optimizer=None, scaler=None, rng_state=None, epoch=0,
                    policy=None, extra=None) -> str:
    """Write a checkpoint of ``model`` (and the optimizer / loss-scaler state, any object
    with ``state_dict()``) to ``path`` atomically; returns the path as a string.

    ``rng_state``: JSON-able data (e.g. ``generator.bit_generator.state``) of the run's own
    Generators; ``epoch``: epochs completed; ``policy``: the precision policy (anything
    :func:`minifp.precision.get_precision` takes; default the model's, else the one in
    force); ``extra``: free-form JSON-able dict (metrics, dataset name, ...).
    """
    path = os.fspath(path)
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise UserError(f"checkpoint epoch must be an integer >= 0, got {epoch!r}")
    if extra is not None and not isinstance(extra, dict):
        raise UserError(f"checkpoint extra must be a dict, got {type(extra).__name__}")
    if policy is None:
        policy = model.policy
    if policy is None:
        from .precision import current  # noqa: PLC0415
        policy = current()
    policy = _get_precision(policy)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"cannot write checkpoint {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise UserError(f"cannot write checkpoint {path}: it is a directory")
    tmp = os.path.join(directory, f"{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        _write_file(tmp, model, optimizer, scaler, rng_state, epoch, policy, extra)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise UserError(f"cannot write checkpoint {path}: "
                            f"{err.strerror or err}".replace("\n", " ")) from None
        raise
    _fsync_path(directory, directory=True)
    return path


# ---- load ------------------------------------------------------------------------------------

def _one_line(err) -> str:
    return " ".join(str(err).split())


def load_checkpoint(path) -> dict:
    """Read and verify a checkpoint.  Returns a dict with keys ``params`` ({name: values,
    decoded from the stored codes, in the saved dtype}), ``masters`` ({name: float64}),
    ``buffers`` ({name: array in its saved dtype}), ``optimizer`` and ``scaler`` (state
    dicts or None), ``rng_state`` (as saved), ``epoch`` (int), ``policy`` (JSON str),
    ``extra`` (dict), and also ``formats`` ({param name: format name}), ``codes``
    ({name: stored codes}), ``model`` (zoo config or None), ``module_rng``, ``path``.

    A missing, non-HDF5, truncated or corrupt file, or one whose checksum does not match,
    raises :class:`minifp.errors.UserError` (one line)."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise UserError(f"checkpoint {path} is a directory, not a file")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as err:
        raise UserError(f"cannot read checkpoint {path}: {_one_line(err)}") from None
    if not is_h5:
        raise UserError(f"checkpoint {path} is not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({_one_line(err)})") \
            from None
    try:
        with f:
            return _read_file(f, path)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError,
            json.JSONDecodeError) as err:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({_one_line(err)})") \
            from None


def _read_file(f, path) -> dict:
    for a in _ROOT_ATTRS:
        if a not in f.attrs:
            if a == "minifp_checkpoint":
                raise UserError(f"{path} is not a minifp checkpoint")
            raise UserError(f"checkpoint {path} is incomplete: attribute {a!r} is missing")
    version = int(f.attrs["minifp_checkpoint"])
    if version > LAYOUT_VERSION:
        raise UserError(f"checkpoint {path} has layout version {version}; this minifp reads "
                        f"up to {LAYOUT_VERSION}")
    for g in _GROUPS:
        if g not in f or hasattr(f[g], "dtype"):
            raise UserError(f"checkpoint {path} is incomplete: group {g!r} is missing")
    digest = checkpoint_digest(f)
    stored = f.attrs["sha256"]
    if isinstance(stored, bytes):
        stored = stored.decode()
    if digest != stored:
        raise UserError(f"checkpoint {path} is corrupt: checksum mismatch "
                        f"(stored {stored[:12]}..., computed {digest[:12]}...)")
    params, codes, formats = OrderedDict(), OrderedDict(), OrderedDict()
    for key in f["params"]:
        ds = f["params"][key]
        fname = ds.attrs["format"]
        try:
            fmt = get_format(fname)
        except ValueError:
            raise UserError(f"checkpoint {path}: parameter {key!r} has unknown format "
                            f"{fname!r}") from None
        c = np.asarray(ds[()])
        codes[key] = c
        formats[key] = fmt.name
        params[key] = np.asarray(fmt.decode(c)).astype(np.dtype(ds.attrs["dtype"]))
    masters = OrderedDict((k, np.asarray(f["masters"][k][()], dtype=np.float64))
                          for k in f["masters"])
    if list(masters) != list(params):
        raise UserError(f"checkpoint {path} is inconsistent: masters and parameters differ")
    buffers = OrderedDict()
    for k in f["buffers"]:
        ds = f["buffers"][k]
        buffers[k] = np.asarray(ds[()]).astype(np.dtype(ds.attrs["dtype"]))
    return {
        "params": params,
        "masters": masters,
        "buffers": buffers,
        "optimizer": _read_tree(f["optimizer"]),
        "scaler": _read_tree(f["scaler"]),
        "rng_state": _json_unpack(json.loads(f.attrs["rng_state"])),
        "epoch": int(f.attrs["epoch"]),
        "policy": str(f.attrs["policy"]),
        "extra": _json_unpack(json.loads(f.attrs["extra"])),
        "formats": formats,
        "codes": codes,
        "model": json.loads(f.attrs["model"]) if "model" in f.attrs else None,
        "module_rng": json.loads(f.attrs["module_rng"]) if "module_rng" in f.attrs else {},
        "version": version,
        "path": path,
    }


# ---- restore ---------------------------------------------------------------------------------

def _mismatch(what, missing, unexpected) -> str:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:5])}"
                     + (" ..." if len(unexpected) > 5 else ""))
    return f"checkpoint does not match the model ({what}: {'; '.join(parts)})"


def restore(model, optimizer, scaler, ckpt) -> dict:
    """Put a :func:`load_checkpoint` result (or a path) back: the model's float64 masters,
    its parameters (set bit for bit from the stored codes), buffers and module Generators,
    then the optimizer's and scaler's state (when given).  A model without a policy is
    first put under the checkpoint's policy (``model.to``); a model under a different
    policy raises UserError.  Returns ``ckpt`` (its ``rng_state`` and ``epoch`` are for
    the caller's own loop)."""
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    from .precision import Precision  # noqa: PLC0415
    try:
        saved = Precision.from_json(ckpt["policy"])
    except ValueError as err:
        raise UserError(f"checkpoint policy is invalid: {_one_line(err)}") from None
    if model.policy is None:
        model.to(saved)
    elif model.policy.to_dict() != saved.to_dict():
        raise UserError(f"checkpoint was saved under policy {saved.name!r}, the model is "
                        f"under {model.policy.name!r} (build it with the checkpoint's policy)")
    pslots = _param_slots(model)
    bslots = _buffer_slots(model)
    names = [k for k, *_ in pslots]
    bnames = [k for k, *_ in bslots]
    for what, have, want in (("parameters", names, ckpt["params"]),
                             ("masters", names, ckpt["masters"]),
                             ("buffers", bnames, ckpt["buffers"])):
        missing = [k for k in have if k not in want]
        unexpected = [k for k in want if k not in set(have)]
        if missing or unexpected:
            raise UserError(_mismatch(what, missing, unexpected))
    for key, _m, _n, prm in pslots:
        for src in ("params", "masters"):
            if tuple(ckpt[src][key].shape) != tuple(prm.shape):
                raise UserError(f"checkpoint does not match the model: {key!r} has shape "
                                f"{tuple(ckpt[src][key].shape)}, the model {tuple(prm.shape)}")
    for key, _m, _n, buf in bslots:
        if tuple(ckpt["buffers"][key].shape) != tuple(buf.shape):
            raise UserError(f"checkpoint does not match the model: buffer {key!r} has shape "
                            f"{tuple(ckpt['buffers'][key].shape)}, the model {tuple(buf.shape)}")
    if optimizer is not None and ckpt.get("optimizer") is None:
        raise UserError("checkpoint holds no optimizer state")
    if scaler is not None and ckpt.get("scaler") is None:
        raise UserError("checkpoint holds no loss-scaler state")

    for key, m, name, prm in pslots:
        xp = array_module(prm.data)
        m._master[name] = xp.array(ckpt["masters"][key], dtype=xp.float64, copy=True)
        prm.data = xp.array(ckpt["params"][key], copy=True)
        prm.grad = None
        m._rounded_for[name] = _weights_key(model.policy.for_layer(m.path))
    for key, m, name, buf in bslots:
        xp = array_module(buf)
        m._buffers[name] = xp.array(ckpt["buffers"][key], copy=True)
    states = ckpt.get("module_rng") or {}
    for mpath, m in model.named_modules():
        entry = states.get(mpath)
        if not entry:
            continue
        if "sr_stream" in entry and m.policy is not None:
            m._stream(m.policy).bit_generator.state = entry["sr_stream"]
        rng = m.__dict__.get("rng")
        if "rng" in entry and isinstance(rng, np.random.Generator):
            rng.bit_generator.state = entry["rng"]
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None:
        scaler.load_state_dict(ckpt["scaler"])
    return ckpt
