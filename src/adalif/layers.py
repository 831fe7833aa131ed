"""Time-major layers for spiking networks: every tensor is ``[T, B, ...]``.

Stateless modules (convolutions, linear layers, pooling) run on all steps at once by folding T
into the batch (:class:`SeqToANN`). Batch norm (:class:`TimeBatchNorm`) takes its training
statistics over T·B per channel (``"time_batch"``: tdBN, SpikingJelly's ``SeqToANNContainer``) or
over B for each step separately (``"per_step"``: a single-step network called T times, as the
official AR-LIF code does), optionally with tdBN's :math:`\\alpha V_{th}` scaling. Dropout keeps
one mask for all T steps of a sample (``"shared"``, SpikingJelly's ``layer.Dropout``) or draws a
fresh one for every step and element (``"per_step"``, ``nn.Dropout`` on ``[T, B, ...]``).
docs/models.md says which recipe uses which.
"""

from __future__ import annotations

import torch
from torch import nn

from .functional.checks import Choice

__all__ = ["SeqToANN", "TimeBatchNorm", "SharedDropout", "DirectEncoder", "BN_MODES", "DROPOUT_MODES",
           "dropout", "set_batch_norm_mode"]

BN_MODES = ("time_batch", "per_step")
DROPOUT_MODES = ("shared", "per_step")


class SeqToANN(nn.Sequential):
    """Apply stateless modules to ``[T, B, ...]`` by folding T into the batch dimension."""

    acts_per_step = True  # adalif.memory's time chunks: each step alone (its modules are checked too)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.unflatten(0, (T, B))


class TimeBatchNorm(nn.Module):
    """Batch norm of ``[T, B, C, H, W]``, ``[T, B, C, L]`` or ``[T, B, C]`` inputs, one set of affine
    parameters for all steps.

    ``mode`` decides the statistics used in training (in eval mode both use the running
    statistics, so eval outputs do not depend on it):

    * ``"time_batch"`` (default): statistics over T·B (and positions) per channel, and one update
      of the running statistics per call (tdBN; SpikingJelly's ``SeqToANNContainer``; the DA-LIF
      framework's ``BatchNorm3d``).
    * ``"per_step"``: exactly what one ``nn.BatchNorm2d`` called on each step in turn computes:
      statistics over B (and positions) of each step, and the running statistics updated T times
      per call, in time order (the official AR-LIF single-step networks).

    ``scale`` multiplies the normalised input before the affine map: tdBN's
    :math:`\\hat x = \\alpha V_{th}(x - \\mu)/\\sqrt{\\sigma^2 + \\epsilon}` with ``scale`` = alpha·V_th
    (1 by default; :math:`1/\\sqrt 2` for the two branches that meet at a residual sum).
    The statistics live in a child ``nn.BatchNorm2d`` (``self.bn``), so that
    ``SyncBatchNorm.convert_sync_batchnorm`` (DDP) converts it correctly in both modes.
    """

    mode = Choice(BN_MODES, "bn")

    def __init__(self, num_features: int, scale: float = 1.0, mode: str = "time_batch", **kwargs) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, **kwargs)
        self.scale = float(scale)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 3 <= x.dim() <= 5:
            raise ValueError(f"x: expected [T, B, C], [T, B, C, L] or [T, B, C, H, W], got shape {tuple(x.shape)}")
        shape = x.shape
        # Trailing dimensions of size 1: BatchNorm2d's statistics over (N, H, W) are then those of
        # BatchNorm1d over (N, L) or (N,), and one child module serves every layout.
        x = x.reshape(*shape, *([1] * (5 - x.dim())))
        T, B = shape[:2]
        batch_statistics = self.bn.training or self.bn.running_mean is None
        if self.mode == "per_step" and batch_statistics:
            # The child BN called once per step, in time order: its own kernel (and, once
            # converted, SyncBatchNorm's all-reduce) per step, so the result *is* the loop that
            # the official code runs. Measured on a ResNet-18 training step it costs no more than
            # one call over T·B (docs/benchmarks.md), so there is nothing to gain by vectorising.
            y = torch.stack([self.bn(x_t) for x_t in x.unbind(0)]).flatten(0, 1)
        else:
            y = self.bn(x.flatten(0, 1))
        if self.scale != 1.0:
            # gamma * (scale * x_hat) + beta, from BN's output gamma * x_hat + beta.
            bias = self.bn.bias.view(1, -1, *([1] * (y.dim() - 2))) if self.bn.bias is not None else 0.0
            y = (y - bias) * self.scale + bias
        return y.reshape(shape)

    def extra_repr(self) -> str:
        scale = f", scale={self.scale:.4g}" if self.scale != 1.0 else ""
        return f"mode={self.mode!r}{scale}"


def set_batch_norm_mode(model: nn.Module, mode: str) -> nn.Module:
    """Set ``mode`` (``"time_batch"`` or ``"per_step"``) on every :class:`TimeBatchNorm` of ``model``."""
    if mode not in BN_MODES:
        raise ValueError(f"bn: got {mode!r}, expected one of {list(BN_MODES)}")
    for m in model.modules():
        if isinstance(m, TimeBatchNorm):
            m.mode = mode
    return model


def _check_probability(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p: expected a dropout probability in [0, 1), got {p!r}")
    return float(p)


class SharedDropout(nn.Module):
    """Dropout with one mask per sample shared by all T steps (input ``[T, B, ...]``)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _check_probability(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = torch.empty_like(x[0]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout(p: float, mode: str = "shared") -> nn.Module:
    """Dropout of ``[T, B, ...]``: ``"shared"`` keeps one mask per sample for all T steps
    (:class:`SharedDropout`); ``"per_step"`` draws every step and element independently
    (``nn.Dropout``, as the official AR-LIF CIFAR10-DVS classifier does)."""
    if mode not in DROPOUT_MODES:
        raise ValueError(f"dropout_mode: got {mode!r}, expected one of {list(DROPOUT_MODES)}")
    return SharedDropout(p) if mode == "shared" else nn.Dropout(_check_probability(p))


class DirectEncoder(nn.Module):
    """Direct encoding: repeat a static input ``[B, ...]`` T times -> ``[T, B, ...]`` (the models
    call it on images only; event frames arrive time-major)."""

    def __init__(self, T: int) -> None:
        super().__init__()
        if not (isinstance(T, int) and T >= 1):
            raise ValueError(f"T: expected a number of time steps >= 1, got {T!r}")
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).expand(self.T, *x.shape)

    def extra_repr(self) -> str:
        return f"T={self.T}"
