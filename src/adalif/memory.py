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
import functools
import weakref
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["MEMORY_SPIKES", "MEMORY_CHECKPOINT", "packed_spikes", "checkpoint_blocks", "checkpoint_time",
           "time_chunk_refusal", "training_memory", "is_binary", "recomputing", "chunk_start",
           "pack_bits", "unpack_bits", "segments", "default_container", "kept_for_backward", "KeptForBackward"]

MEMORY_SPIKES = ("packed", "plain")
"""The values of ``memory.spikes``: saved spikes stored as bits (:func:`packed_spikes`) or as they are."""
MEMORY_CHECKPOINT = ("none", "neurons", "blocks", "time")
"""The values of ``memory.checkpoint``: none, blocks keeping their convolutions' outputs
(:func:`checkpoint_blocks` with ``keep_convolutions``), whole blocks, or chunks of time
steps (:func:`checkpoint_time`)."""

_MARK = "_adalif_binary"  # on a neuron's output tensor: worth checking for 0s and 1s when saved
_PACKED = "_adalif_packed"  # on the same tensor: (its version, its bits or None if not all 0/1)
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


#: A float dtype's integer twin of the same width, and the bits of 1.0 in it: the 0/1 check reads
#: the bits, so that -0.0 (which would unpack as +0.0) is not taken for 0.
_ONE_BITS = {torch.float32: (torch.int32, 0x3F800000), torch.float64: (torch.int64, 0x3FF0000000000000),
             torch.bfloat16: (torch.int16, 0x3F80), torch.float16: (torch.int16, 0x3C00)}


def is_binary(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is exactly +0.0 or 1.0 (checked on the bits)."""
    kind = _ONE_BITS.get(t.dtype)
    if kind is None:
        return False
    bits = t.contiguous().view(kind[0])
    return bool(torch.logical_or(bits == 0, bits == kind[1]).all())


class _Packed:
    """What the graph keeps of a saved tensor verified to hold only 0s and 1s: the bits of its base,
    how it views them, and (weakly) the base with its version then, for PyTorch's in-place check."""

    __slots__ = ("bits", "numel", "dtype", "base_shape", "size", "stride", "offset", "is_view", "base", "version")

    def __init__(self, base: torch.Tensor, bits: torch.Tensor, t: torch.Tensor) -> None:
        self.bits, self.numel, self.dtype = bits, base.numel(), base.dtype
        self.base_shape, self.is_view = base.shape, t is not base
        self.size, self.stride, self.offset = t.size(), t.stride(), t.storage_offset() - base.storage_offset()
        self.base, self.version = weakref.ref(base), base._version

    def unpack(self) -> torch.Tensor:
        base = self.base()
        if base is not None and base._version != self.version:
            # A plain run's saved tensor raises this at backward; a packed one must too.
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[{base.type()} {list(base.shape)}] is at version {base._version}; expected version "
                f"{self.version} instead (spikes saved as bits by adalif.memory.packed_spikes)")
        out = unpack_bits(self.bits, self.numel, self.dtype).view(self.base_shape)
        return out.as_strided(self.size, self.stride, self.offset) if self.is_view else out


def _verified_bits(base: torch.Tensor) -> Optional[torch.Tensor]:
    """``base``'s values as bits if they are all 0 or 1 now, else None. Checked and packed once per
    version of the tensor: a tensor saved by several layers (the two convolutions of a residual
    block) is stored once."""
    cached = getattr(base, _PACKED, None)
    if cached is not None and cached[0] == base._version:
        return cached[1]
    bits = pack_bits(base) if is_binary(base) else None
    setattr(base, _PACKED, (base._version, bits))
    return bits


#: The autograd nodes of the marked outputs (held, so that no id is reused while packing runs).
_SOURCES: Dict[int, object] = {}
_DEPTH = [0]  # packed_spikes contexts open; the outermost clears _SOURCES
#: Nodes whose output holds values of their input unchanged: a view of spikes is spikes.
_VIEWS = {"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "AsStridedBackward0", "SliceBackward0",
          "SelectBackward0", "UnbindBackward0", "PermuteBackward0", "TransposeBackward0", "ExpandBackward0",
          "SqueezeBackward0", "SqueezeBackward1", "UnsqueezeBackward0", "CloneBackward0"}


