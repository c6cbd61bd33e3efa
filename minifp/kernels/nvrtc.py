"""Compiling the CUDA kernels (``src/device.cu``) with NVRTC through ctypes, no GPU and no
CuPy needed: the CI check that the shared headers compile for the device and that the
PTX has the argument lists of ``device_signatures`` and no contracted or approximate
floating-point instruction (tests/test_kernels_nvrtc.py).

``libnvrtc.so.12`` comes from the pip package ``nvidia-cuda-nvrtc-cu12`` (the ``test``
extra) or from the system's library path.  ``available()`` says whether it loads;
``OPTIONS`` are the fixed compile options, for every compiler of these kernels (the CuPy
launcher passes the same ones to RawModule, with ``include_options()``)."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import re
import site
import sys
import threading
from pathlib import Path

SRC = Path(__file__).parent / "src"
DEVICE_SOURCE = SRC / "device.cu"

#: the fixed options (DESIGN.md "Kernels"): no FMA contraction, no flush to zero, IEEE
#: division and square root; the architecture option is added per compile
OPTIONS = ("--fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true",
           "-default-device", "-std=c++11")

#: the architectures the CI check compiles for
ARCHS = ("sm_80", "sm_90")

_LIBNAMES = ("libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so")
_lock = threading.Lock()
_state: dict = {}


class NVRTCError(RuntimeError):
    """NVRTC failed; ``log`` holds the compiler's log (empty if there was none)."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message + (("\n" + log) if log else ""))
        self.log = log


class NVRTCUnavailable(NVRTCError):
    """libnvrtc could not be found or loaded."""


