"""Compiled CPU kernels of the KAN layer's spline term, built on first use.

``csrc/spline_kernel.c`` (plain C99 and OpenMP, no Python or torch headers) is compiled with
the system C compiler into a shared library the first time a CPU KAN layer runs, cached, and
called through :mod:`ctypes` on the tensors' memory. Building takes about a second; the
library is kept under ``$KANPLATFORM_CACHE`` (default ``~/.cache/kanplatform/kernels``), named
by a hash of the sources, the compiler, its flags and the CPU's feature flags, so a shared home
directory across different machines never loads a library built for another CPU.

Where no compiler exists or the build fails, :func:`library` returns ``None`` (one warning)
and :mod:`kanplatform.nn.functional` uses its pure-PyTorch path, which computes the same
numbers (tested). Environment:

* ``KANPLATFORM_KERNEL``: ``auto`` (default: the compiled kernel where it builds, else
  PyTorch; on CUDA the Triton kernel), ``c`` (the compiled kernel or an error saying why not),
  ``triton`` (the Triton kernel of :mod:`kanplatform.kernels.triton_spline` for every KAN
  layer, or an error saying why it cannot run), ``torch`` (never compile).
* ``KANPLATFORM_CACHE``: where built libraries go.
* ``CC``: the C compiler (default ``cc``, then ``gcc``).
* ``KANPLATFORM_KERNEL_ARCH``: the ``-march=`` to build for (default ``native``; e.g.
  ``x86-64-v3`` for AVX2 machines when building a library to ship).

The kernels use OpenMP threads, as many as :func:`torch.get_num_threads` but no more than the
CPUs the process may use (affinity, cgroup quota); being linked against ``libgomp.so.1`` they
share the OpenMP runtime torch has already loaded, whose waiting policy
:mod:`kanplatform` sets to passive when it is imported first (:mod:`kanplatform._util.cpus`).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

__all__ = [
    "KERNEL_ENV",
    "backward_tables",
    "backward_x",
    "describe",
    "forward",
    "kernel_mode",
    "library",
    "library_error",
    "tables",
    "tables_backward",
]

KERNEL_ENV = "KANPLATFORM_KERNEL"
CACHE_ENV = "KANPLATFORM_CACHE"
MODES = ("auto", "c", "triton", "torch")
_ABI = 2
_SRC_DIR = Path(__file__).parent / "csrc"
_SOURCES = ("spline_kernel.c", "spline_body.h", "layer_body.h")
# -fno-trapping-math: lets the clamps of the vectorised exp be selects (results unchanged)
_BASE_FLAGS = ["-O3", "-std=gnu99", "-ffp-contract=fast", "-fno-trapping-math", "-fPIC",
               "-shared"]
ARCH_ENV = "KANPLATFORM_KERNEL_ARCH"  # -march= value; default native (e.g. x86-64-v3: AVX2)

_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib": CDLL | None, "error": str, once tried


def kernel_mode() -> str:
    """The ``KANPLATFORM_KERNEL`` setting: ``auto``, ``c``, ``triton`` or ``torch``.

    Raises:
        ValueError: for any other value, naming the variable and the choices.
    """
    mode = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(
            f"{KERNEL_ENV}={os.environ[KERNEL_ENV]!r} is not one of {', '.join(MODES)}: "
            f"'auto' uses the compiled CPU kernel where it builds and the Triton kernel on "
            f"CUDA, 'c' requires the CPU kernel, 'triton' the Triton kernel, 'torch' neither"
        )
    return mode


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc"):
        if cc and shutil.which(cc):
            return cc
    return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kanplatform" / "kernels"


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    fallback = Path(tempfile.gettempdir()) / f"kanplatform-kernels-{user}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _flag_sets() -> list[list[str]]:
    """Compiler flags to try in order: this CPU's vector units (``-march=native``, or
    ``$KANPLATFORM_KERNEL_ARCH``) with OpenMP threads, without them (no libgomp), and for
    compilers that reject the architecture flag, the portable baseline."""
    march = f"-march={os.environ.get(ARCH_ENV) or 'native'}"
    return [[march, "-fopenmp"], [march, "-fopenmp-simd"], ["-fopenmp"], []]


def _build(cc: str) -> Path:
    """Compile the library (or find it already built) and return its path."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_SRC_DIR / name).read_bytes())
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    for part in (version.stdout, " ".join(_BASE_FLAGS), _cpu_flags(), platform.machine()):
        digest.update(part.encode())
    out_dir = _writable_dir(_cache_dir())
    errors = []
    for extra in _flag_sets():
        tag = digest.copy()
        tag.update(" ".join(extra).encode())
        target = out_dir / f"kanspline-{tag.hexdigest()[:16]}.so"
        if target.exists():
            return target
        # build into a private name, then rename: concurrent processes (Ray workers) never
        # load a half-written library
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        cmd = [cc, *_BASE_FLAGS, *extra, "-o", tmp, str(_SRC_DIR / "spline_kernel.c"), "-lm"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode == 0:
            os.replace(tmp, target)
            return target
        os.unlink(tmp)
        errors.append(f"{' '.join(cmd)}: {res.stderr.strip()[-500:]}")
    raise RuntimeError("the C compiler failed:\n" + "\n".join(errors))


def _declare(lib: ctypes.CDLL) -> None:
    i64, ptr, cint = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    locate = [i64] * 5 + [ptr] * 5  # B, I, O, K, G, x, lo, scale, knots, sih
    for suf in ("f32", "f64"):
        getattr(lib, f"kan_forward_{suf}").argtypes = [*locate, ptr, ptr, i64, cint]
        getattr(lib, f"kan_backward_x_{suf}").argtypes = [*locate, ptr, ptr, ptr, i64, cint]
        getattr(lib, f"kan_backward_tables_{suf}").argtypes = [*locate, ptr, ptr, i64, cint]
        getattr(lib, f"kan_tables_{suf}").argtypes = [i64] * 4 + [ptr] * 4 + [cint]
        getattr(lib, f"kan_tables_backward_{suf}").argtypes = [i64] * 4 + [ptr] * 6 + [cint]
        for name in ("kan_forward", "kan_backward_x", "kan_backward_tables"):
            getattr(lib, f"{name}_{suf}").restype = cint
        for name in ("kan_tables", "kan_tables_backward"):
            getattr(lib, f"{name}_{suf}").restype = None
        # B, I, O, K, G, x, lo, scale, knots, sih, P, coef, sp, sb, bias, T, SBt, y, threads
        getattr(lib, f"kan_layer_forward_{suf}").argtypes = [*locate, *[ptr] * 8, cint]
        # ... P, coef, sp, sb, T, SBt, gy, gx, gT, gSBt, gcoef, gsp, gsb, gbias, threads
        getattr(lib, f"kan_layer_backward_{suf}").argtypes = [*locate, *[ptr] * 14, cint]
        # L, dims, B, K, Gs, x, target, layer ptrs, work ptrs, diff, ga, gb, gT, gSBt, threads
        getattr(lib, f"kan_network_mse_{suf}").argtypes = [i64, ptr, i64, i64, ptr, *[ptr] * 9,
                                                           cint]
        # L, dims, B, K, Gs, x, layer ptrs, ws, y, threads
        getattr(lib, f"kan_network_forward_{suf}").argtypes = [i64, ptr, i64, i64, ptr,
                                                               *[ptr] * 4, cint]
        # L, dims, B, K, Gs, x, layer ptrs, ws, gy, gx, grad ptrs, ga, gb, gT, gSBt, threads
        getattr(lib, f"kan_network_backward_{suf}").argtypes = [i64, ptr, i64, i64, ptr,
                                                                *[ptr] * 10, cint]
        for name in ("kan_layer_forward", "kan_layer_backward", "kan_network_mse",
                     "kan_network_forward", "kan_network_backward"):
            getattr(lib, f"{name}_{suf}").restype = cint


def _load() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (looked for $CC, cc and gcc)")
    path = _build(cc)
    lib = ctypes.CDLL(str(path))
    if lib.kan_kernel_abi() != _ABI:
        raise RuntimeError("the cached kernel library is from another version")
    _declare(lib)
    _state["path"] = str(path)
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernel library, built on first call; ``None`` where it is not used
    (``KANPLATFORM_KERNEL=torch`` or ``triton``) or cannot be built (then one warning says
    why, and the PyTorch path runs instead).

    Raises:
        RuntimeError: under ``KANPLATFORM_KERNEL=c`` when the library cannot be built.
    """
    mode = kernel_mode()
    if mode in ("torch", "triton"):
        return None
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                try:
                    _state["lib"] = _load()
                except Exception as exc:  # noqa: BLE001 - any build failure means "fall back"
                    _state["lib"] = None
                    _state["error"] = f"{type(exc).__name__}: {exc}"
                    if mode == "auto":
                        warnings.warn(
                            "kanplatform: the compiled KAN kernel is not available, using the "
                            f"(slower) PyTorch path: {_state['error']}. Install a C compiler "
                            f"(gcc) or set {KERNEL_ENV}=torch to silence this.",
                            RuntimeWarning,
                            stacklevel=2,
                        )
    lib = _state["lib"]
    if lib is None and mode == "c":
        raise RuntimeError(
            f"{KERNEL_ENV}=c but the compiled KAN kernel cannot be built: {_state['error']}. "
            f"Install a C compiler (gcc) or use {KERNEL_ENV}=auto"
        )
    return lib  # type: ignore[return-value]


def _loaded() -> ctypes.CDLL:
    """The library :func:`library` built, for the wrappers below (their callers checked it)."""
    lib = _state.get("lib")
    if lib is None:
        raise RuntimeError("the compiled KAN kernel is not loaded: call ckernel.library() first")
    return lib  # type: ignore[return-value]


def describe() -> dict[str, object]:
    """What the kernels are here: ``{"mode", "compiled", "path", "openmp", "vector_bits",
    "error"}`` (builds the library first if the mode allows)."""
    mode = kernel_mode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reason is returned instead
        lib = library() if mode != "c" else _try_required()
    return {
        "mode": mode,
        "compiled": lib is not None,
        "path": _state.get("path") if lib is not None else None,
        "openmp": bool(lib.kan_kernel_openmp()) if lib is not None else None,
        "vector_bits": 8 * lib.kan_kernel_vector_bytes() if lib is not None else None,
        "error": None if lib is not None else (library_error() or f"{KERNEL_ENV}={mode}"),
    }


def _try_required() -> ctypes.CDLL | None:
    try:
        return library()
    except RuntimeError:
        return None


def library_error() -> str | None:
    """Why the library could not be built (after :func:`library` returned ``None``)."""
    return _state.get("error")  # type: ignore[return-value]


def supports(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels can take these tensors: CPU, one float32/float64 dtype."""
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.dtype == dtype for t in tensors
    )


