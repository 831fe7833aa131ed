"""DA-LIF dynamics (Zhang, Yu et al., arXiv 2502.10422), in this library's notation.

.. math::
    H_t &= \\beta\\,V_{t-1} + \\alpha\\,X_t\\\\
    S_t &= \\Theta(H_t - V_{th})\\\\
    V_t &= H_t (1 - S_t) \\ \\text{(hard reset to 0, default)}, \\qquad V_t = H_t - V_{th} S_t \\ \\text{(soft)}

:math:`\\alpha` (spatial decay) scales the input, :math:`\\beta` (temporal decay) the carried
potential: scalars (per layer), or with ``per_channel=True`` tensors ``[C]`` that act on dimension 1
of a step ``[B, C, ...]`` (the record says so; nothing is inferred from shapes). The paper writes :math:`V` for our :math:`H` and vice versa; the
reset, threshold and surrogate are reconstructions (docs/neurons.md, "DA-LIF").
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from ..surrogate import DspikeTanh, Surrogate
from .lif import reset
from .loop import Dynamics, run
from .records import LIFState, SequenceOutput, StepOutput


class DALIFParameters(NamedTuple):
    """DA-LIF's parameters: spatial decay :math:`\\alpha` and temporal decay :math:`\\beta` (floats,
    or tensors ``[C]`` with ``per_channel``), threshold :math:`V_{th}`, soft or hard reset (to 0),
    whether the reset's :math:`S_t` is detached, and the surrogate of :math:`\\Theta`."""

    alpha: Union[float, torch.Tensor] = 0.9640275800758169  # tanh(2)
    beta: Union[float, torch.Tensor] = 0.25
    v_threshold: float = 0.5
    soft_reset: bool = False
    detach_reset: bool = False
    surrogate: Surrogate = DspikeTanh(3.0)
    per_channel: bool = False


def dalif_step(x: torch.Tensor, state: LIFState, params: DALIFParameters) -> StepOutput:
    """One step: ``x`` ``[B, ...]`` -> spikes, new state and :math:`H_t`."""
    alpha, beta = params.alpha, params.beta
    if params.per_channel:  # [C] -> [C, 1, ..., 1] against one step [B, C, ...]
        alpha, beta = (p.view(-1, *[1] * (x.dim() - 2)) for p in (alpha, beta))
    h = beta * state.v + alpha * x
    s = params.surrogate(h - params.v_threshold)
    v_reset = None if params.soft_reset else 0.0
    return StepOutput(s, LIFState(reset(h, s, params.v_threshold, v_reset, params.detach_reset)), h)


def dalif_initial_state(like: torch.Tensor, params: DALIFParameters = None) -> LIFState:
    """:math:`V_0 = 0`, shaped like one step ``like``."""
    return LIFState(torch.zeros_like(like))


def dalif(x: torch.Tensor, state: Optional[LIFState] = None, params: DALIFParameters = DALIFParameters(),
          return_traces: bool = False) -> SequenceOutput:
    """DA-LIF over a sequence ``x`` ``[T, B, ...]``; the reference implementation. :math:`V_0 = 0`."""
    return run(DALIF, x, state, params, return_traces)


DALIF = Dynamics("dalif", dalif_step, dalif_initial_state)
"""DA-LIF's :class:`Dynamics`: :func:`dalif_step` over state :math:`V` from :func:`dalif_initial_state`."""
