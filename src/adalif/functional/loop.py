"""The plain step-by-step time loop: the reference every fast path is tested against."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .records import SequenceOutput, StepOutput

StepFunction = Callable[[torch.Tensor, NamedTuple, NamedTuple], StepOutput]


def unroll(
    step: StepFunction,
    x: torch.Tensor,
    state: NamedTuple,
    params: NamedTuple,
    return_traces: bool = False,
) -> SequenceOutput:
    """Apply ``step`` to ``x[0], x[1], ...`` in order, threading the state through.

    ``x``: ``[T, B, ...]``. Returns the stacked spikes ``[T, B, ...]``, the final state and, when
    ``return_traces``, the stacked pre-reset ``h_seq`` and post-reset ``v_seq``.
    """
    spikes, h_seq, v_seq = [], [], []
    for x_t in x.unbind(0):
        out = step(x_t, state, params)
        state = out.state
        spikes.append(out.spikes)
        if return_traces:
            h_seq.append(out.h)
            v_seq.append(state.v)
    if not return_traces:
        return SequenceOutput(torch.stack(spikes), state)
    return SequenceOutput(torch.stack(spikes), state, torch.stack(h_seq), torch.stack(v_seq))