def _is_cast_of_marked(t: torch.Tensor) -> bool:
    """Whether ``t`` may be a dtype cast (autocast's bf16 copy of a convolution's input) of a marked
    output or of a view of one: its autograd node is a copy whose input traces back, through views
    only, to the node of a neuron's output. Only a hint of what is worth checking: the values are
    checked before anything is packed."""
    node = t.grad_fn
    if node is None or node.name() != "ToCopyBackward0" or t._base is not None:
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


def _compiled_refusal(option: str) -> str:
    return (f"{option} does not run inside torch.compile (the compiler decides what a compiled graph keeps for "
            "backward); run the model uncompiled, or compile it without this option")


def _raise_compiled(option: str) -> None:
    raise RuntimeError(_compiled_refusal(option))


#: ``_raise_compiled`` behind ``torch.compiler.disable``, made when a memory context is entered
#: (making it imports torch._dynamo, which adalif does not import otherwise). Dynamo runs a
#: disabled function outside the graph it traces, so the error reaches the user as it is.
_REFUSE: List = []


def _refuse_compiled(option: str) -> None:
    _REFUSE[0](option)


def _refuse_compiling(option: str) -> None:
    """Refuse ``option`` while dynamo traces the code that calls this (a model called through a
    compiled wrapper)."""
    if torch.compiler.is_compiling():
        _refuse_compiled(option)


def _prepare_refusal() -> None:
    if not _REFUSE:
        _REFUSE.append(torch.compiler.disable(_raise_compiled))


def _pack_hook(t: torch.Tensor):
    _refuse_compiling("memory.spikes: packed")
    if not t.is_floating_point():
        return t
    # The marks say which tensors are worth checking; the check says which hold 0s and 1s.
    base = t if t._base is None else t._base
    if getattr(base, _MARK, False) and base.is_contiguous():
        bits = _verified_bits(base)
    elif _SOURCES and _is_cast_of_marked(t) and t.is_contiguous():
        base, bits = t, _verified_bits(t)
    else:
        return t
    return t if bits is None else _Packed(base, bits, t)


_COUNTERS: List["KeptForBackward"] = []


class KeptForBackward:
    """What :func:`kept_for_backward` counted: :attr:`bytes`, the sum over the distinct storages kept."""

    def __init__(self) -> None:
        self._storages: Dict[int, int] = {}

    def add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        self._storages[storage.data_ptr()] = storage.nbytes()

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())


@contextlib.contextmanager
def kept_for_backward():
    """Count the bytes that a forward pass run inside keeps for its backward pass: every distinct
    storage saved for backward (by PyTorch's layers, or by the options of :func:`training_memory`:
    bits for packed spikes, the input and states a checkpoint saves, the convolutions' outputs that
    ``checkpoint="neurons"`` keeps). On the CPU, where torch keeps no allocator statistics, this is
    the part of a training step's peak memory that grows with the sequence length::

        with adalif.memory.kept_for_backward() as kept:
            with adalif.memory.training_memory(model, spikes="packed"):
                loss = criterion(model(x), y)
        print(kept.bytes)

    Parameters count when a layer saves them; a storage counts once however many tensors view it."""
    counter = KeptForBackward()
    _COUNTERS.append(counter)

    def pack(t):  # saves made outside adalif's hooks (theirs count in _saving)
        counter.add(t)
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield counter
    finally:
        _COUNTERS.remove(counter)


def _unpack_hook(saved):
    return saved.unpack() if isinstance(saved, _Packed) else saved


def _binary_neurons(model: Optional[nn.Module]) -> Iterator[nn.Module]:
    from .neurons import Neuron

    modules = model.modules() if model is not None else ()
    return (m for m in modules if isinstance(m, Neuron) and m.spiking)


def _mark(module, inputs, output):
    """Mark what a neuron returned (after any hook of the user's) as worth checking when saved:
    its root (views of one tensor share it), and its autograd node for the casts autocast makes."""
    _refuse_compiling("memory.spikes: packed")
    if not (isinstance(output, torch.Tensor) and output.is_floating_point()):
        return
    setattr(output if output._base is None else output._base, _MARK, True)
    if output.grad_fn is not None:
        _SOURCES[id(output.grad_fn)] = output.grad_fn


