"""adalif neurons with SpikingJelly's ``activation_based`` calling convention.

Most published SNN code is written for SpikingJelly: single-step modules called once per time
step (``step_mode="s"``) or multi-step modules on ``[T, N, ...]`` (``step_mode="m"``), whose state
persists between calls until ``functional.reset_net(net)`` calls ``reset()`` on every module that
has one. The nodes here are the adalif neurons (same parameters, same kernels, same spikes and
gradients as the multi-step adalif call) with that convention added::

    from spikingjelly.activation_based import functional, layer
    from adalif.compat.spikingjelly import ARLIFNode

    net = nn.Sequential(layer.Conv2d(2, 16, 3, padding=1), layer.BatchNorm2d(16), ARLIFNode())
    for x_t in x_seq:                 # single-step: T calls, the state carried between them
        out = net(x_t)
    functional.reset_net(net)         # or adalif.compat.spikingjelly.reset_net(net)

This module imports nothing of SpikingJelly. SpikingJelly's ``reset_net`` logs a warning for
every resettable module that is not its own ``MemoryModule``; :func:`reset_net` here does the
same reset without it. A SpikingJelly surrogate object (``surrogate.Sigmoid``, ``surrogate.ATan``)
passed as ``surrogate_function`` is translated to adalif's (same derivative); SpikingJelly's
``backend="torch"``/``"cupy"`` select adalif's automatic kernel choice.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import nn

from .. import definitions
from ..functional.checks import Choice
from ..kernels.dispatch import BACKENDS
from ..neurons import ARLIF, DALIF, LIF, PLIF
from ..surrogate import ATan, Sigmoid, Surrogate

__all__ = ["StatefulNode", "LIFNode", "ParametricLIFNode", "DALIFNode", "ARLIFNode", "CLIFNode", "GLIFNode", "node_class",
           "reset_net", "STEP_MODES"]

STEP_MODES = ("s", "m")
"""SpikingJelly's ``step_mode`` values: ``"s"`` one step ``x`` ``[B, ...]``,
``"m"`` a sequence ``x`` ``[T, B, ...]``."""
# SpikingJelly surrogates whose derivative adalif implements with the same formula and alpha.
_SURROGATES = {"Sigmoid": Sigmoid, "ATan": ATan}
# SpikingJelly backends: each means "the fastest exact path" here, which adalif picks itself.
_SJ_BACKENDS = ("torch", "cupy")


def _surrogate(obj) -> Surrogate:
    """An adalif surrogate for an adalif one, a name or dict, or a SpikingJelly surrogate object."""
    if isinstance(obj, (Surrogate, str, dict)):
        return obj
    kind = type(obj).__name__
    if kind not in _SURROGATES or not hasattr(obj, "alpha"):
        raise ValueError(
            f"surrogate_function: cannot translate {kind}; pass an adalif surrogate (adalif.surrogate) or one of "
            f"SpikingJelly's {sorted(_SURROGATES)}"
        )
    if not getattr(obj, "spiking", True):
        raise ValueError(f"surrogate_function: {kind}(spiking=False) is not a spiking function")
    return _SURROGATES[kind](float(obj.alpha))


class StatefulNode(nn.Module):
    """Mixin: keeps the neuron state between calls, as SpikingJelly's ``MemoryModule`` does.

    ``step_mode="s"``: ``x`` is one step ``[N, ...]``; ``"m"``: ``x`` is ``[T, N, ...]``. Each call
    continues from the state the previous call left, and the state keeps its autograd graph, so
    backpropagation through time spans the calls. ``reset()`` forgets it. With
    ``store_v_seq=True`` a multi-step call keeps the post-reset potentials in ``v_seq``.
    """

    # "s": single-step, "m": multi-step; SpikingJelly's functional.set_step_mode(net, "m") assigns it.
    step_mode = Choice(STEP_MODES, "step_mode")
    # SpikingJelly's functional.set_backend(net, name) checks a node's supported_backends first;
    # its "torch" and "cupy" mean adalif's automatic choice here.
    supported_backends = (*_SJ_BACKENDS, *BACKENDS)

    def __init__(self, *args, step_mode: str = "s", store_v_seq: bool = False, surrogate_function=None, **kwargs):
        if surrogate_function is not None:
            if "surrogate" in kwargs:
                raise ValueError("surrogate_function: give either surrogate or surrogate_function, not both")
            kwargs["surrogate"] = _surrogate(surrogate_function)
        if kwargs.get("backend") in _SJ_BACKENDS:
            kwargs["backend"] = None
        super().__init__(*args, **kwargs)
        self.step_mode = step_mode
        self.store_v_seq = bool(store_v_seq)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next call starts from the neuron's initial state."""
        self.state = None
        self.v_seq = None
        self.t = 0

    def carried(self) -> Tuple[Optional[NamedTuple], int]:
        """What the next call continues from: the state and the step count. adalif.memory's
        checkpointing reads it before a segment and sets it (:meth:`carry`) for the recomputation."""
        return self.state, self.t

    def carry(self, carried: Tuple[Optional[NamedTuple], int]) -> None:
        """Continue from ``carried`` (what :meth:`carried` returned)."""
        self.state, self.t = carried

    def detach(self) -> None:
        """Cut the state's autograd graph (truncated BPTT), keeping its values."""
        if self.state is not None:
            self.state = type(self.state)(*(s.detach() for s in self.state))

    def __setattr__(self, name, value):
        if name == "backend" and value in _SJ_BACKENDS:  # functional.set_backend(net, "torch")
            value = None
        super().__setattr__(name, value)

    def __getattr__(self, name: str):
        # SpikingJelly's monitors read a node's state with ``module.__getattr__(name)`` (no property is
        # seen that way), so the state is served here: ``v`` and the other fields of the state.
        if name != "state" and "state" in self.__dict__:
            state = self.__dict__["state"]
            if name == "v" and state is None:
                # Before the first step and after reset: SpikingJelly's initial v (v_reset, or 0).
                v_reset = self.__dict__.get("v_reset")
                return 0.0 if v_reset is None else v_reset
            if state is not None and name in state._fields:
                return getattr(state, name)
        return super().__getattr__(name)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.step(x, self.state, self.t)
        self.state = out.state
        self.t += 1
        if self.store_v_seq:  # SpikingJelly 2.0.0 records v step by step in single-step mode too
            v = out.state[0].unsqueeze(0)
            self.v_seq = v if self.v_seq is None else torch.cat([self.v_seq, v])
        return out.spikes

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        out = self.run(x_seq, self.state, return_traces=self.store_v_seq)
        self.state = out.state
        if self.store_v_seq:
            self.v_seq = out.v_seq
        return out.spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.single_step_forward(x) if self.step_mode == "s" else self.multi_step_forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, step_mode={self.step_mode!r}"


