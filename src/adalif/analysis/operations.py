"""Synaptic operations and energy of a spiking network (evaluation.md section 3; docs/analysis.md).

:func:`count_operations` runs the network on a batch and counts, per synaptic layer (every
``nn.Conv2d`` and ``nn.Linear``, keyed by its name in ``named_modules()``):

* ``flops``: dense multiply-accumulates of one sample at one step (conv:
  :math:`k_h k_w (C_{in}/g) C_{out} H_{out} W_{out}`; linear: :math:`n_{in} n_{out}`);
* for a layer whose input is binary (spikes), accumulates (ACs, i.e. SOPs) per sample over the T
  steps in two conventions, side by side: ``sops_rate``, the papers' :math:`fr_{in}\\cdot T\\cdot
  \\mathrm{FLOPs}` (Spikformer; SpikingJelly's maintainers), and ``sops_exact``, each input spike
  times the outputs it really feeds (padding-aware: ``sum(conv(spikes, ones))``);
* for a layer whose input is not binary (the first layer under direct encoding, a layer after
  average pooling), multiply-accumulates (``macs``), by the conventions of the arguments.

Written by hand with forward hooks: no counting tool we know of handles time-major spikes
(``syops`` divides by the wrong dimension and counts linear biases once; evaluation.md section 8),
and only hooks see whether each layer's actual input is binary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import DirectEncoder
from .. import definitions
from ..neurons import Neuron
from .hooks import run_hooked

__all__ = ["ENERGY_PRESETS", "LayerCount", "OperationCounts", "count_operations", "parameter_overhead"]

ENERGY_PRESETS = {"fp32": (4.6, 0.9), "fp16": (1.5, 0.4), "int8": (0.23, 0.03)}
"""Precision -> :math:`(E_{MAC}, E_{AC})` in picojoules: Horowitz (ISSCC 2014, 45 nm) 32-bit float, and the
fp16 / int8 presets of SpikingJelly 2.0's op counter."""


def __getattr__(name: str):
    """``NEURON_OPS``: class name -> {operation: count} per neuron per step of each registered neuron (a
    separate line, never in the synaptic counts), as each definition declares them (adalif.definitions)."""
    if name == "NEURON_OPS":
        return {d.class_name: dict(d.ops) for d in map(definitions.get, definitions.registered())}
    raise AttributeError(name)


@dataclass
class LayerCount:
    name: str
    kind: str  # "conv" or "linear"
    binary_input: bool
    input_rate: float  # the firing rate of spikes; the mean magnitude of a real-valued input
    flops: int  # dense MACs per sample per step
    macs: float = 0.0  # per sample over T
    sops_rate: float = 0.0  # per sample over T, fr_in * T * flops
    sops_exact: float = 0.0  # per sample over T, exact fan-out of the spikes


