"""Spiking ResNets: ResNet-19 (tdBN), MPBN-style ResNet-20, ImageNet ResNet-18/34, and the
pre-activation ResNet-18 of the AR-LIF code. Architectures follow docs/models.md."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from ..layers import SeqToANN, TimeBatchNorm, dropout as dropout_layer
from .common import SpikingNet, conv_bn
from .registry import NeuronFactory, register_model

RESIDUAL_BN_SCALE = 1 / math.sqrt(2)  # tdBN's alpha for the two BNs whose outputs are summed


class BasicBlock(nn.Module):
    """conv-BN-neuron-conv-BN, plus shortcut, then the neuron sees the sum.

    ``downsample="conv"``: conv1x1(stride)+BN on a shape change (tdBN ResNet-19, ImageNet);
    ``"avgpool"``: AvgPool(stride) then conv1x1+BN (MPBN-style ResNet-20). ``shortcut_bn``: the
    identity shortcut gets a BN with the residual scale too (the GLIF code's ResNet-19).
    """

    acts_per_step = True  # adalif.memory's time chunks: each step alone (its layers are checked too)

    def __init__(self, cin: int, cout: int, stride: int, neuron: NeuronFactory, downsample: str = "conv",
                 shortcut_bn: bool = False) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            conv_bn(cin, cout, 3, stride), neuron(cout), conv_bn(cout, cout, 3, 1, bn_scale=RESIDUAL_BN_SCALE)
        )
        if stride == 1 and cin == cout:
            self.shortcut = TimeBatchNorm(cout, scale=RESIDUAL_BN_SCALE) if shortcut_bn else nn.Identity()
        elif downsample == "avgpool":
            pool = [SeqToANN(nn.AvgPool2d(stride))] if stride > 1 else []
            self.shortcut = nn.Sequential(*pool, conv_bn(cin, cout, 1, 1, bn_scale=RESIDUAL_BN_SCALE))
        else:
            self.shortcut = conv_bn(cin, cout, 1, stride, bn_scale=RESIDUAL_BN_SCALE)
        self.neuron = neuron(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.branch(x) + self.shortcut(x))


def _stages(cin: int, widths: Sequence[int], blocks: Sequence[int], strides: Sequence[int], make_block) -> nn.Sequential:
    """Stages of ``blocks[i]`` blocks of width ``widths[i]``, the first with ``strides[i]``;
    ``make_block(cin, cout, stride)`` builds one (a BasicBlock or a PreActBlock)."""
    layers = []
    for width, n, stride in zip(widths, blocks, strides):
        for i in range(n):
            layers.append(make_block(cin, width, stride if i == 0 else 1))
            cin = width
    return nn.Sequential(*layers)


def _basic(neuron: NeuronFactory, downsample: str = "conv", shortcut_bn: bool = False):
    return lambda cin, cout, stride: BasicBlock(cin, cout, stride, neuron, downsample, shortcut_bn)


def _resnet(stem: nn.Module, stages: nn.Module, head: nn.Module, T: int, zero_conv_bias: bool = True) -> SpikingNet:
    return SpikingNet(nn.Sequential(stem, stages), head, T, zero_conv_bias=zero_conv_bias)


@register_model
def resnet19(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 3, T: int = 4, stem: int = 128,
             hidden: Optional[int] = 256, head: str = "tet", shortcut_bn: bool = False) -> SpikingNet:
    """ResNet-19 of tdBN/TET: stem ``stem`` (128, or 64 as in the TET code), stages 128/256/512
    with [3, 3, 2] blocks, then global average pooling and a head. ``head="tet"``: FC 512->``hidden``
    -> neuron -> FC (``hidden=None``: 512->C). ``head="glif"``: the GLIF code's bias-free head,
    512->256->C with no neuron between for C <= 50, 512->C above, linear weights from N(0, 0.01).
    ``shortcut_bn``: the GLIF code's blocks, whose identity shortcuts are tdBN(1/sqrt 2) too
    (``blocks.py:237-238``; with stem 128, 6 of the 8 blocks, 2,816 more parameters)."""
    if head not in ("tet", "glif"):
        raise ValueError(f"model.head: got {head!r}, expected 'tet' or 'glif'")
    if not isinstance(shortcut_bn, bool):
        raise ValueError(f"model.shortcut_bn: expected true or false, got {shortcut_bn!r}")
    stem_layer = nn.Sequential(conv_bn(in_channels, stem), neuron(stem))
    stages = _stages(stem, (128, 256, 512), (3, 3, 2), (1, 2, 2), _basic(neuron, shortcut_bn=shortcut_bn))
    pool = SeqToANN(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if head == "glif":
        linears = ([nn.Linear(512, 256, bias=False), nn.Linear(256, num_classes, bias=False)] if num_classes <= 50
                   else [nn.Linear(512, num_classes, bias=False)])
        return SpikingNet(nn.Sequential(stem_layer, stages), nn.Sequential(pool, SeqToANN(*linears)), T, linear_std=0.01)
    if hidden:
        fc = nn.Sequential(pool, SeqToANN(nn.Linear(512, hidden)), neuron(hidden), SeqToANN(nn.Linear(hidden, num_classes)))
    else:
        fc = nn.Sequential(pool, SeqToANN(nn.Linear(512, num_classes)))
    return _resnet(stem_layer, stages, fc, T)


@register_model
def resnet20_mpbn(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 3, T: int = 2) -> SpikingNet:
    """MPBN-style ResNet-20 (DA-LIF authors' framework; reconstruction, see docs/models.md):
    stem 3 x (conv3x3 64 + BN + neuron), AvgPool 2, four stages 64/128/256/512 of 2 blocks with
    strides 1/2/2/2 and average-pool shortcuts, global average pool, FC 512->C."""
    stem = nn.Sequential(
        conv_bn(in_channels, 64), neuron(64), conv_bn(64, 64), neuron(64), conv_bn(64, 64), neuron(64),
        SeqToANN(nn.AvgPool2d(2)),
    )
    stages = _stages(64, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2), _basic(neuron, "avgpool"))
    head = nn.Sequential(SeqToANN(nn.AdaptiveAvgPool2d(1), nn.Flatten()), SeqToANN(nn.Linear(512, num_classes)))
    return _resnet(stem, stages, head, T)


def _imagenet_resnet(blocks, neuron, num_classes, in_channels, T) -> SpikingNet:
    stem = nn.Sequential(
        SeqToANN(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)), TimeBatchNorm(64), neuron(64),
        SeqToANN(nn.AvgPool2d(3, 2, 1)),
    )
    stages = _stages(64, (64, 128, 256, 512), blocks, (1, 2, 2, 2), _basic(neuron))
    head = nn.Sequential(SeqToANN(nn.AdaptiveAvgPool2d(1), nn.Flatten()), SeqToANN(nn.Linear(512, num_classes)))
    return _resnet(stem, stages, head, T)


@register_model
def resnet18(neuron: NeuronFactory, num_classes: int = 1000, in_channels: int = 3, T: int = 4) -> SpikingNet:
    """ImageNet ResNet-18: 7x7/2 stem, AvgPool 3x3/2, [2, 2, 2, 2] blocks, FC 512->C."""
    return _imagenet_resnet((2, 2, 2, 2), neuron, num_classes, in_channels, T)


@register_model
def resnet34(neuron: NeuronFactory, num_classes: int = 1000, in_channels: int = 3, T: int = 4) -> SpikingNet:
    """ImageNet ResNet-34: as ResNet-18 with [3, 4, 6, 3] blocks."""
    return _imagenet_resnet((3, 4, 6, 3), neuron, num_classes, in_channels, T)


class PreActBlock(nn.Module):
    """AR-LIF/CLIF pre-activation block: x <- neuron(BN(x)); out = conv(x);
    out = conv(dropout(neuron(BN(out)))) + shortcut(x), the shortcut acting on the spikes."""

    acts_per_step = True  # adalif.memory's time chunks: each step alone (its layers are checked too)

    def __init__(self, cin: int, cout: int, stride: int, neuron: NeuronFactory, dropout: float, dropout_mode: str = "shared") -> None:
        super().__init__()
        self.pre = nn.Sequential(TimeBatchNorm(cin), neuron(cin))
        self.branch = nn.Sequential(
            SeqToANN(nn.Conv2d(cin, cout, 3, stride, 1)), TimeBatchNorm(cout), neuron(cout),
            dropout_layer(dropout, dropout_mode), SeqToANN(nn.Conv2d(cout, cout, 3, 1, 1)),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else SeqToANN(nn.Conv2d(cin, cout, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.branch(x) + self.shortcut(x)


@register_model
def preact_resnet18(neuron: NeuronFactory, num_classes: int = 10, in_channels: int = 3, T: int = 4, dropout: float = 0.0,
                    dropout_mode: str = "shared", zero_conv_bias: bool = True) -> SpikingNet:
    """Pre-activation ResNet-18 of the AR-LIF CIFAR runs: conv3x3 64 stem (no BN, no neuron),
    [2, 2, 2, 2] PreActBlocks 64/128/256/512, head BN -> neuron -> AvgPool 4 -> FC 512->C.
    ``zero_conv_bias=False``: the blocks' convolution biases keep PyTorch's default initialisation,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as the official CLIF code's (its init loop re-draws only
    the conv weights); the FC bias is 0 either way."""
    if not isinstance(zero_conv_bias, bool):
        raise ValueError(f"model.zero_conv_bias: expected true or false, got {zero_conv_bias!r}")
    stem = SeqToANN(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False))
    stages = _stages(64, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2),
                     lambda cin, cout, stride: PreActBlock(cin, cout, stride, neuron, dropout, dropout_mode))
    head = nn.Sequential(
        TimeBatchNorm(512), neuron(512), SeqToANN(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        dropout_layer(dropout, dropout_mode), SeqToANN(nn.Linear(512, num_classes)),
    )
    model = _resnet(stem, stages, head, T, zero_conv_bias)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    return model


__all__ = ["BasicBlock", "PreActBlock"]
