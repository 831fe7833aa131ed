"""A network of LIF, PLIF and DA-LIF neurons as a ``nir.NIRGraph`` (docs/analysis.md, "NIR").

The network runs once on a sample while forward hooks record the layers it calls, in order; the
graph is that chain. Every layer must take the previous one's output (a residual add or a branch
is refused), and be one NIR can express:

* ``nn.Conv2d`` -> ``Conv2d``; ``nn.Linear`` -> ``Affine``; a following batch norm is folded into
  them with its eval statistics (and tdBN's scale): :math:`W' = W\\gamma s/\\sigma`,
  :math:`b' = (b - \\mu)\\gamma s/\\sigma + \\beta`;
* ``nn.AvgPool2d`` -> ``AvgPool2d`` (``SumPool2d`` with ``divisor_override=1``), an adaptive
  average pool whose input divides its output likewise; ``nn.Flatten`` -> ``Flatten``;
  dropout and identities vanish;
* a neuron :math:`H_t = \\beta V_{t-1} + \\alpha X_t` with hard reset to 0 -> ``LIF`` with
  :math:`\\tau = dt/(1-\\beta)`, :math:`R = \\alpha/(1-\\beta)`, :math:`v_{leak} = v_{reset} = 0`
  (NIR's forward-Euler step is then exactly adalif's).

NIR types describe one sample: a layer inside a ``SeqToANN`` sees ``[T*B, ...]`` and one called
on the time-major tensor ``[T, B, ...]`` (a plain ``nn.Linear`` or ``nn.Flatten(2)``) sees both
dimensions; either way they are left out of its types (and out of a Flatten's dimensions).

Refused, with the layer's name and the reason, never exported wrongly: AR-LIF (adaptive reset and
threshold), soft reset, a reset to a value other than 0, a negative temporal decay, max pooling,
average pooling with ``ceil_mode=True``, with ``count_include_pad=False`` and padding, or with a
``divisor_override`` other than 1, batch norm without running statistics, a Flatten that merges
the time or batch dimension, and anything else. NIR fires on :math:`v > v_{th}`, adalif on :math:`\\ge`: they differ on exact ties only.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..analysis.hooks import run_hooked
from ..layers import SeqToANN, SharedDropout, TimeBatchNorm
from ..definitions import definition_of
from ..neurons import Neuron

__all__ = ["to_nir", "NIRExportError"]

_PASS = (nn.Dropout, SharedDropout, nn.Identity)
_LAYERS = (nn.Conv2d, nn.Linear, TimeBatchNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
           nn.MaxPool2d, nn.Flatten, Neuron)


class NIRExportError(ValueError):
    """The network holds something NIR cannot express; the message names the layer and why."""


class _Call:
    """One layer call: ``lead`` is the number of leading dimensions that are not the sample's
    (1: time folded into the batch, ``[T*B, ...]``, inside a ``SeqToANN``; 2: time-major
    ``[T, B, ...]``); the NIR types are the shapes without them."""

    def __init__(self, name: str, module: nn.Module, inp: torch.Tensor, out: torch.Tensor, lead: int) -> None:
        self.name, self.module, self.lead = name, module, lead
        self.in_ptr, self.out_ptr = inp.data_ptr(), out.data_ptr()
        self.in_shape, self.out_shape = tuple(inp.shape), tuple(out.shape)

    @property
    def in_type(self) -> Tuple[int, ...]:
        return self.in_shape[self.lead:]

    @property
    def out_type(self) -> Tuple[int, ...]:
        return self.out_shape[self.lead:]


def _record(model: nn.Module, sample: torch.Tensor) -> List[_Call]:
    calls: List[_Call] = []
    outer = {id(m.bn) for m in model.modules() if isinstance(m, TimeBatchNorm)}  # its child is folded with it
    folded = {id(sub) for m in model.modules() if isinstance(m, SeqToANN) for sub in m.modules() if sub is not m}
    run_hooked(model, sample, [
        (m, lambda mod, inputs, output, name=name: calls.append(
            _Call(name, mod, inputs[0], output, 1 if id(mod) in folded and not isinstance(mod, Neuron) else 2)))
        for name, m in model.named_modules() if isinstance(m, _LAYERS) and id(m) not in outer
    ])
    for prev, call in zip(calls, calls[1:]):
        if call.in_ptr != prev.out_ptr:
            raise NIRExportError(f"{call.name}: its input is not the output of {prev.name}; NIR export takes chains "
                                 f"of layers only (no residual connections or branches)")
    # The time and batch sizes, from the neurons (always time-major): a layer called outside a
    # SeqToANN must see them as its leading dimensions, one inside it their product.
    lead = next((c.in_shape[:2] for c in calls if isinstance(c.module, Neuron)), None)
    if lead is not None:
        for call in calls:
            ok = call.in_shape[:2] == lead if call.lead == 2 else call.in_shape[0] == lead[0] * lead[1]
            if not ok:
                raise NIRExportError(f"{call.name}: input {list(call.in_shape)} does not start with the time and batch "
                                     f"dimensions {list(lead)} (time-major) or their product (inside a SeqToANN)")
            m = call.module
            if isinstance(m, nn.Flatten) and (m.start_dim if m.start_dim >= 0 else len(call.in_shape) + m.start_dim) < call.lead:
                raise NIRExportError(f"{call.name}: Flatten(start_dim={m.start_dim}) on {list(call.in_shape)} merges the "
                                     f"time or batch dimension into the sample's; NIR's Flatten works within a sample")
    return calls


def _decays(name: str, m: Neuron) -> Tuple[torch.Tensor, torch.Tensor]:
    """(alpha, beta) of a neuron with H_t = beta V_{t-1} + alpha X_t, or why it cannot be exported:
    each neuron's definition says (``nir``: a mapping, or the reason there is none)."""
    try:
        d = definition_of(m)
    except ValueError as err:
        raise NIRExportError(f"{name}: {err}") from None
    if isinstance(d.nir, str):
        raise NIRExportError(f"{name}: {d.nir}")
    try:
        return d.nir(m, name)
    except ValueError as err:
        raise NIRExportError(f"{name}: {err}") from None


