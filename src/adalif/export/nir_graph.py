"""A network of LIF, PLIF and DA-LIF neurons as a ``nir.NIRGraph`` (docs/analysis.md, "NIR").

The network runs once on a sample while forward hooks record the layers it calls, and a torch
function mode records the additions between their outputs (a residual block's ``branch(x) +
shortcut(x)``). Each layer's input is traced back, by storage, to the layers that produced it: one
layer, the sum of several (NIR sums the incoming edges of a node, as nirtorch's executor does), or
the network's input. The graph has a node per layer and an edge per producer, so chains, branches
and residual merges export alike; an input from any other operation is refused. Each layer must
be one NIR can express:

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
from torch.overrides import TorchFunctionMode, _pop_mode_temporarily

from ..analysis.hooks import run_hooked
from ..layers import SeqToANN, SharedDropout, TimeBatchNorm
from ..definitions import definition_of
from ..neurons import Neuron

__all__ = ["to_nir", "make_portable", "NIRExportError"]

_PASS = (nn.Dropout, SharedDropout, nn.Identity)
_LAYERS = (nn.Conv2d, nn.Linear, TimeBatchNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
           nn.MaxPool2d, nn.Flatten, Neuron)


class NIRExportError(ValueError):
    """The network holds something NIR cannot express; the message names the layer and why."""


class _Call:
    """One layer call: ``lead`` is the number of leading dimensions that are not the sample's
    (1: time folded into the batch, ``[T*B, ...]``, inside a ``SeqToANN``; 2: time-major
    ``[T, B, ...]``); the NIR types are the shapes without them. ``sources``: the keys of what
    produced its input (layers, or "input"), summed."""

    def __init__(self, name: str, module: nn.Module, inp: torch.Tensor, out: torch.Tensor, lead: int) -> None:
        self.name, self.module, self.lead = name, module, lead
        self.in_shape, self.out_shape = tuple(inp.shape), tuple(out.shape)
        self.sources: List[str] = []

    @property
    def in_type(self) -> Tuple[int, ...]:
        return self.in_shape[self.lead:]

    @property
    def out_type(self) -> Tuple[int, ...]:
        return self.out_shape[self.lead:]


class _Producers:
    """Who produced each tensor of the recorded run, keyed by storage address: a layer, "input", or
    a sum (the list of its operands' producers), with the tensor's version counter then. An
    address is looked up while its tensor is alive, and forgotten when an unrecorded operation
    writes a fresh tensor there, so a freed tensor whose memory was reused never answers for
    another; a tensor changed in place since is refused."""

    def __init__(self, sample: torch.Tensor) -> None:
        self.by_address: Dict[int, Tuple[List[str], int]] = {sample.data_ptr(): (["input"], sample._version)}

    def get(self, t: torch.Tensor) -> Optional[List[str]]:
        found = self.by_address.get(t.data_ptr())
        return None if found is None or found[1] != t._version else found[0]

    def of(self, t: torch.Tensor, name: str) -> List[str]:
        found = self.get(t)
        if found is None:
            raise NIRExportError(f"{name}: its input comes from an operation that NIR export does not record (only "
                                 f"layers, their sums and the network's input are)")
        return list(found)

    def set(self, t: torch.Tensor, keys: List[str]) -> None:
        self.by_address[t.data_ptr()] = (keys, t._version)

    def forget(self, t: torch.Tensor) -> None:
        self.by_address.pop(t.data_ptr(), None)


_ADD = (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__)
# Operations that move or repeat a tensor's values without changing them (SeqToANN's folding of
# time into the batch, the direct encoder's repetition): their output has the producers of their
# input, even when it is a copy.
_SAME_VALUES = {getattr(torch.Tensor, n) for n in ("reshape", "view", "flatten", "unflatten", "expand", "unsqueeze",
                                                   "squeeze", "contiguous", "clone", "repeat")} | {
    torch.reshape, torch.flatten, torch.unsqueeze, torch.squeeze, torch.clone}


class _Additions(TorchFunctionMode):
    """Records ``a + b`` of two recorded tensors as a sum of their producers, and carries the
    producers through operations that only move values."""

    def __init__(self, producers: _Producers) -> None:
        super().__init__()
        self.producers = producers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not isinstance(out, torch.Tensor):
            return out
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        found = self.producers.get(first) if first is not None else None
        if func in _ADD and len(args) == 2 and isinstance(args[1], torch.Tensor) and (kwargs or {}).get("alpha", 1) == 1:
            other = self.producers.get(args[1])
            if found is not None and other is not None and args[0].shape == args[1].shape:
                self.producers.set(out, found + other)
                return out
        elif func in _SAME_VALUES and found is not None:
            self.producers.set(out, found)
            return out
        if all(out.data_ptr() != a.data_ptr() for a in args if isinstance(a, torch.Tensor)):
            self.producers.forget(out)  # a fresh tensor no layer made
        return out


def _without_mode(forward):
    def run(*args, **kwargs):
        with _pop_mode_temporarily():
            return forward(*args, **kwargs)
    return run


def _record(model: nn.Module, sample: torch.Tensor) -> Tuple[List[_Call], List[str]]:
    """The layer calls in order, each with the producers of its input, and the producers of the
    network's output."""
    calls: List[_Call] = []
    producers = _Producers(sample)
    outer = {id(m.bn) for m in model.modules() if isinstance(m, TimeBatchNorm)}  # its child is folded with it
    folded = {id(sub) for m in model.modules() if isinstance(m, SeqToANN) for sub in m.modules() if sub is not m}

    pending: Dict[int, List[List[str]]] = {}  # a layer's input producers, looked up before it runs

    def before(mod, inputs, name):
        pending.setdefault(id(mod), []).append(producers.of(inputs[0], name))

    def after(mod, inputs, output, name):
        call = _Call(name, mod, inputs[0], output, 1 if id(mod) in folded and not isinstance(mod, Neuron) else 2)
        call.sources = pending[id(mod)].pop()
        calls.append(call)
        producers.set(output, call.sources if isinstance(mod, _PASS) else [name])

    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _LAYERS + _PASS) and id(m) not in outer]
    handles = [m.register_forward_pre_hook(lambda mod, i, name=name: before(mod, i, name)) for name, m in layers]
    neurons = [m for _, m in layers if isinstance(m, Neuron)]
    for m in neurons:  # a neuron is one node: its inside runs without the mode (a compiled path could not trace it)
        m.forward = _without_mode(m.forward)
    try:
        with _Additions(producers):
            out = run_hooked(model, sample, [(m, lambda mod, i, o, name=name: after(mod, i, o, name))
                                             for name, m in layers])
    finally:
        for handle in handles:
            handle.remove()
        for m in neurons:
            del m.forward
    outputs = producers.of(out, "output")
    calls = [c for c in calls if not isinstance(c.module, _PASS)]
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
    return calls, outputs


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