def _package_dirs() -> list[Path]:
    """The ``nvidia/cuda_nvrtc/lib`` folders of the installed pip package, then of every
    site-packages folder."""
    found = []
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for loc in list(spec.submodule_search_locations or []):
            found.append(Path(loc) / "lib")
        if spec.origin and spec.origin not in ("namespace", "built-in"):
            found.append(Path(spec.origin).parent / "lib")
    roots = []
    try:
        roots += site.getsitepackages()
    except AttributeError:       # some virtualenv layouts
        pass
    try:
        roots.append(site.getusersitepackages())
    except AttributeError:
        pass
    roots += [p for p in sys.path if p.endswith("-packages")]
    for root in roots:
        found.append(Path(root) / "nvidia" / "cuda_nvrtc" / "lib")   # CUDA 12 wheels
        found.append(Path(root) / "nvidia" / "cu13" / "lib")         # CUDA 13 wheels
    out, seen = [], set()
    for d in found:
        key = str(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def candidates() -> list[str]:
    """Where libnvrtc is looked for, in order: $MINIFP_NVRTC, the pip package, the
    dynamic linker's path (ctypes.util.find_library)."""
    out = []
    env = os.environ.get("MINIFP_NVRTC", "").strip()
    if env:
        out.append(env)
    for d in _package_dirs():
        for name in _LIBNAMES:
            if (d / name).is_file():
                out.append(str(d / name))
    lib = ctypes.util.find_library("nvrtc")
    if lib:
        out.append(lib)
    out += list(_LIBNAMES)     # the loader's own search (LD_LIBRARY_PATH, ldconfig)
    return out


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, c, ci, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
    cpp = ctypes.POINTER(ctypes.c_char_p)
    table = {
        "nvrtcGetErrorString": (c, [ci]),
        "nvrtcVersion": (ci, [ctypes.POINTER(ci), ctypes.POINTER(ci)]),
        "nvrtcCreateProgram": (ci, [ctypes.POINTER(p), c, c, ci, cpp, cpp]),
        "nvrtcDestroyProgram": (ci, [ctypes.POINTER(p)]),
        "nvrtcCompileProgram": (ci, [p, ci, cpp]),
        "nvrtcGetProgramLogSize": (ci, [p, ctypes.POINTER(sz)]),
        "nvrtcGetProgramLog": (ci, [p, ctypes.c_void_p]),
        "nvrtcGetPTXSize": (ci, [p, ctypes.POINTER(sz)]),
        "nvrtcGetPTX": (ci, [p, ctypes.c_void_p]),
        "nvrtcGetCUBINSize": (ci, [p, ctypes.POINTER(sz)]),
        "nvrtcGetCUBIN": (ci, [p, ctypes.c_void_p]),
    }
    for name, (res, args) in table.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


def library() -> ctypes.CDLL:
    """The loaded libnvrtc (cached), or NVRTCUnavailable saying where it was looked for."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        if "error" in _state:
            raise NVRTCUnavailable(_state["error"])
        tried = []
        for path in candidates():
            try:
                lib = _open(path)
            except (OSError, AttributeError) as exc:
                tried.append(f"{path}: {exc}")
                continue
            _state["lib"] = lib
            _state["path"] = path
            return lib
        _state["error"] = ("libnvrtc.so.12 not found (pip install nvidia-cuda-nvrtc-cu12, or set "
                           "MINIFP_NVRTC to its path); tried:\n  " + "\n  ".join(tried))
        raise NVRTCUnavailable(_state["error"])


def _open(path: str) -> ctypes.CDLL:
    """Load libnvrtc at ``path``, its builtins library first (NVRTC 13 opens
    libnvrtc-builtins by name, which the loader finds only if it is already loaded or on
    its search path)."""
    folder = Path(path).parent
    for builtins in sorted(folder.glob("libnvrtc-builtins.so.*")):
        if ".alt." not in builtins.name:
            try:
                ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
    return _bind(ctypes.CDLL(path))


def installed_libraries() -> dict[int, str]:
    """{NVRTC major version: path} of every libnvrtc found (the first of each major)."""
    out: dict[int, str] = {}
    for path in candidates():
        try:
            lib = _open(path)
        except (OSError, AttributeError):
            continue
        major, minor = ctypes.c_int(), ctypes.c_int()
        if lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) == 0:
            out.setdefault(major.value, path)
    return dict(sorted(out.items()))


@contextlib.contextmanager
def use_library(path: str):
    """Compile with the libnvrtc at ``path`` inside the block (CI checks each major)."""
    with _lock:
        saved = dict(_state)
        _state.clear()
        _state["lib"] = _open(path)
        _state["path"] = path
    try:
        yield _state["lib"]
    finally:
        with _lock:
            _state.clear()
            _state.update(saved)


def available() -> bool:
    """Whether libnvrtc loads (never raises)."""
    try:
        library()
    except NVRTCError:
        return False
    return True


def library_path() -> str:
    """The path libnvrtc was loaded from."""
    library()
    return _state["path"]


def version() -> tuple[int, int]:
    """NVRTC's (major, minor) version."""
    lib = library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def _check(lib, result: int, what: str, log: str = "") -> None:
    if result != 0:
        msg = lib.nvrtcGetErrorString(result)
        text = msg.decode(errors="replace") if msg else f"error {result}"
        raise NVRTCError(f"{what} failed: {text}", log)


def _strings(items) -> ctypes.Array:
    arr = (ctypes.c_char_p * max(len(items), 1))()
    for i, s in enumerate(items):
        arr[i] = s.encode() if isinstance(s, str) else s
    return arr


def headers() -> dict[str, str]:
    """The shared headers by include name (``src/*.h``), handed to NVRTC in memory."""
    return {p.name: p.read_text() for p in sorted(SRC.glob("*.h"))}


def include_options() -> tuple[str, ...]:
    """The include option for a compiler that reads the headers from disk (CuPy)."""
    return (f"-I{SRC}",)


def arch_option(arch: str, target: str) -> str:
    """``--gpu-architecture`` for arch ``sm_XX``: ``compute_XX`` (PTX) or ``sm_XX`` (CUBIN)."""
    m = re.fullmatch(r"(?:sm|compute)_(\d+[a-z]?)", arch)
    if not m:
        raise ValueError(f"architecture {arch!r} is not of the form sm_XX")
    if target not in ("ptx", "cubin"):
        raise ValueError(f"target {target!r} is not 'ptx' or 'cubin'")
    return f"--gpu-architecture={'compute' if target == 'ptx' else 'sm'}_{m.group(1)}"


def compile_source(source: str, arch: str, target: str = "ptx", options=OPTIONS,
                   name: str = "device.cu", include: dict[str, str] | None = None) -> bytes:
    """Compile CUDA `source` for `arch` to PTX (text, without its trailing NUL) or CUBIN
    (the full image: nvrtcGetCUBINSize bytes) and return the bytes; NVRTCError with the
    log on failure.  `include` maps include names to header texts."""
    return compile_with_log(source, arch, target, options, name, include)[0]


def compile_with_log(source: str, arch: str, target: str = "ptx", options=OPTIONS,
                     name: str = "device.cu",
                     include: dict[str, str] | None = None) -> tuple[bytes, str]:
    """:func:`compile_source`, returning ``(bytes, the compiler's log)`` (with
    ``--ptxas-options=-v`` in ``options`` the log of a CUBIN holds each kernel's register
    and stack use)."""
    lib = library()
    include = include or {}
    opts = list(options) + [arch_option(arch, target)]
    prog = ctypes.c_void_p()
    names = list(include)
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(),
                                       len(names), _strings([include[k] for k in names]),
                                       _strings(names)), "nvrtcCreateProgram")
    try:
        res = lib.nvrtcCompileProgram(prog, len(opts), _strings(opts))
        size = ctypes.c_size_t()
        log = ""
        if lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) == 0 and size.value > 1:
            buf = ctypes.create_string_buffer(size.value)
            if lib.nvrtcGetProgramLog(prog, buf) == 0:
                log = buf.value.decode(errors="replace")
        _check(lib, res, f"NVRTC compile of {name} for {arch} ({target}, options "
                         f"{' '.join(opts)})", log)
        get_size, get = ((lib.nvrtcGetPTXSize, lib.nvrtcGetPTX) if target == "ptx"
                         else (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN))
        _check(lib, get_size(prog, ctypes.byref(size)), f"nvrtcGet{target.upper()}Size", log)
        buf = ctypes.create_string_buffer(size.value)
        _check(lib, get(prog, buf), f"nvrtcGet{target.upper()}", log)
        data = buf.raw[:size.value]
        if target == "ptx":
            data = data.rstrip(b"\0")
        return data, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def device_source() -> str:
    return DEVICE_SOURCE.read_text()


