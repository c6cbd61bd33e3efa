"""Per-stage changes to a precision policy, as the command line gives them: a format per
role (``--weights``, ``--activations``, ``--loss``, ``--backward``, ``--gradients``,
``--optimizer-format``), accumulations per phase (``--accumulate``/``--order`` for both,
``--forward-accumulate`` ... for one), ``--rounding``, ``--loss-scaling``,
``--master-weights/--no-master-weights``, ``--loss-stage L|float64`` and
``--override PATTERN=ROLE:FORMAT,...``.

A changed policy gets a derived name that says what changed, in the order of
:data:`FLAGS` (``fp8+ls=static:1024``, ``float16+O=float32+mw=on``); its run directory is
a short slug of that name plus a hash of the options (:mod:`minifp.train.rundir`).
"""
from __future__ import annotations

import fnmatch
import re

from ..errors import UserError
from ..formats import get_format
from ..precision import ROLES, Precision

#: (config field, flag, label in the derived name), in the order of the derived name
FLAGS = (("weights", "--weights", "W"), ("activations", "--activations", "F"),
         ("loss", "--loss", "L"), ("backward", "--backward", "B"),
         ("gradients", "--gradients", "G"), ("optimizer_format", "--optimizer-format", "O"),
         ("accumulate", "--accumulate", "acc"), ("order", "--order", "order"),
         ("forward_accumulate", "--forward-accumulate", "fwd-acc"),
         ("forward_order", "--forward-order", "fwd-order"),
         ("backward_accumulate", "--backward-accumulate", "bwd-acc"),
         ("backward_order", "--backward-order", "bwd-order"),
         ("rounding", "--rounding", "rounding"), ("loss_scaling", "--loss-scaling", "ls"),
         ("master_weights", "--master-weights", "mw"),
         ("loss_stage", "--loss-stage", "loss-stage"), ("overrides", "--override", "ov"))

_ROLE_FIELDS = {"weights": "weights", "activations": "activations", "loss": "loss",
                "backward": "backward", "gradients": "gradients",
                "optimizer_format": "optimizer"}
_LS = re.compile(r"(none|static|dynamic)(?::([^:]+))?(?::([^:]+))?")


def parse_loss_scaling(text: str) -> dict:
    """``none``, ``static:S`` or ``dynamic[:S[:interval]]`` as the policy's loss_scaling
    dict; UserError naming --loss-scaling otherwise."""
    m = _LS.fullmatch(str(text).strip().lower())
    bad = UserError(f"--loss-scaling {text!r}: expected none, static:S or "
                    "dynamic[:S[:interval]] (S a positive number, interval a positive integer)")
    if not m:
        raise bad
    mode, scale, interval = m.groups()
    out = {"mode": mode}
    try:
        if mode == "none":
            if scale is not None:
                raise bad
        elif mode == "static":
            if scale is None or interval is not None:
                raise bad
            out["scale"] = float(scale)
        else:
            if scale is not None:
                out["scale"] = float(scale)
            if interval is not None:
                out["growth_interval"] = int(interval)
                if out["growth_interval"] < 1:
                    raise bad
    except ValueError:
        raise bad from None
    if "scale" in out and not out["scale"] > 0:
        raise bad
    return out


def parse_override(text: str) -> tuple[str, dict]:
    """``PATTERN=ROLE:FORMAT,...`` as a policy override ``(pattern, {role: format})``."""
    pattern, sep, rest = str(text).partition("=")
    usage = (f"--override {text!r}: expected PATTERN=ROLE:FORMAT[,ROLE:FORMAT...] (roles: "
             f"{', '.join(ROLES)}), e.g. 'head.*=weights:float32,activations:float32'")
    if not sep or not pattern.strip() or not rest.strip():
        raise UserError(usage)
    out = {}
    for item in rest.split(","):
        role, colon, fmt = item.strip().partition(":")
        role = role.strip().lower()
        if not colon or role not in ROLES or not fmt.strip():
            raise UserError(usage)
        try:
            get_format(fmt.strip())
        except ValueError as err:
            raise UserError(f"--override {text!r}: {err}") from None
        out[role] = fmt.strip()
    return pattern.strip(), out


