"""``minifp inspect``: step through a network layer by layer against an exact reference.

::

    minifp inspect [--net mlp] [--checkpoint PATH] [--dtype float16] [--reference float64]
                   [--dataset NAME|PATH] [--samples 512] [--seed 0] [--step] [--backward]
                   [--wide] [--json FILE] [--plot FILE.png] [--progress/--no-progress]
                   [--quiet]

A thin layer over :func:`minifp.inspect.step` and :func:`minifp.theory.lemma.lemma_report`:

* the network is built with :func:`minifp.nn.zoo.build_model` from ``--seed`` for the
  dataset's input shape and classes, or rebuilt from ``--checkpoint`` (its net, dataset
  and seed; the trained weights become the float64 masters, ``model.commit_master()``,
  as ``minifp eval`` does), and run on the first ``--samples`` test samples;
* one table row per module call (children first, the root last).  ``--wide``: every
  column -- path, kind, output shape, the formats and accumulation its ops used, the max
  abs propagated error (policy run vs reference run) and its a-priori bound, the local
  error (the layer alone on the reference input rounded to the policy, vs exact), the
  a-priori bound and the ratio local error / bound (or ``vacuous`` / ``no bound``),
  overflows, saturations, underflows to 0, zeroed, non-finite values; ``--backward`` adds
  the max abs error of the gradient w.r.t. the layer's output (cross-entropy against the
  test labels), the local backward error, its bound and ratio, and the gradient's
  overflow / underflow counts.  By default the table fits 120 columns (:class:`Table`):
  formats abbreviated (``fp16/fp16 fp16 seq``), the nonzero counts in one ``events``
  column (``unf:3 zero:12``), long names cut with an ellipsis, and with ``--backward``
  the gradient columns in place of the shape, formats and bounds; a legend follows it;
* a summary: the lemma of the 16-bit paper on the softmax outputs (a float64 softmax of
  the root record's logits, for the reference and the policy run): samples with
  Gamma >= 2 delta (agreement guaranteed), samples whose predictions agree / differ
  (:func:`minifp.theory.lemma.lemma_report`'s definition: ties in the policy's output go
  to the reference's class), guaranteed-but-differ (always 0), and the first layer where
  an overflow or a non-finite value appears (:func:`minifp.inspect.first_overflow`).

``--quiet`` prints the summary only (and the rows under ``--step``); a progress bar over
the layers goes to stderr when it is a terminal (``--progress/--no-progress``), never
under ``--step`` or ``--quiet``, and stdout is the same either way.  ``--json`` is strict
JSON (:func:`minifp.jsonio.dumps`: NaN and infinities are ``null``).  The plot's title
names the net, the checkpoint's folder and file and the dataset, never a full path.
Warnings print as one line ``minifp: warning: ...`` on stderr.  User errors print one
line ``minifp: error: ...`` and exit 2.
"""
from __future__ import annotations

import contextlib
import math
import sys
import textwrap
import warnings
from pathlib import Path

import click
import numpy as np

from ..errors import UserError, one_line
from ..jsonio import dumps
from .checks import (check_out_file, check_plot_path, check_seed, require_matplotlib,
                     write_text)

PROMPT = "[Enter] next  p stats  q quit"
SOFTMAX_NOTE = "float64 softmax of the root's logits, reference and policy run alike"


# ---------------------------------------------------------------------------- helpers
def softmax64(logits) -> np.ndarray:
    """Row-wise softmax in float64 (max subtracted first); non-finite logits give NaN rows
    (never guaranteed by the lemma, counted as disagreement)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z.reshape(z.shape[0], -1)
    with np.errstate(all="ignore"):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def _g(v) -> str:
    """A short number: 3 significant digits, 0 as ``0``."""
    if v is None:
        return "-"
    v = float(v)
    if math.isnan(v):
        return "nan"
    if v == 0:
        return "0"
    return f"{v:.3g}"


def _formats(rec) -> str:
    """``activations[/weights] accumulation`` as used by the layer's ops."""
    f = rec.formats or {}
    parts = [f.get("activations", "")]
    if f.get("weights"):
        parts[0] += "/" + f["weights"]
    if rec.accumulations:
        parts.append("; ".join(rec.accumulations))
    return " ".join(p for p in parts if p) or "-"


def _bound_cells(rec) -> tuple[str, str]:
    """(bound, ratio) cells: ``no bound`` / ``vacuous`` where there is no number."""
    if rec.bound is None:
        return "-", "no bound"
    if rec.bound_note.startswith("vacuous"):
        return "inf", "vacuous"
    return _g(rec.bound_max), _g(rec.ratio)


WIDTH = 120
ELLIPSIS = "\u2026"

#: the wide table (``--wide``): every column at a fixed width
_COLS = [("layer", 22, "<"), ("kind", 11, "<"), ("shape", 11, "<"), ("formats", 40, "<"),
         ("prop err", 9, ">"), ("prop bound", 10, ">"), ("local err", 9, ">"),
         ("bound", 9, ">"), ("ratio", 8, ">"), ("ovf", 5, ">"), ("sat", 5, ">"),
         ("unf", 5, ">"), ("zeroed", 6, ">"), ("nonfin", 6, ">")]
_GRAD_COLS = [("grad err", 9, ">"), ("g.local", 9, ">"), ("g.bound", 9, ">"),
              ("g.ratio", 8, ">"), ("g.ovf", 5, ">"), ("g.unf", 5, ">")]
