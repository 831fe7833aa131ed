"""Losses on per-step logits ``[T, B, K]``."""

from .tet import SpikingLoss, hard_labels, last_ce_loss, mean_ce_loss, predict, tet_loss

__all__ = ["SpikingLoss", "hard_labels", "last_ce_loss", "mean_ce_loss", "predict", "tet_loss"]