@dataclass
class OperationCounts:
    """Per-layer counts per sample (summed over T), the conventions used, and neuron operations."""

    layers: List[LayerCount]
    T: int
    conventions: Dict[str, str]
    neuron_ops: Dict[str, float] = field(default_factory=dict)  # per sample over T, when counted

    def totals(self) -> Dict[str, float]:
        return {
            "flops_per_step": sum(layer.flops for layer in self.layers),
            "macs": sum(layer.macs for layer in self.layers),
            "sops_rate": sum(layer.sops_rate for layer in self.layers),
            "sops_exact": sum(layer.sops_exact for layer in self.layers),
        }

    def energy(self, preset: str = "fp32", e_mac: Optional[float] = None, e_ac: Optional[float] = None,
               sops: str = "rate") -> float:
        """Picojoules per sample: :math:`E_{MAC}\\cdot\\mathrm{MACs} + E_{AC}\\cdot\\mathrm{SOPs}`, with
        the SOPs of convention ``sops`` (``"rate"``: the papers'; ``"exact"``)."""
        if preset not in ENERGY_PRESETS:
            raise ValueError(f"preset: got {preset!r}, expected one of {list(ENERGY_PRESETS)}")
        if sops not in ("rate", "exact"):
            raise ValueError(f"sops: got {sops!r}, expected 'rate' or 'exact'")
        mac, ac = ENERGY_PRESETS[preset]
        totals = self.totals()
        return (e_mac if e_mac is not None else mac) * totals["macs"] + (e_ac if e_ac is not None else ac) * totals[f"sops_{sops}"]

    def with_rate(self, rate: float) -> "OperationCounts":
        """These counts with every spiking layer's input at one assumed firing rate, by the papers'
        convention (evaluation.md 3.3 prices ResNet-19 at a mean rate of 0.15 this way)."""
        layers = [LayerCount(**{**vars(c), "input_rate": rate, "sops_rate": rate * self.T * c.flops})
                  if c.binary_input else c for c in self.layers]
        return OperationCounts(layers, self.T, self.conventions, self.neuron_ops)

    def ann_energy(self, preset: str = "fp32") -> float:
        """Picojoules per sample of the same network as an ANN: every dense MAC, once."""
        return ENERGY_PRESETS[preset][0] * self.totals()["flops_per_step"]

    def table(self) -> str:
        """A markdown table of every layer, then the totals and the conventions."""
        rows = ["| layer | kind | input | input rate | FLOPs/step | MACs | SOPs (fr x T x FLOPs) | SOPs (exact fan-out) |",
                "|---|---|---|---|---|---|---|---|"]
        for c in self.layers:
            rows.append(f"| {c.name} | {c.kind} | {'spikes' if c.binary_input else 'real'} | {c.input_rate:.4f} | "
                        f"{c.flops:,} | {c.macs:,.0f} | {c.sops_rate:,.0f} | {c.sops_exact:,.0f} |")
        t = self.totals()
        rows.append(f"| **total** | | | | {t['flops_per_step']:,} | {t['macs']:,.0f} | {t['sops_rate']:,.0f} | "
                    f"{t['sops_exact']:,.0f} |")
        notes = "; ".join(f"{k}: {v}" for k, v in self.conventions.items())
        return "\n".join(rows) + f"\n\nPer sample, summed over T = {self.T}. Conventions: {notes}."


def _time_steps(model: nn.Module, x: torch.Tensor, T: Optional[int]) -> (int, bool):
    """(T, whether the input is a sequence [T, B, ...])."""
    encoder = next((m for m in model.modules() if isinstance(m, DirectEncoder)), None)
    if x.dim() == 5 or (encoder is None and T is None):
        if x.dim() < 3:
            raise ValueError(f"x: expected images [B, C, H, W] or a sequence [T, B, ...], got shape {tuple(x.shape)}")
        return x.shape[0], True
    return (T if T is not None else encoder.T), False


