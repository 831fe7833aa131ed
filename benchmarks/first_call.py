"""What the fused CPU path costs on first use, on a fresh machine: compile time per neuron family,
and for every later layer shape (dynamic shapes: one graph per configuration, not per shape).

    python benchmarks/first_call.py            # every family
    python benchmarks/first_call.py CLIF GLIF  # only these

Runs in a new inductor cache folder (as on a fresh machine or CI), so nothing is loaded from an
earlier run. For each family, one layer's forward+backward on four shapes in turn (the first two
are ResNet-19 stage shapes at batch 8 and T = 4); "first" is the first call of that shape, "later"
the second call.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

SHAPES = [(4, 8, 128, 32, 32), (4, 8, 256, 16, 16), (4, 16, 512, 8, 8), (4, 3, 1000)]


def main() -> None:
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:  # a fresh cache: re-run this process with one
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp(prefix="inductor-fresh-"))
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    import torch

    from adalif.definitions import CLIF, GLIF
    from adalif.neurons import ARLIF, DALIF, LIF

    print(f"fresh inductor cache {os.environ['TORCHINDUCTOR_CACHE_DIR']}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")
    start = time.perf_counter()
    torch.compile(lambda a: a + 1)(torch.ones(3))
    print(f"inductor's own start-up (a one-op graph, paid once per machine and cache): "
          f"{time.perf_counter() - start:.1f} s\n")
    print("| family | path | shape [T, B, ...] | first call s | later call s |\n|---|---|---|---|---|")
    families = [("LIF", "cpu", lambda shape: LIF(backend="cpu")), ("DA-LIF", "cpu", lambda shape: DALIF(backend="cpu")),
                ("AR-LIF", "cpu", lambda shape: ARLIF(backend="cpu")),
                # definitions without hand-written kernels: the generic compiled path
                ("CLIF", "compiled", lambda shape: CLIF(backend="compiled")),
                ("GLIF", "compiled", lambda shape: GLIF(granularity="layer", T=shape[0], backend="compiled")),
                ("DA-LIF", "compiled", lambda shape: DALIF(backend="compiled"))]
    only = sys.argv[1:]
    for label, path, make in families:
        if only and label not in only:
            continue
        for shape in SHAPES:
            x = torch.randn(*shape, requires_grad=True)
            neuron = make(shape)
            times = []
            for _ in range(2):
                start = time.perf_counter()
                neuron(x).sum().backward()
                times.append(time.perf_counter() - start)
            print(f"| {label} | {path} | {list(shape)} | {times[0]:.2f} | {times[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
