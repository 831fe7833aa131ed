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
from .checks import check_sequence, check_state
from .loop import unroll
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
    s_reset = s.detach() if params.detach_reset else s
    if params.v_reset is None:
        v = h - params.v_threshold * s_reset
    else:
        v = h * (1.0 - s_reset) + params.v_reset * s_reset
    return StepOutput(s, LIFState(v), h)


def lif(
    x: torch.Tensor,
    state: Optional[LIFState] = None,
    params: LIFParameters = LIFParameters(),
    return_traces: bool = False,
) -> SequenceOutput:
    """LIF (or PLIF) over a sequence ``x`` ``[T, B, ...]``; the reference implementation."""
    check_sequence(x)
    if state is None:
        state = lif_initial_state(x[0], params)
    else:
        check_state(state.v, x.shape[1:], "state.v")
    return unroll(lif_step, x, state, params, return_traces)
