"""CPU fast path: the whole time loop fused into one pass per direction, in plain C.

The kernels (``native.c`` and ``native_template.h`` beside this file) are compiled by the
machine's C compiler the first time a process needs them, about 1.5 s, into a per-user cache
folder, and every later process loads the compiled library in milliseconds (:func:`library`).
They include no torch header, so the build needs only a C compiler, and they are called through
ctypes on the tensors' memory. We write them by hand because no library fuses a custom recurrence
on the CPU (SpikingJelly's CPU path is the eager loop), and because ``torch.compile`` of the same
loops, which adalif used before, cost 5-40 s per neuron family and process (docs/kernels.md).

Exactness: the C follows the reference loops' expressions in their order, in the input's float
type (float32 for half inputs, float64 for float64), with no fused multiply-add
(``-ffp-contract=off``), so every product and sum rounds as torch's does and the spikes are the
reference's (tests/test_kernels.py). The backward recurrences are derived in docs/kernels.md.

Layouts: ``x`` ``[T, O, P, I]`` where ``P`` indexes the parameters (1 per layer, C per channel)
and the state is ``[O, P, I]``; the functions here have the signatures of :mod:`.triton_impl`'s.

The build: the library's name holds a hash of the C source, the compiler's version, the flags
and the processor's features, so a changed source or another machine sharing the folder builds
its own. Each build writes a private temporary file and renames it into place atomic, so
processes building at once never see a half-written library. No compiler, or a failed build,
makes the ``cpu`` backend unavailable with the reason (:func:`unavailable_reason`): the automatic
choice then uses the reference loop and says why once.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import List, Optional, Tuple

import torch

_HERE = Path(__file__).resolve().parent
SOURCES = (_HERE / "native.c", _HERE / "native_template.h", _HERE / "native_math.h")
#: Whether torch's float32 sigmoid is SLEEF's vectorised one with fused multiply-adds (its AVX2 and
#: AVX-512 builds): the kernels then evaluate that same function (native_math.h, sleef_exp).
SLEEF_SIGMOID = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
#: The C compiler's flags. No ``-ffast-math`` and no contraction of a multiply and an add into one
#: fused multiply-add: the reference rounds both. (No traps and no errno change no result; they let
#: gcc vectorise loops with selects and inline ``floor``.) ``-march=native`` is safe because the
#: library's name includes the processor's features.
CFLAGS = ("-O3", "-march=native", "-std=c11", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-fPIC",
          "-shared") + (("-DADALIF_SLEEF=1",) if SLEEF_SIGMOID else ())
#: Where compiled libraries are kept: ``$ADALIF_CACHE_DIR``, else ``$XDG_CACHE_HOME/adalif``, else
#: ``~/.cache/adalif`` (a ``kernels`` folder inside).
CACHE_ENV = "ADALIF_CACHE_DIR"
#: Neurons per thread below which fewer threads run the sequence (a thread hand-off costs more).
MIN_NEURONS_PER_THREAD = 1 << 14
_KINDS = {"rectangle": 0, "triangle": 1, "sigmoid": 2, "atan": 3, "dspike": 4}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def cache_dir() -> Path:
    """The folder of compiled kernels (see :data:`CACHE_ENV`; this user's folder in the temporary
    folder once that one turned out not to be writable)."""
    if _FALLBACK:
        return _FALLBACK[0]
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "adalif")
    return Path(root) / "kernels"


_FALLBACK: List[Path] = []


def _private_temporary_folder() -> Path:
    """``$TMPDIR/adalif-UID/kernels``, refused unless this user owns it and no one else may write
    to it (a library planted there by another user would run in this process)."""
    folder = Path(tempfile.gettempdir()) / f"adalif-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022 or not folder.is_dir() or folder.is_symlink():
        raise RuntimeError(f"the cache folder is not writable and {folder} is not this user's alone (owner "
                           f"{st.st_uid}, mode {oct(st.st_mode & 0o777)}); set {CACHE_ENV} to a folder of yours")
    return folder / "kernels"


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_features() -> str:
    # The processor's instruction sets, part of the library's name (-march=native code may not run
    # on another processor that shares the cache folder).
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler_version(cc: str) -> str:
    if cc not in _VERSIONS:
        _VERSIONS[cc] = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    return _VERSIONS[cc]


_VERSIONS = {}


def _library_path(cc: str, source: bytes, name: str) -> Path:
    digest = hashlib.sha256()
    for part in (source, _compiler_version(cc).encode(), " ".join(CFLAGS).encode(), _cpu_features().encode(),
                 platform.machine().encode()):
        digest.update(part)
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    return cache_dir() / f"{name}-{digest.hexdigest()[:16]}{suffix}"


def _run_all(commands: List[List[str]]) -> Optional[str]:
    """Run the commands at once; the first error line of the first that failed, or None."""
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    failures = []
    for process in running:
        _, err = process.communicate()
        if process.returncode != 0:
            failures.append(next((line for line in err.splitlines() if "error" in line), err.strip()[:200]))
    return failures[0] if failures else None


def _compile(cc: str, source: Path, out: str) -> None:
    """``source`` -> shared library ``out``, with OpenMP if the compiler has it. This package's
    native.c is compiled as two objects at once (float32 and float64), halving the wait on 2 cores."""
    for openmp in (["-fopenmp"], []):  # a compiler without OpenMP: one thread
        if source == SOURCES[0]:
            objects = [f"{out}.{part}.o" for part in ("f32", "f64")]
            flags = [f for f in CFLAGS if f != "-shared"]
            error = _run_all([[cc, *flags, *openmp, f"-DADALIF_ONLY_{part.upper()}", "-c", "-o", obj, str(source)]
                              for part, obj in zip(("f32", "f64"), objects)])
            if error is None:
                error = _run_all([[cc, "-shared", *openmp, "-o", out, *objects, "-lm"]])
            for obj in objects:
                if os.path.exists(obj):
                    os.unlink(obj)
        else:
            error = _run_all([[cc, *CFLAGS, *openmp, "-o", out, str(source), "-lm"]])
        if error is None:
            return
    raise RuntimeError(f"{Path(cc).name} failed to build {source.name}: {error}")


def _build(cc: str, source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.stem + ".", suffix=".tmp")
    os.close(fd)
    try:
        _compile(cc, source, tmp)
        # The library's checksum first, then the library, each renamed into place (atomic): a
        # concurrent build replaces complete files with equal ones, and a library damaged later
        # (a truncated copy) fails the check at load and is built again instead of crashing.
        fd, check = tempfile.mkstemp(dir=target.parent, prefix=target.stem + ".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(_digest_file(Path(tmp)))
        os.replace(check, _checksum_path(target))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _checksum_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _intact(path: Path) -> bool:
    try:
        return _checksum_path(path).read_text().strip() == _digest_file(path)
    except OSError:
        return False


def load_c(name: str, source: Optional[str] = None) -> ctypes.CDLL:
    """The library built from C ``source`` (text; None: this package's native.c), from the cache
    folder, building it first if it is not there (the module docstring: names, atomic builds).
    Raises RuntimeError (no compiler, a failed build) or OSError."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang; or $CC) on PATH")
    text = b"".join(p.read_bytes() for p in SOURCES) if source is None else source.encode()
    for attempt in range(2):
        path = _library_path(cc, text, name)
        try:
            if not _intact(path):
                if source is None:
                    _build(cc, SOURCES[0], path)
                else:  # the generated source beside its library, written atomically too
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".c")
                    with os.fdopen(fd, "w") as f:
                        f.write(source)
                    try:
                        _build(cc, Path(tmp), path)
                    finally:
                        os.unlink(tmp)
            return ctypes.CDLL(str(path))
        except OSError as err:
            if attempt or err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            _FALLBACK.append(_private_temporary_folder())  # a cache folder we may not write to
    raise AssertionError("unreachable")


