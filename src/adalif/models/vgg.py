"""Spiking VGGs: VGG-11/13 with BN (AR-LIF), VGGSNN (TET, AR-LIF CIFAR10-DVS and Tiny-ImageNet),
and a small CNN for the embedded digits."""

from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from ..layers import SeqToANN, dropout as dropout_layer
from .common import SpikingNet, conv_bn
from .registry import NeuronFactory, register_model


def _features(cfg: Sequence[Union[int, str]], cin: int, neuron: NeuronFactory, dropout: float = 0.0,
              norm: bool = True, dropout_mode: str = "shared") -> nn.Sequential:
    """``cfg``: channel counts (conv3x3 with bias -> BN -> neuron [-> dropout]) and "M"
    (AvgPool2d(2), on spikes, with no neuron after it)."""
    layers = []
    for item in cfg:
        if item == "M":
            layers.append(SeqToANN(nn.AvgPool2d(2)))
        else:
            layers += [conv_bn(cin, item, bias=True, norm=norm), neuron(item)]
            if dropout:
                layers.append(dropout_layer(dropout, dropout_mode))
            cin = item
    return nn.Sequential(*layers)


VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGG13 = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGGSNN = [64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _vgg_bn(cfg, neuron, num_classes, in_channels, T, dropout, dropout_mode):
    head = nn.Sequential(SeqToANN(nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(512 * 49, num_classes)))
    return SpikingNet(_features(cfg, in_channels, neuron, dropout, dropout_mode=dropout_mode), head, T, linear_std=0.01)


@register_model
def vgg11_bn(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 3, T: int = 4, dropout: float = 0.0,
             dropout_mode: str = "shared") -> SpikingNet:
    """AR-LIF ``spiking_vgg11_bn``: 8 spiking layers, AvgPool, AdaptiveAvgPool (7, 7), FC 25088->C.
    ``dropout_mode``: "shared" (one mask for all steps, SpikingJelly's layer.Dropout) or "per_step"."""
    return _vgg_bn(VGG11, neuron, num_classes, in_channels, T, dropout, dropout_mode)


@register_model
def vgg13_bn(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 3, T: int = 4, dropout: float = 0.0,
             dropout_mode: str = "shared") -> SpikingNet:
    """AR-LIF ``spiking_vgg13_bn``: 10 spiking layers, otherwise as VGG-11."""
    return _vgg_bn(VGG13, neuron, num_classes, in_channels, T, dropout, dropout_mode)


@register_model
def vggsnn(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 2, T: int = 10, input_size: int = 48,
           dropout: float = 0.0, dropout_mode: str = "shared") -> SpikingNet:
    """VGGSNN (TET): 8 spiking layers, 4 AvgPools, flatten, [dropout,] FC 512·(s/16)²->C.
    ``input_size``: the side of the input, a multiple of 16: 48 (CIFAR10-DVS, 2 channels) or 64
    (Tiny-ImageNet, 3 channels); a run takes it from its data.
    ``dropout_mode="per_step"``: a fresh mask for every step and element, as the official AR-LIF
    CIFAR10-DVS classifier (``nn.Dropout`` on [N, T, 4608]); "shared" (default): one per sample."""
    if not (isinstance(input_size, int) and input_size >= 16 and input_size % 16 == 0):
        raise ValueError(f"input_size: VGGSNN's four 2x2 poolings need a multiple of 16, got {input_size!r}")
    side = input_size // 16
    head = nn.Sequential(
        SeqToANN(nn.Flatten()), dropout_layer(dropout, dropout_mode), SeqToANN(nn.Linear(512 * side * side, num_classes))
    )
    return SpikingNet(_features(VGGSNN, in_channels, neuron), head, T)


@register_model
def digits_cnn(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 1, T: int = 4, width: int = 32,
               batch_norm: bool = True) -> SpikingNet:
    """A small spiking CNN for the embedded 8x8 digits (and their event version): two conv
    layers of ``width`` and 2·``width`` channels, AvgPool to 4x4, FC -> C. ``batch_norm=False``
    drops BN (its statistics would differ per DDP process on CPU, where SyncBatchNorm is unavailable)."""
    features = _features([width, 2 * width, "M"], in_channels, neuron, norm=batch_norm)
    head = nn.Sequential(SeqToANN(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(2 * width * 16, num_classes)))
    return SpikingNet(features, head, T)
