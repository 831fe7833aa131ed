"""A network of LIF, PLIF and DA-LIF neurons as a ``nir.NIRGraph`` (docs/analysis.md, "NIR export").

The forward pass is captured as a ``torch.fx`` graph on a sample: adalif's neurons, batch norms,
dropouts and encoder and PyTorch's layers are its leaves, and every other call (``SeqToANN``'s
folding of time into the batch, a residual sum, a reshape) is a node of its own. Each node's value
is computed on the sample as it is captured, so a branch on a shape (``if x.dim() == 4``) takes the
sample's branch; a branch on a tensor's values is refused. The NIR graph has a node per *call* of
a layer (a module called twice gives two nodes, ``name`` and ``name.1``: each adalif neuron call
starts from a fresh state) and an edge per tensor that flows between them. Every operation on the
way is mapped or refused by name:

* ``nn.Conv2d`` -> ``Conv2d``; ``nn.Linear`` -> ``Affine``; a following batch norm is folded into
  them with its eval statistics (and tdBN's scale): :math:`W' = W\\gamma s/\\sigma`,
  :math:`b' = (b - \\mu)\\gamma s/\\sigma + \\beta`;
* ``nn.AvgPool2d`` -> ``AvgPool2d`` (``SumPool2d`` with ``divisor_override=1``), an adaptive
  average pool whose input divides its output likewise;
* ``nn.Flatten``, ``flatten``, ``reshape`` and ``view`` -> ``Flatten`` when they merge adjacent
  dimensions of one sample, nothing when they fold time into the batch or back
  (``[T, B, ...]`` <-> ``[T*B, ...]``, as ``SeqToANN`` does);
* ``a + b`` of two tensors of one shape -> two edges into the node that reads the sum (NIR sums
  the incoming edges of a node, as nirtorch's executor does);
* dropout, identities, ``contiguous``, ``clone``, ``detach`` and ``DirectEncoder`` (the graph's
  input is its output, one step) vanish;
* a neuron whose exact class is registered (:mod:`adalif.definitions`) with
  :math:`H_t = \\beta V_{t-1} + \\alpha X_t` and a hard reset to 0 -> ``LIF`` with
  :math:`\\tau = dt/(1-\\beta)`, :math:`R = \\alpha/(1-\\beta)`, :math:`v_{leak} = v_{reset} = 0`
  (NIR's forward-Euler step is then exactly adalif's).

NIR types describe one sample: the time and batch dimensions (``[T, B, ...]``, or ``[T*B, ...]``
inside a ``SeqToANN``) are left out of every type, and the graph is built with nir's type check.

Refused, naming the layer (or the operation and the layer whose output it reads) and the reason,
never exported wrongly: AR-LIF (adaptive reset and threshold), soft reset, a reset to a value
other than 0, a negative temporal decay, a subclass of a registered neuron that does not register
its own definition (its ``forward`` may compute something else; SpikingJelly-style nodes keep
their state between calls), a subclass of a mapped layer, max pooling, average pooling with
``ceil_mode=True``, with ``count_include_pad=False`` and padding, or with a ``divisor_override``
other than 1, batch norm without running statistics or after anything but a conv or linear layer
that feeds only it, a Flatten or reshape that merges the time or batch dimension into the
sample's, slices, indexing, other views, concatenations, products, in-place operations, any other
operation, and control flow on a tensor's values. NIR fires on :math:`v > v_{th}`, adalif on
:math:`\\ge`: they differ on exact ties only.
"""

from __future__ import annotations

import math
import operator
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import fx, nn
from torch.fx import _symbolic_trace
from torch.fx.proxy import TraceError

from ..analysis.hooks import evaluating
from ..definitions import get, registered
from ..layers import DirectEncoder, SharedDropout, TimeBatchNorm
from ..neurons import Neuron

__all__ = ["to_nir", "make_portable", "NIRExportError"]

_PASS = (nn.Dropout, SharedDropout, nn.Identity)
_NORMS = (TimeBatchNorm, nn.BatchNorm1d, nn.BatchNorm2d)
_SYNAPSES = (nn.Conv2d, nn.Linear)
_POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
#: The layers mapped by their exact class; a subclass (its own forward may compute something else) is refused.
_MAPPED = _PASS + _NORMS + _SYNAPSES + _POOLS + (nn.Flatten, DirectEncoder)
#: Leaves of the captured graph besides PyTorch's own layers: a call of one is one node.
_LEAVES = _MAPPED + (Neuron,)
_ADD = {operator.add, torch.add, "add"}
_SAME = {"contiguous", "clone", "detach"}
_RESHAPES = {torch.flatten, "flatten", torch.unflatten, "unflatten", torch.reshape, "reshape", "view"}


