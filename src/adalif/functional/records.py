"""Typed records shared by every neuron: states and outputs."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class LIFState(NamedTuple):
    """State of LIF, PLIF and DA-LIF: the post-reset potential :math:`V` of shape ``[B, ...]``."""

    v: torch.Tensor


class ARLIFState(NamedTuple):
    """State of AR-LIF: post-reset potential :math:`V` and reset memory :math:`M`, each ``[B, ...]``."""

    v: torch.Tensor
    m: torch.Tensor


class StepOutput(NamedTuple):
    """One time step: spikes :math:`S_t`, the new state, and the pre-reset potential :math:`H_t`."""

    spikes: torch.Tensor
    state: NamedTuple
    h: torch.Tensor


class SequenceOutput(NamedTuple):
    """A whole sequence ``[T, B, ...]``.

    ``spikes``: :math:`S_{1..T}`; ``state``: the state after step T; ``h_seq`` and ``v_seq``: the
    potentials before firing (:math:`H`) and after reset (:math:`V`), only when traces are requested.
    """

    spikes: torch.Tensor
    state: NamedTuple
    h_seq: Optional[torch.Tensor] = None
    v_seq: Optional[torch.Tensor] = None
