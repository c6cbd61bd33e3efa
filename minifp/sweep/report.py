"""The table of a sweep: one row per configuration (the grid values other than the seed).

For each configuration, over its seeds:

* test accuracy and test loss of the final epoch: mean ± sample standard deviation (n-1;
  plain float64 statistics of the recorded metrics, not rounded ops);
* ``agree``: the share of test samples on which the run's prediction (the argmax of its
  logits) is its reference run's (the run with the same other grid values and seed under
  the spec's ``reference``), and ``lemma``: the share with Gamma >= 2 delta (the 16-bit
  paper's guarantee that both predict the same class, decided exactly by
  :func:`minifp.theory.lemma_report` from the two runs' saved softmax outputs);
* skipped steps (loss scaling) and seconds per epoch, as means;
* the spec's ``expected`` (published) value and its source, where one matches.

Runs that failed count in ``failed`` (a diverged run still contributes its last test
accuracy, as the papers report one); runs not finished yet in ``missing``.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import engine as _engine
from . import task as _task


@dataclasses.dataclass
class Group:
    coords: dict                    # the grid values (bundles by label), seed left out
    runs: list                      # result rows (one per seed), with "history"
    expected: dict | None = None
    agreement: list = dataclasses.field(default_factory=list)
    lemma: list = dataclasses.field(default_factory=list)

    def values(self, key) -> list:
        return [r[key] for r in self.runs
                if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]

    def stat(self, key):
        """(mean, std or None, n) of ``key`` over the runs that have it."""
        v = self.values(key)
        if not v:
            return None, None, 0
        return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else None), len(v)


@dataclasses.dataclass
class Table:
    name: str
    out: Path
    keys: list                      # the grid keys that name a configuration
    groups: list
    reference: dict
    total: int
    complete: int
    failed: int
    missing: int
    quick: bool = False
    description: str = ""
    diverged: int = 0


def _mean(values):
    return statistics.fmean(values) if values else None


def _load_rows(out: Path, manifest: dict) -> list[dict]:
    """One row per run of the manifest: from its summary.json when it has one, else its
    last line in sweep.jsonl (a run whose worker kept dying), else status ``missing``."""
    from ..train import TrainConfig, rundir
    logged = {}
    for row in _engine.read_results(out):
        logged[row["id"]] = row
    rows = []
    for entry in manifest.get("runs", []):
        rid, options = entry["id"], entry.get("options", {})
        run_dir = out / rid
        summary = rundir.read_summary(run_dir)
        config = TrainConfig(**{k: v for k, v in options.items()})
        if _task.same_run(config, summary) and summary.get("status") in ("complete", "failed"):
            row = _task.result_of(rid, options, summary)
        elif rid in logged:
            row = dict(logged[rid])
        else:
            row = {"id": rid, "status": "missing", "options": options}
        row["coords"] = entry.get("coords") or options
        row["history"] = rundir.read_metrics(run_dir)
        rows.append(row)
    return rows


def _reference(manifest: dict, keys: list, rows: list, reference: str | None) -> dict:
    if reference:
        if "=" not in reference:
            raise UserError(f"--reference {reference!r}: use KEY=VALUE, e.g. dtype=float32")
        k, v = reference.split("=", 1)
        k = k.strip()
        if k not in keys:
            raise UserError(f"--reference: {k!r} is not a varying grid key of this sweep "
                            f"(keys: {', '.join(keys) or 'none'})")
        values = {str(r["coords"].get(k)) for r in rows}
        if v.strip() not in values:
            raise UserError(f"--reference: no run has {k}={v.strip()} (values: "
                            f"{', '.join(sorted(values))})")
        return {k: next(r["coords"][k] for r in rows if str(r["coords"].get(k)) == v.strip())}
    ref = (manifest.get("spec") or {}).get("reference") or {}
    if ref:
        return dict(ref)
    if keys:
        return {keys[0]: rows[0]["coords"].get(keys[0])} if rows else {}
    return {}


def build(out, reference: str | None = None) -> Table:
    """The table of the sweep in ``out`` (a one-line UserError when it holds none)."""
    out = Path(out)
    manifest = _engine.read_manifest(out) if out.is_dir() else None
    if manifest is None:
        raise UserError(f"{out} holds no minifp sweep (no {_engine.MANIFEST}); run "
                        f"`minifp sweep SPEC --out {out}` first")
    rows = _load_rows(out, manifest)
    varying = [k for k in manifest.get("varying", []) if k != "seed"]
    ref = _reference(manifest, varying, rows, reference)
    groups: dict = {}
    for row in rows:
        key = tuple(repr(row["coords"].get(k)) for k in varying)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group({k: row["coords"].get(k) for k in varying}, [])
        g.runs.append(row)
    _compare_with_reference(out, rows, varying, ref)
    expected = (manifest.get("spec") or {}).get("expected") or []
    for g in groups.values():
        g.agreement = [r["agreement"] for r in g.runs if r.get("agreement") is not None]
        g.lemma = [r["lemma"] for r in g.runs if r.get("lemma") is not None]
        for e in expected:
            where = e.get("where") or {}
            if where and all(str(g.coords.get(k, _common(g, k))) == str(v)
                             for k, v in where.items()):
                g.expected = e
                break
    status = [r["status"] for r in rows]
    return Table(manifest.get("name", out.name), out, varying, list(groups.values()), ref,
                 len(rows), status.count("complete"), status.count("failed"),
                 status.count("missing"), bool(manifest.get("quick")),
                 (manifest.get("spec") or {}).get("description", ""),
                 sum(1 for r in rows if r["status"] == "failed" and r.get("diverged")))


def _common(group: Group, key):
    """The value of ``key`` shared by a group's runs (a fixed option), else None."""
    values = {repr(r["options"].get(key)) for r in group.runs}
    return group.runs[0]["options"].get(key) if len(values) == 1 else None