def compile_ptx(arch: str) -> bytes:
    """``src/device.cu`` as PTX for `arch` (sm_80, sm_90: compute_XX)."""
    return compile_source(device_source(), arch, "ptx", include=headers())


def compile_cubin(arch: str) -> bytes:
    """``src/device.cu`` as a CUBIN (ELF) for `arch`."""
    return compile_source(device_source(), arch, "cubin", include=headers())


# ---- reading PTX: the lint of tests/test_kernels_nvrtc.py -----------------------------
#: PTX parameter types that each argument-table type may take (a pointer is a .u64
#: address in PTX, so the lint checks the count and the width and kind of each scalar)
PTX_PARAM_TYPES = {"f64*": (".u64",), "i64*": (".u64",), "i64": (".u64", ".s64"),
                   "u64": (".u64",)}

#: instructions an exact kernel must not contain: contraction into an FMA (fma., and the
#: floating-point mad), flush to zero, approximate division / square root / reciprocal
FORBIDDEN = (("fma", re.compile(r"\bfma\.")),
             ("mad.f", re.compile(r"\bmad(?:\.[a-z]+)*\.f(?:16|32|64)\b")),
             ("ftz", re.compile(r"\.ftz\b")),
             ("approx", re.compile(r"\.approx\b")))

_ENTRY = re.compile(r"\.entry\s+([A-Za-z_$][\w$]*)")
_FUNC = re.compile(r"\.func\s+(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*)")
_CALL = re.compile(r"\bcall(?:\.uni)?\s+(?:\([^)]*\)\s*,\s*)?([A-Za-z_$][\w$]*)")


def _text(ptx) -> str:
    return ptx.decode() if isinstance(ptx, (bytes, bytearray)) else ptx


