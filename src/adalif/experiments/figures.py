"""AR-LIF's Figure 1(b) and 1(c) as commands (docs/analysis.md), each with its data file.

* :func:`spike_rasters`: the spikes of one layer of trained networks (one per reset mode, say) for
  the same test sample, as raster plots side by side;
* :func:`potential_distributions`: the membrane potentials of LIF, soft-reset and AR-LIF neurons
  driven by the same perturbed normal inputs, as histograms.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List

import numpy as np
import torch

__all__ = ["spike_rasters", "potential_distributions"]


def spike_rasters(checkpoints: List[str], layer: str, out: str, sample: int = 0, neurons: int = 64) -> str:
    """Raster plots (time x neuron) of ``layer`` in each checkpoint for test sample ``sample``, for
    ``neurons`` neurons spread evenly over the layer; ``spikes.csv`` holds the spike times (neuron:
    the index among those shown). Returns the PNG's path."""
    from ..data import registry
    from ..errors import ConfigError
    from ..train.run import load_checkpoint
    from ..analysis.hooks import run_hooked
    from .report import _figure

    os.makedirs(out, exist_ok=True)
    rasters: Dict[str, np.ndarray] = {}
    for path in checkpoints:
        module, cfg = load_checkpoint(path)
        modules = dict(module.model.named_modules())
        if layer not in modules:
            raise ConfigError(f"layer: {layer!r} is not a module of {path}; its neuron layers are "
                              f"{[n for n, m in modules.items() if hasattr(m, 'dynamics')]}")
        x, _ = registry.test_inputs(cfg.data.name, cfg.data.root, cfg.data.T, cfg.data.options, [sample])
        seen = {}
        run_hooked(module.model, x, [(modules[layer], lambda m, i, o: seen.__setitem__("s", o[:, 0].reshape(o.shape[0], -1)))])
        name = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(path))))
        spikes = seen["s"]  # [T, neurons of the layer]; show ``neurons`` of them spread evenly over the layer
        shown = torch.linspace(0, spikes.shape[1] - 1, min(neurons, spikes.shape[1])).long()
        rasters[name] = spikes[:, shown].numpy()
    with open(os.path.join(out, "spikes.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "neuron", "step"])
        for name, r in rasters.items():
            for step, neuron in zip(*np.nonzero(r)):
                writer.writerow([name, int(neuron), int(step)])

    def draw(ax):
        offset = 0
        for name, r in rasters.items():
            steps, ids = np.nonzero(r)
            ax.scatter(steps, ids + offset, s=4, marker="|", label=f"{name} (rate {r.mean():.3f})")
            offset += r.shape[1] + 4
        ax.set_xlabel("time step")
        ax.set_ylabel("neuron (runs stacked)")
        ax.legend(fontsize=6, loc="upper right")
    _figure(out, "spike_rasters.png", f"spikes of {layer}, test sample {sample}", draw)
    return os.path.join(out, "spike_rasters.png")


def potential_distributions(out: str, T: int = 16, neurons: int = 10000, mean: float = 0.5, std: float = 0.5,
                            perturbation: float = 0.1, seed: int = 0, bins: int = 60) -> str:
    """Histograms of the post-reset potential of LIF (hard reset), soft-reset LIF and AR-LIF
    neurons (the official code's settings) driven by the same inputs
    :math:`X \\sim \\mathcal N(\\mu, \\sigma^2)` plus perturbations :math:`\\mathcal N(0, p^2)`;
    ``potentials.csv`` holds the histograms. Returns the PNG's path."""
    from ..models.registry import neuron_factory
    from .report import _figure

    os.makedirs(out, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    x = mean + std * torch.randn(T, neurons, generator=generator)
    x = x + perturbation * torch.randn(T, neurons, generator=generator)
    specs = {"LIF (hard reset)": "hard_lif", "soft reset": "soft_lif", "AR-LIF": {"name": "arlif", "backend": "reference"}}
    potentials = {}
    with torch.no_grad():
        for label, spec in specs.items():
            potentials[label] = neuron_factory(spec)(neurons).run(x, return_traces=True).v_seq.flatten().numpy()
    low = min(v.min() for v in potentials.values())
    high = max(v.max() for v in potentials.values())
    edges = np.linspace(low, high, bins + 1)
    counts = {label: np.histogram(v, bins=edges)[0] for label, v in potentials.items()}
    with open(os.path.join(out, "potentials.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["bin_low", "bin_high", *counts])
        for k in range(bins):
            writer.writerow([edges[k], edges[k + 1], *(int(c[k]) for c in counts.values())])

    def draw(ax):
        for label, v in potentials.items():
            ax.hist(v, bins=edges, histtype="step", label=f"{label} (std {v.std():.3f})")
        ax.set_xlabel("membrane potential after reset")
        ax.set_ylabel("count")
        ax.legend(fontsize=7)
    _figure(out, "potentials.png", f"inputs N({mean}, {std}^2) + N(0, {perturbation}^2), T={T}", draw)
    return os.path.join(out, "potentials.png")
