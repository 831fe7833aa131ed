"""The generic sequence runner: one function that every neuron, the reference loop, the modules
and the fast-path dispatcher share.

A neuron family is a :class:`Dynamics` record (its step function and its initial state);
:func:`run` validates a sequence, builds the initial state when none is given, and hands both
to a runner: :func:`unroll`, the plain step-by-step loop (the reference every fast path is
tested against), or :func:`adalif.kernels.run` (the fused kernels, same signature).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch

from .checks import check_sequence, check_state
from .records import SequenceOutput, StepOutput

StepFunction = Callable[[torch.Tensor, NamedTuple, NamedTuple], StepOutput]


class Dynamics(NamedTuple):
    """A neuron family: ``family`` names it (``"lif"``, ``"dalif"``, ``"arlif"``, or a registered
    definition's name), ``step(x_t, state, params)`` is one step, ``initial_state(like, params)`` the
    state before the first, shaped like one step ``like`` ``[B, ...]``. ``at(params, t, x_t)``, when
    given, is the parameter record that step ``t`` sees (per-channel values viewed to broadcast
    against ``x_t``, per-step values sliced at ``t``); without it every step sees ``params``.
    The state's first field is the membrane potential that ``v_seq`` traces."""

    family: str
    step: StepFunction
    initial_state: Callable[[torch.Tensor, NamedTuple], NamedTuple]
    at: Optional[Callable[[NamedTuple, int, torch.Tensor], NamedTuple]] = None


def unroll(dynamics: Dynamics, x: torch.Tensor, state: NamedTuple, params: NamedTuple,
           return_traces: bool = False) -> SequenceOutput:
    """Apply ``dynamics.step`` to ``x[0], x[1], ...`` in order, threading the state through.

    ``x``: ``[T, B, ...]``. Returns the stacked spikes ``[T, B, ...]``, the final state and, when
    ``return_traces``, the stacked pre-reset ``h_seq`` and post-reset ``v_seq``.
    """
    spikes, h_seq, v_seq = [], [], []
    for t, x_t in enumerate(x.unbind(0)):
        out = dynamics.step(x_t, state, params if dynamics.at is None else dynamics.at(params, t, x_t))
        state = out.state
        spikes.append(out.spikes)
        if return_traces:
            h_seq.append(out.h)
            v_seq.append(state[0])
    if not return_traces:
        return SequenceOutput(torch.stack(spikes), state)
    return SequenceOutput(torch.stack(spikes), state, torch.stack(h_seq), torch.stack(v_seq))


Runner = Callable[[Dynamics, torch.Tensor, NamedTuple, NamedTuple, bool], SequenceOutput]


def run(dynamics: Dynamics, x: torch.Tensor, state: Optional[NamedTuple], params: NamedTuple,
        return_traces: bool = False, runner: Runner = unroll) -> SequenceOutput:
    """``dynamics`` over a sequence ``x`` ``[T, B, ...]`` from ``state`` (None: the initial state),
    validated at this boundary, by ``runner`` (default: the reference loop)."""
    check_sequence(x)
    if state is None:
        state = dynamics.initial_state(x[0], params)
    else:
        for field, value in zip(state._fields, state):
            check_state(value, x.shape[1:], f"state.{field}")
    return runner(dynamics, x, state, params, return_traces)
