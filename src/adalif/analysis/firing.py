"""Exact firing rates of every adalif neuron layer of a model (docs/analysis.md).

The rate of layer :math:`l` is the total spike count over the total neuron-steps seen,

.. math:: \\mathrm{fr}_l = \\frac{1}{T\\,B\\,N_l}\\sum_{t,b,i} S^{(l)}_{t,b,i}

over every call while the monitor is active, so it is exact for unequal batch sizes (an average
of per-batch means is not: batches of 4, 4 and 2 samples weigh the last one double). Per-step and
per-channel rates are counted on request. Only reduced, detached counts are kept, on the device of
the spikes: no spike tensor and no autograd graph outlives a call.

    with FiringRateMonitor(model) as monitor:
        for x, _ in loader:
            model(x)
    monitor.rates()          # {"features.1": 0.1432, ...}
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from .. import memory
from ..neurons import Neuron

__all__ = ["FiringRateMonitor"]


_EXACT = 1 << 24  # float32 holds every integer up to 2^24 exactly


def _count(rows: torch.Tensor) -> torch.Tensor:
    """The spikes (0/1) of each row of ``[R, n]``, exactly, as float64. A float32 sum of at most
    2^24 ones is exact and the fastest reduction there is (17x ``count_nonzero`` and 40x a float64
    sum on the CPU, measured), so rows are summed in chunks of 2^24 and the chunks in float64."""
    if rows.shape[1] <= _EXACT:
        return rows.sum(1, dtype=torch.float32).double()
    return torch.stack([c.sum(1, dtype=torch.float32) for c in rows.split(_EXACT, dim=1)], 1).double().sum(1)


class FiringRateMonitor:
    """Counts the spikes of every :class:`~adalif.neurons.Neuron` in ``model`` (keyed by its name
    in ``model.named_modules()``) while active: as a context manager, or between :meth:`attach`
    and :meth:`detach`.

    Args:
        model: any module holding adalif neurons (their outputs are spikes ``[T, B, ...]``).
        per_step: also count each time step (``step_rates()``: ``[T]`` per layer).
        per_channel: also count each channel, dimension 2 of ``[T, B, C, ...]`` (``channel_rates()``).
    """

    def __init__(self, model: nn.Module, per_step: bool = False, per_channel: bool = False) -> None:
        self.layers: Dict[str, Neuron] = {name: m for name, m in model.named_modules() if isinstance(m, Neuron)}
        self.per_step, self.per_channel = per_step, per_channel
        self._handles: List = []
        self.reset()

    # -- lifetime ------------------------------------------------------------------------------
    def attach(self) -> "FiringRateMonitor":
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers.items()]
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "FiringRateMonitor":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def reset(self) -> None:
        """Forget every count (the hooks stay as they are)."""
        self.spikes: Dict[str, torch.Tensor] = {}
        self.elements: Dict[str, int] = {}
        self.step_spikes: Dict[str, torch.Tensor] = {}
        self.channel_spikes: Dict[str, torch.Tensor] = {}
        self.steps: Dict[str, int] = {}

    # -- counting --------------------------------------------------------------------------------
    def _hook(self, name: str):
        def hook(module, inputs, output):
            if memory.recomputing():  # checkpointing runs the layer again in backward: count it once
                return
            s, t0 = output.detach(), memory.chunk_start()  # time chunks: steps [t0, t0 + len)
            # Tensors stay on the device: a Python number here would synchronise a GPU per layer.
            self._add(self.spikes, name, _count(s.reshape(1, -1))[0])
            self.elements[name] = self.elements.get(name, 0) + s.numel()
            self.steps[name] = max(self.steps.get(name, 0), t0 + s.shape[0]) if t0 else s.shape[0]
            if self.per_step:
                self._add_steps(name, _count(s.reshape(s.shape[0], -1)), t0)
            if self.per_channel and s.dim() >= 3:
                if s.numel() // s.shape[2] <= _EXACT:  # reduce in place, without a transposed copy
                    per_channel = s.sum(dim=[d for d in range(s.dim()) if d != 2], dtype=torch.float32).double()
                else:
                    per_channel = _count(s.transpose(0, 2).reshape(s.shape[2], -1))
                self._add(self.channel_spikes, name, per_channel)
        return hook

    @staticmethod
    def _add(store: Dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
        store[name] = value if name not in store else store[name] + value

    def _add_steps(self, name: str, counts: torch.Tensor, t0: int) -> None:
        """Add the counts of steps ``[t0, t0 + len(counts))``."""
        store = self.step_spikes.get(name)
        end = t0 + counts.numel()
        if store is None or store.numel() < end:
            grown = counts.new_zeros(end)
            if store is not None:
                grown[:store.numel()] = store
            store = grown
        else:
            store = store.clone()
        store[t0:end] += counts
        self.step_spikes[name] = store

    # -- results ---------------------------------------------------------------------------------
    def rates(self) -> Dict[str, float]:
        """Spikes per neuron per step of every layer that ran."""
        return {name: float(self.spikes[name]) / self.elements[name] for name in self.spikes}

    def step_rates(self) -> Dict[str, torch.Tensor]:
        """``[T]`` rates per layer (``per_step=True``): spikes at step t per neuron and sample."""
        return {name: (s / (self.elements[name] / self.steps[name])).cpu() for name, s in self.step_spikes.items()}

    def channel_rates(self) -> Dict[str, torch.Tensor]:
        """``[C]`` rates per layer (``per_channel=True``) of layers with a channel dimension."""
        return {name: (s / (self.elements[name] / s.numel())).cpu() for name, s in self.channel_spikes.items()}

    def mean_rate(self) -> Optional[float]:
        """The mean over layers of :meth:`rates` (each layer weighs the same), or None."""
        rates = self.rates()
        return sum(rates.values()) / len(rates) if rates else None

    def official_arlif_rates(self) -> Dict[str, float]:
        """The values the official AR-LIF ``inference.py`` prints under "FR / T": the true rate
        divided by T a second time (evaluation.md 2.2). For comparison only."""
        return {name: rate / self.steps[name] for name, rate in self.rates().items()}