def count_operations(model: nn.Module, x: torch.Tensor, *, T: Optional[int] = None, first_layer: str = "auto",
                     non_binary: str = "ac", bn: str = "folded", neuron_ops: bool = False) -> OperationCounts:
    """Run ``model`` on ``x`` (images ``[B, C, H, W]`` repeated T times, or a sequence
    ``[T, B, ...]``) and count its operations per sample; see the module docstring.

    Args:
        T: time steps of an image input (default: the model's ``DirectEncoder``).
        first_layer: the first synaptic layer when its input is not binary: ``"auto"`` (default:
            MACs once for static images, whose every step is the same; MACs x T for a sequence,
            such as event frames), ``"times_T"`` (MACs x T always) or ``"ac"`` (ACs at the input's rate).
        non_binary: any later layer with non-binary input (after average pooling): ``"ac"``
            (default, common practice: ACs at the input's mean as its rate) or ``"mac"`` (MACs x T).
        bn: ``"folded"`` (default: folded into the preceding conv, not counted) or ``"counted"``
            (one MAC per element per step, added to ``macs`` of the layer before).
        neuron_ops: also count each neuron family's operations per neuron-step (:data:`NEURON_OPS`),
            reported separately and never priced.
    """
    checks = {"first_layer": (first_layer, ("auto", "times_T", "ac")), "non_binary": (non_binary, ("ac", "mac")),
              "bn": (bn, ("folded", "counted"))}
    for key, (value, allowed) in checks.items():
        if value not in allowed:
            raise ValueError(f"{key}: got {value!r}, expected one of {list(allowed)}")
    T, sequence = _time_steps(model, x, T)
    B = x.shape[1] if sequence else x.shape[0]
    counts: List[LayerCount] = []
    neuron_steps: Dict[str, float] = {}
    hooks = []

    def synaptic(name: str, module: nn.Module):
        def hook(mod, inputs, output):
            inp = inputs[0].detach()
            binary = bool(((inp == 0) | (inp == 1)).all())
            # Spikes: the firing rate. A real-valued input (a normalised image can be negative): its
            # mean magnitude, the activity the "ac" convention prices; never a negative rate.
            rate = float(inp.float().mean() if binary else inp.float().abs().mean())
            if isinstance(mod, nn.Conv2d):
                per_position = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
                flops = per_position * mod.out_channels * output.shape[-2] * output.shape[-1]
            else:
                flops = mod.in_features * mod.out_features
            c = LayerCount(name, "conv" if isinstance(mod, nn.Conv2d) else "linear", binary, rate, int(flops))
            # One call sees every step of the batch ([T·B, ...], adalif's and SpikingJelly's
            # multi-step layers) or, for a static first layer, the B images once.
            if binary:
                c.sops_rate = rate * T * flops
                if isinstance(mod, nn.Conv2d):
                    ones = torch.ones_like(mod.weight)
                    fan_out = F.conv2d(inp.to(ones.dtype), ones, None, mod.stride, mod.padding, mod.dilation, mod.groups)
                    c.sops_exact = float(fan_out.sum()) / B
                else:
                    c.sops_exact = float(inp.sum()) * mod.out_features / B
            else:
                first = not counts
                mode = (first_layer if first else non_binary)
                if mode in ("ac",):
                    c.sops_rate = c.sops_exact = rate * T * flops
                elif first and mode == "auto":
                    c.macs = flops * (T if sequence else 1)
                else:  # "times_T" or "mac"
                    c.macs = flops * T
            counts.append(c)
        return hook

    def norm(mod, inputs, output):
        if counts:  # every element of every step, per sample
            counts[-1].macs += output.numel() / B

    def neuron(family: str):
        def hook(mod, inputs, output):
            neuron_steps[family] = neuron_steps.get(family, 0.0) + output.numel() / B
        return hook

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append((m, synaptic(name, m)))
        elif bn == "counted" and isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append((m, norm))
        elif neuron_ops and isinstance(m, Neuron):
            # Resolved once per layer; an unregistered neuron is an error here, never counted as another.
            hooks.append((m, neuron(definitions.definition_of(m).name)))
    run_hooked(model, x, hooks)
    ops: Dict[str, float] = {}
    for family, steps in neuron_steps.items():
        for op, n in definitions.get(family).ops.items():
            ops[op] = ops.get(op, 0.0) + n * steps
    conventions = {
        "first layer": {"auto": "MACs once for static images, x T for sequences", "times_T": "MACs x T",
                        "ac": "ACs at its input's rate"}[first_layer],
        "non-binary inputs": {"ac": "ACs at the input's mean", "mac": "MACs x T"}[non_binary],
        "batch norm": {"folded": "folded into the conv, not counted", "counted": "1 MAC per element per step"}[bn],
        "neuron operations": "counted separately, not priced" if neuron_ops else "not counted",
        "pooling and residual adds": "not counted",
    }
    return OperationCounts(counts, T, conventions, ops)


def parameter_overhead(model: nn.Module) -> Dict[str, int]:
    """Parameters of the neurons (LIF has none) and of the whole model: what DA-LIF's two decays
    or AR-LIF's ``a`` and ``c`` add."""
    neuron = sum(p.numel() for m in model.modules() if isinstance(m, Neuron) for p in m.parameters(recurse=False))
    return {"neuron_parameters": neuron, "model_parameters": sum(p.numel() for p in model.parameters()),
            "neuron_layers": sum(isinstance(m, Neuron) for m in model.modules())}