def strip_comments(ptx) -> str:
    text = re.sub(r"/\*.*?\*/", " ", _text(ptx), flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def ptx_functions(ptx) -> dict[str, dict]:
    """The top-level ``.entry`` and ``.func`` definitions of a PTX module by name:
    {"kind": "entry" | "func", "params": [(type, name), ...], "text": header and body}.
    Declarations without a body are left out."""
    text = strip_comments(ptx)
    out: dict[str, dict] = {}
    i, n = 0, len(text)
    for m in re.finditer(r"\.(entry|func)\b", text):
        if m.start() < i:
            continue                    # inside a body already read
        head = (_ENTRY if m.group(1) == "entry" else _FUNC).match(text, m.start())
        if not head:
            continue
        name = head.group(1)
        j = head.end()
        params = []
        while j < n and text[j].isspace():
            j += 1
        if j < n and text[j] == "(":
            close = text.index(")", j)
            for item in text[j + 1:close].split(","):
                tokens = item.split()
                if not tokens or tokens[0] != ".param":
                    continue
                types = [t for t in tokens[1:] if re.fullmatch(r"\.[usbf]\d+", t)]
                params.append((types[0] if types else "?", tokens[-1]))
            j = close + 1
        k = j
        while k < n and text[k] not in "{;":
            k += 1
        if k >= n or text[k] == ";":
            i = k + 1
            continue                    # a declaration
        depth, e = 0, k
        while e < n:
            if text[e] == "{":
                depth += 1
            elif text[e] == "}":
                depth -= 1
                if depth == 0:
                    break
            e += 1
        out[name] = {"kind": m.group(1), "params": params, "text": text[m.start():e + 1]}
        i = e + 1
    return out


def ptx_entries(ptx) -> dict[str, list[tuple[str, str]]]:
    """Every kernel (``.entry``) of a PTX module with its parameters' (type, name)."""
    return {k: v["params"] for k, v in ptx_functions(ptx).items() if v["kind"] == "entry"}


def reachable_text(ptx, entry: str) -> str:
    """The PTX of kernel `entry` and of every function it calls, directly or not."""
    funcs = ptx_functions(ptx)
    if entry not in funcs:
        raise KeyError(f"no kernel {entry!r} in the PTX")
    seen, todo, parts = set(), [entry], []
    while todo:
        name = todo.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        parts.append(funcs[name]["text"])
        todo.extend(_CALL.findall(funcs[name]["text"]))
    return "\n".join(parts)


def forbidden_instructions(ptx) -> list[tuple[str, int, str]]:
    """(what, line number, line) for every forbidden instruction in the PTX text."""
    found = []
    for no, line in enumerate(strip_comments(ptx).splitlines(), 1):
        for what, pattern in FORBIDDEN:
            if pattern.search(line):
                found.append((what, no, line.strip()))
    return found


def parameter_mismatches(ptx, table: dict) -> list[str]:
    """How the kernels of a PTX module differ from the argument tables `table` (kernel
    name -> ((argument, type), ...)): missing or extra kernels, a parameter count or a
    parameter type that does not fit.  Empty where they agree."""
    entries = ptx_entries(ptx)
    problems = [f"kernel {k} is not in the PTX" for k in table if k not in entries]
    problems += [f"kernel {k} of the PTX has no argument table" for k in entries
                 if k not in table]
    for name, args in table.items():
        params = entries.get(name)
        if params is None:
            continue
        if len(params) != len(args):
            problems.append(f"{name}: {len(params)} PTX parameters, {len(args)} arguments "
                            "in the table")
            continue
        for (arg, kind), (ptype, pname) in zip(args, params):
            allowed = PTX_PARAM_TYPES.get(kind)
            if allowed is None:
                problems.append(f"{name}: argument {arg} has the unknown type {kind!r}")
            elif ptype not in allowed:
                problems.append(f"{name}: argument {arg} ({kind}) is {ptype} {pname} in the "
                                f"PTX, expected {' or '.join(allowed)}")
    return problems
