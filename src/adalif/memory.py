"""Training memory: 1-bit storage of the spikes that layers save for backward, and checkpointing
over layers and over time (docs/training.md, "Training memory").

Backpropagation through time keeps what every layer saved in the forward pass. After a spiking
neuron, the largest of those tensors are its spikes, kept by each following convolution or linear
layer for its weight gradient in float32 (or bf16): 32 (16) times the one bit each holds.

:func:`packed_spikes` stores them as bits. Under it, the output of every adalif neuron is marked
as binary, and :func:`torch.autograd.graph.saved_tensors_hooks` packs any saved tensor that is
such an output, or a view of one, 8 values per byte; backward unpacks it to the same values. The
autograd formulas are PyTorch's own and see the same numbers, so the gradients are bit-identical
to a plain run (the tests check it). A tensor saved twice (the two convolutions of a residual
block read the same spikes) is packed once.

:func:`checkpoint_blocks` recomputes each block's forward in the backward pass, so that only the
block inputs are kept between the passes; with ``keep_convolutions`` it keeps each convolution's
output too and recomputes only the cheap layers between them (``checkpoint: neurons``). The
recomputation updates no batch-norm running statistics: they are updated once per step, as in a
plain run. With packed spikes, the block inputs (spikes) are kept as bits. Both are exact.

:func:`checkpoint_time` runs the layers a few time steps at a time and keeps only the neurons'
states between the chunks (``checkpoint: time``), so that memory no longer grows with T; it needs
layers that act on each step alone (per-step batch norm, no dropout).
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["MEMORY_SPIKES", "MEMORY_CHECKPOINT", "packed_spikes", "checkpoint_blocks", "checkpoint_time",
           "time_chunk_refusal", "training_memory",
           "pack_bits", "unpack_bits", "segments", "default_container"]

MEMORY_SPIKES = ("packed", "plain")
MEMORY_CHECKPOINT = ("none", "neurons", "blocks", "time")

_MARK = "_adalif_binary"  # on a neuron's output tensor: its version counter when it was marked
_PACKED = "_adalif_packed"  # on the same tensor: its packed bits, shared by every saver
_BITS = (1, 2, 4, 8, 16, 32, 64, 128)
_TABLES: Dict[Tuple[torch.dtype, torch.device], Tuple[torch.Tensor, torch.Tensor]] = {}


def _tables(dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(weights [8], table [256, 8])`` in ``dtype`` on ``device``: the bit values, and every
    byte's 8 bits as values (made once per dtype and device)."""
    key = (dtype, device)
    if key not in _TABLES:
        bits = torch.tensor(_BITS, device=device)
        table = (torch.arange(256, device=device).unsqueeze(1) & bits).ne(0).to(dtype)
        _TABLES[key] = (bits.to(dtype), table)
    return _TABLES[key]


def pack_bits(x: torch.Tensor) -> torch.Tensor:
    """The values of a tensor of 0s and 1s as ``uint8`` bits, 8 per byte (the last byte padded
    with 0s). Each byte is the dot product of 8 values with the bit values 1, 2, ..., 128: exact in
    any floating dtype (integers below 256), and one pass of a matrix-vector product, about 4
    times faster on the CPU than converting to bytes and summing them."""
    flat = x.reshape(-1)
    n = flat.numel()
    main = n - n % 8
    weights, _ = _tables(x.dtype, x.device)
    packed = (flat[:main].view(-1, 8) @ weights).to(torch.uint8)
    if main < n:
        tail = flat.new_zeros(8)
        tail[: n - main] = flat[main:]
        packed = torch.cat([packed, (tail @ weights).to(torch.uint8).reshape(1)])
    return packed


