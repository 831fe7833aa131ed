"""GLIF, the Gated LIF of Yao et al. (NeurIPS 2022), as its official code computes it
(``LIFSpike_CW`` channel-wise, ``LIFSpike`` layer-wise; docs/neurons.md, "GLIF").

Every parameter is the sigmoid of a raw one: gates :math:`\\alpha, \\beta, \\gamma`; decay
:math:`\\tau`, threshold :math:`V_{th}`, leak :math:`V_l`, soft-reset amount :math:`V_r`, per
channel (or per layer); the conductance :math:`g_t` per time step and channel, so a GLIF layer is
built for one T. State :math:`(U, O)`, both 0; :math:`U` is carried *pre-reset* (the reset caused by
:math:`O_{t-1}` happens inside step t). Per step, in the official order::

    I = X * (1 - beta * (1 - g_t))
    U = ((1 - alpha * (1 - tau)) * U * (1 - gamma * O) - (1 - alpha) * V_l) + I - (1 - gamma) * V_r * O
    O = Theta(U - V_th)                       strict: U = V_th does not fire

The surrogate: gradient 1 on the open window :math:`|U - V_{th}| < 1/2`
(``Rectangle(1, inclusive=False, closed=False)``); the threshold gets its share. Nothing is detached.
``soft_mode=False`` binarises the gates (sigmoid > 1/2) with a straight-through gradient;
``static_gate=True`` freezes them (buffers): in soft mode the step uses their sigmoids, binarised
only when ``soft_mode`` is also false, as the official code does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..functional.records import StepOutput
from ..surrogate import Rectangle, Surrogate
from .base import NeuronDefinition, Parameter, register


class GLIFOptions(NamedTuple):
    """GLIF's options: soft (sigmoid) or binarised gates, frozen (static) or learnable gates, the
    official ``--randomgate`` start, the layer-wise sign quirk, and the surrogate of :math:`\\Theta`."""

    soft_mode: bool = True
    static_gate: bool = False
    random_gate: bool = False
    layerwise_gate_quirk: bool = False
    surrogate: Surrogate = Rectangle(1.0, inclusive=False, closed=False)


class GLIFState(NamedTuple):
    """GLIF's state :math:`(U, O)`, each shaped like one step ``[B, ...]``: the pre-reset membrane
    potential and the previous step's spikes; both 0 at the start."""

    v: torch.Tensor  # U: the membrane potential, pre-reset
    o: torch.Tensor  # the previous step's spikes


class _Binarize(torch.autograd.Function):
    """Gate > 1/2 in the forward pass, identity gradient (the official ``ArchAct``)."""

    @staticmethod
    def forward(gate):
        return (gate > 0.5).to(gate.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


def _gates(p):
    """The gates the step uses, as the official ``LIFSpike_CW`` (layers.py:168-169 at ac20aa7):
    static gates are detached, sigmoids of the frozen raw gates in soft mode and binarised only
    when ``soft_mode`` is false; learnable gates are binarised straight-through when it is false."""
    gates = (p.alpha, p.beta, p.gamma)
    if p.static_gate:
        gates = tuple(g.detach() for g in gates)
        return gates if p.soft_mode else tuple((g > 0.5).to(g.dtype) for g in gates)
    return gates if p.soft_mode else tuple(_Binarize.apply(g) for g in gates)


def glif_step(x: torch.Tensor, state: GLIFState, p) -> StepOutput:
    """One GLIF step (the module's equations): ``x`` :math:`X_t` ``[B, ...]`` and :math:`(U, O)` ->
    spikes :math:`O_t`, the new :class:`GLIFState` and :math:`U_t`, all ``[B, ...]``."""
    al, be, ga = _gates(p)
    u, o = state
    i = x * (1 - be * (1 - p.conduct))
    u = ((1 - al * (1 - p.tau)) * u * (1 - ga * o) - (1 - al) * p.leak) + i - (1 - ga) * p.reVth * o
    o = p.surrogate(u - p.Vth)
    return StepOutput(o, GLIFState(u, o), u)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _randomize_gates(module) -> None:
    """The official ``--randomgate``: raw gates from U(-0.1, 0.1) per channel; the layer-wise
    quirk flips the sign of the raw gates (the official LIFSpike starts at 0.45, 0.35, 0.45)."""
    options = module.options
    with torch.no_grad():
        for name in ("alpha", "beta", "gamma"):
            raw = getattr(module, f"raw_{name}")
            if options.random_gate:
                raw.uniform_(-0.1, 0.1)
            if options.layerwise_gate_quirk:
                raw.neg_()


def _gate(name: str, value: float, label: str) -> Parameter:
    return Parameter(name, value, per="channel", constrain=torch.sigmoid, inverse=_logit,
                     learnable=lambda o: not o["static_gate"], weight_decay=False, lr_scale=0.1,
                     doc="gate, initially 0.5 + (p - 0.5) / 2 for the official p", label=label)


def _lif(name: str, value: float, label: str, per: str = "channel") -> Parameter:
    return Parameter(name, value, per=per, constrain=torch.sigmoid, inverse=_logit, weight_decay=False, label=label)


GLIF = register(NeuronDefinition(
    name="glif", class_name="GLIF", options=GLIFOptions, state=GLIFState, step=glif_step,
    parameters=(
        _gate("alpha", 0.55, "α (leak gate)"), _gate("beta", 0.65, "β (integration gate)"),
        _gate("gamma", 0.55, "γ (reset gate)"), _lif("tau", 0.25, "τ (membrane decay)"),
        _lif("Vth", 0.5, "V_th (threshold)"), _lif("leak", 0.0625, "V_l (leak)"),
        _lif("reVth", 0.5, "V_r (soft-reset amount)"), _lif("conduct", 0.5, "g (conductance)", "step"),
    ),
    granularity="channel", initialize=_randomize_gates,
    # I: 2 sub, 2 mul; U: decay 3 mul + 2 sub, reset gate 2 mul + 1 sub, leak 1 mul + 1 sub, soft reset 2 mul
    # + 1 sub, 2 add; fire 1 sub; the 8 sigmoids are per channel, not per neuron
    ops={"mul": 10, "add": 11},
    nir="GLIF's gated mix of decays, reset modes and per-step conductances has no NIR node",
    doc="GLIF (Yao et al., NeurIPS 2022), exactly as the official LIFSpike_CW (granularity='channel', with "
        "num_channels) or LIFSpike ('layer'): gates alpha/beta/gamma, tau, Vth, leak, reVth per channel, the "
        "conductance per time step (build it with T), all sigmoids of raw parameters. Options: soft_mode, "
        "static_gate, random_gate (the official --randomgate), layerwise_gate_quirk.",
)).module_class()
"""The GLIF neuron module, made from this definition: ``x`` ``[T, B, ...]`` ->
spikes ``[T, B, ...]``, state :math:`(U, O)` kept between calls
(``adalif.GLIF``; the class's own docstring has the details)."""