def _compare_with_reference(out: Path, rows: list, varying: list, ref: dict) -> None:
    """Set each row's ``agreement`` and ``lemma`` against its reference run."""
    if not ref:
        return
    from ..theory import lemma_report
    index = {}
    for r in rows:
        index[tuple(repr(r["coords"].get(k)) for k in varying)
              + (repr(r["options"].get("seed")),)] = r
    cache = {}

    def outputs(rid):
        if rid not in cache:
            cache[rid] = _task.read_outputs(out / rid)
        return cache[rid]
    for r in rows:
        coords = dict(r["coords"], **ref)
        key = tuple(repr(coords.get(k)) for k in varying) + (repr(r["options"].get("seed")),)
        other = index.get(key)
        if other is None or r["status"] == "missing":
            continue
        mine, theirs = outputs(r["id"]), outputs(other["id"])
        if mine is None or theirs is None or mine[0].shape != theirs[0].shape:
            continue
        r["agreement"] = float(np.mean(mine[1] == theirs[1]))
        rep = lemma_report(theirs[0], mine[0])
        r["lemma"] = rep["guaranteed"] / max(1, rep["samples"])


# ---- output --------------------------------------------------------------------------

def _pct(mean, std, digits=2) -> str:
    if mean is None:
        return "-"
    text = f"{100 * mean:.{digits}f}"
    return text + (f" ± {100 * std:.{digits}f}" if std is not None else "")


def _num(mean, std, fmt="{:.4f}") -> str:
    if mean is None:
        return "-"
    return fmt.format(mean) + (" ± " + fmt.format(std) if std is not None else "")


def _cells(table: Table, g: Group) -> list[str]:
    acc, loss = g.stat("test_accuracy"), g.stat("test_loss")
    skipped, secs = g.stat("skipped_steps"), g.stat("seconds_per_epoch")
    failed = sum(1 for r in g.runs if r["status"] == "failed" and not r.get("diverged"))
    diverged = sum(1 for r in g.runs if r["status"] == "failed" and r.get("diverged"))
    missing = sum(1 for r in g.runs if r["status"] == "missing")
    n = f"{len(g.runs) - missing}" + (f" ({diverged} diverged)" if diverged else "") \
        + (f" ({failed} failed)" if failed else "")
    exp = g.expected or {}
    exp_acc = exp.get("test_accuracy")
    return ([str(g.coords.get(k)) for k in table.keys]
            + [n, _pct(acc[0], acc[1]), _num(loss[0], loss[1]),
               _pct(_mean(g.agreement), None, 1), _pct(_mean(g.lemma), None, 1),
               "-" if skipped[0] is None else f"{skipped[0]:g}",
               "-" if secs[0] is None else f"{secs[0]:.2f}",
               "-" if exp_acc is None else f"{100 * exp_acc:.2f}",
               _source(exp)])


