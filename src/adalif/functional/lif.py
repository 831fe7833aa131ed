"""LIF and PLIF dynamics (SpikingJelly ``LIFNode`` / ``ParametricLIFNode`` semantics).

With decay :math:`k = 1/\\tau` (LIF) or :math:`k = \\sigma(w)` (PLIF), for :math:`t = 1..T`
(evaluated in SpikingJelly's own expressions and order, :func:`charge`):

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
    """``decay`` is :math:`k = 1/\\tau` (a float, or a tensor such as PLIF's :math:`\\sigma(w)`).
    ``tau``: LIF's time constant, when the charge divides by it as SpikingJelly's ``LIFNode`` does
    (None: it multiplies by ``decay``, as ``ParametricLIFNode`` does)."""

    decay: Union[float, torch.Tensor] = 0.5
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: Optional[float] = 0.0
    detach_reset: bool = False
    surrogate: Surrogate = Sigmoid(4.0)
    tau: Optional[float] = None


def charge_form(params: LIFParameters) -> int:
    """Which of SpikingJelly's four charge expressions applies (1-4; see :func:`charge`)."""
    reset0 = params.v_reset is None or params.v_reset == 0.0
    if params.decay_input:
        return 1 if reset0 else 2
    return 3 if reset0 else 4


def charge(v, x, form: int, v_reset: float, k=None, tau: Optional[float] = None, one_minus=None):
    """:math:`H_t` in SpikingJelly's exact expressions and order (so that every rounding, and hence
    every spike, is SpikingJelly's): ``form`` 1 ``v + (x - v)/tau``, 2 ``v + (x - (v - v_reset))/tau``,
    3 ``v * (1 - 1/tau) + x``, 4 ``v - (v - v_reset)/tau + x``; ``LIFNode`` divides by ``tau``,
    ``ParametricLIFNode`` multiplies by ``k`` (``tau`` None). ``one_minus``: form 3's factor,
    :math:`1 - 1/\\tau` computed in double precision as SpikingJelly does (or :math:`1 - k`)."""
    scaled = (lambda a: a / tau) if tau is not None else (lambda a: a * k)  # noqa: E731
    if form == 1:
        return v + scaled(x - v)
    if form == 2:
        return v + scaled(x - (v - v_reset))
    if form == 3:
        if one_minus is None:
            one_minus = 1.0 - 1.0 / tau if tau is not None else 1.0 - k
        return v * one_minus + x
    return v - scaled(v - v_reset) + x


def lif_initial_state(like: torch.Tensor, params: LIFParameters) -> LIFState:
    """:math:`V_0` shaped like one step ``like`` (``[B, ...]``)."""
    v0 = 0.0 if params.v_reset is None else params.v_reset
    return LIFState(torch.full_like(like, v0))


def lif_step(x: torch.Tensor, state: LIFState, params: LIFParameters) -> StepOutput:
    """One step: ``x`` ``[B, ...]`` and ``state`` -> spikes, new state and :math:`H_t`."""
    v_reset = 0.0 if params.v_reset is None else params.v_reset
    h = charge(state.v, x, charge_form(params), v_reset, params.decay, params.tau)
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
"""LIF's (and PLIF's) :class:`Dynamics`: :func:`lif_step` over state :math:`V` from :func:`lif_initial_state`."""