def _per_neuron(value: torch.Tensor, shape: Tuple[int, ...]) -> np.ndarray:
    """A per-layer scalar or per-channel [C] value as an array of the neuron shape [C, ...]."""
    value = value.double()
    if value.dim() == 1 and len(shape) >= 1:
        value = value.view(-1, *[1] * (len(shape) - 1))
    return value.expand(shape).numpy().copy()


def _fold(weight: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.Module, scale: float = 1.0):
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_mean)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(bn.running_mean)
    factor = gamma * scale / torch.sqrt(bn.running_var + bn.eps)
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * factor.view(-1, *[1] * (weight.dim() - 1)), (bias - bn.running_mean) * factor + beta


def _check_avg_pool(name: str, m: nn.AvgPool2d) -> None:
    """Refuse the options of an average pooling that NIR's AvgPool2d/SumPool2d (a fixed window,
    zero padding counted, floor of the output size) would compute differently."""
    padded = any(p > 0 for p in (m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,)))
    if m.ceil_mode:
        raise NIRExportError(f"{name}: AvgPool2d(ceil_mode=True) rounds the output size up; NIR's pooling rounds down")
    if padded and not m.count_include_pad:
        raise NIRExportError(f"{name}: AvgPool2d(count_include_pad=False) with padding divides border windows by "
                             f"fewer values; NIR's AvgPool2d counts the padding")
    if m.divisor_override not in (None, 1):
        raise NIRExportError(f"{name}: AvgPool2d(divisor_override={m.divisor_override}) has no NIR node (only the "
                             f"window size, AvgPool2d, or 1, SumPool2d)")


