"""A NIR graph as an adalif module (docs/analysis.md, "NIR import").

Each node becomes a module that runs on the whole sequence ``[T, B, ...]``; a node's input is the
sum of its incoming edges (graphs may branch and merge), in the graph's topological order:

* ``Affine``/``Linear``, ``Conv1d``/``Conv2d``, ``Flatten``, ``AvgPool2d``/``SumPool2d`` and
  ``Scale``: the PyTorch layer, on all steps at once (:class:`~adalif.layers.SeqToANN`);
* ``LIF`` and ``IF``: an adalif :class:`~adalif.neurons.DALIF` neuron with the decays of NIR's
  forward-Euler step with time step ``dt``, so that it runs on adalif's fused kernels and its
  decays can be trained further: :math:`v_t = v_{t-1} + \\frac{dt}{\\tau}(v_{leak} - v_{t-1} + R I_t)`
  is :math:`H_t = \\beta V_{t-1} + \\alpha I_t` with :math:`\\beta = 1 - dt/\\tau`,
  :math:`\\alpha = dt R/\\tau` (IF: :math:`\\beta = 1`, :math:`\\alpha = dt R`), and a hard reset to 0.
  The decays are per layer, or per channel (the first neuron dimension) when they vary.

* ``CubaLIF``, ``LI`` and ``CubaLI``: the neurons of :mod:`adalif.definitions.current`, with the
  coefficients of the same Euler step.

Refused, naming the node and what it holds: a leak or reset potential other than 0, a threshold
that varies between neurons, coefficients that vary within a channel, cycles, and other node kinds
(``Delay``, ``Threshold``, ``I``, ...). adalif fires on
:math:`H \\ge V_{th}`, NIR on :math:`v > v_{th}`: they differ on exact ties only.
"""

from __future__ import annotations

import os
from typing import Dict, List, Union

import numpy as np
import torch
from torch import nn

from ..files import replaced_atomically
from ..layers import SeqToANN
from ..neurons import DALIF

__all__ = ["NIRNetwork", "import_nir", "NIRImportError", "save_imported", "load_imported", "IMPORT_FORMAT"]

IMPORT_FORMAT = "adalif-nir-module"


class NIRImportError(ValueError):
    """The graph holds something adalif cannot import; the message names the node and why."""


class Scale(nn.Module):
    """NIR's ``Scale``: multiply by a fixed array."""

    def __init__(self, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class NIRNetwork(nn.Module):
    """The modules of a NIR graph's nodes, run in topological order on ``[T, B, ...]``; each
    node's input is the sum of its incoming edges."""

    def __init__(self, layers: Dict[str, nn.Module], sources: Dict[str, List[str]], outputs: List[str]) -> None:
        super().__init__()
        self.names = list(layers)  # NIR node keys, in execution order
        self.layers = nn.ModuleList(layers.values())
        self.sources, self.outputs = sources, outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x}
        for name, layer in zip(self.names, self.layers):
            values[name] = layer(_sum(values[s] for s in self.sources[name]))
        return _sum(values[s] for s in self.outputs)

    def extra_repr(self) -> str:
        return "nodes: " + ", ".join(self.names)


def _sum(tensors):
    tensors = list(tensors)
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


def _uniform(value: np.ndarray, key: str, what: str) -> float:
    value = np.asarray(value, dtype=np.float64)
    if not np.all(value == value.reshape(-1)[0]):
        raise NIRImportError(f"{key}: {what} varies between neurons ({value.min():g} to {value.max():g}); adalif "
                             f"neurons take one value per layer")
    return float(value.reshape(-1)[0])


def _neuron(key: str, node, dt: float) -> DALIF:
    import nir

    r = np.asarray(node.r, dtype=np.float64)
    if isinstance(node, nir.LIF):
        if not np.all(np.asarray(node.v_leak) == 0):
            raise NIRImportError(f"{key}: LIF with v_leak != 0 (a constant drive) has no adalif neuron yet")
        tau = np.asarray(node.tau, dtype=np.float64)
        beta, alpha = 1.0 - dt / tau, dt * r / tau
    else:  # IF: dv/dt = R I
        beta, alpha = np.ones_like(r), dt * r
    if node.v_reset is not None and not np.all(np.asarray(node.v_reset) == 0):
        raise NIRImportError(f"{key}: a reset to {float(np.mean(node.v_reset)):g}; adalif's hard reset goes to 0")
    threshold = _uniform(node.v_threshold, key, "v_threshold")
    granularity, channels, decays = _per_channel(key, {"tau_a": alpha, "tau_b": beta})
    kwargs = {"granularity": granularity, "num_channels": channels} if granularity == "channel" else {}
    neuron = DALIF(1.0, 1.0, decay_fn="none", v_threshold=threshold, reset="hard", **kwargs)
    with torch.no_grad():  # with decay_fn="none" the stored parameters are the decays themselves
        for name, value in decays.items():
            getattr(neuron, name).copy_(torch.as_tensor(value))
    return neuron