@contextlib.contextmanager
def packed_spikes(model: nn.Module):
    """Within this context, every tensor the forward pass of ``model`` saves for backward that is
    the output of one of its adalif neurons, a view of one or autocast's cast of one, and that
    holds only 0s and 1s (checked on its values when it is saved), is stored as bits. Anything
    else, such as a non-spiking surrogate's smooth output or what a forward hook made of the
    spikes, is kept as it is; spikes changed in place after they were saved raise PyTorch's
    in-place error at backward, as in a plain run. Run the forward pass inside, backward anywhere::

        with adalif.memory.packed_spikes(model):
            loss = criterion(model(x), y)
        loss.backward()   # gradients bit-identical to a plain run

    Refused inside ``torch.compile`` (a compiled graph's saved tensors are the compiler's).
    """
    _refuse_compiled_model(model, "memory.spikes: packed")
    with _saving(_binary_neurons(model), packing=True):
        yield


def _refuse_compiled_model(model: nn.Module, option: str) -> None:
    """Refuse ``option`` at once for a model that is compiled (``torch.compile(model)`` or
    ``model.compile()``); a compiled wrapper around it is caught when it runs."""
    _prepare_refusal()
    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule) or any(
            getattr(m, "_compiled_call_impl", None) is not None for m in model.modules()):
        raise RuntimeError(_compiled_refusal(option))


@contextlib.contextmanager
def _saving(neurons: Iterable[nn.Module], packing: bool, storages: Optional[set] = None):
    """Saved-tensor hooks: with ``packing``, the outputs of ``neurons`` (marked) and their views
    and casts are kept as bits if they hold only 0s and 1s; ``storages``, when given, collects the
    address of every saved tensor's storage."""
    def pack(t):
        if storages is not None:
            storages.add(t.untyped_storage().data_ptr())
        kept = _pack_hook(t) if packing else t
        for counter in _COUNTERS:
            counter.add(kept.bits if isinstance(kept, _Packed) else kept)
        return kept

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
    """The modules ``container`` runs, in order, looking into nested ``nn.Sequential``s: a module
    listed twice runs twice (``children()`` would list it once)."""
    out: List[nn.Module] = []
    for m in container._modules.values():
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
    attribute, which ``nn.Module.__call__`` calls, hooks and all); afterwards each has what it had
    before (the class's ``forward``, or an instance attribute of its own)."""
    before = {module: module.__dict__.get("forward") for module in replacements}
    for module, forward in replacements.items():
        module.forward = forward
    try:
        yield
    finally:
        for module, forward in before.items():
            if forward is None:
                del module.forward
            else:
                module.forward = forward


def _checkpointing(container: nn.Module) -> Optional[str]:
    """The option of an enclosing checkpoint context that already runs ``container``, or None."""
    return getattr(container.__dict__.get("forward"), "_adalif_checkpoint", None)


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
def _as_first_pass(ctx, x: torch.Tensor, modules: List[nn.Module]):
    """The random state of :func:`_first_pass`, restored for the recomputation and its backward;
    the batch-norm running statistics that the recomputation updates are restored afterwards (the
    first pass updated them; batch norm's backward reads them, so not before)."""
    devices = [x.device] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices, device_type=x.device.type if devices else "cuda"):
        torch.set_rng_state(ctx.rng)
        if ctx.cuda_rng is not None:
            torch.cuda.set_rng_state(ctx.cuda_rng, x.device)
        with _no_statistics_update(modules):
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


class _Piece:
    """One checkpointed part of a forward pass: a segment of blocks, or every layer over a chunk
    of time steps. ``modules`` run in order; ``params``: every parameter they hold, passed to
    :class:`_Checkpoint` as inputs so that each gets its gradient through the autograd graph, once
    per backward (as in a plain run; DDP's reducer counts on it); ``carriers``: the modules whose
    state the piece takes in and hands on, and ``carry(start, end)`` the context in which they do
    (:func:`_node_states`, :func:`_carried_states`); ``option``: what the errors name."""

    def __init__(self, modules: List[nn.Module], carriers: List[nn.Module], carry, keep_convs: bool, option: str):
        self.modules, self.carriers, self.carry, self.keep_convs, self.option = modules, carriers, carry, keep_convs, option
        self.params = list(dict.fromkeys(p for m in modules for p in m.parameters()))
        self.neurons = [n for m in modules for n in _binary_neurons(m)]