def to_nir(model: nn.Module, sample: torch.Tensor, dt: float = 1e-4, portable: bool = False):
    """The ``nir.NIRGraph`` of ``model`` (run once on ``sample``: images ``[B, C, H, W]`` or a
    sequence ``[T, B, ...]``, B = 1 is enough). ``dt``: the time step NIR's continuous-time
    neurons are discretised with. ``portable``: the same network for importers with narrower
    conventions (:func:`make_portable`)."""
    import nir  # the export's own dependency; the rest of adalif does not need it

    calls, outputs = _record(model, sample)
    by_name = {c.name: c for c in calls}
    consumers: Dict[str, int] = {}
    for c in calls:
        for key in c.sources:
            consumers[key] = consumers.get(key, 0) + 1
    for key in outputs:
        consumers[key] = consumers.get(key, 0) + 1
    # Fold each batch norm into the conv or linear layer that alone feeds it, and only it.
    folded: Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
    alias: Dict[str, str] = {}  # a folded batch norm -> its conv or linear layer
    for c in calls:
        m = c.module
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            folded[c.name] = (m.weight.detach(), None if m.bias is None else m.bias.detach())
        elif isinstance(m, (TimeBatchNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            source = c.sources[0] if len(c.sources) == 1 else None
            if source not in folded or consumers.get(source, 0) != 1:
                raise NIRExportError(f"{c.name}: batch norm that does not follow a conv or linear layer cannot be folded")
            bn, scale = (m.bn, m.scale) if isinstance(m, TimeBatchNorm) else (m, 1.0)
            if bn.running_mean is None:
                raise NIRExportError(f"{c.name}: batch norm without running statistics (track_running_stats=False) "
                                     f"normalises with each batch's own; it cannot be folded into fixed weights")
            folded[source] = _fold(*folded[source], bn, scale)
            alias[c.name] = source
    resolve = lambda key: alias.get(key, key)  # noqa: E731

    nodes: Dict[str, object] = {"input": nir.Input(input_type={"input": np.array(_input_type(calls))})}
    edges: List[Tuple[str, str]] = []
    for c in calls:
        m, name = c.module, c.name
        if name in alias:
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight, bias = folded[name]
            b = np.zeros(weight.shape[0]) if bias is None else bias.double().numpy()
            if isinstance(m, nn.Conv2d):
                if m.padding_mode != "zeros":
                    raise NIRExportError(f"{name}: padding_mode={m.padding_mode!r}; NIR's Conv2d pads with zeros")
                node = nir.Conv2d(input_shape=c.in_type[-2:], weight=weight.double().numpy(), stride=m.stride,
                                  padding=m.padding, dilation=m.dilation, groups=m.groups, bias=b)
            else:
                node = nir.Affine(weight=weight.double().numpy(), bias=b)
        elif isinstance(m, Neuron):
            alpha, beta = _decays(name, m)
            if (beta < 0).any() or (beta >= 1).any():
                raise NIRExportError(f"{name}: temporal decay beta={beta.tolist()} outside [0, 1) has no NIR LIF "
                                     f"(tau = dt / (1 - beta) would be negative or infinite)")
            shape = c.out_shape[2:]  # [T, B, *neuron shape]
            a, bt = _per_neuron(alpha, shape), _per_neuron(beta, shape)
            node = nir.LIF(tau=dt / (1.0 - bt), r=a / (1.0 - bt), v_leak=np.zeros(shape), v_reset=np.zeros(shape),
                           v_threshold=np.full(shape, float(m.v_threshold)))
        elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            if isinstance(m, nn.AdaptiveAvgPool2d):
                (h, w), (oh, ow) = c.in_shape[-2:], c.out_shape[-2:]
                if h % oh or w % ow:
                    raise NIRExportError(f"{name}: adaptive pooling of {h}x{w} to {oh}x{ow} is not a fixed window")
                kernel, stride, padding, summed = (h // oh, w // ow), (h // oh, w // ow), (0, 0), False
            else:
                _check_avg_pool(name, m)
                pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
                kernel, stride, padding = pair(m.kernel_size), pair(m.stride), pair(m.padding)
                summed = m.divisor_override == 1
            node = (nir.SumPool2d if summed else nir.AvgPool2d)(kernel_size=np.array(kernel), stride=np.array(stride),
                                                               padding=np.array(padding))
        elif isinstance(m, nn.Flatten):
            start = m.start_dim if m.start_dim >= 0 else len(c.in_shape) + m.start_dim  # >= lead: _record checked
            end = m.end_dim if m.end_dim < 0 else m.end_dim - c.lead  # a negative end counts from the last either way
            node = nir.Flatten(input_type={"input": np.array(c.in_type)}, start_dim=start - c.lead, end_dim=end)
        else:
            raise NIRExportError(f"{name}: {type(m).__name__} has no NIR node (max pooling, for instance, does not exist in NIR)")
        nodes[name] = node
        edges += [(resolve(key), name) for key in c.sources]
    nodes["output"] = nir.Output(output_type={"output": np.array(by_name[resolve(outputs[0])].out_type
                                                                  if outputs[0] != "input" else _input_type(calls))})
    edges += [(resolve(key), "output") for key in outputs]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return make_portable(graph) if portable else graph


def make_portable(graph):
    """The same network written for importers that ignore a LIF node's input resistance ``r``
    (Norse, Sinabs) or take one input scale per layer (snnTorch), and that have no ``AvgPool2d``
    (Norse): each LIF node's ``r`` is folded into the weights and biases of the Conv2d or Affine
    nodes that feed it (``r = 1`` left; per output channel, so per-channel scales fold too), and each
    average pooling whose every consumer is such a node (directly or through a Flatten) becomes a
    ``SumPool2d`` with its 1/k² folded into those weights (through further poolings). The result computes the same (exactly,
    in real arithmetic). Refused, naming the node: an ``r`` other than 1 on an edge that is not a
    foldable synapse (an identity shortcut into a DA-LIF neuron whose R = α/(1-β) is not 1), or an
    ``r`` that varies within a channel. A pooling that cannot be folded stays an ``AvgPool2d``."""
    import nir

    nodes, edges = dict(graph.nodes), list(graph.edges)
    sources: Dict[str, List[str]] = {}
    targets: Dict[str, List[str]] = {}
    for a, b in edges:
        sources.setdefault(b, []).append(a)
        targets.setdefault(a, []).append(b)
    synapses = (nir.Conv2d, nir.Affine)

    def rebuilt(node, weight: np.ndarray, bias: np.ndarray):
        """The Conv2d or Affine ``node`` with other weights and bias."""
        if isinstance(node, nir.Conv2d):
            return nir.Conv2d(input_shape=node.input_shape, weight=weight, stride=node.stride, padding=node.padding,
                              dilation=node.dilation, groups=node.groups, bias=bias)
        return nir.Affine(weight=weight, bias=bias)

    def scaled(key: str, factor: np.ndarray) -> None:
        """Multiply the outputs of synapse ``key`` by ``factor`` (one value per output channel)."""
        node = nodes[key]
        shape = (-1,) + (1,) * (node.weight.ndim - 1)
        nodes[key] = rebuilt(node, node.weight * factor.reshape(shape), node.bias * factor)

    for key, node in list(nodes.items()):
        if not isinstance(node, nir.LIF) or np.all(node.r == 1):
            continue
        r = np.asarray(node.r, dtype=np.float64)
        per_channel = r.reshape(r.shape[0], -1) if r.ndim > 1 else r.reshape(-1, 1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise NIRExportError(f"{key}: portable form: the input resistance r varies within a channel; it cannot be "
                                 f"folded into the weights")
        for src in sources[key]:
            if not isinstance(nodes[src], synapses) or targets[src] != [key]:
                raise NIRExportError(f"{key}: portable form: r = {float(r.mean()):g} cannot be folded into {src!r}, which "
                                     f"is not a convolution or linear layer feeding only this neuron (an identity "
                                     f"shortcut, say)")
            scaled(src, per_channel[:, 0])
        nodes[key] = nir.LIF(tau=node.tau, r=np.ones_like(r), v_leak=node.v_leak, v_reset=node.v_reset,
                             v_threshold=node.v_threshold)

    def foldable_consumers(key: str) -> Optional[List[str]]:
        """The synapses that read ``key``'s output (through Flattens and further poolings, which are
        linear), or None if anything else does."""
        found = []
        for dst in targets.get(key, []):
            node = nodes[dst]
            if isinstance(node, (nir.Flatten, nir.AvgPool2d, nir.SumPool2d)) and len(sources[dst]) == 1:
                inner = foldable_consumers(dst)
                if inner is None:
                    return None
                found += inner
            elif isinstance(node, synapses) and len(sources[dst]) == 1:
                found.append(dst)
            else:
                return None
        return found or None

    for key, node in list(nodes.items()):
        if not isinstance(node, nir.AvgPool2d):
            continue
        consumers = foldable_consumers(key)
        if consumers is None:
            continue
        area = float(np.prod(node.kernel_size))
        for dst in consumers:
            # The inputs (not the outputs) are scaled: the weights, not the bias.
            nodes[dst] = rebuilt(nodes[dst], nodes[dst].weight / area, nodes[dst].bias)
        nodes[key] = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _input_type(calls: List[_Call]) -> Tuple[int, ...]:
    """The sample's type: the input of the first layer that reads the network's input."""
    first = next(c for c in calls if "input" in c.sources)
    return first.in_type