_WIDE_KEYS = ["layer", "kind", "shape", "formats", "prop_err", "prop_bound", "local_err",
              "bound", "ratio", "ovf", "sat", "unf", "zeroed", "nonfin"]
_WIDE_GRAD_KEYS = ["grad_err", "g_local", "g_bound", "g_ratio", "g_ovf", "g_unf"]

#: the default table: (key, header, align); the flexible columns' widths before the rows
#: are known (under --step), and the order in which they give way when the table is wider
#: than 120: (column, down to this width) in turn, until it fits
_STEP_WIDTHS = {"layer": 24, "kind": 12, "shape": 10, "formats_short": 18, "events": 16}
#: (the layer column first loses its indentation: "layer" at None = the longest path)
_SHRINK = [("layer", None), ("events", 12), ("kind", 11), ("layer", 18), ("events", 8),
           ("kind", 10), ("formats_short", 14), ("layer", 14), ("kind", 8), ("shape", 9),
           ("formats_short", 10), ("events", 6), ("layer", 10)]
_COMPACT = [("layer", "layer", "<"), ("kind", "kind", "<"), ("shape", "shape", "<"),
            ("formats_short", "formats", "<"), ("prop_err", "prop err", ">"),
            ("prop_bound", "prop bnd", ">"), ("local_err", "loc err", ">"),
            ("bound", "bound", ">"), ("ratio", "ratio", ">"), ("events", "events", "<")]
# with --backward the gradient columns replace shape, formats and the two bounds (the
# table without --backward has the formats, --wide has every column)
_COMPACT_GRAD = [("layer", "layer", "<"), ("kind", "kind", "<"),
                 ("prop_err", "prop err", ">"), ("local_err", "loc err", ">"),
                 ("ratio", "ratio", ">"), ("grad_err", "grad err", ">"),
                 ("g_local", "g.local", ">"), ("g_ratio", "g.ratio", ">"),
                 ("events", "events", "<")]

LEGEND = ("formats: activations[/weights] accumulator (seq sequential, pair pairwise, "
          "blkB blocked:B; fma unless nofma)")
LEGEND_EVENTS = ("events: ovf overflows, sat saturated, unf underflows to 0, zero zeroed vs "
                 "reference, nf non-finite")