_LOCK = threading.Lock()
_STATE = {"lib": None, "reason": None}


def library() -> ctypes.CDLL:
    """The compiled kernels, built on first use (raises RuntimeError with the reason when they cannot be)."""
    lib = _STATE["lib"]
    if lib is not None:
        return lib
    with _LOCK:
        if _STATE["lib"] is None:
            if _STATE["reason"] is not None:
                raise RuntimeError(_STATE["reason"])
            try:
                _STATE["lib"] = _load()
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                _STATE["reason"] = f"the C kernels of the cpu backend cannot be built or loaded here ({err})"
                raise RuntimeError(_STATE["reason"]) from err
    return _STATE["lib"]


def _load() -> ctypes.CDLL:
    lib = load_c("adalif_cpu")
    _declare(lib)
    return lib


def unavailable_reason() -> Optional[str]:
    """Why the cpu backend cannot run in this process, or None; builds the kernels if needed."""
    try:
        library()
    except RuntimeError as err:
        return str(err)
    return None


def known_unavailable_reason() -> Optional[str]:
    """What :func:`unavailable_reason` found, without building (for code being traced by
    ``torch.compile``, which must not run a compiler): None when not yet tried."""
    return _STATE["reason"]


# -- ctypes declarations --------------------------------------------------------------------------
_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


