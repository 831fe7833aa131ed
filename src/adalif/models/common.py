"""Blocks shared by every model."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import DirectEncoder, SeqToANN, TimeBatchNorm


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, bias: bool = False, bn_scale: float = 1.0,
            norm: bool = True) -> nn.Sequential:
    """``[T, B, cin, H, W]`` -> conv (all steps at once) -> batch norm over T·B (unless ``norm=False``)."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias or not norm)
    return nn.Sequential(SeqToANN(conv), TimeBatchNorm(cout, scale=bn_scale) if norm else nn.Identity())


class SpikingNet(nn.Module):
    """Every model: direct encoding of static input, then ``features`` and ``head``, initialised
    with :func:`init_kaiming` (``linear_std``: N(0, std) for the linear layers, as the VGGs;
    ``zero_conv_bias``: False keeps the convolutions' default bias initialisation)."""

    def __init__(self, features: nn.Module, head: nn.Module, T: int, linear_std: float = None,
                 zero_conv_bias: bool = True) -> None:
        super().__init__()
        self.encoder = DirectEncoder(T)
        self.features = features
        self.head = head
        init_kaiming(self, linear_std, zero_conv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: images ``[B, C, H, W]`` (repeated T times) or sequences ``[T, B, C, H, W]``."""
        if x.dim() == 4:
            x = self.encoder(x)
        return self.head(self.features(x))


def init_kaiming(model: nn.Module, linear_std: float = None, zero_conv_bias: bool = True) -> None:
    """Kaiming-normal (fan_out, relu) convolutions, BN (1, 0), zero biases; Linear N(0, std) if given.
    ``zero_conv_bias=False`` leaves the convolutions' biases as PyTorch drew them."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None and zero_conv_bias:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
