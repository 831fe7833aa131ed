"""Training throughput of ResNet-19 (CIFAR-shaped input) with adalif neurons against the same
network built from SpikingJelly ``LIFNode`` layers.

    python benchmarks/train_throughput.py [--T 4 --batch 32 --steps 3]

One process, one network definition: the SpikingJelly variant replaces every adalif neuron
module by ``LIFNode(step_mode='m', backend='torch', v_reset=None)`` (with ``reset_net`` after
each step). A step is forward, backward and an SGD update, on random data. We report the
median samples per second over ``--steps`` timed steps after one warm-up step. The warm-up
includes the compile of the fused CPU loops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from allocator import reuse_freed_memory  # benchmarks/allocator.py (script folder on sys.path)
from torch import nn

from adalif.models import create_model
from adalif.neurons import Neuron

class SJLayer(nn.Module):
    def __init__(self, node):
        super().__init__()
        self.node = node

    def forward(self, x):
        return self.node(x)


def with_spikingjelly(model: nn.Module) -> nn.Module:
    from spikingjelly.activation_based import neuron, surrogate

    for name, child in list(model.named_children()):
        if isinstance(child, Neuron):
            node = neuron.LIFNode(tau=2.0, v_reset=None, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                                  step_mode="m", backend="torch")
            setattr(model, name, SJLayer(node))
        else:
            with_spikingjelly(child)
    return model


def measure(model, T, batch, steps, reset=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if reset:
            reset(model)
        times.append(time.perf_counter() - start)
        print(f"  step {i}: {times[-1]:.2f} s", file=sys.stderr)
    return batch / statistics.median(times[1:]), times[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--allocator", choices=["reuse", "system"], default="reuse",
                        help="reuse: raise glibc's mmap/trim thresholds (see benchmarks/neurons.py)")
    parser.add_argument("--network", choices=["all", "dalif", "lif", "spikingjelly"], default="all",
                        help="one network alone, in a fresh process: its first step is then its own "
                             "(each step's time is printed to stderr)")
    args = parser.parse_args(argv)
    if args.allocator == "reuse":
        reuse_freed_memory()
    torch.manual_seed(0)
    rows = []
    for key, label, neuron in [("dalif", "adalif DALIF", "dalif"), ("lif", "adalif LIF", {"name": "lif", "v_reset": None})]:
        if args.network not in ("all", key):
            continue
        print(label, file=sys.stderr)
        model = create_model("resnet19", neuron=neuron, num_classes=10, T=args.T)
        rows.append((label,) + measure(model, args.T, args.batch, args.steps))
    try:
        from spikingjelly.activation_based import functional
    except ImportError:
        functional = None
    if args.network not in ("all", "spikingjelly"):
        functional = None
    if functional is not None:
        print("SpikingJelly LIFNode", file=sys.stderr)
        model = with_spikingjelly(create_model("resnet19", neuron="lif", num_classes=10, T=args.T))
        rows.append(("SpikingJelly LIFNode (torch)",) + measure(model, args.T, args.batch, args.steps, functional.reset_net))
    base = rows[-1][1] if functional is not None else None
    print(f"ResNet-19, T={args.T}, batch {args.batch}, 32x32, {torch.get_num_threads()} threads, allocator {args.allocator}\n")
    print("| network | samples/s | vs SpikingJelly | first step s |\n|---|---|---|---|")
    for label, throughput, first in rows:
        ratio = f"{throughput / base:.2f}x" if base else "n/a"
        print(f"| ResNet-19 + {label} | {throughput:.2f} | {ratio} | {first:.1f} |")


if __name__ == "__main__":
    main()
