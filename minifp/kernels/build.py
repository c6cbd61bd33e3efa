"""Building the host kernels with the system C compiler, at first use.

The library is compiled from ``src/host.c`` with ``$CC`` (default ``cc``) and the fixed
flags below into a per-user cache directory (``$MINIFP_CACHE_DIR``, else
``$XDG_CACHE_HOME/minifp``, else ``~/.cache/minifp``), under a name keyed by the sources'
hash, the flags and the compiler's version, so a changed source or compiler rebuilds.
A built library is refused if ``objdump`` finds an FMA instruction in it (a contracted
a*b+c would round once where the reference rounds twice)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .signatures import ABI_VERSION, ENTRY_POINTS

SRC = Path(__file__).parent / "src"
SOURCES = ("mf_port.h", "mf_round.h", "mf_exact.h", "mf_orders.h", "host.c")
# -ffp-contract=off: GNU C modes contract a*b+c into FMA on FMA targets; no -ffast-math
# anywhere (it also sets FTZ/DAZ for the whole process).  No -march: the library may be
# shared by machines of one home directory.
CFLAGS = ("-O2", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
          "-ftree-vectorize")
_FMA = re.compile(r"\bv?fn?m(add|sub)[0-9]{3}[sp][sd]\b|\bfmadd|\bfmsub|\bfnmadd|\bfnmsub")
_CTYPES = {"f64*": ctypes.c_void_p, "i64*": ctypes.c_void_p, "i64": ctypes.c_int64,
           "u64": ctypes.c_uint64}


class BuildError(RuntimeError):
    """The kernels could not be built or loaded (the message says why, in one line)."""


def compiler() -> str:
    return os.environ.get("CC") or "cc"


def cache_dir() -> Path:
    if os.environ.get("MINIFP_CACHE_DIR"):
        return Path(os.environ["MINIFP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minifp"


def source_hash() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode())
        try:
            h.update((SRC / name).read_bytes())
        except OSError:
            raise BuildError(f"the kernel source {name} is missing from {SRC}") from None
    return h.hexdigest()


def _compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"no C compiler ({cc}: {e.__class__.__name__})") from None
    if out.returncode != 0:
        raise BuildError(f"the C compiler {cc} does not run (exit {out.returncode})")
    return (out.stdout.splitlines() or [""])[0]


def library_path() -> Path:
    """Where the library for these sources, flags and compiler lives in the cache."""
    cc = compiler()
    key = hashlib.sha256("\n".join([source_hash(), " ".join(CFLAGS), cc,
                                    _compiler_version(cc), platform.machine()]).encode())
    return cache_dir() / f"kernels-{key.hexdigest()[:16]}" / "libminifp_kernels.so"


def fma_instructions(path) -> list[str]:
    """FMA instructions in a shared library (``objdump -d``), or [] where objdump is
    missing (the flags then carry the guarantee alone)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return []
    out = subprocess.run([objdump, "-d", str(path)], capture_output=True, text=True,
                         timeout=120)
    return sorted({m.group(0) for m in _FMA.finditer(out.stdout)})


def build(path: Path) -> Path:
    """Compile the library to ``path`` (atomically: a temporary file, then a rename)."""
    cc = compiler()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        cmd = [cc, *CFLAGS, str(SRC / "host.c"), "-o", tmp]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            raise BuildError(f"{cc} did not run: {e.__class__.__name__}") from None
        if out.returncode != 0:
            first = (out.stderr.strip().splitlines() or ["no message"])[0]
            raise BuildError(f"{cc} failed to compile the kernels: {first}")
        fma = fma_instructions(tmp)
        if fma:
            raise BuildError(f"the compiled kernels contain FMA instructions "
                             f"({', '.join(fma[:3])}); refused")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load() -> ctypes.CDLL:
    """Build (if needed) and load the host kernels; raises :class:`BuildError`."""
    path = library_path()
    if not path.exists():
        build(path)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise BuildError(f"the built kernels do not load: {e}") from None
    if lib.mf_abi_version() != ABI_VERSION:
        raise BuildError("the cached kernels have another argument table; remove "
                         f"{path.parent}")
    for name, args in ENTRY_POINTS.items():
        fn = getattr(lib, name)
        fn.argtypes = [_CTYPES[t] for _, t in args]
        fn.restype = ctypes.c_int
    return lib
