"""The same weights under several policies: :func:`evaluate_checkpoint` (a trained network
under its own policy and another) and :func:`compare` (one network trained from the same
float64 initial weights under each policy, side by side)."""
from __future__ import annotations

import time

import numpy as np

from .. import progress as _progress
from . import rundir
from ..errors import UserError
from ..precision import Precision
from .loop import RunFailed, evaluate, make_policy, run

__all__ = ["evaluate_checkpoint", "compare"]


def evaluate_checkpoint(path, dtype=None, dataset=None, batch_size=256,
                        device="cpu", changes=None) -> dict:
    """Accuracy and loss of a checkpoint under its own policy, and under ``dtype`` with
    the agreement of its predictions with those of the checkpoint's policy, computed on
    ``device``.

    Under another policy the trained weights (decoded from the checkpoint) become the
    float64 masters and are rounded once to that policy's weights formats."""
    from ..checkpoint import load_checkpoint, restore
    from ..data import load_dataset
    from ..device import parse_device
    from ..nn.zoo import build_model

    dev = parse_device(device)
    ckpt = load_checkpoint(path)
    saved = (ckpt.get("extra") or {}).get("config") or {}
    if "net" not in saved:
        raise UserError(f"{path}: the checkpoint does not say which network it holds")
    own = Precision.from_json(ckpt["policy"]) if isinstance(ckpt["policy"], str) \
        else Precision.from_dict(ckpt["policy"])
    data = load_dataset(dataset or saved.get("dataset", "mnist-5k"))
    model = build_model(saved["net"], data.input_shape, data.classes,
                        seed=int(saved.get("seed", 0)))
    model.to(own)
    restore(model, None, None, ckpt)
    model.to(device=dev)
    loss, acc, ref_pred, _ = evaluate(model, data.x_test, data.y_test, own, batch_size)
    rows = [{"policy": own.name, "accuracy": acc, "loss": loss, "agreement": 1.0}]
    if dtype is not None:
        other = make_policy(dtype, changes=changes)
        model.commit_master()
        model.to(other)
        loss2, acc2, pred2, _ = evaluate(model, data.x_test, data.y_test, other, batch_size)
        rows.append({"policy": other.name, "accuracy": acc2, "loss": loss2,
                     "agreement": float(np.mean(pred2 == ref_pred))})
    return {"checkpoint": str(path), "net": saved["net"],
            "dataset": dataset or saved.get("dataset"), "epoch": int(ckpt["epoch"]),
            "samples": int(len(data.y_test)), "rows": rows}


def compare(configs, echo=None, overwrite=False, progress=False) -> dict:
    """Train the same network (same seed, hence the same float64 initial weights) under
    each config's policy; the first is the reference for prediction agreement.

    Every policy is built (so every name checked) and every run directory checked before
    the first run starts; a directory that holds a run is refused unless ``overwrite``.
    ``progress``: an overall bar over the runs above each run's epoch bar."""
    say = echo or (lambda line: print(line, flush=True))
    from .policy_flags import changes_of
    policies = [make_policy(c.dtype, changes=changes_of(c)) for c in configs]
    for c in configs:
        d = c.run_dir()
        if d is None:
            continue
        st = rundir.state(d)
        if st.kind not in ("empty", "failed") and not overwrite:
            raise UserError(f"{d} already holds {st.describe()}; use --overwrite to replace "
                            f"it, or another --out")
    t0 = time.perf_counter()
    rows = []
    ref_pred = None
    overall = _progress.bar(len(configs), "compare", progress, unit="run")
    write = _progress.writer(say, progress)
    with overall:
        for config, policy in zip(configs, policies):
            overall.set_postfix_str(config.dtype)
            write(f"== {config.dtype} ==")
            row = {"dtype": config.dtype, "policy": policy.name, "status": "complete",
                   "reason": "", "run_dir": None if config.run_dir() is None else
                   str(config.run_dir())}
            try:
                res = run(config, overwrite=True, echo=write, bar_position=1)
            except RunFailed as err:
                write(f"minifp: {config.dtype} failed: {err}")
                row.update(status="failed", reason=str(err), test_accuracy=None,
                           test_loss=None, agreement=None, skipped_steps=None,
                           seconds_per_epoch=None, history=[])
                rows.append(row)
                overall.update()
                continue
            hist = res.history
            loss, acc, pred, _ = evaluate(res.model, res.data.x_test, res.data.y_test,
                                          policy)
            if not rows:
                ref_pred = pred
            row.update(test_accuracy=acc, test_loss=loss,
                       agreement=(None if ref_pred is None
                                  else float(np.mean(pred == ref_pred))),
                       skipped_steps=int(res.summary["skipped_steps"]),
                       seconds_per_epoch=(float(np.mean([h["seconds"] for h in hist]))
                                          if hist else 0.0),
                       history=hist)
            rows.append(row)
            overall.update()
    first = configs[0]
    return {"net": first.net, "dataset": first.dataset, "epochs": first.epochs,
            "seed": first.seed, "wall_seconds": time.perf_counter() - t0, "rows": rows}
