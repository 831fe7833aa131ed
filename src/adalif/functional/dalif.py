"""DA-LIF dynamics (Zhang, Yu et al., arXiv 2502.10422), in this library's notation.

.. math::
    H_t &= \\beta\\,V_{t-1} + \\alpha\\,X_t\\\\
    S_t &= \\Theta(H_t - V_{th})\\\\
    V_t &= H_t (1 - S_t) \\ \\text{(hard reset to 0, default)}, \\qquad V_t = H_t - V_{th} S_t \\ \\text{(soft)}

:math:`\\alpha` (spatial decay) scales the input, :math:`\\beta` (temporal decay) the carried
potential; both are tensors broadcastable to one step ``[B, ...]`` (a scalar per layer, or
``[C, 1, ..., 1]`` per channel). The paper writes :math:`V` for our :math:`H` and vice versa; the
reset, threshold and surrogate are reconstructions (docs/neurons.md, "DA-LIF").
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from ..surrogate import DspikeTanh, Surrogate
from .checks import check_sequence, check_state
from .loop import unroll
from .records import LIFState, SequenceOutput, StepOutput


class DALIFParameters(NamedTuple):
    alpha: Union[float, torch.Tensor] = 0.9640275800758169  # tanh(2)
    beta: Union[float, torch.Tensor] = 0.25
    v_threshold: float = 0.5
    soft_reset: bool = False
    detach_reset: bool = False
    surrogate: Surrogate = DspikeTanh(3.0)


def dalif_step(x: torch.Tensor, state: LIFState, params: DALIFParameters) -> StepOutput:
    """One step: ``x`` ``[B, ...]`` -> spikes, new state and :math:`H_t`."""
    h = params.beta * state.v + params.alpha * x
    s = params.surrogate(h - params.v_threshold)
    s_reset = s.detach() if params.detach_reset else s
    if params.soft_reset:
        v = h - params.v_threshold * s_reset
    else:
        v = h * (1.0 - s_reset)
    return StepOutput(s, LIFState(v), h)


def dalif(
    x: torch.Tensor,
    state: Optional[LIFState] = None,
    params: DALIFParameters = DALIFParameters(),
    return_traces: bool = False,
) -> SequenceOutput:
    """DA-LIF over a sequence ``x`` ``[T, B, ...]``; the reference implementation. :math:`V_0 = 0`."""
    check_sequence(x)
    if state is None:
        state = LIFState(torch.zeros_like(x[0]))
    else:
        check_state(state.v, x.shape[1:], "state.v")
    return unroll(dalif_step, x, state, params, return_traces)
