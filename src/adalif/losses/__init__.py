"""Losses on per-step logits ``[T, B, K]``."""

from .tet import SpikingLoss, mean_ce_loss, predict, tet_loss

__all__ = ["SpikingLoss", "mean_ce_loss", "predict", "tet_loss"]