def unpack_bits(packed: torch.Tensor, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """The ``numel`` values of :func:`pack_bits` as a flat tensor of ``dtype``: one row of a
    256-entry table per byte (a gather, as fast as a copy of the output)."""
    _, table = _tables(dtype, packed.device)
    return table.index_select(0, packed.long()).reshape(-1)[:numel]


def _binary_base(t: torch.Tensor) -> Optional[torch.Tensor]:
    """The marked neuron output that ``t`` is, or is a view of, if it has not changed since it was
    marked (an in-place change could have made it non-binary); else None."""
    base = t if t._base is None else t._base
    version = getattr(base, _MARK, None)
    if version is None or base._version != version or not base.is_contiguous():
        return None
    return base


class _Packed:
    """What the graph keeps of a saved spike tensor: the bits of its base, and how it views them."""

    __slots__ = ("bits", "numel", "dtype", "device", "base_shape", "size", "stride", "offset", "is_view")

    def __init__(self, base: torch.Tensor, t: torch.Tensor) -> None:
        bits = getattr(base, _PACKED, None)
        if bits is None:
            bits = pack_bits(base)
            setattr(base, _PACKED, bits)
        self.bits, self.numel, self.dtype, self.device = bits, base.numel(), base.dtype, base.device
        self.base_shape, self.is_view = base.shape, t is not base
        self.size, self.stride, self.offset = t.size(), t.stride(), t.storage_offset() - base.storage_offset()

    def unpack(self) -> torch.Tensor:
        base = unpack_bits(self.bits, self.numel, self.dtype).view(self.base_shape)
        return base.as_strided(self.size, self.stride, self.offset) if self.is_view else base


#: The autograd nodes of the marked outputs (held, so that no id is reused while packing runs).
_SOURCES: Dict[int, object] = {}
_DEPTH = [0]  # packed_spikes contexts open; the outermost clears _SOURCES
#: Nodes whose output holds values of their input unchanged: a view of spikes is spikes.
_VIEWS = {"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "AsStridedBackward0", "SliceBackward0",
          "SelectBackward0", "UnbindBackward0", "PermuteBackward0", "TransposeBackward0", "ExpandBackward0",
          "SqueezeBackward0", "SqueezeBackward1", "UnsqueezeBackward0", "CloneBackward0"}


def _is_cast_of_spikes(t: torch.Tensor) -> bool:
    """Whether ``t`` is a dtype cast (autocast's bf16 copy of a convolution's input) of a marked
    output or of a view of one: its autograd node is a copy whose input traces back, through
    views only, to the node of a neuron's output. An in-place change of the output gives it a new
    node, so a changed output is never taken for spikes."""
    node = t.grad_fn
    if node is None or node.name() != "ToCopyBackward0" or t._base is not None or not t.is_contiguous():
        return False
    for _ in range(8):
        node = node.next_functions[0][0] if node.next_functions else None
        if node is None:
            return False
        if _SOURCES.get(id(node)) is node:
            return True
        if node.name() not in _VIEWS:
            return False
    return False


def _pack_hook(t: torch.Tensor):
    if t.dtype in (torch.bool, torch.uint8) or not t.is_floating_point():
        return t
    base = _binary_base(t)
    if base is not None:
        return _Packed(base, t)
    return _Packed(t, t) if _SOURCES and _is_cast_of_spikes(t) else t


def _unpack_hook(saved):
    return saved.unpack() if isinstance(saved, _Packed) else saved


def _binary_neurons(model: Optional[nn.Module]) -> Iterator[nn.Module]:
    from .neurons import Neuron

    modules = model.modules() if model is not None else ()
    return (m for m in modules if isinstance(m, Neuron) and m.spiking)


def _mark(module, inputs, output):
    """Mark a neuron's output as binary. Views of one tensor share its root (``_base``), so the
    mark goes on the root; when the output is itself a view (a kernel's ``[T, N]`` reshaped to
    ``[T, B, C, H, W]``) it must cover the whole root, or nothing is marked."""
    if not (isinstance(output, torch.Tensor) and output.is_floating_point()):
        return
    root = output if output._base is None else output._base
    if root is output or (output.numel() == root.numel() and output.is_contiguous() and root.is_contiguous()
                          and output.storage_offset() == root.storage_offset()):
        setattr(root, _MARK, root._version)
    if output.grad_fn is not None:  # for the casts that autocast makes of it
        _SOURCES[id(output.grad_fn)] = output.grad_fn


@contextlib.contextmanager
def packed_spikes(model: nn.Module):
    """Within this context, every tensor the forward pass of ``model`` saves for backward that is
    the output of one of its adalif neurons (spikes, 0 or 1), or a view of one, is stored as bits.
    So is a cast of one (under autocast, a convolution keeps the bf16 copy of its input).
    Run the forward pass inside, backward anywhere::

        with adalif.memory.packed_spikes(model):
            loss = criterion(model(x), y)
        loss.backward()   # gradients bit-identical to a plain run
    """
    with _saving(_binary_neurons(model), packing=True):
        yield


@contextlib.contextmanager
def _saving(neurons: Iterable[nn.Module], packing: bool, storages: Optional[set] = None):
    """Saved-tensor hooks: with ``packing``, the outputs of ``neurons`` (marked) and their views
    and casts are kept as bits; ``storages``, when given, collects the address of every saved
    tensor's storage."""
    def pack(t):
        if storages is not None:
            storages.add(t.untyped_storage().data_ptr())
        return _pack_hook(t) if packing else t

    handles = [m.register_forward_hook(_mark) for m in neurons] if packing else []
    _DEPTH[0] += packing
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, _unpack_hook):
            yield
    finally:
        for handle in handles:
            handle.remove()
        _DEPTH[0] -= packing
        if not _DEPTH[0]:
            _SOURCES.clear()


