"""AR-LIF dynamics (Huang et al., arXiv 2507.20746; official ``XLIF``), in this order per step:

.. math::
    H_t &= \\lambda V_{t-1} + X_t                                       &\\text{charge}\\\\
    \\theta_t &= V_{th} + \\tanh(a)\\tanh(X_t)                            &\\text{adaptive threshold}\\\\
    S_t &= \\Theta(H_t - \\theta_t)                                       &\\text{fire}\\\\
    \\tilde M_t &= \\sigma(cX_t)[M_{t-1}]_+ - (1-\\sigma(cX_t))[-M_{t-1}]_+ &\\text{memory leak}\\\\
    M_t &= \\tilde M_t + (2S_t - 1)\\,\\sigma(X_t)                         &\\text{memory integrate}\\\\
    V_t &= H_t - S_t(\\theta_t + \\sigma(M_t))                            &\\text{adaptive reset}

Ablations (docs/neurons.md): ``adaptive_threshold=False`` fixes :math:`\\theta_t = V_{th}`;
``adaptive_reset=False`` resets softly by :math:`\\theta_t` with no memory; ``carry_memory=False``
reads :math:`M_{t-1} = 0` at every step (the official CIFAR10-DVS code). Nothing is detached.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F

from ..surrogate import Rectangle, Surrogate
from .loop import Dynamics, run
from .records import ARLIFState, SequenceOutput, StepOutput


class ARLIFParameters(NamedTuple):
    """AR-LIF's parameters: decay :math:`\\lambda`, threshold :math:`V_{th}`, threshold gain :math:`a`
    and memory gate :math:`c` (floats or tensors broadcasting against ``[B, ...]``), the adaptive
    reset/threshold switches, whether :math:`M` carries across steps, and the surrogate of :math:`\\Theta`."""

    decay: float = 0.5
    v_threshold: float = 1.0
    a: Union[float, torch.Tensor] = 0.0
    c: Union[float, torch.Tensor] = 1.0
    adaptive_reset: bool = True
    adaptive_threshold: bool = True
    carry_memory: bool = True
    surrogate: Surrogate = Rectangle(1.0)


def arlif_initial_state(like: torch.Tensor, params: ARLIFParameters = None) -> ARLIFState:
    """:math:`V_0 = M_0 = 0`, shaped like one step ``like``."""
    return ARLIFState(torch.zeros_like(like), torch.zeros_like(like))


def threshold(x: torch.Tensor, params: ARLIFParameters):
    """:math:`\\theta_t = V_{th} + \\tanh(a)\\tanh(X_t)`, or :math:`V_{th}` without the adaptive threshold."""
    if not params.adaptive_threshold:
        return params.v_threshold
    tanh_a = torch.tanh(params.a) if isinstance(params.a, torch.Tensor) else math.tanh(params.a)
    return params.v_threshold + tanh_a * torch.tanh(x)


def reset(h: torch.Tensor, s: torch.Tensor, theta, m: torch.Tensor, params: ARLIFParameters) -> torch.Tensor:
    """:math:`V_t = H_t - S_t(\\theta_t + \\sigma(M_t))`, or :math:`H_t - S_t\\theta_t` without the
    adaptive reset: AR-LIF's one reset (the dispatcher builds its ``v_seq`` traces with it too)."""
    return h - s * (theta + torch.sigmoid(m)) if params.adaptive_reset else h - s * theta


def arlif_step(x: torch.Tensor, state: ARLIFState, params: ARLIFParameters) -> StepOutput:
    """One step: ``x`` ``[B, ...]`` -> spikes, new state ``(V, M)`` and :math:`H_t`."""
    h = params.decay * state.v + x
    theta = threshold(x, params)
    s = params.surrogate(h - theta)
    if not params.adaptive_reset:
        return StepOutput(s, ARLIFState(reset(h, s, theta, state.m, params), state.m), h)
    m_prev = state.m if params.carry_memory else torch.zeros_like(state.m)
    gate = torch.sigmoid(params.c * x)
    m = gate * F.relu(m_prev) - (1.0 - gate) * F.relu(-m_prev)
    m = m + s * torch.sigmoid(x) - (1.0 - s) * torch.sigmoid(x)
    return StepOutput(s, ARLIFState(reset(h, s, theta, m, params), m), h)


def arlif(x: torch.Tensor, state: Optional[ARLIFState] = None, params: ARLIFParameters = ARLIFParameters(),
          return_traces: bool = False) -> SequenceOutput:
    """AR-LIF over a sequence ``x`` ``[T, B, ...]``; the reference. :math:`V_0 = M_0 = 0`."""
    return run(ARLIF, x, state, params, return_traces)


ARLIF = Dynamics("arlif", arlif_step, arlif_initial_state)
"""AR-LIF's :class:`Dynamics`: :func:`arlif_step` over state :math:`(V, M)` from :func:`arlif_initial_state`."""
