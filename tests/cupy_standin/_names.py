"""CuPy's public API names, from the checked-in list ``cupy_names.txt``.

The list was read from a real CuPy wheel (its first line names the version); the
stand-in serves only names that are on it, so a NumPy name that CuPy lacks fails here
as it would on a GPU.  Regenerate it with that wheel importable (no GPU needed)::

    pip download cupy-cuda12x --no-deps -d /tmp/w && python -m zipfile -e /tmp/w/*.whl /tmp/c
    PYTHONPATH=/tmp/c python tests/cupy_standin/_names.py
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

PATH = Path(__file__).with_name("cupy_names.txt")
SECTIONS = ("cupy", "cupy.random", "cupy.random.Generator", "cupy.ndarray",
            "cupyx.scipy.special")
#: sections of parameter lists: ``name(a, b=, *, c=)`` ("=" marks a default, whose value
#: is not recorded), from inspect.signature or, for Cython methods, their docstrings
SIGNATURE_SECTIONS = ("cupy signatures", "cupy.random.Generator signatures",
                      "cupy.ndarray signatures")


def load(path: Path = PATH) -> tuple[str, dict[str, frozenset]]:
    """(CuPy version, {section: names}) from the list."""
    version, current, out = "?", None, {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            if version == "?" and line.startswith("# CuPy "):
                version = line[len("# CuPy "):].split(":")[0].strip()
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            out[current] = set()
            continue
        out[current].add(line)
    return version, {k: frozenset(v) for k, v in out.items()}


def parse_parameters(text: str) -> inspect.Signature:
    """An inspect.Signature (defaults None) from ``a, b=, /, *, c=, **kw``."""
    params, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    P = inspect.Parameter
    for tok in [t.strip() for t in text.split(",") if t.strip()]:
        if tok == "/":
            params = [p.replace(kind=P.POSITIONAL_ONLY) for p in params]
        elif tok == "*":
            kind = P.KEYWORD_ONLY
        elif tok.startswith("**"):
            params.append(P(tok[2:], P.VAR_KEYWORD))
        elif tok.startswith("*"):
            params.append(P(tok[1:], P.VAR_POSITIONAL))
            kind = P.KEYWORD_ONLY
        elif tok.endswith("="):
            params.append(P(tok[:-1], kind, default=None))
        else:
            params.append(P(tok, kind))
    return inspect.Signature(params)


def format_parameters(sig: inspect.Signature) -> str:
    """The inverse of parse_parameters (``self`` dropped)."""
    P = inspect.Parameter
    out, star = [], False
    params = [p for p in sig.parameters.values() if p.name != "self"]
    for i, p in enumerate(params):
        if p.kind is P.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        if p.kind is P.VAR_POSITIONAL:
            out.append("*" + p.name)
            star = True
        elif p.kind is P.VAR_KEYWORD:
            out.append("**" + p.name)
        else:
            out.append(p.name + ("=" if p.default is not P.empty else ""))
        if p.kind is P.POSITIONAL_ONLY and (i + 1 == len(params)
                                            or params[i + 1].kind is not P.POSITIONAL_ONLY):
            out.append("/")
    return ", ".join(out)


def _signatures(section):
    out = {}
    for line in NAMES.get(section, ()):
        name, _, rest = line.partition("(")
        out[name] = rest[:-1]
    return out


VERSION, NAMES = load()
TOP = NAMES["cupy"]
RANDOM = NAMES["cupy.random"]
GENERATOR = NAMES["cupy.random.Generator"]
NDARRAY = NAMES["cupy.ndarray"]
SPECIAL = NAMES["cupyx.scipy.special"]
#: {name: parameter text} of CuPy's functions / Generator methods / ndarray methods
SIGNATURES = _signatures("cupy signatures")
GENERATOR_SIGNATURES = _signatures("cupy.random.Generator signatures")
NDARRAY_SIGNATURES = _signatures("cupy.ndarray signatures")
_parsed: dict = {}


def signature(name: str):
    """CuPy's signature of ``cupy.<name>`` (an inspect.Signature), or None."""
    sig = _parsed.get(name, False)
    if sig is False:
        text = SIGNATURES.get(name)
        sig = _parsed[name] = None if text is None else parse_parameters(text)
    return sig


def generate() -> str:  # pragma: no cover - needs the CuPy wheel
    """The text of ``cupy_names.txt`` from the importable ``cupy`` package."""
    import cupy
    import cupy.random
    import cupyx.scipy.special
    import numpy

    def public(obj):
        # `from __future__ import annotations` leaves `annotations` in module namespaces
        return sorted(n for n in dir(obj) if not n.startswith("_") and n != "annotations")

    def parameters(obj):
        try:
            return format_parameters(inspect.signature(obj))
        except (TypeError, ValueError):
            pass
        first = ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]
        m = re.match(r"[\w.]+\((.*)\)(?:\s*->.*)?$", first)
        if not m:
            return None
        toks = []
        for tok in m.group(1).split(","):
            tok = tok.strip()
            if not tok:
                continue
            name, eq, _ = tok.partition("=")
            name = name.split()[-1]            # drop Cython types (int axis, _ndarray_base b)
            if name != "self":
                toks.append(name + ("=" if eq else ""))
        return ", ".join(toks)

    def signatures(obj, names):
        out = []
        for n in names:
            o = getattr(obj, n)
            if isinstance(o, type) or not callable(o) or type(o).__name__ == "ufunc":
                continue           # ufuncs: (*args, out=, dtype=, casting=), checked apart
            text = parameters(o)
            if text is not None:
                out.append(f"{n}({text})")
        return out

    lines = [f"# CuPy {cupy.__version__}: the public names (dir() without leading underscores) of",
             "# cupy, cupy.random, cupy.random.Generator, cupy.ndarray and cupyx.scipy.special,",
             f"# read by importing the PyPI wheel cupy_cuda12x-{cupy.__version__}-cp311 without "
             "a GPU",
             f"# (numpy {numpy.__version__}); `from __future__ import annotations` artefacts "
             "left out.",
             "# Regenerate: see tests/cupy_standin/_names.py."]
    for title, obj in zip(SECTIONS, (cupy, cupy.random, cupy.random.Generator, cupy.ndarray,
                                     cupyx.scipy.special)):
        lines.append(f"[{title}]")
        lines += public(obj)
    for title, obj in zip(SIGNATURE_SECTIONS, (cupy, cupy.random.Generator, cupy.ndarray)):
        lines.append(f"[{title}]")
        lines += signatures(obj, public(obj))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    PATH.write_text(generate())
    print(f"wrote {PATH}")