def _flatten(states: List[Tuple[Optional[tuple], object]]) -> Tuple[List[torch.Tensor], list]:
    """The carriers' ``(state, extra)`` pairs as a flat list of tensors and a layout
    (:func:`_unflatten`): the state's type and field count, and ``extra`` (a node's step count)."""
    flat, layout = [], []
    for state, extra in states:
        layout.append((None if state is None else type(state), 0 if state is None else len(state), extra))
        flat.extend(() if state is None else state)
    return flat, layout


def _unflatten(flat, layout: list) -> List[Tuple[Optional[tuple], object]]:
    out, i = [], 0
    for kind, n, extra in layout:
        out.append((None if kind is None else kind(*flat[i:i + n]), extra))
        i += n
    return out


def _check_unchanged(versions: List[Tuple[torch.Tensor, int]], option: str) -> None:
    """The recomputation reads the parameters as they are now: raise, as a plain run's saved
    tensors do, if one was changed in place since the first pass."""
    for p, version in versions:
        if p._version != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[{p.type()} {list(p.shape)}] (a parameter) is at version {p._version}; expected version {version} "
                f"instead ({option} recomputes the forward pass in backward)")


def _check_leaves(outputs: List[torch.Tensor], inputs: List[torch.Tensor], option: str) -> None:
    """Every tensor the recomputed graph would accumulate a gradient into must be one of the
    piece's inputs, whose gradients it returns (read from the graph, not assumed): a module that
    reads a tensor requiring grad from elsewhere would otherwise lose that gradient."""
    known = {id(t) for t in inputs}
    seen, todo = set(), [t.grad_fn for t in outputs if t.grad_fn is not None]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) not in known:
            raise RuntimeError(f"{option}: the recomputed layers read a tensor {list(variable.shape)} that requires "
                               "grad and is not a parameter of theirs; make it a parameter of one of the modules")
        todo.extend(next_node for next_node, _ in node.next_functions)


def _distinct(t: torch.Tensor, inputs) -> torch.Tensor:
    """``t``, copied if it is one of the Function's inputs (a layer that returned its input, a
    carrier that did not run), so that each output is a tensor of its own."""
    return t.clone() if any(t is i for i in inputs) else t


#: Set while a checkpointed piece recomputes its forward pass: hooks that count what a forward pass
#: does (adalif.analysis.FiringRateMonitor) skip it (:func:`recomputing`).
_RECOMPUTING = [0]
#: The first time step of the chunk that runs now (0 outside time chunks): :func:`chunk_start`.
_CHUNK_START = [0]


def recomputing() -> bool:
    """Whether a checkpointed forward pass is being recomputed (in backward) right now: a forward
    hook runs in the first pass and again in the recomputation; one that counts should count once."""
    return _RECOMPUTING[0] > 0


def chunk_start() -> int:
    """The first time step of what the layers see now: ``t0`` while ``checkpoint: time`` runs steps
    ``[t0, t0 + chunk)``, else 0 (a per-step monitor puts a chunk's steps in their place)."""
    return _CHUNK_START[0]


def _fingerprint(t: torch.Tensor) -> Tuple[float, float]:
    """Two reductions of a piece's output, its sum and its norm, to check that the recomputation
    gives what the first pass gave: deterministic, so equal for equal tensors, and computed in the
    tensor's own dtype, without a copy (a float64 copy would raise the peak this path lowers)."""
    t = t.detach()
    return float(t.sum()), float(torch.linalg.vector_norm(t))


def _run_with(modules: List[nn.Module], x: torch.Tensor, aliases: Dict[nn.Parameter, torch.Tensor]) -> torch.Tensor:
    """``modules`` on ``x`` with each parameter read as its alias (``torch.func.functional_call``):
    the recomputation's gradients are computed for the aliases, and reach the parameters once, as
    the checkpoint node's gradients, so that a parameter's own hooks run once per backward."""
    for m in modules:
        names = {name: aliases[p] for name, p in m.named_parameters(remove_duplicate=False)}
        x = torch.func.functional_call(m, names, (x,), tie_weights=False) if names else m(x)
    return x