def _flat(container: nn.Sequential) -> List[nn.Module]:
    """The modules ``container`` runs, in order, looking into nested ``nn.Sequential``s."""
    out: List[nn.Module] = []
    for m in container.children():
        out.extend(_flat(m) if type(m) is nn.Sequential else [m])
    return out


def segments(container: nn.Sequential) -> List[List[nn.Module]]:
    """``container``'s modules cut after each one that holds a neuron: every segment ends in
    spikes (a conv, its batch norm and its neuron; a residual block; a pooling joins the segment
    after it), so the tensors between segments are spikes."""
    from .neurons import Neuron

    out: List[List[nn.Module]] = [[]]
    for m in _flat(container):
        out[-1].append(m)
        if any(isinstance(sub, Neuron) for sub in m.modules()):
            out.append([])
    if not out[-1]:
        out.pop()
    elif len(out) > 1:  # modules after the last neuron join the last segment
        out[-2].extend(out.pop())
    return out


@contextlib.contextmanager
def _no_statistics_update(modules: Iterable[nn.Module]):
    """Batch norms in ``modules`` normalise with the batch's statistics and leave the running ones
    as they were (the recomputation of a checkpointed segment: the first pass updated them)."""
    norms = [m for block in modules for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    buffers = [b for m in norms for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        for b, value in zip(buffers, saved):
            b.copy_(value)


def _run(modules: List[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for m in modules:
        x = m(x)
    return x


def _keepable(m: nn.Module) -> bool:
    """A convolution whose backward :class:`_KeptConv` can compute from its output's gradient,
    its input and its weight alone (zero padding given as numbers, not transposed)."""
    return (isinstance(m, nn.modules.conv._ConvNd) and not m.transposed and m.padding_mode == "zeros"
            and not isinstance(m.padding, str))


class _KeptConv(torch.autograd.Function):
    """A convolution in a segment's recomputation: its output is the one the first pass kept, and
    its backward is the convolution's own (``aten.convolution_backward``, the function PyTorch's
    autograd formula calls), from its input and weight. Under autocast the caller passes both
    already cast, as autocast casts them, so that the casts' gradients flow as in a plain run."""

    @staticmethod
    def forward(ctx, output, x, weight, bias, conv):
        ctx.save_for_backward(x, weight)
        ctx.conv, ctx.bias_sizes = conv, None if bias is None else list(bias.shape)
        return output

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        conv, need = ctx.conv, ctx.needs_input_grad
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, ctx.bias_sizes, list(conv.stride), list(conv.padding), list(conv.dilation), False,
            [0] * len(conv.stride), conv.groups, [need[1], need[2], need[3] and ctx.bias_sizes is not None])
        return None, gx, gw, gb, None


def _autocast_cast(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``t`` as autocast would pass it to a convolution (unchanged outside autocast)."""
    if t is None or not t.is_floating_point() or not torch.is_autocast_enabled(t.device.type):
        return t
    return t.to(torch.get_autocast_dtype(t.device.type))


@contextlib.contextmanager
def _forwards(replacements: Dict[nn.Module, object]):
    """Each module's ``forward`` replaced by the given function within the context (an instance
    attribute, which ``nn.Module.__call__`` calls, hooks and all; deleted after, back to the
    class's ``forward``)."""
    for module, forward in replacements.items():
        module.forward = forward
    try:
        yield
    finally:
        for module in replacements:
            del module.forward


@contextlib.contextmanager
def _convolutions(modules: List[nn.Module], kept: Dict[nn.Module, List[torch.Tensor]], replay: bool):
    """The keepable convolutions of ``modules``: recording each output into ``kept`` (first pass),
    or (``replay``) returning the recorded outputs, in call order, as :class:`_KeptConv`s."""
    convs = [m for block in modules for m in block.modules() if _keepable(m)]

    def record(conv):
        def forward(x):
            out = type(conv).forward(conv, x)
            kept.setdefault(conv, []).append(out)
            return out
        return forward

    def reuse(conv):
        def forward(x):
            outputs = kept.get(conv)
            if not outputs:
                raise RuntimeError("checkpoint: neurons: a segment's backward ran twice (retain_graph) or "
                                   "called a convolution more often than its forward did")
            return _KeptConv.apply(outputs.pop(0), _autocast_cast(x), _autocast_cast(conv.weight),
                                   _autocast_cast(conv.bias), conv)
        return forward

    with _forwards({conv: (reuse if replay else record)(conv) for conv in convs}):
        yield


def _first_pass(ctx, x: torch.Tensor) -> None:
    """Record on ``ctx`` what a recomputation must repeat of the first pass: the random state
    (dropout draws the same masks) and autocast."""
    ctx.rng = torch.get_rng_state()
    ctx.cuda_rng = torch.cuda.get_rng_state(x.device) if x.is_cuda else None
    ctx.autocast = [(device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
                    for device in ("cpu", "cuda")]


@contextlib.contextmanager
def _as_first_pass(ctx, x: torch.Tensor):
    """The random state of :func:`_first_pass`, restored for the recomputation and its backward;
    the batch-norm running statistics that the recomputation updates are restored afterwards (the
    first pass updated them; batch norm's backward reads them, so not before)."""
    devices = [x.device] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices, device_type=x.device.type if devices else "cuda"):
        torch.set_rng_state(ctx.rng)
        if ctx.cuda_rng is not None:
            torch.cuda.set_rng_state(ctx.cuda_rng, x.device)
        with _no_statistics_update(ctx.modules):
            yield


@contextlib.contextmanager
def _recomputing(ctx):
    """Gradients on and the first pass's autocast, for the recomputed forward (not its backward)."""
    with contextlib.ExitStack() as stack, torch.enable_grad():
        for device, enabled, dtype in ctx.autocast:
            if enabled:
                stack.enter_context(torch.autocast(device, dtype=dtype))
        yield


def _release(y: torch.Tensor, storages: set, x: torch.Tensor) -> None:
    """Free the memory of a recomputed segment's output before its backward, which reads only
    its shape: the incoming gradient is given. Only if no node of the segment saved it (the
    addresses of every saved storage are in ``storages``) and it is not the input."""
    storage = y.untyped_storage()
    if storage.data_ptr() not in storages and storage.data_ptr() != x.untyped_storage().data_ptr():
        storage.resize_(0)


class _Segment(torch.autograd.Function):
    """A segment run without keeping its activations: the forward runs under ``no_grad`` and
    saves only the input (with :func:`packed_spikes` active, as bits), the backward recomputes the
    segment from it, with the same random state and autocast, and backpropagates through it.
    With ``keep_convs`` the forward also keeps the output of each convolution, and the
    recomputation takes it instead of convolving again: it recomputes only the cheap layers
    (batch norms, neurons, pooling, additions).

    Written here rather than taken from ``torch.utils.checkpoint``: its non-reentrant form keeps
    the segment's input as a plain reference, out of reach of the saved-tensor hooks that store
    spikes as bits; saving the input with ``save_for_backward`` puts it within their reach."""

    @staticmethod
    def forward(ctx, modules, keep_convs, x, anchor):
        # ``anchor``: an empty tensor that requires grad, so that the segment gets a backward even
        # when its input does not (the first one, fed with data).
        ctx.modules, ctx.kept = modules, {} if keep_convs else None
        ctx.packing = _DEPTH[0] > 0
        _first_pass(ctx, x)
        with torch.no_grad(), (_convolutions(modules, ctx.kept, False) if keep_convs else contextlib.nullcontext()):
            y = _run(modules, x)
        ctx.save_for_backward(x)
        return y

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(ctx.needs_input_grad[2])
        replay = _convolutions(ctx.modules, ctx.kept, True) if ctx.kept is not None else contextlib.nullcontext()
        storages: set = set()
        neurons = [m for block in ctx.modules for m in _binary_neurons(block)]
        with _as_first_pass(ctx, x):
            with _recomputing(ctx), replay, _saving(neurons, ctx.packing, storages):
                y = _run(ctx.modules, x)
            _release(y, storages, x)
            torch.autograd.backward(y, grad)
        # The autograd engine keeps a node's Python attributes until the whole graph goes: free
        # the kept outputs now (the saved tensors are freed by the engine itself).
        ctx.kept = None
        return None, None, x.grad if ctx.needs_input_grad[2] else None, None


def default_container(model: nn.Module) -> nn.Sequential:
    """The part of a model to checkpoint: ``model.features`` (every adalif model: the stem and
    residual blocks of a ResNet, the layers of a VGG), else the model if it is an ``nn.Sequential``."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return features
    if isinstance(model, nn.Sequential):
        return model
    raise ValueError("checkpoint: the model has no nn.Sequential 'features'; pass container= (an nn.Sequential)")


@contextlib.contextmanager
def checkpoint_blocks(model: nn.Module, container: Optional[nn.Sequential] = None, keep_convolutions: bool = False):
    """Within this context, the :func:`segments` of ``container`` (default:
    :func:`default_container`) keep only their input for backward and recompute their forward
    there (in training mode with gradients; as usual otherwise). Batch-norm running statistics are
    updated once per step, by the first pass. Backward with ``loss.backward()`` (the recomputed
    gradients reach the parameters from within the backward pass, as reentrant checkpointing).

    ``keep_convolutions``: also keep each convolution's output, so that the recomputation runs
    only the layers between convolutions (batch norms, neurons, pooling, additions): the
    ``checkpoint: neurons`` option, less memory saved for much less time."""
    container = default_container(model) if container is None else container
    parts = segments(container)

    def forward(x):
        if not (torch.is_grad_enabled() and container.training):
            return _run([m for part in parts for m in part], x)
        anchor = torch.empty(0, requires_grad=True)
        for part in parts:
            x = _Segment.apply(part, keep_convolutions, x, anchor)
        return x

    with _forwards({container: forward}):
        yield


def time_chunk_refusal(container: nn.Module, prefix: str = "features.") -> Optional[str]:
    """Why ``container`` cannot be run in time chunks with the same result, or None: each of its
    layers but the neurons must act on every time step separately. ``prefix``: the container's
    name in the model, for the module named in the answer."""
    from .definitions import definition_of
    from .layers import SharedDropout, TimeBatchNorm
    from .neurons import Neuron

    per_step_norms = {id(m.bn) for m in container.modules() if isinstance(m, TimeBatchNorm) and m.mode == "per_step"}
    for name, m in container.named_modules(prefix=prefix.rstrip(".")):
        if isinstance(m, TimeBatchNorm) and m.mode != "per_step":
            return (f"{name}: a batch norm with statistics over all steps (bn: {m.mode}); build the model with "
                    "bn: per_step (model.options.bn in a config)")
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in per_step_norms:
            return f"{name}: a batch norm over T·B; only TimeBatchNorm with mode per_step normalises each step alone"
        if isinstance(m, (SharedDropout, nn.modules.dropout._DropoutNd)) and m.p > 0:
            return f"{name}: dropout draws its masks over all steps at once; use checkpoint: blocks"
        if isinstance(m, Neuron):
            if type(m).forward is not Neuron.forward:
                return f"{name}: {type(m).__name__} overrides forward; time chunks run neurons through Neuron.run"
            try:
                per_step = definition_of(m).per_step
            except ValueError:
                per_step = False
            if per_step:
                return f"{name}: {type(m).__name__} has a parameter per time step"
    return None


@contextlib.contextmanager
def _carried_states(neurons: List[nn.Module], start: List[Optional[tuple]], end: List[Optional[tuple]]):
    """Each neuron of ``neurons`` starts from ``start[i]`` (None: its initial state) and leaves
    its final state in ``end[i]``; each must run once per call."""
    def carried(i, neuron):
        def forward(x):
            if end[i] is not None:
                raise RuntimeError(f"checkpoint: time: {type(neuron).__name__} ran twice in one chunk; time chunks "
                                   "need each neuron called once per forward")
            out = neuron.run(x, start[i])
            end[i] = out.state
            return out.spikes
        return forward

    with _forwards({neuron: carried(i, neuron) for i, neuron in enumerate(neurons)}):
        yield


class _Chunk(torch.autograd.Function):
    """Steps ``[t0, t1)`` of a container run without keeping their activations: the forward keeps
    the chunk's input and the neurons' states before it; the backward recomputes the chunk from
    them and backpropagates the gradients of its output and of the states it hands on.
    Arguments after ``anchor``: the neurons' start states, flattened (``layout``: see
    :func:`_unflatten`); the forward writes the layout of the states it returns into ``end_layout``."""

    @staticmethod
    def forward(ctx, modules, neurons, layout, end_layout, x, anchor, *states):
        ctx.modules, ctx.neurons, ctx.layout = modules, neurons, layout
        _first_pass(ctx, x)
        start, end = _unflatten(states, layout), [None] * len(neurons)
        with torch.no_grad(), _carried_states(neurons, start, end):
            y = _run(modules, x)
        ctx.save_for_backward(x, *states)
        end_layout[:] = [(type(state), len(state)) for state in end]
        return (y, *(t for state in end for t in state))

    @staticmethod
    def backward(ctx, grad_y, *grad_states):
        x, *states = ctx.saved_tensors
        x = x.detach().requires_grad_(ctx.needs_input_grad[4])
        states = [s.detach().requires_grad_(need) for s, need in zip(states, ctx.needs_input_grad[6:])]
        start, end = _unflatten(states, ctx.layout), [None] * len(ctx.neurons)
        with _as_first_pass(ctx, x):
            with _recomputing(ctx), _carried_states(ctx.neurons, start, end):
                y = _run(ctx.modules, x)
            outputs, grads = [y], [grad_y]
            for t, g in zip((t for state in end for t in state), grad_states):
                if g is not None and t.requires_grad:
                    outputs.append(t)
                    grads.append(g)
            torch.autograd.backward(outputs, grads)
        grad_x = x.grad if ctx.needs_input_grad[4] else None
        return (None, None, None, None, grad_x, None, *(s.grad if s.requires_grad else None for s in states))


def _unflatten(flat, layout: List[Optional[Tuple[type, int]]]) -> List[Optional[tuple]]:
    """The neurons' states from their flattened fields; ``layout``: each state's type and field
    count (None: the neuron's initial state)."""
    out, i = [], 0
    for entry in layout:
        if entry is None:
            out.append(None)
            continue
        kind, n = entry
        out.append(kind(*flat[i:i + n]))
        i += n
    return out


@contextlib.contextmanager
def checkpoint_time(model: nn.Module, container: Optional[nn.Sequential] = None, chunk: int = 2):
    """Within this context, ``container`` (default: :func:`default_container`) runs ``chunk`` time
    steps at a time in training, keeping for backward only its input and, between chunks, the
    state of each neuron; the backward recomputes one chunk at a time. Memory then grows with
    ``chunk``, not with T. Exact where every layer but the neurons acts on each step separately:
    batch norms with ``bn: per_step``, no dropout, no parameter per step; anything else is refused
    with the module named (:func:`checkpoint_blocks` has no such condition). The gradients equal a
    plain run's up to the order of float sums (a convolution's weight gradient is summed chunk by
    chunk); the forward values and the batch-norm statistics are the same."""
    if not (isinstance(chunk, int) and not isinstance(chunk, bool) and chunk >= 1):
        raise ValueError(f"memory.chunk: expected an integer >= 1, got {chunk!r}")
    from .neurons import Neuron

    prefix = "features." if container is None or container is getattr(model, "features", None) else ""
    container = default_container(model) if container is None else container
    refusal = time_chunk_refusal(container, prefix)
    if refusal is not None:
        raise ValueError(f"checkpoint: time: {refusal}")
    modules = _flat(container)
    neurons = [m for m in container.modules() if isinstance(m, Neuron)]

    def forward(x):
        if not (torch.is_grad_enabled() and container.training) or x.shape[0] <= chunk:
            return _run(modules, x)
        anchor = torch.empty(0, requires_grad=True)
        outputs, states, layout = [], [], [None] * len(neurons)
        for t0 in range(0, x.shape[0], chunk):
            end_layout: List[Tuple[type, int]] = []
            y, *states = _Chunk.apply(modules, neurons, layout, end_layout, x[t0:t0 + chunk], anchor, *states)
            outputs.append(y)
            layout = end_layout
        return torch.cat(outputs)

    with _forwards({container: forward}):
        yield


@contextlib.contextmanager
def training_memory(model: nn.Module, spikes: str = "plain", checkpoint: str = "none", chunk: int = 2):
    """The two options of a config's ``memory`` section together (``spikes``: packed|plain,
    ``checkpoint``: none|neurons|blocks|time, ``chunk``: the time steps per chunk of ``time``)."""
    if spikes not in MEMORY_SPIKES:
        raise ValueError(f"memory.spikes: got {spikes!r}, expected one of {list(MEMORY_SPIKES)}")
    if checkpoint not in MEMORY_CHECKPOINT:
        raise ValueError(f"memory.checkpoint: got {checkpoint!r}, expected one of {list(MEMORY_CHECKPOINT)}")
    with contextlib.ExitStack() as stack:
        if checkpoint in ("neurons", "blocks"):
            stack.enter_context(checkpoint_blocks(model, keep_convolutions=checkpoint == "neurons"))
        elif checkpoint == "time":
            stack.enter_context(checkpoint_time(model, chunk=chunk))
        if spikes == "packed":
            stack.enter_context(packed_spikes(model))
        yield