def _source(exp: dict) -> str:
    if not exp:
        return ""
    note = exp.get("note")
    return f"{note} ({exp.get('source', '')})" if note else str(exp.get("source", ""))


def _header(table: Table) -> list[str]:
    ref = ",".join(f"{k}={v}" for k, v in table.reference.items()) or "none"
    return ([*table.keys, "runs", "test acc %", "test loss", f"agree % ({ref})",
             "lemma %", "skipped", "s/epoch", "paper acc %", "source"])


def _status_line(table: Table) -> str:
    text = (f"sweep {table.name}{' (quick)' if table.quick else ''}: {table.total} runs, "
            f"{table.complete} complete, "
            + (f"{table.diverged} diverged, " if table.diverged else "")
            + f"{table.failed - table.diverged} failed, {table.missing} not run yet "
            f"({table.out})")
    if table.quick and any(g.expected for g in table.groups):
        text += "; the published values are for the papers' full setups"
    return text


def _drop_empty(header, body):
    keep = [i for i, h in enumerate(header)
            if i < len(header) - 2 or any(row[i] not in ("-", "") for row in body)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in body]


def format_table(table: Table) -> str:
    """The table as aligned text, under a line of counts."""
    header, body = _drop_empty(_header(table), [_cells(table, g) for g in table.groups])
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = [_status_line(table),
             "  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def to_markdown(table: Table) -> str:
    header, body = _drop_empty(_header(table), [_cells(table, g) for g in table.groups])
    lines = [f"{_status_line(table)}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def write_markdown(table: Table, path) -> None:
    from ..jsonio import replacing
    with replacing(path) as tmp:
        Path(tmp).write_text(to_markdown(table))


def to_json(table: Table) -> dict:
    groups = []
    for g in table.groups:
        acc, loss = g.stat("test_accuracy"), g.stat("test_loss")
        groups.append({
            "coords": g.coords, "runs": [r["id"] for r in g.runs],
            "failed": [r["id"] for r in g.runs if r["status"] == "failed"],
            "test_accuracy": {"mean": acc[0], "std": acc[1], "n": acc[2]},
            "test_loss": {"mean": loss[0], "std": loss[1], "n": loss[2]},
            "agreement": _mean(g.agreement), "lemma": _mean(g.lemma),
            "skipped_steps": g.stat("skipped_steps")[0],
            "seconds_per_epoch": g.stat("seconds_per_epoch")[0],
            "expected": g.expected})
    return {"name": table.name, "quick": table.quick, "keys": table.keys,
            "reference": table.reference, "total": table.total, "complete": table.complete,
            "failed": table.failed, "diverged": table.diverged, "missing": table.missing,
            "groups": groups}


def plot(table: Table, path) -> None:
    """Two panels: final test accuracy per configuration (mean and the seeds, with the
    published value where there is one), and the test-accuracy curves of every run."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'minifp[plot]'") from None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [" ".join(str(g.coords.get(k)) for k in table.keys) or table.name
             for g in table.groups]
    paper_labelled = False
    for i, g in enumerate(table.groups):
        v = [100 * x for x in g.values("test_accuracy")]
        ax1.scatter([i] * len(v), v, s=12, color="tab:blue", alpha=0.6)
        if v:
            ax1.scatter([i], [statistics.fmean(v)], marker="_", s=300, color="tab:blue")
        if g.expected and g.expected.get("test_accuracy") is not None:
            ax1.scatter([i], [100 * g.expected["test_accuracy"]], marker="x",
                        color="tab:red", label=None if paper_labelled else "published")
            paper_labelled = True
        for r in g.runs:
            h = [(x["epoch"], 100 * x["test_accuracy"]) for x in r.get("history", [])
                 if isinstance(x.get("test_accuracy"), (int, float))]
            if h:
                ax2.plot(*zip(*h), color=f"C{i % 10}", alpha=0.7,
                         label=names[i] if r is g.runs[0] else None)
    ax1.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax1.set_ylabel("test accuracy %")
    ax1.set_title(f"{table.name}: final test accuracy")
    if paper_labelled:
        ax1.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy %")
    ax2.set_title("training curves")
    if len(names) <= 12:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    from ..jsonio import replacing
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