def node_class(name: str) -> type:
    """The SpikingJelly-style node of the registered neuron ``name`` (``"clif"``: :class:`CLIFNode`),
    made from its definition: the neuron's module with :class:`StatefulNode`'s calling convention."""
    d = definitions.get(name)
    if name not in _NODES:
        _NODES[name] = type(f"{d.class_name}Node", (StatefulNode, d.module_class()), {
            "__doc__": f":class:`{d.class_name}` with SpikingJelly's calling convention (made from its definition).",
            "__module__": __name__,
        })
    return _NODES[name]


_NODES = {}


def __getattr__(name: str):
    # <ClassName>Node of every registered neuron, your own included: adalif.compat.spikingjelly.CLIFNode.
    for n in definitions.registered():
        if name == f"{definitions.get(n).class_name}Node":
            return node_class(n)
    raise AttributeError(name)


class LIFNode(StatefulNode, LIF):
    """:class:`adalif.LIF` as a SpikingJelly ``LIFNode`` (same argument names and defaults but the
    surrogate's, which adalif calls ``surrogate``; ``surrogate_function`` is accepted too)."""


class ParametricLIFNode(StatefulNode, PLIF):
    """:class:`adalif.PLIF` as a SpikingJelly ``ParametricLIFNode``."""


class DALIFNode(StatefulNode, DALIF):
    """:class:`adalif.DALIF` with SpikingJelly's calling convention."""


class ARLIFNode(StatefulNode, ARLIF):
    """:class:`adalif.ARLIF` with SpikingJelly's calling convention (the official AR-LIF code's
    ``XLIF`` is a single-step SpikingJelly node: this is its drop-in replacement)."""


CLIFNode = node_class("clif")
GLIFNode = node_class("glif")


def reset_net(net: nn.Module) -> None:
    """Call ``reset()`` on every module of ``net`` that has one (SpikingJelly's ``reset_net``,
    without its warning for modules that are not SpikingJelly's own)."""
    for m in net.modules():
        reset: Optional[callable] = getattr(m, "reset", None)
        if callable(reset):
            reset()
