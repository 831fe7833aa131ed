"""Losses on per-step logits ``[T, B, K]``.

TET (Deng et al., ICLR 2022), as in the AR-LIF code:

.. math::
    \\mathcal L = (1-\\lambda)\\,\\frac1T\\sum_t \\mathrm{CE}(O_t, y) + \\lambda\\,\\frac{1}{TBK}\\sum_{t,b,k}(O_{t,b,k} - Y'_{b,k})^2

with :math:`Y' = \\phi` (constant target, default 1) or the one-hot label (``target="onehot"``,
AR-LIF's ``-mse_n_reg``). ``y`` may be class indices ``[B]`` or soft targets ``[B, K]`` (mixup).
"""

from __future__ import annotations

import warnings
from typing import Optional


import torch
import torch.nn.functional as F
from torch import nn


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices ``[B]`` from labels ``[B]`` or soft targets ``[B, K]``."""
    return y if y.dim() == 1 else y.argmax(dim=1)


def tet_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    mse_weight: float = 0.05,
    phi: float = 1.0,
    target: str = "constant",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """TET loss of per-step logits ``[T, B, K]`` against labels ``[B]`` or soft targets ``[B, K]``;
    ``mse_weight`` is the papers' :math:`\\lambda` (``--lamb`` in the TET and AR-LIF code)."""
    T, B, K = logits.shape
    flat = logits.reshape(T * B, K)
    y_rep = y.repeat(T) if y.dim() == 1 else y.repeat(T, 1)
    loss = (1.0 - mse_weight) * F.cross_entropy(flat, y_rep, label_smoothing=label_smoothing)
    if mse_weight:
        if target == "onehot":
            goal = F.one_hot(hard_labels(y), K).to(logits.dtype) if y.dim() == 1 else y.to(logits.dtype)
            goal = goal.expand(T, B, K)
        else:
            goal = torch.full_like(logits, phi)
        loss = loss + mse_weight * F.mse_loss(logits, goal)
    return loss


def mean_ce_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the mean logits over T (the "SDT" baseline of TET)."""
    return F.cross_entropy(logits.mean(0), y, label_smoothing=label_smoothing)


def last_ce_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the last step's logits alone: the answer is read when the sequence ends
    (the delayed and sequential digits, where the network must hold what it saw)."""
    return F.cross_entropy(logits[-1], y, label_smoothing=label_smoothing)


def predict(logits: torch.Tensor, readout: str = "mean") -> torch.Tensor:
    """Class prediction from per-step logits ``[T, B, K]``: argmax of their mean over T
    (``readout="mean"``), or of the last step's (``"last"``)."""
    return (logits[-1] if readout == "last" else logits.mean(0)).argmax(dim=1)


class SpikingLoss(nn.Module):
    """``kind="ce"`` (CE of the mean over T), ``"tet"``, or ``"last"`` (CE of the last step, whose
    logits alone then predict), with their options; ``forward(logits, y)``, ``predict(logits)``."""

    KINDS = ("ce", "tet", "last")
    TARGETS = ("constant", "onehot")

    def __init__(self, kind: str = "ce", mse_weight: float = 0.05, phi: float = 1.0, target: str = "constant",
                 label_smoothing: float = 0.0, lamb: Optional[float] = None) -> None:
        """``lamb``: the old name of ``mse_weight`` (it read as the LAMB optimiser), deprecated."""
        super().__init__()
        if lamb is not None:
            warnings.warn("loss.lamb is deprecated: the TET weight of the MSE term is loss.mse_weight",
                          DeprecationWarning, stacklevel=2)
            mse_weight = lamb
        if kind not in self.KINDS:
            raise ValueError(f"loss.kind: unknown value {kind!r}; expected one of {list(self.KINDS)}")
        if target not in self.TARGETS:
            raise ValueError(f"loss.target: unknown value {target!r}; expected one of {list(self.TARGETS)}")
        if not 0.0 <= mse_weight <= 1.0:
            raise ValueError(f"loss.mse_weight: expected a weight in [0, 1], got {mse_weight!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing: expected a value in [0, 1), got {label_smoothing!r}")
        self.kind, self.mse_weight, self.phi, self.target = kind, mse_weight, phi, target
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "tet":
            return tet_loss(logits, y, self.mse_weight, self.phi, self.target, self.label_smoothing)
        if self.kind == "last":
            return last_ce_loss(logits, y, self.label_smoothing)
        return mean_ce_loss(logits, y, self.label_smoothing)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """The classes this loss trains the logits ``[T, B, K]`` to give (:func:`predict`)."""
        return predict(logits, "last" if self.kind == "last" else "mean")

    def extra_repr(self) -> str:
        if self.kind == "tet":
            return f"kind='tet', mse_weight={self.mse_weight}, phi={self.phi}, target={self.target!r}"
        return f"kind={self.kind!r}, label_smoothing={self.label_smoothing}"