def _declare(lib: ctypes.CDLL) -> None:
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        R = real
        sig = {
            "lif_forward": [_P] * 9 + [_I64] * 7 + [R, R, _INT, R, R, _INT, _INT, _INT, _INT, _I64, _I64, _INT],
            "lif_backward": [_P] * 13 + [_I64] * 5 + [R, R, _INT, R, _INT, R, R, _INT, _I64, _I64, _INT],
            "arlif_forward": [_P] * 11 + [_I64] * 2 + [R, R, R, R] + [_INT] * 6 + [_I64, _I64, _INT],
            "arlif_backward": [_P] * 17 + [_I64] * 2 + [R, R, R, R, _INT, R, R] + [_INT] * 4 + [_I64, _I64, _INT],
        }
        for name, argtypes in sig.items():
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes, fn.restype = argtypes, None


def _run(name: str, dtype: torch.dtype, n: int, *args, span: Tuple[int, int] = None) -> None:
    """Run kernel ``name`` over neurons ``[0, n)`` (or ``span``) on torch's intra-op threads. Tensor arguments
    (contiguous CPU tensors of the kernel's dtype) are passed as pointers while ``args`` keeps them
    alive; None is a null pointer.

    Threads: the kernels parallelise with OpenMP, and their library names ``libgomp.so.1`` as torch's
    does, so in a process that has loaded torch's the dynamic loader binds ours to it: one thread pool
    for torch and adalif. (Threads of our own, say a Python pool, would compete with torch's OpenMP
    workers, which spin for a while after each op: measured 2x slower on 2 cores.)"""
    fn = getattr(library(), f"{name}_{'f64' if dtype == torch.float64 else 'f32'}")
    for arg in args:
        if isinstance(arg, torch.Tensor) and not (arg.dtype == dtype and arg.is_contiguous() and arg.device.type == "cpu"):
            raise ValueError(f"adalif cpu kernel {name}: expected contiguous CPU {dtype} tensors, got {arg.dtype} "
                             f"{'contiguous' if arg.is_contiguous() else 'strided'} on {arg.device}")
    lo, hi = span or (0, n)
    fn(*(arg.data_ptr() if isinstance(arg, torch.Tensor) else arg for arg in args), lo, hi, threads_for(hi - lo))


#: Two of torch's float32 vectors (``2 * Vectorized<float>::size()``) on the builds whose sigmoid is
#: SLEEF's; and ``at::internal::GRAIN_SIZE``, the size above which an op splits among threads.
_TWO_VECTORS = {"AVX512": 32, "AVX2": 16}.get(torch.backends.cpu.get_cpu_capability())
_GRAIN = 32768