class NIRExportError(ValueError):
    """The network holds something NIR cannot express; the message names the layer and why."""


class _Capture(fx.Tracer):
    """torch.fx's tracer with adalif's neurons and layers as leaves, which computes every node's
    value on ``sample`` as it records it (``node.meta["value"]``): control flow on a shape takes
    the sample's branch, and each call's shapes are known."""

    def __init__(self, sample: torch.Tensor) -> None:
        super().__init__()
        self.sample = sample
        self.computing = False  # running a leaf on real tensors: its inside is not recorded

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualified_name)

    def call_module(self, m, forward, args, kwargs):
        return forward(*args, **kwargs) if self.computing else super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        return attr_val if self.computing else super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        node.meta["where"] = self.scope.module_path  # the module whose forward makes this call
        if kind == "output":
            return node
        args, kwargs = fx.node.map_arg((args, kwargs), lambda n: n.meta["value"])
        # Outside the trace while the value is computed: a neuron's compiled path refuses to run
        # under fx tracing (torch.compile checks this flag).
        self.computing, tracing, _symbolic_trace._is_fx_tracing_flag = True, _symbolic_trace._is_fx_tracing_flag, False
        try:
            if kind == "placeholder":
                value = self.sample if len(self.graph.nodes) == 1 else _only_input(node)
            elif kind == "get_attr":
                value = self.root
                for part in target.split("."):
                    value = getattr(value, part)
            elif kind == "call_module":
                value = self.root.get_submodule(target)(*args, **kwargs)
            elif kind == "call_method":
                value = getattr(args[0], target)(*args[1:], **kwargs)
            else:
                value = target(*args, **kwargs)
        finally:
            self.computing, _symbolic_trace._is_fx_tracing_flag = False, tracing
        node.meta["value"] = value
        return node

    def to_bool(self, obj: fx.Proxy) -> bool:
        if not _from_shapes(obj.node):
            raise NIRExportError(f"{_place(obj.node)}: control flow on a tensor's values: the captured graph would "
                                 f"hold only the sample's branch")
        return bool(obj.node.meta["value"])

    def iter(self, obj: fx.Proxy):
        return iter([obj[i] for i in range(len(obj.node.meta["value"]))])


def _only_input(node: fx.Node):
    if node.args:  # a further argument of forward with a default value
        return node.args[0]
    raise NIRExportError(f"forward: takes more than the one input {node.target!r} without a default; to_nir runs it "
                         f"on one sample")


def _place(node: fx.Node) -> str:
    where = node.meta.get("where", "")
    return f"{where}'s forward" if where else "the network's forward"


def _from_shapes(node: fx.Node) -> bool:
    """Whether a value that is not a tensor depends only on tensors' shapes (``x.dim() == 4``),
    not on their values (``x.sum().item() > 0``)."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "placeholder":  # a further argument of forward, with its default value
        return not isinstance(node.meta.get("value"), torch.Tensor)
    if node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "ndim"):
        return True
    if node.op not in ("call_function", "call_method") or isinstance(node.meta.get("value"), torch.Tensor):
        return False
    return all(_from_shapes(n) for n in node.all_input_nodes)


def _describe(node: fx.Node) -> str:
    """An operation as written, its tensor input called ``x``: ``x[..., :4]``, ``x.view(4, 8)``."""
    def show(a):
        if isinstance(a, fx.Node):
            return "x" if a is node.args[0] else a.name
        if isinstance(a, slice):
            return ":".join("" if v is None else str(v) for v in (a.start, a.stop, a.step)).rstrip(":") or ":"
        if a is Ellipsis:
            return "..."
        if isinstance(a, (tuple, list)):
            return ", ".join(map(show, a))
        return repr(a)

    if node.target is operator.getitem:
        return f"x[{show(node.args[1])}]"
    rest = [show(a) for a in node.args[1:]] + [f"{k}={show(v)}" for k, v in node.kwargs.items()]
    if node.op == "call_method":
        return f"x.{node.target}({', '.join(rest)})"
    return f"{getattr(node.target, '__name__', node.target)}({', '.join([show(node.args[0])] + rest)})"


class _Value(NamedTuple):
    """A tensor of the captured graph, as NIR sees it: the sum of the outputs of ``sources`` (NIR
    nodes, or "input"), laid out with ``lead`` leading dimensions that are not the sample's (2:
    ``[T, B, ...]``; 1: ``[T*B, ...]`` inside a ``SeqToANN``; 0: the network's input ``[B, ...]``
    before its ``DirectEncoder``); ``steps``: (T, B)."""

    sources: Tuple[str, ...]
    lead: int
    steps: Optional[Tuple[int, int]]


class _Call(NamedTuple):
    """One call of a layer (or a Flatten written as an operation: ``flatten``, the sample's
    dimensions merged): its NIR node's name, its input and the shapes."""

    name: str
    module: Optional[nn.Module]
    sources: Tuple[str, ...]
    lead: int
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    flatten: Optional[Tuple[int, int]] = None

    @property
    def in_type(self) -> Tuple[int, ...]:
        return self.in_shape[self.lead:]

    @property
    def out_type(self) -> Tuple[int, ...]:
        return self.out_shape[self.lead:]