def _per_channel(key: str, values: Dict[str, np.ndarray]):
    """``(granularity, num_channels, {name: value or [C] array})`` of neuron coefficients given per
    neuron: one value per layer when each is uniform, else one per channel (the first neuron
    dimension) when each is uniform within a channel; refused otherwise."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()))
    full = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for k, v in values.items()}
    if all(np.all(v == v.reshape(-1)[0]) for v in full.values()):
        return "layer", None, {k: float(v.reshape(-1)[0]) for k, v in full.items()}
    rows = {k: v.reshape(shape[0], -1) for k, v in full.items()}
    if not all(np.all(r == r[:, :1]) for r in rows.values()):
        raise NIRImportError(f"{key}: the time constants or gains vary within a channel; adalif neurons take one "
                             f"per layer or channel")
    return "channel", shape[0], {k: r[:, 0] for k, r in rows.items()}


def _current_based(key: str, node, dt: float) -> nn.Module:
    """CubaLIF, LI and CubaLI as the neurons of :mod:`adalif.definitions.current`."""
    import nir

    from ..definitions import get

    r = np.asarray(node.r, dtype=np.float64)
    if not np.all(np.asarray(node.v_leak) == 0):
        raise NIRImportError(f"{key}: {type(node).__name__} with v_leak != 0 (a constant drive) has no adalif neuron yet")
    tau_mem = np.asarray(node.tau if isinstance(node, nir.LI) else node.tau_mem, dtype=np.float64)
    coefficients = {"mem_decay": 1.0 - dt / tau_mem, "mem_gain": dt * r / tau_mem}
    if not isinstance(node, nir.LI):
        tau_syn = np.asarray(node.tau_syn, dtype=np.float64)
        coefficients.update(syn_decay=1.0 - dt / tau_syn, syn_gain=dt * np.asarray(node.w_in, dtype=np.float64) / tau_syn)
    name = {nir.CubaLIF: "cuba_lif", nir.LI: "leaky_integrator", nir.CubaLI: "cuba_li"}[type(node)]
    options = {}
    if isinstance(node, nir.CubaLIF):
        if node.v_reset is not None and not np.all(np.asarray(node.v_reset) == 0):
            raise NIRImportError(f"{key}: a reset to {float(np.mean(node.v_reset)):g}; adalif's hard reset goes to 0")
        options["v_threshold"] = _uniform(node.v_threshold, key, "v_threshold")
    granularity, channels, values = _per_channel(key, coefficients)
    kwargs = {"granularity": granularity, "num_channels": channels} if granularity == "channel" else {}
    neuron = get(name).module_class()(**options, **kwargs)
    with torch.no_grad():
        for param, value in values.items():
            getattr(neuron, param).copy_(torch.as_tensor(value))
    return neuron


def _layer(key: str, node, dt: float) -> nn.Module:
    import nir

    if isinstance(node, (nir.CubaLIF, nir.LI, nir.CubaLI)):
        return _current_based(key, node, dt)

    def tensor(v):
        return torch.as_tensor(np.asarray(v), dtype=torch.float32)

    if isinstance(node, (nir.LIF, nir.IF)):
        return _neuron(key, node, dt)
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight)
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
        with torch.no_grad():
            layer.weight.copy_(tensor(weight))
            if isinstance(node, nir.Affine):
                layer.bias.copy_(tensor(node.bias))
    elif isinstance(node, (nir.Conv1d, nir.Conv2d)):
        weight = np.asarray(node.weight)
        conv = nn.Conv2d if isinstance(node, nir.Conv2d) else nn.Conv1d
        padding = node.padding if isinstance(node.padding, str) else tuple(np.atleast_1d(node.padding).tolist())
        layer = conv(weight.shape[1] * node.groups, weight.shape[0], tuple(weight.shape[2:]),
                     tuple(np.atleast_1d(node.stride).tolist()), padding, tuple(np.atleast_1d(node.dilation).tolist()),
                     node.groups, bias=True)
        with torch.no_grad():
            layer.weight.copy_(tensor(weight))
            layer.bias.copy_(tensor(node.bias))
    elif isinstance(node, nir.Flatten):  # NIR counts within a sample; the module sees [T*B, ...]
        layer = nn.Flatten(node.start_dim + 1, node.end_dim + 1 if node.end_dim >= 0 else node.end_dim)
    elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        pair = lambda v: tuple(int(i) for i in np.broadcast_to(np.asarray(v), (2,)))  # noqa: E731
        layer = nn.AvgPool2d(pair(node.kernel_size), pair(node.stride), pair(node.padding),
                             divisor_override=1 if isinstance(node, nir.SumPool2d) else None)
    elif isinstance(node, nir.Scale):
        layer = Scale(node.scale)
    else:
        raise NIRImportError(f"{key}: {type(node).__name__} nodes cannot be imported yet (supported: Affine, Linear, "
                             f"Conv1d, Conv2d, Flatten, AvgPool2d, SumPool2d, Scale, LIF, IF, CubaLIF, LI, CubaLI)")
    return SeqToANN(layer)


def _graph(graph_or_path):
    import h5py
    import nir

    if isinstance(graph_or_path, (str, os.PathLike)):
        path = os.fspath(graph_or_path)
        if not os.path.isfile(path):
            from ..errors import MissingFileError

            raise MissingFileError(f"import-nir: {path!r} does not exist")
        try:
            with h5py.File(path, "r") as f:  # nir.write puts the graph in the group "node", with its "type"
                graph = isinstance(f.get("node"), h5py.Group) and "type" in f["node"]
        except OSError as err:  # not an HDF5 file
            raise NIRImportError(f"import-nir: {path!r} is not a NIR file ({err})") from None
        if not graph:
            raise NIRImportError(f"import-nir: {path!r} is an HDF5 file but not a NIR graph (expected the group 'node' "
                                 f"with the graph's 'type', nodes and edges, as nir.write writes it)")
        try:
            return nir.read(path)
        except (KeyError, ValueError) as err:  # a field missing or inconsistent: nir cannot build the graph
            raise NIRImportError(f"import-nir: {path!r} is not a NIR graph nir can read ({type(err).__name__}: "
                                 f"{err})") from None
    return graph_or_path


def import_nir(graph_or_path: Union["object", str, os.PathLike], dt: float = 1e-4) -> NIRNetwork:
    """The module of a ``nir.NIRGraph`` (or a ``.nir`` file): ``[T, B, ...]`` in, ``[T, B, ...]``
    out. ``dt``: the time step that discretises the continuous-time neurons (the exporter's)."""
    import nir

    graph = _graph(graph_or_path)
    if not dt > 0:
        raise NIRImportError(f"dt: expected a time step > 0, got {dt!r}")
    sources: Dict[str, List[str]] = {}
    for src, dst in graph.edges:
        sources.setdefault(dst, []).append(src)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRImportError(f"graph: expected one Input and one Output node, got {len(inputs)} and {len(outputs)}")
    rename = {inputs[0]: "input"}
    order: List[str] = []
    done = {inputs[0]}
    pending = [k for k in graph.nodes if k not in done and k != outputs[0]]
    while pending:  # topological order, the graph's own order among the ready nodes
        ready = [k for k in pending if all(s in done for s in sources.get(k, []))]
        if not ready:
            raise NIRImportError(f"graph: the nodes {pending[:3]} form a cycle (recurrent graphs cannot be imported yet)")
        for k in ready:
            if not sources.get(k):
                raise NIRImportError(f"{k}: no incoming edge")
        order += ready
        done.update(ready)
        pending = [k for k in pending if k not in done]
    layers = {k: _layer(k, graph.nodes[k], dt) for k in order}
    resolve = lambda keys: [rename.get(k, k) for k in keys]  # noqa: E731
    return NIRNetwork(layers, {k: resolve(sources[k]) for k in order}, resolve(sources.get(outputs[0], [])))


def save_imported(nir_path: str, out: str, dt: float = 1e-4) -> NIRNetwork:
    """Import ``nir_path``, write ``out`` (a ``.pt`` that :func:`load_imported` reads with
    ``weights_only`` loading: the NIR file's bytes, ``dt`` and the module's state dict) and return
    the module."""
    module = import_nir(nir_path, dt)
    with open(nir_path, "rb") as fh:
        payload = {"format": IMPORT_FORMAT, "nir": fh.read(), "dt": dt, "state_dict": module.state_dict()}
    with replaced_atomically(out) as tmp:
        torch.save(payload, tmp)
    return module


def load_imported(path: str) -> NIRNetwork:
    """The module written by :func:`save_imported` (or ``adalif import-nir``), with its weights."""
    import tempfile

    from ..safe_load import load_torch

    payload = load_torch(path, "import-nir:")
    if not isinstance(payload, dict) or payload.get("format") != IMPORT_FORMAT:
        raise NIRImportError(f"{path!r} was not written by adalif import-nir")
    with tempfile.NamedTemporaryFile(suffix=".nir") as fh:
        fh.write(payload["nir"])
        fh.flush()
        module = import_nir(fh.name, payload["dt"])
    module.load_state_dict(payload["state_dict"])
    return module