def scalar_ranges(n: int) -> List[Tuple[int, int]]:
    """Where torch's float32 sigmoid (and its other SLEEF functions) of a contiguous ``n``-element
    tensor is its scalar function, libm's, as ``(lo, hi)`` ranges of elements; empty where it is one
    function throughout (a build whose sigmoid is not SLEEF's).

    Hand-written because torch has no way to ask, and it decides a result: torch's vectorised unary
    loop (``vectorized_loop`` in ATen's ``cpu/Loops.h``) computes two vectors at a time and hands the
    elements left over to the scalar function; a tensor above ``GRAIN_SIZE`` elements is first split
    into one share per thread (``at::parallel_for``), each with its own leftover. SLEEF's and libm's
    results differ in the last bit for a few percent of inputs, so the reference loop's sigmoid of
    one step, and the spikes and states that follow, depend on a neuron's position. The kernels run
    SLEEF's function, then libm's over these ranges (a test checks the split against torch.sigmoid
    at sizes and thread counts around each boundary)."""
    if not SLEEF_SIGMOID:
        return []
    threads = torch.get_num_threads()
    shares = [(0, n)]
    if n > _GRAIN and threads > 1:
        size = -(-n // min(threads, -(-n // _GRAIN)))
        shares = [(lo, min(n, lo + size)) for lo in range(0, n, size)]
    return [(lo + (hi - lo) // _TWO_VECTORS * _TWO_VECTORS, hi) for lo, hi in shares if (hi - lo) % _TWO_VECTORS]


def sigmoid_spans(n: int, dtype: torch.dtype):
    """``(libm, (lo, hi))`` for each call of a kernel that evaluates sigmoids over ``n`` neurons
    (its ``libm`` argument: whether they are libm's), so that it evaluates them as torch does:
    SLEEF's over ``[0, n)``, then libm's again over :func:`scalar_ranges` (float32; the kernels'
    float64 sigmoid is libm's throughout). A neuron's result depends only on its own inputs, so the
    second call overwrites the first's on those neurons."""
    yield 0, (0, n)
    if dtype == torch.float32:
        for span in scalar_ranges(n):
            yield 1, span


def layout_reason(x: torch.Tensor, state) -> Optional[str]:
    """Why kernels that evaluate torch's sigmoid cannot give its result at every position for this
    input and state (None when they can): the positions are memory positions, and the kernels
    follow the contiguous layout's."""
    if SLEEF_SIGMOID and x.dtype == torch.float32 and not (
            x[0].is_contiguous() and all(s.is_contiguous() for s in state or ())):
        return "the input or state is not contiguous (call .contiguous() on it)"
    return None


def _run_sigmoids(name: str, dtype: torch.dtype, n: int, *args) -> None:
    """Run an AR-LIF kernel (its last argument: ``libm``) as :func:`sigmoid_spans` says."""
    for libm, span in sigmoid_spans(n, dtype):
        _run(name, dtype, n, *args, libm, span=span)


def threads_for(n: int) -> int:
    """The OpenMP threads for ``n`` neurons: torch's intra-op count, fewer for small sequences."""
    return max(1, min(torch.get_num_threads(), n // MIN_NEURONS_PER_THREAD))


def _in(t: torch.Tensor, cd: torch.dtype) -> torch.Tensor:
    return t.to(cd).contiguous()


ROUNDING = {torch.bfloat16: 1, torch.float16: 2}


def round_mode(dtype: torch.dtype) -> int:
    """How the kernels round the state after each step: to bfloat16 (1), float16 (2), not (0)."""
    return ROUNDING.get(dtype, 0)


def surrogate_args(sg):
    """``(kind, scale, tanh(scale / 2))``: a built-in surrogate as the C and Triton kernels take it."""
    return _KINDS[sg.kind], sg.scale, math.tanh(sg.scale / 2)


# -- LIF family -----------------------------------------------------------------------------------
def lif_forward(x, v0, alpha, beta, gamma, v_threshold, v_reset, hard, save_h, charge="affine", k=None, tau=0.0,
                one_minus=0.0):
    """``charge``: as :func:`adalif.kernels.ops.lif_forward` ("affine" or SpikingJelly's form "1"-"4")."""
    T, O, P, I = x.shape
    n = O * P * I
    cd = compute_dtype(x.dtype)
    xc = _in(x, cd)
    spikes = torch.empty(x.shape, dtype=cd)
    h_seq = torch.empty(x.shape if save_h else (0,), dtype=cd)
    v = torch.empty((O, P, I), dtype=cd)
    params = [_in(p.reshape(-1), cd) for p in (alpha, beta, gamma, alpha if k is None else k)]
    _run("lif_forward", cd, n, xc, _in(v0, cd), *params, spikes, h_seq, v,
         T, n, I, *(p.numel() for p in params), float(v_threshold), float(v_reset), int(hard),
         float(tau or 1.0), float(one_minus), 0 if charge == "affine" else int(charge), int(tau > 0), int(save_h),
         round_mode(x.dtype))
    return spikes.to(x.dtype), h_seq, v


def lif_backward(grad_s, grad_h, grad_v, h_seq, x, v0, alpha, beta, v_threshold, v_reset, hard, detach, sg,
                 need_alpha, need_beta, need_gamma):
    T, O, P, I = x.shape
    n = O * P * I
    cd = h_seq.dtype
    grad_x = torch.empty(x.shape, dtype=cd)
    grad_v0 = torch.empty((O, P, I), dtype=cd)
    acc = [torch.empty((O, P, I), dtype=cd) if need else None for need in (need_alpha, need_beta, need_gamma)]
    a, b = _in(alpha.reshape(-1), cd), _in(beta.reshape(-1), cd)
    kind, sg_a, sg_c = surrogate_args(sg)
    _run("lif_backward", cd, n, _in(grad_s, cd), None if grad_h is None else _in(grad_h, cd),
         _in(grad_v, cd), h_seq.contiguous(), _in(x, cd) if need_alpha else None,
         _in(v0, cd), a, b, grad_x, grad_v0, *acc,
         T, n, I, a.numel(), b.numel(), float(v_threshold), float(v_reset), int(hard), float(not detach),
         kind, sg_a, sg_c, round_mode(x.dtype))
    p = max(alpha.numel(), beta.numel())
    # Per-neuron accumulators reduced here by torch: deterministic, whatever the thread split.
    reduce = lambda t: t.sum(dim=(0, 2)) if t is not None else torch.zeros(p, dtype=cd)  # noqa: E731
    return grad_x.to(x.dtype), grad_v0, *(reduce(t) for t in acc)


# -- AR-LIF ---------------------------------------------------------------------------------------
def _functions_of_x(x, c, adaptive_reset, adaptive_threshold, carry_memory):
    """tanh(X), sigmoid(X) and sigmoid(cX), computed by torch as the reference computes them (None
    where an option is off): the spikes depend on them, so they must round as torch's do, one step at
    a time as the reference calls them (torch's result depends on an element's position in the
    tensor, :func:`scalar_ranges`). The sigmoids are left to the kernels (None) where theirs is
    torch's (:data:`SLEEF_SIGMOID`)."""
    def per_step(fn, scale=None):
        out = torch.empty_like(x)
        for t in range(x.shape[0]):
            fn(x[t] if scale is None else scale * x[t], out=out[t])
        return out

    tanh_x = per_step(torch.tanh) if adaptive_threshold else None
    if SLEEF_SIGMOID and x.dtype == torch.float32:
        return tanh_x, None, None
    sig_x = per_step(torch.sigmoid) if adaptive_reset else None
    gate = per_step(torch.sigmoid, c) if adaptive_reset and carry_memory else None
    return tanh_x, sig_x, gate


def arlif_forward(x, v0, m0, a, c, decay, v_threshold, adaptive_reset, adaptive_threshold, carry_memory, save):
    T = x.shape[0]
    n = x[0].numel()
    cd = compute_dtype(x.dtype)
    xc = _in(x, cd)
    spikes = torch.empty(x.shape, dtype=cd)
    h_seq = torch.empty(x.shape if save else (0,), dtype=cd)
    m_seq = torch.empty(x.shape if save and adaptive_reset else (0,), dtype=cd)
    v = torch.empty(x.shape[1:], dtype=cd)
    m = torch.empty(x.shape[1:], dtype=cd)
    tanh_a = torch.tanh(a.to(cd)).item()  # torch's tanh, as the reference's
    flags = (adaptive_reset, adaptive_threshold, carry_memory)
    _run_sigmoids("arlif_forward", cd, n, xc, *_functions_of_x(xc, c.to(cd), *flags), _in(v0, cd), _in(m0, cd),
                  spikes, h_seq, m_seq, v, m, T, n, tanh_a, c.to(cd).item(), float(decay), float(v_threshold),
                  *map(int, flags), int(save), round_mode(x.dtype))
    return spikes.to(x.dtype), h_seq, m_seq, v, m


def arlif_backward(grad_s, grad_h, grad_m_seq, grad_v, grad_m, h_seq, m_seq, x, m0, a, c, decay, v_threshold, sg,
                   adaptive_reset, adaptive_threshold, carry_memory):
    T = x.shape[0]
    n = x[0].numel()
    cd = h_seq.dtype
    xc = _in(x, cd)
    grad_x = torch.empty(x.shape, dtype=cd)
    grad_v0, grad_m0, acc_a, acc_c = (torch.empty(x.shape[1:], dtype=cd) for _ in range(4))
    kind, sg_a, sg_c = surrogate_args(sg)
    tanh_a = torch.tanh(a.to(cd))
    flags = (adaptive_reset, adaptive_threshold, carry_memory)
    _run_sigmoids("arlif_backward", cd, n, _in(grad_s, cd), None if grad_h is None else _in(grad_h, cd),
         None if grad_m_seq is None else _in(grad_m_seq, cd), _in(grad_v, cd), _in(grad_m, cd),
         h_seq.contiguous(), m_seq.contiguous() if adaptive_reset else None, xc,
         *_functions_of_x(xc, c.to(cd), *flags), _in(m0, cd), grad_x, grad_v0, grad_m0, acc_a, acc_c,
         T, n, tanh_a.item(), c.to(cd).item(), float(decay), float(v_threshold), kind, sg_a, sg_c, *map(int, flags))
    grad_a = (1 - tanh_a * tanh_a).reshape(()) * acc_a.sum()  # d tanh(a) / da, applied after the reduction
    return grad_x.to(x.dtype), grad_v0, grad_m0, grad_a, acc_c.sum()