def _reshaped(v: _Value, shape: Tuple[int, ...], out: Tuple[int, ...]):
    """``(value, flatten)`` of a reshape of ``v`` (of ``shape``) to ``out``: time folded into the
    batch or back (a new layout, ``flatten`` None), or a Flatten of the sample's dimensions
    ``flatten = (start, end)``; None when it is neither."""
    if v.lead == 0:
        return None
    T, B = v.steps
    sample, lead = shape[v.lead:], v.lead
    if lead == 2 and out == (T * B, *sample):
        return v._replace(lead=1), None
    if lead == 1 and out == (T, B, *sample):
        return v._replace(lead=2), None
    if out[:lead] != shape[:lead]:
        return None
    new = out[lead:]
    for start in range(len(sample)):
        for end in range(start, len(sample)):
            if new == sample[:start] + (math.prod(sample[start:end + 1]),) + sample[end + 1:]:
                return v, (None if start == end else (start, end - len(sample)))
    return None if new != sample else (v, None)


def _capture(model: nn.Module, sample: torch.Tensor) -> fx.Graph:
    """The graph of ``model(sample)`` in eval mode, every node's value computed on the sample."""
    tracer = _Capture(sample)
    attributes = set(vars(model))
    try:
        with evaluating(model), torch.no_grad():
            return tracer.trace(model)
    except TraceError as err:
        raise NIRExportError(f"forward: torch.fx cannot capture it ({err})") from None
    finally:
        for name in set(vars(model)) - attributes:  # fx's copies of tensor constants, set on the model
            delattr(model, name)


def _record(model: nn.Module, graph: fx.Graph) -> Tuple[List[_Call], Tuple[str, ...], Tuple[int, ...]]:
    """The layer calls in order, each with the NIR nodes that feed it; the NIR nodes whose sum is
    the network's output; the type of the graph's input."""
    values: Dict[fx.Node, _Value] = {}
    calls: List[_Call] = []
    taken = {"input", "output"}

    def unique(name: str) -> str:  # the k-th call after the first of one module: name.k
        key, k = name, 0
        while key in taken:
            k += 1
            key = f"{name}.{k}"
        taken.add(key)
        return key

    def refuse(node: fx.Node, why: str):
        x = next((a for a in node.all_input_nodes if a in values), None)
        producer = ", ".join(values[x].sources) if x is not None else node.meta["where"] or "forward"
        raise NIRExportError(f"{producer}: its output goes through {_describe(node)} in {_place(node)}; {why}")

    def tracked(a) -> bool:
        return isinstance(a, fx.Node) and a in values

    outputs, input_type = (), None
    for node in graph.nodes:
        value = node.meta.get("value")
        if node.op == "output":
            out = node.args[0]
            if not tracked(out):
                raise NIRExportError(f"output: the network returns {type(out).__name__}, not one tensor made by its "
                                     f"layers")
            outputs = values[out].sources
        elif node.op == "get_attr" or not isinstance(value, torch.Tensor):
            if node.op in ("call_function", "call_method", "call_module") and not _from_shapes(node):
                refuse(node, "NIR export maps no operation that turns a tensor into anything but a tensor")
        elif node.op == "placeholder":
            if input_type is not None:
                raise NIRExportError(f"{node.target}: a second tensor input; the NIR graph of a network has one")
            encoded = any(u.op == "call_module" and type(model.get_submodule(u.target)) is DirectEncoder
                          for u in node.users)
            values[node] = _Value(("input",), 0, None) if encoded else _Value(("input",), 2, tuple(value.shape[:2]))
            input_type = tuple(value.shape[1:] if encoded else value.shape[2:])
        elif node.op == "call_module":
            x = node.args[0] if len(node.args) == 1 and not node.kwargs else None
            if not tracked(x):
                raise NIRExportError(f"{node.target}: called on anything but one tensor of the network")
            values[node] = _layer(unique(node.target), model.get_submodule(node.target), values[x],
                                  tuple(x.meta["value"].shape), tuple(value.shape), calls)
        elif node.target in _ADD:
            a, b = (node.args + (None, None))[:2]
            if len(node.args) != 2 or node.kwargs or not tracked(a) or not tracked(b):
                refuse(node, "NIR sums the outputs of layers, and adds nothing else")
            if a.meta["value"].shape != b.meta["value"].shape or values[a][1:] != values[b][1:]:
                refuse(node, f"NIR sums tensors of one shape, not {list(a.meta['value'].shape)} and "
                             f"{list(b.meta['value'].shape)}")
            values[node] = values[a]._replace(sources=values[a].sources + values[b].sources)
        elif node.target in _SAME and tracked(node.args[0]) and len(node.all_input_nodes) == 1:
            values[node] = values[node.args[0]]
        elif node.target in _RESHAPES and tracked(node.args[0]) and value.dtype == node.args[0].meta["value"].dtype:
            x = node.args[0]
            v, shape, out = values[x], tuple(x.meta["value"].shape), tuple(value.shape)
            found = _reshaped(v, shape, out)
            if found is None:
                refuse(node, f"it reshapes {list(shape)} to {list(out)}, which {_not_flatten(v, shape, out)}")
            v, flatten = found
            if flatten is not None:
                op = node.target if isinstance(node.target, str) else node.target.__name__
                key = unique(f"{node.meta['where']}.{op}" if node.meta["where"] else op)
                calls.append(_Call(key, None, v.sources, v.lead, shape, out, flatten))
                v = v._replace(sources=(key,))
            values[node] = v
        else:
            refuse(node, "NIR export maps layers, sums of one shape, flattening within a sample and the folding of "
                         "time into the batch, and no other operation (slice, index, view, product, concatenation, "
                         "in-place change)")
    return calls, outputs, input_type


