"""LIF and PLIF dynamics (SpikingJelly ``LIFNode`` / ``ParametricLIFNode`` semantics).

With decay :math:`k = 1/\\tau` (LIF) or :math:`k = \\sigma(w)` (PLIF), for :math:`t = 1..T`:

.. math::
    H_t &= V_{t-1} + k\\,(X_t - (V_{t-1} - V_{reset}))   &\\text{(decay\\_input)}\\\\
    H_t &= V_{t-1} - k\\,(V_{t-1} - V_{reset}) + X_t     &\\text{(otherwise)}\\\\
    S_t &= \\Theta(H_t - V_{th})\\\\
    V_t &= H_t (1 - S_t) + V_{reset} S_t \\ \\text{(hard)}, \\qquad V_t = H_t - V_{th} S_t \\ \\text{(soft, v\\_reset=None)}

Soft reset charges with :math:`V_{reset} = 0`. ``detach_reset`` stops the gradient of
:math:`S_t` inside the reset only. :math:`V_0 = V_{reset}` (hard) or 0 (soft).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from ..surrogate import Sigmoid, Surrogate
from .loop import Dynamics, run
from .records import LIFState, SequenceOutput, StepOutput


class LIFParameters(NamedTuple):
    """``decay`` is :math:`k = 1/\\tau` (a float, or a tensor such as PLIF's :math:`\\sigma(w)`)."""

    decay: Union[float, torch.Tensor] = 0.5
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: Optional[float] = 0.0
    detach_reset: bool = False
    surrogate: Surrogate = Sigmoid(4.0)


def lif_initial_state(like: torch.Tensor, params: LIFParameters) -> LIFState:
    """:math:`V_0` shaped like one step ``like`` (``[B, ...]``)."""
    v0 = 0.0 if params.v_reset is None else params.v_reset
    return LIFState(torch.full_like(like, v0))


def lif_step(x: torch.Tensor, state: LIFState, params: LIFParameters) -> StepOutput:
    """One step: ``x`` ``[B, ...]`` and ``state`` -> spikes, new state and :math:`H_t`."""
    v = state.v
    k = params.decay
    v_reset = 0.0 if params.v_reset is None else params.v_reset
    if params.decay_input:
        h = v + (x - (v - v_reset)) * k
    else:
        h = v - (v - v_reset) * k + x
    s = params.surrogate(h - params.v_threshold)
    return StepOutput(s, LIFState(reset(h, s, params.v_threshold, params.v_reset, params.detach_reset)), h)


def reset(h: torch.Tensor, s: torch.Tensor, v_threshold: float, v_reset: Optional[float], detach: bool) -> torch.Tensor:
    """:math:`V_t` from :math:`H_t` and :math:`S_t`: hard (to ``v_reset``) or soft (``v_reset=None``,
    subtract :math:`V_{th}`); ``detach`` stops the gradient of :math:`S_t` in the reset only. The
    LIF family's one reset (the dispatcher builds its ``v_seq`` traces with it too)."""
    s = s.detach() if detach else s
    if v_reset is None:
        return h - v_threshold * s
    return h * (1.0 - s) + v_reset * s


def lif(x: torch.Tensor, state: Optional[LIFState] = None, params: LIFParameters = LIFParameters(),
        return_traces: bool = False) -> SequenceOutput:
    """LIF (or PLIF) over a sequence ``x`` ``[T, B, ...]``; the reference implementation."""
    return run(LIF, x, state, params, return_traces)


LIF = Dynamics("lif", lif_step, lif_initial_state)
