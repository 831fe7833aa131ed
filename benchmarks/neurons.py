"""Forward+backward time and memory of every neuron and backend, against SpikingJelly and snnTorch.

    python benchmarks/neurons.py                 # CPU: T in {4, 8, 16}, 2^20 neurons
    python benchmarks/neurons.py --device cuda   # adds the Triton kernels
    python benchmarks/neurons.py --out table.md  # also write the markdown table
    python benchmarks/neurons.py --T 8 --only compiled cpu   # the generic path against the hand-written one

Backends: ``reference`` (the plain loop), ``cpu`` / ``triton`` (hand-written kernels of LIF, PLIF,
DA-LIF, AR-LIF) and ``compiled`` (the generic path: the step function compiled over the sequence,
forward and backward derived; the only fused path of CLIF and GLIF).

All rows run in one process on the same input ``[T, 2^20]`` float32 with the loss
``(spikes * w).sum()``: median of ``--repeats`` timed runs after ``--warmup`` runs. Ratios are
to SpikingJelly's ``LIFNode(step_mode='m', v_reset=None)`` (its fastest backend here) and to one
copy of the input into a preallocated buffer (the bandwidth floor). "warm-up s" is the first call
in this process: for the compiled CPU path it includes compiling, or loading from inductor's
on-disk cache.

Allocator: a fresh CPU output of this size is mapped from the OS by glibc and costs a page fault
per 4 KiB on first touch, about 6x the time of writing into warm memory (measured here), which
dominates every row. ``--allocator reuse`` (the default) re-runs this script with glibc's mmap and
trim thresholds raised so that freed memory is reused, the usual advice for PyTorch training on
CPU (like jemalloc or tcmalloc); ``--allocator system`` leaves the allocator as it is. Both
settings apply to every row of one run alike.

Memory: on CUDA, the peak allocated during forward+backward above inputs and outputs. On CPU,
torch has no allocator statistics, so we report the bytes saved for backward (through
``torch.autograd.graph.saved_tensors_hooks``, distinct storages, excluding the input itself).
Both are in units of one float32 tensor of the input's size.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from typing import Callable, Optional

import torch
from allocator import reuse_freed_memory  # benchmarks/allocator.py (script folder on sys.path)

from adalif.definitions import CLIF, GLIF
from adalif.neurons import ARLIF, DALIF, LIF, PLIF


def _spikingjelly():
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except ImportError:
        return None
    return functional, neuron, surrogate


def _snntorch():
    try:
        import snntorch
    except ImportError:
        return None
    return snntorch


def sj_fastest_backend(neuron_mod, device: str) -> str:
    """0.0.0.0.14 takes ``backend=`` (torch, cupy); 2.0.0 chooses its kernel itself ("auto")."""
    node = neuron_mod.LIFNode(step_mode="m")
    if not hasattr(node, "supported_backends"):
        return "auto"
    return "cupy" if device == "cuda" and "cupy" in node.supported_backends else "torch"


def candidates(device: str, T: int):
    """(name, builder) pairs; a builder returns a callable x -> spikes."""
    rows = []
    backends = ["reference", "cpu", "compiled"] if device == "cpu" else ["reference", "triton", "compiled"]
    sj = _spikingjelly()
    if sj is not None:
        functional, neuron, surrogate = sj
        be = sj_fastest_backend(neuron, device)
        from importlib.metadata import version

        be = f"{version('spikingjelly')}, {be}"  # 0.0.0.0.14 (the test oracle) or 2.0.0 (PYTHONPATH=its folder)

        def sj_node(cls, **kw):
            def build():
                chosen = {} if be.endswith("auto") else {"backend": be.split(", ")[1]}
                node = cls(step_mode="m", **chosen, surrogate_function=surrogate.Sigmoid(alpha=4.0), **kw).to(device)

                def run(x):
                    functional.reset_net(node)
                    return node(x)

                return run, list(node.parameters())

            return build

        rows.append((f"SpikingJelly LIFNode soft ({be})", sj_node(neuron.LIFNode, v_reset=None)))
        rows.append((f"SpikingJelly LIFNode hard ({be})", sj_node(neuron.LIFNode)))
        rows.append((f"SpikingJelly ParametricLIFNode ({be})", sj_node(neuron.ParametricLIFNode)))
    snn = _snntorch()
    if snn is not None:
        def snn_leaky():
            leaky = snn.Leaky(beta=0.5, spike_grad=snn.surrogate.atan()).to(device)

            def run(x):
                mem = leaky.init_leaky()
                out = []
                for x_t in x:
                    spk, mem = leaky(x_t, mem)
                    out.append(spk)
                return torch.stack(out)

            return run, []

        rows.append(("snnTorch Leaky (loop)", snn_leaky))
    neurons = [
        ("LIF soft", lambda b: LIF(v_reset=None, backend=b)),
        ("LIF hard", lambda b: LIF(backend=b)),
        ("PLIF", lambda b: PLIF(backend=b)),
        ("DALIF", lambda b: DALIF(backend=b)),
        ("ARLIF", lambda b: ARLIF(backend=b)),
        # Derived from their definitions: no hand-written kernel, so reference and compiled only.
        ("CLIF", lambda b: CLIF(backend=b)),
        ("GLIF", lambda b: GLIF(granularity="layer", T=T, backend=b)),
    ]
    for b in backends:
        for name, make in neurons:
            if name in ("CLIF", "GLIF") and b not in ("reference", "compiled"):
                continue

            def build(make=make, b=b):
                n = make(b).to(device)
                return n, list(n.parameters())

            rows.append((f"adalif {name} [{b}]", build))
    return rows


def measure(run: Callable, params, x: torch.Tensor, w: torch.Tensor, warmup: int, repeats: int):
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def once():
        xr = x.detach().requires_grad_(True)
        s = run(xr)
        torch.autograd.grad((s * w).sum(), [xr, *params])

    start = time.perf_counter()
    once()
    sync()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        once()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        once()
        sync()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def saved_bytes(run: Callable, x: torch.Tensor) -> int:
    """Bytes of distinct storages saved for backward, other than the input's."""
    seen = {x.untyped_storage().data_ptr()}
    total = 0

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    xr = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(xr)
    return total