def to_nir(model: nn.Module, sample: torch.Tensor, dt: float = 1e-4):
    """The ``nir.NIRGraph`` of ``model`` (run once on ``sample``: images ``[B, C, H, W]`` or a
    sequence ``[T, B, ...]``, B = 1 is enough). ``dt``: the time step NIR's continuous-time
    neurons are discretised with."""
    import nir  # the export's own dependency; the rest of adalif does not need it

    calls = _record(model, sample)
    nodes: Dict[str, object] = {}
    order: List[str] = []
    synapse: Optional[Tuple[str, torch.Tensor, Optional[torch.Tensor], _Call]] = None  # pending conv/linear

    def emit(key: str, node) -> None:
        nodes[key] = node
        order.append(key)

    def flush() -> None:
        nonlocal synapse
        if synapse is None:
            return
        key, weight, bias, call = synapse
        m = call.module
        b = np.zeros(weight.shape[0]) if bias is None else bias.double().numpy()
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise NIRExportError(f"{call.name}: padding_mode={m.padding_mode!r}; NIR's Conv2d pads with zeros")
            emit(key, nir.Conv2d(input_shape=call.in_type[-2:], weight=weight.double().numpy(), stride=m.stride,
                                 padding=m.padding, dilation=m.dilation, groups=m.groups, bias=b))
        else:
            emit(key, nir.Affine(weight=weight.double().numpy(), bias=b))
        synapse = None

    for call in calls:
        m, name = call.module, call.name
        if isinstance(m, _PASS):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            flush()
            synapse = (name, m.weight.detach(), None if m.bias is None else m.bias.detach(), call)
            continue
        if isinstance(m, (TimeBatchNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            if synapse is None:
                raise NIRExportError(f"{name}: batch norm that does not follow a conv or linear layer cannot be folded")
            bn, scale = (m.bn, m.scale) if isinstance(m, TimeBatchNorm) else (m, 1.0)
            if bn.running_mean is None:
                raise NIRExportError(f"{name}: batch norm without running statistics (track_running_stats=False) "
                                     f"normalises with each batch's own; it cannot be folded into fixed weights")
            key, weight, bias, syn = synapse
            synapse = (key, *_fold(weight, bias, bn, scale), syn)
            continue
        flush()
        if isinstance(m, Neuron):
            alpha, beta = _decays(name, m)
            if (beta < 0).any() or (beta >= 1).any():
                raise NIRExportError(f"{name}: temporal decay beta={beta.tolist()} outside [0, 1) has no NIR LIF "
                                     f"(tau = dt / (1 - beta) would be negative or infinite)")
            shape = call.out_shape[2:]  # [T, B, *neuron shape]
            a, b = _per_neuron(alpha, shape), _per_neuron(beta, shape)
            emit(name, nir.LIF(tau=dt / (1.0 - b), r=a / (1.0 - b), v_leak=np.zeros(shape), v_reset=np.zeros(shape),
                               v_threshold=np.full(shape, float(m.v_threshold))))
        elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            if isinstance(m, nn.AvgPool2d):
                _check_avg_pool(name, m)
            if isinstance(m, nn.AdaptiveAvgPool2d):
                (h, w), (oh, ow) = call.in_shape[-2:], call.out_shape[-2:]
                if h % oh or w % ow:
                    raise NIRExportError(f"{name}: adaptive pooling of {h}x{w} to {oh}x{ow} is not a fixed window")
                kernel, stride, padding, summed = (h // oh, w // ow), (h // oh, w // ow), (0, 0), False
            else:
                pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
                kernel, stride, padding = pair(m.kernel_size), pair(m.stride), pair(m.padding)
                summed = m.divisor_override == 1
            node = nir.SumPool2d if summed else nir.AvgPool2d
            emit(name, node(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding)))
        elif isinstance(m, nn.Flatten):
            start = m.start_dim if m.start_dim >= 0 else len(call.in_shape) + m.start_dim  # >= lead: _record checked
            end = m.end_dim if m.end_dim < 0 else m.end_dim - call.lead  # a negative end counts from the last either way
            emit(name, nir.Flatten(input_type={"input": np.array(call.in_type)}, start_dim=start - call.lead,
                                   end_dim=end))
        else:
            raise NIRExportError(f"{name}: {type(m).__name__} has no NIR node (max pooling, for instance, does not exist in NIR)")
    flush()
    inputs, outputs = np.array(calls[0].in_type), np.array(calls[-1].out_type)
    nodes = {"input": nir.Input(input_type={"input": inputs}), **nodes, "output": nir.Output(output_type={"output": outputs})}
    chain = ["input", *order, "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:])), type_check=False)