class _Checkpoint(torch.autograd.Function):
    """A :class:`_Piece` run without keeping its activations: the forward runs under ``no_grad``
    and saves only its input and the carriers' start states (with :func:`packed_spikes` active,
    as bits); the backward recomputes the piece from them, with the same random state and
    autocast, checks that it gives the first pass's output, and returns the gradients of the
    input, of every parameter and of the start states (``torch.autograd.grad`` on aliases of the
    parameters, so that the engine accumulates each parameter's gradient once and runs its hooks
    once). With ``keep_convs`` the forward also keeps the output of each convolution, and the
    recomputation takes it instead of convolving again: it recomputes only the cheap layers
    (batch norms, neurons, pooling, additions).

    Written here rather than taken from ``torch.utils.checkpoint``: its non-reentrant form keeps
    the input as a plain reference, out of reach of the saved-tensor hooks that store spikes as
    bits; saving it with ``save_for_backward`` puts it within their reach; and it carries no state
    in and out of the piece. Arguments: the piece, the layout of the start states, a list the
    forward fills with the layout of the end states, the input, then the piece's parameters and
    the start states' tensors; returns the output and the end states' tensors."""

    @staticmethod
    def forward(ctx, piece, layout, end_layout, x, *tensors):
        ctx.piece, ctx.layout, ctx.kept = piece, layout, {} if piece.keep_convs else None
        ctx.packing, ctx.chunk_start = _DEPTH[0] > 0, _CHUNK_START[0]
        _first_pass(ctx, x)
        flat_start = tensors[len(piece.params):]
        end: list = []
        keep = _convolutions(piece.modules, ctx.kept, False) if piece.keep_convs else contextlib.nullcontext()
        with piece.carry(_unflatten(flat_start, layout), end), keep:
            y = _run(piece.modules, x)
        for counter in _COUNTERS:  # the convolutions' outputs, kept on this node
            for outputs in (ctx.kept or {}).values():
                for out in outputs:
                    counter.add(out)
        ctx.versions = [(p, p._version) for p in piece.params]
        ctx.fingerprint = _fingerprint(y)
        ctx.save_for_backward(x, *flat_start)
        flat_end, layout_end = _flatten(end)
        end_layout[:] = layout_end
        inputs = (x, *tensors)
        return (_distinct(y, inputs), *(_distinct(t, inputs) for t in flat_end))

    @staticmethod
    def backward(ctx, grad_y, *grad_end):
        piece, need = ctx.piece, ctx.needs_input_grad[3:]
        if torch.is_grad_enabled():
            raise RuntimeError(f"{piece.option}: a backward with create_graph=True (a double backward, a gradient "
                               "penalty) needs the recomputed graph in the first one's; run it without checkpointing")
        x, *flat_start = ctx.saved_tensors
        _check_unchanged(ctx.versions, piece.option)
        n = len(piece.params)
        x = x.detach().requires_grad_(need[0])
        aliases = {p: p.detach().requires_grad_(w) for p, w in zip(piece.params, need[1:1 + n])}
        flat_start = [s.detach().requires_grad_(w) for s, w in zip(flat_start, need[1 + n:])]
        wanted = [t for t, w in zip((x, *aliases.values(), *flat_start), need) if w]
        replay = _convolutions(piece.modules, ctx.kept, True) if ctx.kept is not None else contextlib.nullcontext()
        storages: set = set()
        end: list = []
        _RECOMPUTING[0] += 1
        chunk_start, _CHUNK_START[0] = _CHUNK_START[0], ctx.chunk_start
        try:
            with _as_first_pass(ctx, x, piece.modules):
                with _recomputing(ctx), replay, piece.carry(_unflatten(flat_start, ctx.layout), end), \
                        _saving(piece.neurons, ctx.packing, storages):
                    y = _run_with(piece.modules, x, aliases)
                _check_recomputed(y, ctx.fingerprint, piece)
                pairs = [(t, g) for t, g in zip([y, *_flatten(end)[0]], [grad_y, *grad_end])
                         if g is not None and t.requires_grad]
                _check_leaves([t for t, _ in pairs], wanted, piece.option)
                if pairs and pairs[0][0] is y:
                    _release(y, storages, x)
                grads = iter(torch.autograd.grad([t for t, _ in pairs], wanted, [g for _, g in pairs],
                                                 allow_unused=True) if pairs and wanted else [None] * len(wanted))
        finally:
            _RECOMPUTING[0] -= 1
            _CHUNK_START[0] = chunk_start
        # The autograd engine keeps a node's Python attributes until the whole graph goes: free
        # the kept outputs now (the saved tensors are freed by the engine itself).
        ctx.kept = None
        return (None, None, None, *(next(grads) if w else None for w in need))


