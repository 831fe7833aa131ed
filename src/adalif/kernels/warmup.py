"""``adalif warmup``: pay the fast paths' one-time costs now, for every later process.

* The C kernels of LIF, PLIF, DA-LIF and AR-LIF (:mod:`.cpu`) are built into the cache folder
  (about 2 s, once per machine; later processes load them in milliseconds).
* Each neuron named that has no hand-written kernels (CLIF, GLIF, yours) runs once on the generic
  path (``backend="compiled"``) for each sequence length T and input rank asked for, forward and
  backward: its step translated to C and built (:mod:`.stepgen`), or, for a step the generator
  refuses, compiled by ``torch.compile`` into its on-disk caches. A later process then loads
  them (docs/benchmarks.md, "First call", measures both).
"""

from __future__ import annotations

import inspect
import time
from typing import Callable, List, Sequence

import torch

from . import cpu, dispatch, stepgen


def _shape(T: int, rank: int):
    if rank < 3:
        raise ValueError(f"--rank: a sequence is [T, B, ...], rank 3 or more; got {rank}")
    return (T, 2) + (4,) * (rank - 2)


def warmup(names: Sequence[str] = (), Ts: Sequence[int] = (4,), ranks: Sequence[int] = (3, 5),
           log: Callable[[str], None] = print) -> List[str]:
    """Build the C kernels, then compile each neuron in ``names`` (registered names) for every T in
    ``Ts`` and rank in ``ranks``. Returns the lines it logged."""
    from .. import definitions

    lines = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    for T in Ts:
        if T < 1:
            raise ValueError(f"--T: a sequence length is 1 or more; got {T}")
    shapes = [_shape(T, rank) for T in Ts for rank in ranks]
    chosen = [definitions.get(name) for name in names]  # an unknown name raises before any work
    start = time.perf_counter()
    reason = cpu.unavailable_reason()
    if reason is None:
        say(f"C kernels of {', '.join(dispatch.HAND_WRITTEN)}: ready in {time.perf_counter() - start:.1f} s "
            f"({cpu.library()._name})")
    else:
        say(f"C kernels: not available: {reason}")
    for d in chosen:
        if d.name in ("lif", "plif") + dispatch.HAND_WRITTEN:
            say(f"{d.name}: runs on the C kernels (nothing to compile)")
            continue
        cls = d.module_class()
        accepts = inspect.signature(cls.__init__).parameters
        for shape in shapes:
            # one layer of the neuron: per-layer parameters (the same code as per channel), T steps
            options = {"granularity": "layer"} if "granularity" in accepts else {}
            options.update({"T": shape[0]} if "T" in accepts else {})
            layer = cls(**options, backend="compiled")
            x = torch.randn(*shape, requires_grad=True)
            begin = time.perf_counter()
            layer(x).sum().backward()
            say(f"{d.name}: ready for T={shape[0]}, rank {len(shape)} in {time.perf_counter() - begin:.1f} s "
                f"({'C from its step' if stepgen.translates(layer.dynamics, x, layer.params()) else 'torch.compile'})")
    return lines