_SHORT_FORMATS = {"float64": "fp64", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_SHORT_ORDERS = {"sequential": "seq", "pairwise": "pair"}


def _short_format(name: str) -> str:
    """``float16`` -> ``fp16`` (the registry's aliases), other names as they are."""
    return ",".join(_SHORT_FORMATS.get(n, n) for n in str(name).split(","))


def _short_accumulation(label: str) -> str:
    """``float16 sequential fma`` -> ``fp16 seq``; ``blocked:32`` -> ``blk32``; ``no-fma``
    -> ``nofma``; ``exact (quire)`` -> ``quire``; ``native (order unspecified)`` ->
    ``native``."""
    if label.startswith("exact"):
        return "quire" if "quire" in label else "exact"
    words = []
    for w in label.replace(" (order unspecified)", "").split():
        if w == "fma":
            continue
        if w.startswith("blocked:"):
            w = "blk" + w[len("blocked:"):]
        words.append({"no-fma": "nofma", **_SHORT_ORDERS}.get(w, _short_format(w)))
    return " ".join(words)


def _formats_short(rec, width: int | None = None) -> str:
    """The formats cell of the default table: ``fp16/fp16 fp16 seq``; where that is wider
    than ``width``, weights in the activations' format are left out (``fp16 fp16 seq``),
    then the cell is cut with an ellipsis."""
    f = rec.formats or {}
    act = _short_format(f["activations"]) if f.get("activations") else ""
    wts = _short_format(f["weights"]) if f.get("weights") else ""
    accs = ";".join(dict.fromkeys(_short_accumulation(a) for a in rec.accumulations or ()))
    cell = " ".join(p for p in (act + ("/" + wts if wts else ""), accs) if p) or "-"
    if width is None or len(cell) <= width:
        return cell
    if wts == act:
        cell = " ".join(p for p in (act, accs) if p) or "-"
    return _clip(cell, width)


def _count(n) -> str:
    """A count in at most 4 characters: 9999, 12k, 1.2M, 35M."""
    n = int(n)
    if n < 10_000:
        return str(n)
    if n < 999_500:
        return f"{n / 1e3:.0f}k"
    return f"{n / 1e6:.1f}M" if n < 9_950_000 else f"{n / 1e6:.0f}M"


def _events(rec, grec, backward) -> str:
    """The nonzero counts of a row, e.g. ``unf:3 zero:12`` (``g.``: of the gradient)."""
    items = [("ovf", rec.overflows), ("sat", rec.saturated), ("unf", rec.underflows),
             ("zero", rec.zeroed), ("nf", rec.nonfinite)]
    if backward and grec is not None:
        items += [("g.ovf", grec.grad_overflows), ("g.unf", grec.grad_underflows)]
    return " ".join(f"{k}:{_count(v)}" for k, v in items if v)


def _grad_local_cells(rec) -> tuple[str, str, str]:
    """(local gradient error, bound, ratio) over the input and parameter gradients."""
    if rec is None or (rec.grad_local_error is None and not rec.param_grad_local_errors):
        return "-", "-", "-"
    errs = [s.max_abs for s in ([rec.grad_local_error] if rec.grad_local_error else [])]
    errs += [s.max_abs for s in rec.param_grad_local_errors.values()]
    bounds = [b for b in [rec.grad_bound, *rec.param_grad_bounds.values()] if b is not None]
    bmax = max((float(b.max()) for b in bounds if b.size), default=0.0) if bounds else None
    if rec.grad_bound_note.startswith("vacuous") or (bmax is not None and math.isinf(bmax)):
        return _g(max(errs)), "inf", "vacuous" if rec.grad_ratio in (0, None) else \
            _g(rec.grad_ratio)
    return _g(max(errs)), _g(bmax), _g(rec.grad_ratio)


def _cells(rec, grec, backward) -> dict:
    """Every cell of a row, by column key (both tables take theirs from here)."""
    bound, ratio = _bound_cells(rec)
    c = {"kind": rec.kind, "shape": "x".join(str(s) for s in rec.output_shape) or "-",
         "formats": _formats(rec), "formats_short": _formats_short(rec),
         "prop_err": _g(rec.propagated_error.max_abs),
         "prop_bound": _g(rec.propagated_bound_max),
         "local_err": _g(rec.local_error.max_abs) if rec.local_error is not None else "-",
         "bound": bound, "ratio": ratio, "ovf": str(rec.overflows),
         "sat": str(rec.saturated), "unf": str(rec.underflows), "zeroed": str(rec.zeroed),
         "nonfin": str(rec.nonfinite), "events": _events(rec, grec, backward)}
    if backward:
        ge = None if grec is None else grec.grad_error
        c["grad_err"] = _g(ge.max_abs) if ge is not None else "-"
        c["g_local"], c["g_bound"], c["g_ratio"] = _grad_local_cells(grec)
        c["g_ovf"] = "-" if grec is None or grec.grad_overflows is None \
            else str(grec.grad_overflows)
        c["g_unf"] = "-" if grec is None or grec.grad_underflows is None \
            else str(grec.grad_underflows)
    return c


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    if len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def _clip_words(text: str, width: int) -> str:
    """Whole words of ``text`` that fit ``width``, an ellipsis for the rest."""
    if len(text) <= width:
        return text
    words, out = text.split(" "), ""
    for w in words:
        nxt = f"{out} {w}" if out else w
        if len(nxt) + 2 > width:        # room for " ..."
            break
        out = nxt
    return f"{out} {ELLIPSIS}" if out else _clip(text, width)


def fit_path(path: str, depth: int, width: int) -> str:
    """A layer path indented by ``depth`` spaces in ``width`` characters: the indentation
    gives way first, then middle components of the dotted path (``body.4…shortcut.0``:
    the numbers of blocks and layers kept first, then as much of the ends as fits, the
    tail first); a single long name keeps its end."""
    name = path or "(model)"
    if len(name) <= width:
        return " " * min(depth, width - len(name)) + name
    parts = name.split(".")
    best, score = "", (-1, -1)
    for tail in range(len(parts) - 1, 0, -1):
        for head in range(len(parts) - tail - 1, -1, -1):
            kept = parts[:head] + parts[-tail:]
            cand = ".".join(parts[:head]) + ELLIPSIS + ".".join(parts[-tail:])
            # block and layer numbers say the most, then as much of the name as fits
            sc = (sum(p.isdigit() for p in kept), len(cand))
            if len(cand) <= width and sc > score:
                best, score = cand, sc
    if best:
        return best
    return ELLIPSIS + name[len(name) - width + 1:] if width > 1 else _clip(name, width)


class Table:
    """The inspection table.

    ``wide=True``: every column at a fixed width (the ``--wide`` table).  Otherwise the
    default table: the columns that say the most (``_COMPACT`` / ``_COMPACT_GRAD``), each
    as wide as its cells of ``rows`` (a list of ``(record, grad_record)``).  Without rows
    (under ``--step``) the widths are fixed, the layer and kind columns sized from
    ``layers`` (a list of ``(path, kind, depth)``) when given.  Where that is wider than
    ``width``, the flexible columns (layer, events, kind, formats, shape) give way in turn
    (``_SHRINK``), their cells cut with an ellipsis (layer paths in the middle,
    :func:`fit_path`).  Every line is at most ``width`` characters: the numbers take at
    most 8 each."""

    SEP = "  "

    def __init__(self, backward: bool, wide: bool = False, rows=None, width: int = WIDTH,
                 layers=None):
        self.backward, self.wide, self.width = backward, wide, width
        if wide:
            keys = _WIDE_KEYS + (_WIDE_GRAD_KEYS if backward else [])
            cols = _COLS + (_GRAD_COLS if backward else [])
            self.cols = [(k, h, a, w) for k, (h, w, a) in zip(keys, cols)]
            return
        spec = _COMPACT_GRAD if backward else _COMPACT
        cells = None if rows is None else [(r, _cells(r, g, backward)) for r, g in rows]
        widths = {}
        for key, head, _ in spec:
            if cells is None and layers and key in ("layer", "kind"):
                w = max(len(p or "(model)") + d if key == "layer" else len(k)
                        for p, k, d in layers)
            elif cells is None:
                w = _STEP_WIDTHS.get(key, 8)
            elif key == "layer":
                w = max(len(r.path or "(model)") + r.depth for r, _ in cells)
            else:
                w = max(len(c[key]) for _, c in cells)
            widths[key] = max(w, len(head))
        heads = {k: h for k, h, _ in spec}
        over = sum(widths.values()) + len(self.SEP) * (len(spec) - 1) - width
        if cells is not None:
            bare = max(len(r.path or "(model)") for r, _ in cells)
        else:
            bare = max((len(p or "(model)") for p, _, _ in layers or ()),
                       default=_STEP_WIDTHS["layer"])
        for key, floor in _SHRINK:
            if over <= 0:
                break
            floor = bare if floor is None else floor
            if key in widths:
                cut = min(over, max(widths[key] - max(floor, len(heads[key])), 0))
                widths[key] -= cut
                over -= cut
        self.cols = [(k, h, a, widths[k]) for k, h, a in spec]

    def _line(self, cells) -> str:
        return self.SEP.join(f"{c:{a}{w}}" for c, (_, _, a, w) in zip(cells, self.cols)
                             ).rstrip()

    @property
    def headers(self) -> list:
        return [h for _, h, _, _ in self.cols]

    def header(self) -> str:
        return self._line(self.headers)

    def row(self, rec, grec=None) -> str:
        c = _cells(rec, grec, self.backward)
        out = []
        for key, _, _, w in self.cols:
            if key == "layer":
                out.append(("  " * rec.depth + (rec.path or "(model)")) if self.wide
                           else fit_path(rec.path, rec.depth, w))
            elif self.wide:
                out.append(c[key])
            elif key == "events":
                out.append(_clip_words(c[key], w))
            elif key == "formats_short":
                out.append(_formats_short(rec, w))
            else:
                out.append(_clip(c[key], w))
        return self._line(out)

    def legend(self) -> list:
        """What the abbreviations of the default table mean (nothing for --wide): its
        phrases packed into lines of at most ``width`` characters."""
        if self.wide:
            return []
        phrases = [LEGEND] if any(k == "formats_short" for k, *_ in self.cols) else []
        phrases += [LEGEND_EVENTS + (", g. of the gradient" if self.backward else ""),
                    "--wide: all columns"]
        lines = [phrases[0]]
        for ph in phrases[1:]:
            if len(lines[-1]) + 2 + len(ph) <= self.width:
                lines[-1] += "; " + ph
            else:
                lines.append(ph)
        return lines


def table_header(backward: bool, wide: bool = True) -> str:
    """The header of the table (``wide``: every column at fixed widths)."""
    return Table(backward, wide).header()


def table_row(rec, grad_rec=None, backward: bool = False, wide: bool = True) -> str:
    """One row of the inspection table (``grad_rec``: the record of the backward run)."""
    return Table(backward, wide).row(rec, grad_rec)


def _describe(values) -> str:
    """min / max / mean / std of the finite values, and how many are not finite."""
    a = np.asarray(values, dtype=np.float64).ravel()
    fin = a[np.isfinite(a)]
    bad = a.size - fin.size
    if fin.size == 0:
        s = "no finite values"
    else:
        s = (f"min {fin.min():.6g}  max {fin.max():.6g}  mean {fin.mean():.6g}  "
             f"std {fin.std():.6g}")
    return s + (f"  ({bad} non-finite)" if bad else "")


def layer_stats(rec, grad_rec=None) -> str:
    """The ``p`` summary of one record: its output, the reference, the errors, counts."""
    from ..inspect import abs_error  # noqa: PLC0415
    lines = [f"-- {rec.path or '(model)'} ({rec.kind}), output {tuple(rec.output_shape)}, "
             f"policy {rec.policy}"]
    if rec.output is None or rec.reference is None:
        lines.append("   the layer returned no Tensor: no statistics")
        return "\n".join(lines)
    err = abs_error(rec.output, rec.reference)
    n = err.size
    lines.append(f"   output (policy)      {_describe(rec.output)}")
    lines.append(f"   output (reference)   {_describe(rec.reference)}")
    lines.append(f"   |error| propagated   {_describe(err)}  "
                 f"({int(np.count_nonzero(err))} of {n} elements differ)")
    if rec.local is not None and rec.local_exact is not None:
        lerr = abs_error(rec.local, rec.local_exact)
        lines.append(f"   |error| local        {_describe(lerr)}  "
                     f"({int(np.count_nonzero(lerr))} of {lerr.size} elements differ)")
    pe = rec.propagated_error
    lines.append(f"   relative error       max {_g(pe.max_rel)}  mean {_g(pe.mean_rel)}")
    bound, ratio = _bound_cells(rec)
    bline = f"   bound                max {bound}  ratio {ratio}"
    if rec.bound_formula:
        bline += f"  [{rec.bound_formula}]"
    if rec.bound_note:
        bline += f"  ({rec.bound_note})"
    lines.append(bline)
    lines.append(f"   propagated bound     max {_g(rec.propagated_bound_max)}  "
                 f"ratio {_g(rec.propagated_ratio)}  (policy and reference runs against the "
                 "exact network, input and weight rounding included)")
    sub = "n/a" if rec.subnormals is None else rec.subnormals
    lines.append(f"   counts               elements {n}  overflows {rec.overflows}  "
                 f"saturated {rec.saturated}  underflows {rec.underflows} (this layer)  "
                 f"zeroed {rec.zeroed} (vs reference)  subnormals {sub}  nan {rec.nan}  "
                 f"inf {rec.inf}")
    if grad_rec is not None and grad_rec.grad_error is not None:
        ge = grad_rec.grad_error
        lines.append(f"   |grad error|         max {_g(ge.max_abs)}  mean {_g(ge.mean_abs)}  "
                     f"overflows {grad_rec.grad_overflows}  "
                     f"underflows {grad_rec.grad_underflows}")
        for name, st in grad_rec.param_grad_errors.items():
            lines.append(f"   |grad error| {name:<8}max {_g(st.max_abs)}  "
                         f"mean {_g(st.mean_abs)}")
    if grad_rec is not None and (grad_rec.grad_local_error is not None
                                 or grad_rec.param_grad_local_errors):
        gl, gb, gr = _grad_local_cells(grad_rec)
        lines.append(f"   local backward       max error {gl}  bound {gb}  ratio {gr}"
                     + (f"  ({grad_rec.grad_bound_note})" if grad_rec.grad_bound_note
                        else ""))
    return "\n".join(lines)


def _overflow_dict(rec):
    if rec is None:
        return None
    return {"index": rec.index, "path": rec.path, "kind": rec.kind,
            "overflows": rec.overflows, "saturated": rec.saturated,
            "nan": rec.nan, "inf": rec.inf}


def _overflow_text(rec) -> str:
    if rec is None:
        return "none"
    what = [f"{k} {getattr(rec, k)}" for k in ("overflows", "saturated", "nan", "inf")
            if getattr(rec, k)]
    return f"{rec.path or '(model)'} ({rec.kind}, record {rec.index}): {', '.join(what)}"


# ---------------------------------------------------------------------------- setup
def short_path(path) -> str:
    """A path as its file name and the folder holding it (``run-fp16/checkpoint.h5``):
    what a plot title or a table needs to tell runs apart, without the full path."""
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _load(net, checkpoint, dataset, seed):
    """(model, data, description, label) -- built from the seed or rebuilt from a
    checkpoint; ``label``: the description with the checkpoint's short path."""
    from ..data import load_dataset  # noqa: PLC0415
    from ..nn.zoo import build_model  # noqa: PLC0415
    if checkpoint is None:
        data = load_dataset(dataset)
        name = net or "mlp"
        model = build_model(name, data.input_shape, data.classes, seed=seed)
        what = f"{name.strip().lower()} (seed {seed}, untrained)"
        return model, data, what, what
    from ..checkpoint import load_checkpoint, restore  # noqa: PLC0415
    from ..precision import Precision  # noqa: PLC0415
    ckpt = load_checkpoint(checkpoint)
    saved = (ckpt.get("extra") or {}).get("config") or {}
    if "net" not in saved:
        raise UserError(f"{checkpoint}: the checkpoint does not say which network it holds")
    if net is not None and net.strip().lower() != str(saved["net"]).strip().lower():
        raise UserError(f"checkpoint {checkpoint} holds a {saved['net']}, not --net {net}")
    try:
        own = Precision.from_json(ckpt["policy"]) if isinstance(ckpt["policy"], str) \
            else Precision.from_dict(ckpt["policy"])
    except (ValueError, TypeError) as err:
        raise UserError(f"checkpoint {checkpoint}: invalid policy ({err})") from None
    data = load_dataset(dataset or saved.get("dataset"))
    model = build_model(saved["net"], data.input_shape, data.classes,
                        seed=int(saved.get("seed", 0)))
    model.to(own)
    restore(model, None, None, ckpt)
    model.commit_master()
    tail = f"(epoch {int(ckpt['epoch'])}, trained under {own.name})"
    return (model, data, f"{saved['net']} from {checkpoint} {tail}",
            f"{saved['net']} from {short_path(checkpoint)} {tail}")


def _summary(records, labels):
    """The lemma summary over the samples (from the root record) and the first overflow."""
    from ..inspect import first_overflow, softmax_bound  # noqa: PLC0415
    from ..theory.lemma import lemma_report, tolerance  # noqa: PLC0415
    root = [r for r in records if r.depth == 0][-1]
    p_ref, p_low = softmax64(root.reference), softmax64(root.output)
    rep = lemma_report(p_ref, p_low)
    # a-priori delta: the propagated logit bound pushed through the softmax
    dbar = softmax_bound(root.output, root.propagated_bound).max(axis=1)
    first = first_overflow(records)
    out = {k: rep[k] for k in ("samples", "guaranteed", "guaranteed_strict", "agree",
                               "disagree", "guaranteed_but_disagree", "argmax_agree",
                               "low_ties")}
    out["differ"] = out["disagree"]
    out["softmax"] = SOFTMAX_NOTE
    out["reference_accuracy"] = float(np.mean(rep["pred_ref"] == labels))
    out["policy_accuracy"] = float(np.mean(rep["pred_low"] == labels))
    out["first_overflow"] = _overflow_dict(first)
    ratios = [(r.ratio, r) for r in records if r.ratio is not None]
    worst = max(ratios, key=lambda t: t[0], default=(None, None))
    out["max_bound_ratio"] = worst[0]
    out["max_bound_ratio_layer"] = None if worst[1] is None else worst[1].path
    pr = [(r.propagated_ratio, r) for r in records if r.propagated_ratio is not None]
    pworst = max(pr, key=lambda t: t[0], default=(None, None))
    out["max_propagated_ratio"] = pworst[0]
    out["max_propagated_ratio_layer"] = None if pworst[1] is None else pworst[1].path
    delta = np.asarray(rep["error"], dtype=np.float64)
    out["delta_bound_median"] = float(np.median(dbar)) if dbar.size else None
    out["delta_bound_max"] = float(np.max(dbar)) if dbar.size else None
    with np.errstate(invalid="ignore"):
        out["delta_within_bound"] = int(np.count_nonzero(delta <= dbar))
        # the policy run alone proves the exact model's class: its own top-2 gap > 2 dbar
        out["bound_certified"] = int(np.count_nonzero(tolerance(p_low) > 2 * dbar))
    out["per_sample"] = {"gamma": rep["tolerance"], "delta": rep["error"], "delta_bound": dbar,
                         "guaranteed": rep["is_guaranteed"], "agrees": rep["agrees"],
                         "pred_ref": rep["pred_ref"], "pred_low": rep["pred_low"],
                         "label": np.asarray(labels)}
    return out, first


def _summary_text(s, first, policy, reference) -> str:
    n = s["samples"]
    lines = [
        wrap(f"summary over {n} samples (lemma of the 16-bit paper on the softmax outputs: "
             f"{SOFTMAX_NOTE}; reference {reference} vs policy {policy}):"),
        f"  agreement guaranteed (Gamma >= 2 delta)  {s['guaranteed']:>6}",
        f"  predictions agree                        {s['agree']:>6}",
        f"  predictions differ                       {s['differ']:>6}",
        f"  guaranteed but differ (must be 0)        {s['guaranteed_but_disagree']:>6}",
        f"  accuracy on the labels                   reference {s['reference_accuracy']:.4f}"
        f", policy {s['policy_accuracy']:.4f}",
        f"  largest local error / bound              "
        f"{_g(s['max_bound_ratio'])}"
        + (f" ({s['max_bound_ratio_layer'] or '(model)'})"
           if s["max_bound_ratio_layer"] is not None else ""),
        f"  largest propagated error / bound         "
        f"{_g(s['max_propagated_ratio'])}"
        + (f" ({s['max_propagated_ratio_layer'] or '(model)'})"
           if s["max_propagated_ratio_layer"] is not None else ""),
        f"  a-priori bound on delta (propagated)     median {_g(s['delta_bound_median'])}, "
        f"max {_g(s['delta_bound_max'])}; delta within it on {s['delta_within_bound']} "
        f"samples",
        f"  agreement certified by the bound alone   {s['bound_certified']:>6}"
        "   (policy's top-2 gap > 2 x bound)",
        f"  first overflow / non-finite value        {_overflow_text(first)}",
    ]
    return "\n".join(lines)


def _quit_text(seen) -> str:
    from ..inspect import first_overflow  # noqa: PLC0415
    lines = [f"quit after {len(seen)} layer record(s); the lemma summary needs the logits "
             f"(the last record) and was not reached."]
    if seen:
        worst = max(seen, key=lambda r: r.propagated_error.max_abs
                    if not math.isnan(r.propagated_error.max_abs) else -1.0)
        lines.append(f"  largest propagated error seen  {_g(worst.propagated_error.max_abs)}"
                     f" ({worst.path or '(model)'})")
        ratios = [r for r in seen if r.ratio is not None]
        if ratios:
            r = max(ratios, key=lambda r: r.ratio)
            lines.append(f"  largest local error / bound    {_g(r.ratio)} ({r.path or '(model)'})")
    lines.append(f"  first overflow / non-finite     {_overflow_text(first_overflow(seen))}"
                 + (" so far" if first_overflow(seen) is None else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- plot
def plot_title(label, dataset, samples, policy, reference) -> str:
    """The plot's title: ``label`` (the net, its seed or its checkpoint's short path),
    the dataset's name (a path shortened to its file name), the samples and the two
    policies -- never a full path."""
    name = str(dataset)
    if "/" in name or "\\" in name:
        name = Path(name.replace("\\", "/")).name
    return f"{label} on {name}, {samples} samples: {policy} vs {reference}"


def plot_inspection(records, summary, path, title):
    """Draw :func:`inspection_figure` and save it to ``path``."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    fig = inspection_figure(records, summary, title)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def inspection_figure(records, summary, title):
    """The figure (not saved, not closed).  Left: per leaf layer, the max local error
    next to the max a-priori bound (log scale; vacuous bounds and layers without one are
    marked), and the propagated error and its bound as markers.  Right: histograms of
    Gamma and 2 delta over the samples (log-spaced bins; zeros drawn at the smallest
    bin).  ``title`` (:func:`plot_title`) is the figure's title."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    leaves = [r for r in records if r.leaf]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    tiny = 1e-300
    errs, bnds, labels = [], [], []
    for r in leaves:
        e = r.local_error.max_abs if r.local_error is not None else float("nan")
        b = r.bound_max
        errs.append(e)
        bnds.append(b)
        note = ""
        if r.bound is None:
            note = " (no bound)"
        elif r.bound_note.startswith("vacuous"):
            note = " (vacuous)"
        labels.append(f"{r.path}\n{r.kind}{note}")
    pos = [v for v in errs + bnds + [r.propagated_error.max_abs for r in leaves]
           if v is not None and math.isfinite(v) and v > 0]
    floor = min(pos) / 10 if pos else 1e-8
    xs = np.arange(len(leaves))
    def shown(v):
        return v if v is not None and math.isfinite(v) and v > 0 else np.nan

    ax1.bar(xs - 0.2, [shown(v) for v in errs], width=0.4, label="max local error")
    ax1.bar(xs + 0.2, [shown(v) for v in bnds], width=0.4, label="max a-priori bound")
    ax1.plot(xs, [shown(r.propagated_error.max_abs) for r in leaves], "ko", ms=4,
             label="max propagated error")
    ax1.plot(xs, [shown(r.propagated_bound_max) for r in leaves], "rx", ms=6,
             label="its propagated bound")
    ax1.set_yscale("log")
    ax1.set_ylim(bottom=floor)
    for x0, vals, dx in ((xs, errs, -0.2), (xs, bnds, 0.2)):
        for xi, v in zip(x0, vals):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                txt = "-"
            elif v == 0:
                txt = "0"
            elif math.isinf(v):
                txt = "inf"
            else:
                continue
            ax1.text(xi + dx, floor * 1.3, txt, ha="center", va="bottom", fontsize=7)
    ax1.set_xticks(xs)
    ax1.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax1.set_ylabel("max absolute error (0, inf, - marked as text)")
    ax1.set_title("local and propagated error per layer vs their bounds")
    ax1.legend(fontsize=8)

    ps = summary["per_sample"]
    gam = np.asarray(ps["gamma"], dtype=np.float64)
    two_d = 2 * np.asarray(ps["delta"], dtype=np.float64)
    vals = np.concatenate([gam, two_d])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo = max(vals.min() / 2, tiny) if vals.size else 1e-8
    hi = vals.max() * 2 if vals.size else 1.0
    bins = np.logspace(np.log10(lo), np.log10(max(hi, lo * 10)), 40)
    for v, lab in ((gam, "Gamma (top-2 gap of the reference)"), (two_d, "2 delta")):
        v = v[np.isfinite(v)]
        ax2.hist(np.clip(v, bins[0], bins[-1]), bins=bins, alpha=0.6, label=lab)
    ax2.set_xscale("log")
    ax2.set_xlabel("value (softmax outputs)")
    ax2.set_ylabel("samples")
    ax2.set_title(f"guaranteed {summary['guaranteed']} / agree {summary['agree']} / "
                  f"{summary['samples']} samples", fontsize=9)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- command
EXAMPLES = """\b
Examples:
  minifp inspect --net mlp --dataset digits --samples 64
  minifp inspect --net lenet5 --dataset digits --samples 64 --backward
  minifp inspect --net mlp --dataset digits --dtype e4m3 --wide --json e4m3.json
  minifp inspect --checkpoint runs/fp16/checkpoint.h5 --dtype bfloat16 --plot bf16.png
  minifp inspect --net mlp --dataset digits --step
  minifp inspect --net cnn --dataset mnist-5k --quiet --json cnn.json
"""


def wrap(text: str, width: int = WIDTH) -> str:
    """A prose line folded at ``width`` (paths and other long words are never cut)."""
    return textwrap.fill(text, width, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)


@contextlib.contextmanager
def one_line_warnings(bar_holder=None):
    """Every warning raised inside shows as one line ``minifp: warning: ...`` on stderr
    (no source path, no source line; above a progress bar when one is drawn)."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = f"minifp: warning: {one_line(message)}"
        bar = bar_holder[0] if bar_holder else None
        if bar is not None and hasattr(bar, "refresh"):
            from tqdm import tqdm  # noqa: PLC0415
            tqdm.write(text, file=sys.stderr)
        else:
            click.echo(text, err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@click.command("inspect", epilog=EXAMPLES)
@click.option("--net", default=None,
              help="mlp, lenet5, cnn, resnet (resnet8, ...), vit [default: mlp, or the "
                   "checkpoint's]")
@click.option("--checkpoint", default=None, metavar="PATH",
              help="a checkpoint.h5 of `minifp train` (else an untrained net from --seed)")
@click.option("--dtype", default="float16", show_default=True,
              help="the precision policy to inspect (preset, format name or policy JSON)")
@click.option("--reference", default="float64", show_default=True,
              help="the reference policy (at least as wide as --dtype)")
@click.option("--dataset", default=None,
              help="digits, mnist-5k, ... or a path to an .h5 [default: mnist-5k, or the "
                   "checkpoint's]")
@click.option("--samples", type=int, default=512, show_default=True,
              help="how many test samples (the first ones)")
@click.option("--seed", type=int, default=0, show_default=True,
              help="weight seed of the untrained net")
@click.option("--step", "stepping", is_flag=True,
              help="pause after each layer: Enter next, p statistics, q quit")
@click.option("--backward", is_flag=True,
              help="also compare gradients per layer (cross-entropy on the test labels)")
@click.option("--wide", is_flag=True,
              help="the table with every column (up to 239 characters wide); by default "
                   "it fits 120: the most useful columns, formats abbreviated (fp16 seq), "
                   "the counts as one events column, long names cut with an ellipsis")
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="write the records and the summary to FILE (strict JSON: non-finite "
                   "numbers are null)")
@click.option("--plot", "plot_path", default=None, metavar="FILE.png",
              help="per-layer error vs bound and a histogram of Gamma and 2 delta "
                   "(needs the plot extra)")
@click.option("--progress/--no-progress", default=None,
              help="a progress bar over the layers on stderr [default: when stderr is a "
                   "terminal; never under --step or --quiet]")
@click.option("--device", default="cpu", show_default=True,
              help="cpu, gpu or cuda:N: where the networks run (the tables are the same)")
@click.option("--quiet", "-q", is_flag=True,
              help="no progress bar, no heading, legend or table: print only the summary "
                   "(the lemma counts, accuracies, largest ratios, first overflow); the "
                   "table still shows under --step, --json and --plot are written as usual")
def inspect_command(net, checkpoint, dtype, reference, dataset, samples, seed, stepping,
                    backward, wide, json_path, plot_path, progress, quiet, device):
    """Step through a network layer by layer under a precision policy against a float64
    reference: a table of errors, a-priori bounds and overflows per layer, then how many
    samples the lemma Gamma >= 2 delta guarantees and how many actually agree."""
    holder = [None]
    with one_line_warnings(holder):
        _inspect(net, checkpoint, dtype, reference, dataset, samples, seed, stepping,
                 backward, wide, json_path, plot_path, progress, quiet, holder, device)


def _inspect(net, checkpoint, dtype, reference, dataset, samples, seed, stepping, backward,
             wide, json_path, plot_path, progress, quiet, holder, device="cpu"):
    from ..inspect import step  # noqa: PLC0415
    from ..precision import get_precision  # noqa: PLC0415
    from ..progress import bar, default_enabled  # noqa: PLC0415

    if plot_path is not None:
        require_matplotlib()
        check_plot_path(plot_path)
    check_out_file(json_path, "--json")
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    check_seed(seed)
    try:
        policy = get_precision(dtype)
    except ValueError as err:
        raise UserError(f"--dtype: {err}") from None
    try:
        ref = get_precision(reference)
    except ValueError as err:
        raise UserError(f"--reference: {err}") from None
    pa, ra = policy.activations, ref.activations
    if ra.precision < pa.precision or ra.max < pa.max:
        raise UserError(f"--reference {ref.name} ({ra.name}) is narrower than --dtype "
                        f"{policy.name} ({pa.name})")

    from ..device import parse_device  # noqa: PLC0415
    dev = parse_device(device)
    model, data, what, label = _load(net, checkpoint, dataset, seed)
    model.to(device=dev)
    n_test = int(len(data.y_test))
    if samples > n_test:
        raise UserError(f"--samples {samples} is larger than the {n_test} test samples of "
                        f"{data.name}")
    x = dev.put(np.asarray(data.x_test[:samples]))
    y = np.asarray(data.y_test[:samples])

    try:
        # with --backward one run gives both: the forward records are those of a
        # forward pass, the gradients those of the backward pass that follows it
        fwd = step(model, x, policy, ref, backward=backward,
                   targets=dev.put(y) if backward else None)
    except ValueError as err:
        raise UserError(str(err)) from None

    if not quiet:
        click.echo(wrap(f"inspect {what} on {data.name}: first {samples} of {n_test} test "
                        f"samples, policy {policy.name} against reference {ref.name}"))
    records, grads = [], {}
    quit_early = False
    if stepping:
        table = Table(backward, wide, layers=[(p, type(m).__name__, p.count(".") + 1 if p
                                               else 0) for p, m in model.named_modules()])
        if not quiet:
            for line in table.legend():
                click.echo(line)
        click.echo(table.header())
    shown = default_enabled(progress, quiet) and not stepping
    n_layers = sum(1 for _ in model.named_modules())
    with bar(n_layers, "inspect", shown, unit="layer") as pbar:
        holder[0] = pbar if shown else None
        try:
            for rec in fwd:
                grec = rec if backward else None
                records.append(rec)
                if grec is not None:
                    grads[rec.index] = grec
                pbar.update(1)
                pbar.set_postfix_str(rec.path or "(model)")
                if not stepping:
                    continue
                click.echo(table.row(rec, grec))
                if _prompt(rec, grec):
                    quit_early = True
                    break
        finally:
            holder[0] = None

    if quit_early:
        click.echo(_quit_text(records))
        if json_path:
            doc = _doc(what, checkpoint, data, samples, policy, ref, backward, False,
                       records, grads, None)
            _write_json(json_path, doc)
        if plot_path:
            click.echo("--plot: not drawn (quit before the last layer)")
        return

    if not stepping and not quiet:
        table = Table(backward, wide, [(r, grads.get(r.index)) for r in records])
        click.echo(table.header())
        for rec in records:
            click.echo(table.row(rec, grads.get(rec.index)))
        for line in table.legend():
            click.echo(line)
    summary, first = _summary(records, y)
    if not quiet or stepping:
        click.echo("")
    click.echo(_summary_text(summary, first, policy.name, ref.name))

    if json_path:
        doc = _doc(what, checkpoint, data, samples, policy, ref, backward, True, records,
                   grads, summary)
        _write_json(json_path, doc)
    if plot_path:
        try:
            plot_inspection(records, summary, plot_path,
                            plot_title(label, data.name, samples, policy.name, ref.name))
        except OSError as err:
            raise UserError(f"--plot {plot_path}: cannot write ({err.strerror or err})") \
                from None


def _prompt(rec, grec) -> bool:
    """Ask what to do after a row of --step; True to quit."""
    while True:
        try:
            ans = click.prompt(PROMPT, default="", show_default=False, prompt_suffix=" ")
        except click.exceptions.Abort:  # end of input: quit
            ans = "q"
        ans = ans.strip().lower()
        if ans == "p":
            click.echo(layer_stats(rec, grec))
            continue
        if ans == "q":
            return True
        if ans != "":
            click.echo(f"unknown answer {ans!r}: Enter, p or q")
            continue
        return False


def _doc(what, checkpoint, data, samples, policy, ref, backward, complete, records, grads,
         summary) -> dict:
    return {"net": what, "checkpoint": None if checkpoint is None else str(checkpoint),
            "dataset": data.name, "samples": samples, "policy": policy.name,
            "reference": ref.name, "backward": backward, "complete": complete,
            "records": [_with_grads(r, grads.get(r.index)) for r in records],
            "summary": summary}


def _write_json(path, doc):
    """Strict JSON (:func:`minifp.jsonio.dumps`: NaN and infinities become null)."""
    write_text(path, dumps(doc, indent=2) + "\n", "--json")


def _with_grads(rec, grec) -> dict:
    d = rec.to_dict()
    if grec is not None:
        g = grec.to_dict()
        for k in ("grad_error", "grad_overflows", "grad_underflows", "param_grad_errors",
                  "grad_local_error", "grad_bound_max", "grad_ratio", "grad_bound_note",
                  "param_grad_local_errors", "param_grad_ratios"):
            d[k] = g[k]
    return d