def _check_recomputed(y: torch.Tensor, fingerprint: Tuple[float, float], piece: _Piece) -> None:
    """The recomputation must give the first pass's output (the same input, parameters, random
    state and carried states): a module that keeps a state of its own between calls, or reads
    something that changed since, would make it differ, and the gradients with it. Exact on the
    CPU; elsewhere within 1e-5 (some GPU kernels are not deterministic)."""
    got = _fingerprint(y)
    exact = y.device.type == "cpu"
    if any(a != b if exact else abs(a - b) > 1e-5 * max(1.0, abs(a)) for a, b in zip(got, fingerprint)):
        names = ", ".join(type(m).__name__ for m in piece.modules)
        raise RuntimeError(f"{piece.option}: the recomputed forward pass of ({names}) differs from the first one "
                           "(sum {:.9g} against {:.9g}): one of these modules keeps a state between calls or reads "
                           "something that changed since; give it no state, or run without checkpointing"
                           .format(got[0], fingerprint[0]))


def _apply(piece: _Piece, x: torch.Tensor, start: list) -> Tuple[torch.Tensor, list]:
    """``piece`` on ``x``, its carriers starting from ``start`` (``(state, extra)`` pairs): the
    output and the carriers' end states."""
    flat, layout = _flatten(start)
    end_layout: list = []
    y, *flat_end = _Checkpoint.apply(piece, layout, end_layout, x, *piece.params, *flat)
    return y, _unflatten(flat_end, end_layout)


def _carries_state(m: nn.Module) -> bool:
    """Whether ``m`` keeps a state from one call to the next: adalif's SpikingJelly-style nodes
    (``carried``/``carry``), SpikingJelly's own (``_memories``), anything with a ``reset``."""
    return (callable(getattr(m, "carried", None)) or hasattr(m, "_memories")
            or callable(getattr(type(m), "reset", None)))


def _stateful_refusal(container: nn.Module, prefix: str, option: str, nodes_allowed: bool) -> Optional[str]:
    """Why the stateful modules of ``container`` cannot be checkpointed with ``option``, or None:
    a recomputation must start from the state the first pass started from, which only adalif's
    nodes let it set (``carried``/``carry``), and those not with ``store_v_seq``."""
    for name, m in container.named_modules(prefix=prefix.rstrip(".")):
        if not _carries_state(m):
            continue
        if not callable(getattr(m, "carried", None)):
            return (f"{name}: {type(m).__name__} keeps a state between calls that {option} cannot set for its "
                    "recomputation; use adalif's nodes (adalif.compat.spikingjelly) or no checkpointing")
        if not nodes_allowed:
            return (f"{name}: {type(m).__name__} keeps its state between calls; time chunks carry the states of "
                    "adalif's neurons (adalif.neurons) only; use checkpoint: blocks")
        if getattr(m, "store_v_seq", False):
            return (f"{name}: {type(m).__name__} keeps its potentials (store_v_seq=True), which a recomputation "
                    "would give without their graph; set store_v_seq=False")
    return None


