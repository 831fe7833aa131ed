"""Cost of the two batch-norm conventions on a whole training step (docs/benchmarks.md).

    python benchmarks/batch_norm.py [--T 4 --batch 32 --steps 5]

The AR-LIF pre-activation ResNet-18 (CIFAR shape) with AR-LIF neurons, trained one step (forward,
backward, SGD update) with ``bn="time_batch"`` (one BatchNorm2d call over T·B) and with
``bn="per_step"`` (the child BatchNorm2d called once per step, adalif's implementation). The row
"per_step, vectorised" replaces every batch norm by a one-pass computation of all T steps'
statistics (``torch.var_mean`` over B, H, W), which is what a vectorised version would cost;
it is measured here, not shipped. Medians over ``--steps`` timed steps after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from allocator import reuse_freed_memory  # benchmarks/allocator.py (script folder on sys.path)
from torch import nn

from adalif.layers import TimeBatchNorm
from adalif.models import create_model


class VectorisedPerStepBN(nn.Module):
    """Per-step statistics of every step at once (training only; running statistics not updated)."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.bn = bn

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=(1, 3, 4), keepdim=True, correction=0)
        scale = self.bn.weight.view(1, 1, -1, 1, 1) * torch.rsqrt(var + self.bn.eps)
        return x * scale + (self.bn.bias.view(1, 1, -1, 1, 1) - mean * scale)


def vectorise(model: nn.Module) -> nn.Module:
    for name, child in list(model.named_children()):
        if isinstance(child, TimeBatchNorm):
            setattr(model, name, VectorisedPerStepBN(child.bn))
        else:
            vectorise(child)
    return model


def step_time(model: nn.Module, T: int, batch: int, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    reuse_freed_memory()
    rows = []
    for label, bn, vectorised in (("time_batch", "time_batch", False), ("per_step (loop over T)", "per_step", False),
                                  ("per_step, vectorised", "per_step", True)):
        torch.manual_seed(0)
        model = create_model("preact_resnet18", neuron={"name": "arlif", "backend": "reference"}, bn=bn, T=args.T)
        if vectorised:
            vectorise(model)
        rows.append((label, step_time(model.train(), args.T, args.batch, args.steps)))
    base = rows[0][1]
    print(f"pre-activation ResNet-18, AR-LIF, T={args.T}, batch {args.batch}, {torch.get_num_threads()} threads")
    print("| batch norm | step (s) | vs time_batch |\n|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} | {seconds / base:.3f}x |")


if __name__ == "__main__":
    main()