# ---- wrappers: shapes as in csrc/spline_body.h; every tensor must be contiguous --------------

_BLOCK_BYTES = 1 << 18  # the per-sample rows (y or grad y) of a block of samples
_PER_INTERVAL = 32  # samples per block per grid interval at least (the tables' reuse)


_local = threading.local()


def _workspace(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised ``shape`` tensor in a buffer this thread keeps across calls under
    ``name``. The tables of a large layer are tens of MB: a fresh allocation of that size is a
    fresh ``mmap`` whose first touch page-faults on every call (it cost as much as the
    arithmetic); reused, it stays mapped and cached. Valid until the next request of ``name``.
    The view of each shape is kept too: small models call this thousands of times a second."""
    store = _local.__dict__.setdefault("buffers", {})
    entry = store.get((name, dtype))
    if entry is not None and shape in entry[1]:
        return entry[1][shape]
    numel = math.prod(shape)
    if entry is None or entry[0].numel() < numel:
        entry = (torch.empty(numel, dtype=dtype), {})
        store[(name, dtype)] = entry
    view = entry[1][shape] = entry[0][:numel].view(shape)
    return view


def release_workspace() -> None:
    """Free this thread's kernel workspace buffers (they are reallocated when next needed)."""
    _local.__dict__.pop("buffers", None)


def _p(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _suffix(t: torch.Tensor) -> str:
    return "f32" if t.dtype == torch.float32 else "f64"


def _threads(work: int) -> int:
    """OpenMP threads for a call: 1 for small work, else torch's count capped by the CPUs this
    process may use (read once: affinity and cgroup quota), since a thread more than there
    are CPUs makes every parallel region wait for a descheduled sibling."""
    if work < 1 << 16:
        return 1
    cpus = _state.get("cpus")
    if cpus is None:
        from kanplatform._util.cpus import available_cpus

        cpus = _state["cpus"] = available_cpus()
    return max(1, min(torch.get_num_threads(), int(cpus)))


def _locate_args(x: torch.Tensor, plan, n_out: int, k: int) -> list:  # noqa: ANN001
    n_b, n_in = x.shape
    g = plan.polys.shape[1]
    return [n_b, n_in, n_out, k + 1, g, _p(x), _p(plan.lo), _p(plan.scale), _p(plan.knots),
            _p(plan.start_inv_h)]


def _block(x: torch.Tensor, n_out: int, g: int, threads: int, split: bool) -> int:
    """Samples per block: their rows of ``y`` / ``grad y`` fill about ``_BLOCK_BYTES``, or
    more on fine grids, so that each table row loaded serves ~``_PER_INTERVAL`` samples
    (``split``: and every thread gets a block)."""
    n_b = x.shape[0]
    block = max(16, _BLOCK_BYTES // (n_out * x.element_size()), _PER_INTERVAL * g)
    if split:
        block = min(block, -(-n_b // threads))
    return max(1, min(block, n_b))


def _check(rc: int) -> None:
    if rc != 0:
        raise MemoryError("kanplatform's KAN kernel could not allocate its scratch memory")


def forward(x: torch.Tensor, plan, tables: torch.Tensor, y: torch.Tensor, k: int) -> None:  # noqa: ANN001
    """``y += spline term`` of ``x (B, I)`` with ``tables (I * G, k + 1, O)`` on ``plan``'s grid."""
    lib = _loaded()
    n_b, n_in = x.shape
    n_out = y.shape[1]
    threads = _threads(n_b * n_in * n_out)
    _check(getattr(lib, f"kan_forward_{_suffix(x)}")(
        *_locate_args(x, plan, n_out, k), _p(tables), _p(y),
        _block(x, n_out, plan.polys.shape[1], threads, True), threads,
    ))


def backward_x(x: torch.Tensor, plan, tables: torch.Tensor, grad_y: torch.Tensor,  # noqa: ANN001
               k: int) -> torch.Tensor:
    """The spline term's gradient w.r.t. ``x``: ``(B, I)``."""
    lib = _loaded()
    n_b, n_in = x.shape
    n_out = grad_y.shape[1]
    gx = torch.empty_like(x)
    threads = _threads(n_b * n_in * n_out)
    _check(getattr(lib, f"kan_backward_x_{_suffix(x)}")(
        *_locate_args(x, plan, n_out, k), _p(tables), _p(grad_y), _p(gx),
        _block(x, n_out, plan.polys.shape[1], threads, True), threads,
    ))
    return gx


def backward_tables(x: torch.Tensor, plan, grad_y: torch.Tensor, k: int) -> torch.Tensor:  # noqa: ANN001
    """The gradient w.r.t. the tables: ``(I * G, k + 1, O)``."""
    lib = _loaded()
    n_b, n_in = x.shape
    n_out = grad_y.shape[1]
    g = plan.polys.shape[1]
    gt = _workspace("grad_tables", (n_in * g, k + 1, n_out), x.dtype)
    threads = _threads(n_b * n_in * n_out)
    _check(getattr(lib, f"kan_backward_tables_{_suffix(x)}")(
        *_locate_args(x, plan, n_out, k), _p(grad_y), _p(gt),
        _block(x, n_out, g, threads, False), threads,
    ))
    return gt


def tables(coef: torch.Tensor, sc: torch.Tensor, polys: torch.Tensor,
           name: str = "tables") -> torch.Tensor:
    """Per-interval monomial tables ``(I * G, k + 1, O)`` from ``coef (I, G + k, O)``, the
    spline scales ``sc (I, O)`` and the interval polynomials ``polys (I, G, k + 1, k + 1)``.

    The result lives in this thread's workspace ``name``: valid until the next call with that
    name (callers use it and drop it within one forward or backward)."""
    lib = _loaded()
    n_in, _, n_out = coef.shape
    g, kp1 = polys.shape[1], polys.shape[2]
    out = _workspace(name, (n_in * g, kp1, n_out), coef.dtype)
    getattr(lib, f"kan_tables_{_suffix(coef)}")(
        n_in, n_out, kp1, g, _p(coef), _p(sc), _p(polys), _p(out),
        _threads(n_in * g * kp1 * kp1 * n_out),
    )
    return out


def tables_backward(coef: torch.Tensor, sc: torch.Tensor, polys: torch.Tensor,
                    grad_tables: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. ``coef`` and ``sc`` from the tables' gradient."""
    lib = _loaded()
    n_in, _, n_out = coef.shape
    g, kp1 = polys.shape[1], polys.shape[2]
    gcoef, gsc = torch.empty_like(coef), torch.empty_like(sc)
    getattr(lib, f"kan_tables_backward_{_suffix(coef)}")(
        n_in, n_out, kp1, g, _p(coef), _p(sc), _p(polys), _p(grad_tables), _p(gcoef), _p(gsc),
        _threads(n_in * g * kp1 * kp1 * n_out),
    )
    return gcoef, gsc