@contextlib.contextmanager
def _node_states(nodes: List[nn.Module], start: list, end: list):
    """Each stateful node starts from ``start[i]`` (its ``carried()``: state and step count) and
    leaves what it carries on in ``end``; afterwards each holds what it held before."""
    before = [n.carried() for n in nodes]
    for node, carried in zip(nodes, start):
        node.carry(carried)
    try:
        yield
        end[:] = [n.carried() for n in nodes]
    finally:
        for node, carried in zip(nodes, before):
            node.carry(carried)


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
    updated once per step, by the first pass; each parameter gets its gradient once per backward,
    through the graph (DDP's reducer sees it whole); frozen layers and inputs need none.
    adalif's SpikingJelly-style nodes start the recomputation from the state the first pass
    started from, and hand their end state on with its graph; other modules that keep a state
    between calls (SpikingJelly's own nodes) are refused by name, as is ``torch.compile``.

    ``keep_convolutions``: also keep each convolution's output, so that the recomputation runs
    only the layers between convolutions (batch norms, neurons, pooling, additions): the
    ``checkpoint: neurons`` option, less memory saved for much less time."""
    option = f"memory.checkpoint: {'neurons' if keep_convolutions else 'blocks'}"
    container = _checked_container(model, container, option,
                                   lambda c, prefix: _stateful_refusal(c, prefix, option, nodes_allowed=True))
    pieces = []
    for part in segments(container):
        nodes = list(dict.fromkeys(m for block in part for m in block.modules() if callable(getattr(m, "carried", None))))
        pieces.append(_Piece(part, nodes, functools.partial(_node_states, nodes), keep_convolutions, option))

    def forward(x):
        _refuse_compiling(option)
        if not (torch.is_grad_enabled() and container.training):
            return _run([m for piece in pieces for m in piece.modules], x)
        for piece in pieces:
            x, end = _apply(piece, x, [n.carried() for n in piece.carriers])
            for node, carried in zip(piece.carriers, end):
                node.carry(carried)
        return x

    forward._adalif_checkpoint = option
    with _forwards({container: forward}):
        yield


def _checked_container(model: nn.Module, container: Optional[nn.Sequential], option: str, refusal) -> nn.Sequential:
    """The container ``option`` checkpoints (default: :func:`default_container`), refused in one
    line when the model is compiled, when ``refusal(container, prefix)`` says why, or when an
    enclosing context checkpoints it already. ``prefix``: the container's name in the model."""
    _refuse_compiled_model(model, option)
    prefix = "features." if container is None or container is getattr(model, "features", None) else ""
    container = default_container(model) if container is None else container
    enclosing = _checkpointing(container)
    why = refusal(container, prefix) or (
        None if enclosing is None else
        f"the container is checkpointed already ({enclosing}, an enclosing context); use one checkpoint option")
    if why is not None:
        raise ValueError(f"{option}: {why}")
    return container


def time_chunk_refusal(container: nn.Module, prefix: str = "features.") -> Optional[str]:
    """Why ``container`` cannot be run in time chunks with the same result, or None: each of its
    layers but the neurons must act on every time step separately. ``prefix``: the container's
    name in the model, for the module named in the answer."""
    from .definitions import definition_of
    from .layers import SharedDropout, TimeBatchNorm
    from .neurons import Neuron

    refusal = _stateful_refusal(container, prefix, "memory.checkpoint: time", nodes_allowed=False)
    if refusal is not None:
        return refusal
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
            continue
        if not (isinstance(m, (TimeBatchNorm, nn.modules.batchnorm._BatchNorm, SharedDropout,
                               nn.modules.dropout._DropoutNd)) or _acts_per_step(m)):
            return (f"{name}: {type(m).__name__} is not known to act on each time step alone (time chunks run "
                    "only layers that do: a class of yours may say so with acts_per_step = True beside its "
                    "forward); use checkpoint: blocks")
    return None


#: Layers that act on each time step alone, by exact class (a subclass may compute otherwise).
_PER_STEP_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d,
                    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Identity, nn.Sequential,
                    nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.Hardtanh)


def _acts_per_step(m: nn.Module) -> bool:
    """Whether ``m`` acts on each time step alone: a layer of :data:`_PER_STEP_LAYERS` (a Flatten
    only if it keeps the first dimension), or a class that says so (``acts_per_step = True``) in the
    same class that defines its ``forward``, so that a subclass with a forward of its own does not
    inherit the claim."""
    if type(m) in _PER_STEP_LAYERS:
        return True
    if type(m) is nn.Flatten:
        return m.start_dim != 0
    owner = next((k for k in type(m).__mro__ if "forward" in k.__dict__), None)
    return owner is not None and owner.__dict__.get("acts_per_step", False) is True


@contextlib.contextmanager
def _carried_states(neurons: List[nn.Module], start: list, end: list):
    """Each call of a neuron of ``neurons`` continues from the state the same call (the ``k``-th
    call of neuron ``i``) left in the chunk before: ``start`` holds ``(state, (i, k))`` pairs (none
    for the first chunk: every call starts from its initial state, as a plain call does); the
    calls' final states go to ``end`` in the same form. A neuron called twice in a forward pass
    (each call from a fresh state) carries two states."""
    starts = {key: state for state, key in start}
    calls = [0] * len(neurons)
    final: list = []

    def carried(i, neuron):
        def forward(x):
            key = (i, calls[i])
            calls[i] += 1
            out = neuron.run(x, starts.get(key))
            final.append((out.state, key))
            return out.spikes
        return forward

    with _forwards({neuron: carried(i, neuron) for i, neuron in enumerate(neurons)}):
        yield
    end[:] = final


@contextlib.contextmanager
def checkpoint_time(model: nn.Module, container: Optional[nn.Sequential] = None, chunk: int = 2):
    """Within this context, ``container`` (default: :func:`default_container`) runs ``chunk`` time
    steps at a time in training, keeping for backward only its input and, between chunks, the
    state of each neuron; the backward recomputes one chunk at a time. Memory then grows with
    ``chunk``, not with T. Exact where every layer but the neurons acts on each step separately:
    batch norms with ``bn: per_step``, no dropout, no parameter per step, no module that keeps a
    state between calls; anything else is refused with the module named
    (:func:`checkpoint_blocks` has fewer conditions), as is ``torch.compile``. The gradients equal
    a plain run's up to the order of float sums (a weight's gradient is summed chunk by chunk,
    and reaches the parameter once per backward); the forward values and the batch-norm
    statistics are the same."""
    if not (isinstance(chunk, int) and not isinstance(chunk, bool) and chunk >= 1):
        raise ValueError(f"memory.chunk: expected an integer >= 1, got {chunk!r}")
    from .neurons import Neuron

    option = "memory.checkpoint: time"
    container = _checked_container(model, container, option, time_chunk_refusal)
    neurons = [m for m in container.modules() if isinstance(m, Neuron)]
    piece = _Piece(_flat(container), neurons, functools.partial(_carried_states, neurons), False, option)

    def forward(x):
        _refuse_compiling(option)
        if not (torch.is_grad_enabled() and container.training) or x.shape[0] <= chunk:
            return _run(piece.modules, x)
        outputs, states = [], []
        for t0 in range(0, x.shape[0], chunk):
            _CHUNK_START[0] = t0
            try:
                y, states = _apply(piece, x[t0:t0 + chunk], states)
            finally:
                _CHUNK_START[0] = 0
            outputs.append(y)
        return torch.cat(outputs)

    forward._adalif_checkpoint = option
    with _forwards({container: forward}):
        yield


@contextlib.contextmanager
def training_memory(model: nn.Module, spikes: str = "plain", checkpoint: str = "none", chunk: int = 2):
    """The two options of a config's ``memory`` section together, around a forward pass::

        with adalif.memory.training_memory(model, spikes="packed", checkpoint="time", chunk=4):
            loss = criterion(model(x), y)
        loss.backward()

    ``spikes``: ``packed`` stores the spikes layers save for backward as bits (:func:`packed_spikes`),
    ``plain`` as they are. ``checkpoint``: ``none``; ``neurons`` keeps each convolution's output and
    recomputes the batch norms and neurons, ``blocks`` keeps each block's input and recomputes the
    block (:func:`checkpoint_blocks`); ``time`` runs ``chunk`` time steps at a time and keeps only the
    neurons' states between chunks (:func:`checkpoint_time`). Gradients equal a plain run's (bit for
    bit except ``time``, which sums chunk by chunk); an unknown value raises ``ValueError`` naming
    it, and every option refuses ``torch.compile``. docs/training.md ("Training memory") measures
    them; :func:`kept_for_backward` counts what a forward pass keeps."""
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