def _not_flatten(v: _Value, shape: Tuple[int, ...], out: Tuple[int, ...]) -> str:
    if v.lead and out[:v.lead] != shape[:v.lead]:
        return "merges the time or batch dimension into the sample's; NIR's Flatten works within a sample"
    return "is not a Flatten of one sample's dimensions; NIR has no other reshape"


def _layer(name: str, m: nn.Module, v: _Value, shape: Tuple[int, ...], out: Tuple[int, ...],
           calls: List[_Call]) -> _Value:
    """The value of a call of the leaf ``m`` on ``v`` (of ``shape``, giving ``out``), appending the
    call when it has a NIR node; refused, naming the layer, when it cannot have one."""
    kind = type(m)
    if not isinstance(m, Neuron) and kind not in _MAPPED:
        base = next((c for c in _MAPPED if isinstance(m, c)), None)
        raise NIRExportError(f"{name}: {kind.__name__} has no NIR node" + (
            f" (a subclass of {base.__name__} whose forward may compute something else; NIR export maps the exact "
            f"class)" if base is not None else " (max pooling, for instance, does not exist in NIR)"))
    if kind is DirectEncoder:
        if v.lead != 0:
            raise NIRExportError(f"{name}: a DirectEncoder on anything but the network's input [B, ...]")
        return _Value(v.sources, 2, tuple(out[:2]))
    if v.lead == 0:
        raise NIRExportError(f"{name}: reads the network's input [B, ...], which its DirectEncoder reads too")
    if kind in _PASS:
        return v
    flatten = None
    if kind is nn.Flatten:
        found = _reshaped(v, shape, out)
        if found is None:
            raise NIRExportError(f"{name}: Flatten({m.extra_repr()}) of {list(shape)} to {list(out)} "
                                 f"{_not_flatten(v, shape, out)}")
        v, flatten = found
        if flatten is None:
            return v
    elif out[:v.lead] != shape[:v.lead]:
        raise NIRExportError(f"{name}: {kind.__name__} of {list(shape)} to {list(out)} changes the time or batch "
                             f"dimensions")
    if isinstance(m, Neuron) and v.lead != 2:
        raise NIRExportError(f"{name}: a neuron called on [T*B, ...] (inside a SeqToANN) takes T*B for time")
    if kind is TimeBatchNorm and v.lead != 2 or kind in (nn.BatchNorm1d, nn.BatchNorm2d) and v.lead != 1:
        raise NIRExportError(f"{name}: {kind.__name__} on {list(shape)} normalises another dimension than the "
                             f"sample's channels")
    if kind is nn.Linear and len(shape) - v.lead != 1:
        raise NIRExportError(f"{name}: Linear on samples of shape {list(shape[v.lead:])}; NIR's Affine takes vectors")
    calls.append(_Call(name, m, v.sources, v.lead, shape, out, flatten))
    return v._replace(sources=(name,))


