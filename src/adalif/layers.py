"""Time-major layers for spiking networks: every tensor is ``[T, B, ...]``.

Stateless modules (convolutions, linear layers, pooling) run on all steps at once by folding T
into the batch (:class:`SeqToANN`). Batch norm takes its statistics over T·B per channel (tdBN
statistics), optionally with tdBN's :math:`\\alpha V_{th}` scaling. Dropout keeps one mask for
all T steps of a sample, as in SpikingJelly's ``layer.Dropout``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SeqToANN", "TimeBatchNorm", "SharedDropout", "DirectEncoder"]


class SeqToANN(nn.Sequential):
    """Apply stateless modules to ``[T, B, ...]`` by folding T into the batch dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.unflatten(0, (T, B))


class TimeBatchNorm(nn.Module):
    """Batch norm over T·B (and positions) per channel, for ``[T, B, C, ...]`` inputs.

    ``scale`` multiplies the normalised input before the affine map: tdBN's
    :math:`\\hat x = \\alpha V_{th}(x - \\mu)/\\sqrt{\\sigma^2 + \\epsilon}` with ``scale`` = alpha·V_th
    (1 by default; :math:`1/\\sqrt 2` for the two branches that meet at a residual sum).
    The statistics live in a child ``nn.BatchNorm2d`` (``self.bn``), which sees ``[T·B, C, ...]``,
    so that ``SyncBatchNorm.convert_sync_batchnorm`` (DDP) converts it correctly.
    """

    def __init__(self, num_features: int, scale: float = 1.0, **kwargs) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, **kwargs)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = self.bn(x.flatten(0, 1))
        if self.scale != 1.0:
            # gamma * (scale * x_hat) + beta, from BN's output gamma * x_hat + beta.
            bias = self.bn.bias.view(1, -1, *([1] * (y.dim() - 2))) if self.bn.bias is not None else 0.0
            y = (y - bias) * self.scale + bias
        return y.unflatten(0, (T, B))

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}" if self.scale != 1.0 else ""


class SharedDropout(nn.Module):
    """Dropout with one mask per sample shared by all T steps (input ``[T, B, ...]``)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p: expected a dropout probability in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = torch.empty_like(x[0]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DirectEncoder(nn.Module):
    """Direct encoding: repeat a static input ``[B, ...]`` T times -> ``[T, B, ...]``.

    An input that already has a time axis (``[T, B, ...]``, e.g. event frames, as declared by
    ``time_major=True`` at call time) passes through unchanged.
    """

    def __init__(self, T: int) -> None:
        super().__init__()
        if not (isinstance(T, int) and T >= 1):
            raise ValueError(f"T: expected a number of time steps >= 1, got {T!r}")
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).expand(self.T, *x.shape)

    def extra_repr(self) -> str:
        return f"T={self.T}"