def changes_of(config) -> dict:
    """The per-stage fields of a TrainConfig (or any object with them) that are set."""
    out = {}
    for field, _, _ in FLAGS:
        v = getattr(config, field, None)
        if v is not None and not (isinstance(v, (tuple, list)) and not v):
            out[field] = tuple(v) if isinstance(v, list) else v
    return out


def apply_changes(policy: Precision, changes: dict) -> Precision:
    """``policy`` with ``changes`` (fields of :data:`FLAGS`) applied, named after them;
    UserError in one line naming the flag for a bad value or a conflict."""
    if not changes:
        return policy
    d = policy.to_dict()
    d.pop("base", None)
    labels = []
    for field, flag, label in FLAGS:
        if field not in changes:
            continue
        v = changes[field]
        if field in _ROLE_FIELDS:
            _check_format(flag, v)
            d[_ROLE_FIELDS[field]] = v
            labels.append(f"{label}={v}")
        elif field in ("accumulate", "order", "forward_accumulate", "forward_order",
                       "backward_accumulate", "backward_order"):
            key = "format" if field.endswith("accumulate") else "order"
            phases = {"accumulate": ("forward", "backward_acc"),
                      "order": ("forward", "backward_acc")}.get(
                field, ("forward",) if field.startswith("forward") else ("backward_acc",))
            for phase in phases:
                d[phase] = dict(d[phase], **{key: v})
            labels.append(f"{label}={v}")
        elif field == "rounding":
            d["rounding"] = {role: v for role in d["rounding"]}
            labels.append(f"{label}={v}")
        elif field == "loss_scaling":
            ls = parse_loss_scaling(v)
            if ls["mode"] != "none":
                _check_scalable(policy, d)
            d["loss_scaling"] = dict(d.get("loss_scaling") or {}, **ls) if ls["mode"] != "none" \
                else {"mode": "none"}
            labels.append(f"{label}={str(v).strip().lower()}")
        elif field == "loss_stage":
            if v not in ("L", "float64"):
                raise UserError(f"--loss-stage {v!r}: expected L or float64")
            d["loss_stage"] = v
            labels.append(f"{label}={v}")
        elif field == "master_weights":
            d["master_weights"] = bool(v)
            labels.append(f"{label}={'on' if v else 'off'}")
        elif field == "overrides":
            for text in v:
                pattern, o = parse_override(text)
                d["overrides"] = list(d.get("overrides") or []) + [[pattern, o]]
                labels.append(f"{label}={text}")
    d["name"] = policy.name + "".join(f"+{x}" for x in labels)
    try:
        return Precision.from_dict(d)
    except ValueError as err:
        raise UserError(str(err)) from None


def check_overrides_match(model, changes: dict) -> None:
    """Every --override pattern must match at least one layer path of ``model``."""
    paths = [p for p, _ in model.named_modules() if p]
    for text in changes.get("overrides", ()) or ():
        pattern, _ = parse_override(text)
        if not any(fnmatch.fnmatchcase(p, pattern) for p in paths):
            shown = ", ".join(paths[:8]) + (", ..." if len(paths) > 8 else "")
            raise UserError(f"--override {text!r}: the pattern {pattern!r} matches no layer "
                            f"(layers: {shown})")


def _check_format(flag, name):
    try:
        get_format(name)
    except ValueError as err:
        raise UserError(f"{flag} {name!r}: {err}") from None


def _check_scalable(policy, d):
    """Loss scaling protects narrow backward and gradient formats; refuse it where both are
    float32 or wider (it could only change rounding, never save a value)."""
    b, g = get_format(d["backward"]), get_format(d["gradients"])
    if b.precision >= 24 and g.precision >= 24 and b.max >= 3e38 and g.max >= 3e38:
        raise UserError(f"--loss-scaling: the backward ({b.name}) and gradient ({g.name}) "
                        f"formats of {policy.name} are float32 or wider, so no gradient can "
                        "overflow or underflow for scaling to prevent")