def _definition(name: str, m: Neuron):
    """The registered definition of the exact class of ``m``: a subclass may compute something
    else than the class it derives from, so it needs its own definition."""
    exact = {get(n).module_class(): get(n) for n in registered()}
    if type(m) in exact:
        return exact[type(m)]
    base = next((c.__name__ for c in type(m).__mro__ if c in exact), None)
    hint = (f"; it derives from {base}, but its own methods may compute something else (register a definition with "
            f"module={type(m).__name__} to export it)" if base else " (register its definition with "
            f"adalif.definitions.register)")
    raise NIRExportError(f"{name}: {type(m).__name__} is not the class of a registered neuron{hint}")


def _decays(name: str, m: Neuron) -> Tuple[torch.Tensor, torch.Tensor]:
    """(alpha, beta) of a neuron with H_t = beta V_{t-1} + alpha X_t, or why it cannot be exported:
    each neuron's definition says (``nir``: a mapping, or the reason there is none)."""
    d = _definition(name, m)
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


def _refuse_hooks(model: nn.Module) -> None:
    """A forward hook may change what a module returns, and NIR would not: refused by name."""
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        raise NIRExportError("a global forward hook (nn.modules.module.register_module_forward_hook) may change what "
                             "layers return, which the NIR graph would not; remove it before the export")
    for name, m in model.named_modules():
        if m._forward_hooks or m._forward_pre_hooks:
            raise NIRExportError(f"{name or type(m).__name__}: has a forward hook, which may change what it computes "
                                 f"and the NIR graph would not; remove it (handle.remove()) before the export")


def to_nir(model: nn.Module, sample: torch.Tensor, dt: float = 1e-4, portable: bool = False):
    """The ``nir.NIRGraph`` of ``model`` (captured on ``sample``: images ``[B, C, H, W]`` for a
    network that encodes them, or a sequence ``[T, B, ...]``; B = 1 is enough). ``dt``: the time
    step NIR's continuous-time neurons are discretised with. ``portable``: the same network for
    importers with narrower conventions (:func:`make_portable`). Every module's training flag is as
    it was after."""
    import nir  # the export's own dependency; the rest of adalif does not need it

    _refuse_hooks(model)
    calls, outputs, input_type = _record(model, _capture(model, sample))
    consumers: Dict[str, int] = {}
    for key in [k for c in calls for k in c.sources] + list(outputs):
        consumers[key] = consumers.get(key, 0) + 1
    # Fold each batch norm into the conv or linear layer that alone feeds it, and only it.
    folded: Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
    alias: Dict[str, str] = {}  # a folded batch norm -> its conv or linear layer
    for c in calls:
        m = c.module
        if isinstance(m, _SYNAPSES):
            folded[c.name] = (m.weight.detach(), None if m.bias is None else m.bias.detach())
        elif isinstance(m, _NORMS):
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

    nodes: Dict[str, object] = {"input": nir.Input(input_type={"input": np.array(input_type)})}
    edges: List[Tuple[str, str]] = []
    for c in calls:
        m, name = c.module, c.name
        if name in alias:
            continue
        if c.flatten is not None:
            node = nir.Flatten(input_type={"input": np.array(c.in_type)}, start_dim=c.flatten[0], end_dim=c.flatten[1])
        elif isinstance(m, _SYNAPSES):
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
            shape = c.out_type
            a, bt = _per_neuron(alpha, shape), _per_neuron(beta, shape)
            node = nir.LIF(tau=dt / (1.0 - bt), r=a / (1.0 - bt), v_leak=np.zeros(shape), v_reset=np.zeros(shape),
                           v_threshold=np.full(shape, float(m.v_threshold)))
        else:  # average pooling
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
        nodes[name] = node
        edges += [(resolve(key), name) for key in c.sources]
    output_type = next((c.out_type for c in calls if c.name == resolve(outputs[0])), input_type)
    nodes["output"] = nir.Output(output_type={"output": np.array(output_type)})
    edges += [(resolve(key), "output") for key in outputs]
    graph = _checked(nir, nodes, edges)
    return make_portable(graph) if portable else graph


def _checked(nir, nodes, edges):
    """The graph, built with nir's type check (each edge's types agree)."""
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=True)
    except ValueError as err:  # a mapping above disagrees with nir's reading of a node: say so, never write it
        raise NIRExportError(f"graph: nir's type check: {err}") from None


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
    return _checked(nir, nodes, edges)