def peak_cuda_bytes(run: Callable, params, x, w) -> int:
    xr = x.detach().requires_grad_(True)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    s = run(xr)
    torch.autograd.grad((s * w).sum(), [xr, *params])
    torch.cuda.synchronize()
    # Above inputs and outputs: the input, the spikes and the input's gradient are excluded.
    return torch.cuda.max_memory_allocated() - base - 2 * x.numel() * x.element_size()


def copy_time(x: torch.Tensor, repeats: int) -> float:
    buf = torch.empty_like(x)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for _ in range(repeats + 2):
        sync()
        start = time.perf_counter()
        buf.copy_(x)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main(argv: Optional[list] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--T", type=int, nargs="+", default=[4, 8, 16], help="time steps to sweep")
    parser.add_argument("--neurons", type=int, default=1 << 20, help="neurons per time step")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--allocator", choices=["reuse", "system"], default="reuse",
                        help="reuse: raise glibc's mmap/trim thresholds so freed memory is reused (default)")
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--only", nargs="+", default=None,
                        help="run only the rows whose name contains one of these words (e.g. compiled CLIF)")
    args = parser.parse_args(argv)
    if args.allocator == "reuse":
        reuse_freed_memory()
    torch.manual_seed(0)
    device = args.device
    header = (
        f"Device: {torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}; "
        f"{args.neurons} neurons, float32, median of {args.repeats} after {args.warmup} warm-up runs, "
        f"allocator: {args.allocator}.\n"
    )
    mem_label = "peak mem (x input)" if device == "cuda" else "saved for bwd (x input)"
    lines = [header, f"| T | implementation | fwd+bwd ms | / SJ LIF | / copy | warm-up s | {mem_label} |", "|---|---|---|---|---|---|---|"]
    for T in args.T:
        rows = candidates(device, T)
        if args.only:
            rows = [r for r in rows if any(word in r[0] for word in args.only) or r[0].startswith("SpikingJelly LIFNode soft")]
        x = torch.randn(T, args.neurons, device=device) * 1.5
        w = torch.randn_like(x)
        t_copy = copy_time(x, args.repeats)
        results = []
        for name, build in rows:
            run, params = build()
            first, median = measure(run, params, x, w, args.warmup, args.repeats)
            if device == "cuda":
                mem = peak_cuda_bytes(run, params, x, w)
            else:
                mem = saved_bytes(run, x)
            results.append((name, median, first, mem / (x.numel() * 4)))
            print(f"T={T:<3} {name:<45} {median * 1e3:9.2f} ms  (first call {first:.2f} s)", file=sys.stderr)
        sj = next((m for n, m, *_ in results if n.startswith("SpikingJelly LIFNode soft")), None)
        lines.append(f"| {T} | one copy of the input | {t_copy * 1e3:.2f} | | 1.00 | | |")
        for name, median, first, mem in results:
            ratio = f"{median / sj:.2f}" if sj else "n/a"
            lines.append(f"| {T} | {name} | {median * 1e3:.2f} | {ratio} | {median / t_copy:.1f} | {first:.2f} | {mem:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)
    return table


if __name__ == "__main__":
    main()
