"""CLIF, the Complementary LIF of Huang et al. (ICML 2024), as its official code computes it
(``ComplementaryLIFNeuron``; docs/neurons.md, "CLIF").

No learnable parameter; state :math:`(V, M)`, both 0 at the start. Per step, in the official order::

    H   = V * (1 - 1/tau) + X                 charge (SpikingJelly's decay_input=False, v_reset=None)
    M~  = M * sigmoid(H / tau)                forming, from the charged H
    S   = Theta(H - V_th)                      fire (H = V_th fires)
    M   = M~ + S                               strengthen
    V   = (H - S * V_th) - S * sigmoid(M)      soft reset, then the complementary reset

The surrogate is the official ``Rectangle(1)``: gradient 1 on :math:`|H - V_{th}| \\le 1/2`.
Nothing is detached.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..functional.records import StepOutput
from ..surrogate import Rectangle, Surrogate
from .base import NeuronDefinition, register


class CLIFOptions(NamedTuple):
    """CLIF's options: membrane time constant :math:`\\tau`, threshold :math:`V_{th}` and the
    surrogate gradient of :math:`\\Theta` (the official ``Rectangle(1)``)."""

    tau: float = 2.0
    v_threshold: float = 1.0
    surrogate: Surrogate = Rectangle(1.0)


class CLIFState(NamedTuple):
    """CLIF's state :math:`(V, M)`, each shaped like one step ``[B, ...]``: the post-reset potential
    and the complementary memory after strengthening; both 0 at the start."""

    v: torch.Tensor  # post-reset potential
    m: torch.Tensor  # complementary memory, after strengthening


def clif_step(x: torch.Tensor, state: CLIFState, p) -> StepOutput:
    """One CLIF step (the module's equations): ``x`` :math:`X_t` ``[B, ...]`` and :math:`(V, M)` ->
    spikes :math:`S_t`, the new :class:`CLIFState` and :math:`H_t`, all ``[B, ...]``."""
    h = state.v * (1.0 - 1.0 / p.tau) + x
    m = state.m * torch.sigmoid(h / p.tau)
    s = p.surrogate(h - p.v_threshold)
    m = m + s
    v = h - s * p.v_threshold
    v = v - s * torch.sigmoid(m)
    return StepOutput(s, CLIFState(v, m), h)


def _check(options: CLIFOptions) -> None:
    if options.tau <= 1.0:
        raise ValueError(f"tau: expected a membrane time constant > 1, got {options.tau!r}")
    if options.v_threshold <= 0:
        raise ValueError(f"v_threshold: expected a positive number, got {options.v_threshold!r}")


CLIF = register(NeuronDefinition(
    name="clif", class_name="CLIF", options=CLIFOptions, state=CLIFState, step=clif_step, check=_check,
    # charge 2 (mul, add); forming: div, sigmoid, mul; fire: compare; strengthen: add; reset: 2 mul, 2 sub, sigmoid
    ops={"mul": 5, "add": 4, "transcendental": 2},
    nir="CLIF's complementary memory M (a sigmoid-gated trace that changes the reset) has no NIR node",
    doc="CLIF (Huang et al., ICML 2024), exactly as the official ComplementaryLIFNeuron: no learnable "
        "parameter, soft reset by V_th + sigmoid(M) with the complementary memory M. Arguments: tau (2), "
        "v_threshold (1), surrogate (Rectangle(1)).",
)).module_class()
"""The CLIF neuron module, made from this definition: ``x`` ``[T, B, ...]`` ->
spikes ``[T, B, ...]``, state :math:`(V, M)` kept between calls
(``adalif.CLIF``; the class's own docstring has the details)."""
