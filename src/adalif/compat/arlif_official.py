"""Weights trained with the official AR-LIF code (github.com/2ephyrus/AR-LIF) in adalif models.

The official networks are single-step PyTorch modules with their own key names; the adalif
recipe models compute the same functions (tested side by side in eval mode), so a state dict
saved by the official ``train.py`` (``checkpoint["net"]``) or by the AR-LIF-PSN
``train_vgg.py`` (``checkpoint["model"]``) maps one to one onto the adalif model of the same
recipe. The architectures and where their key names come from:

================  ======================================  =================================
``arch``          official model                           adalif model
================  ======================================  =================================
spiking_resnet18  ``models/spiking_resnet.py``             ``preact_resnet18``
spiking_vgg11_bn  ``models/spiking_vgg_bn.py``             ``vgg11_bn``
spiking_vgg13_bn  ``models/spiking_vgg_bn.py``             ``vgg13_bn``
vggsnn            ``models/vgg_model.py`` (Tiny-ImageNet;  ``vggsnn`` (``input_size=64``)
                  key names of the related DTFR-LIMF copy)
psn_vggsnn        ``AR-LIF-PSN/cifar10dvs/models.py``      ``vggsnn`` (CIFAR10-DVS)
================  ======================================  =================================

Layers are matched by kind (convolutions, batch norms, linear layers, neurons) in the order the
forward pass meets them; every key must find its place and every shape must fit, or the import
stops with an error that names the key. Neuron parameters keep their names (XLIF's and
aLIFSpike's ``a`` and ``c``, PLIF's ``w``); the official LIF, hard- and soft-reset neurons have
none. docs/models.md shows the command.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch
from torch import nn

from ..errors import CorruptFileError
from ..neurons import Neuron
from ..safe_load import load_torch

__all__ = ["ARCHITECTURES", "ImportedWeights", "detect_architecture", "load_official_state_dict", "convert_state_dict"]

# Official VGG configurations, grouped as in ``spiking_vgg_bn.py`` (one ``layerN`` per group).
_VGG_GROUPS = {
    "spiking_vgg11_bn": [[64, "M"], [128, "M"], [256, 256, "M"], [512, 512, "M"], [512, 512, "M"]],
    "spiking_vgg13_bn": [[64, 64, "M"], [128, 128, "M"], [256, 256, "M"], [512, 512, "M"], [512, 512, "M"]],
}
# VGGSNN: positions k of the eight conv layers in ``features`` (pools in between), the key
# formats of their conv, BN and neuron (n = k + 1), and the classifier's key.
_VGGSNN_KEYS = {
    # Tiny-ImageNet, vgg_model.py: Layer(fwd=Sequential(conv, bn), act=neuron)
    "vggsnn": ([0, 1, 3, 4, 6, 7, 9, 10], "features.{k}.fwd.0", "features.{k}.fwd.1", "features.{k}.act", "classifier"),
    # CIFAR10-DVS, AR-LIF-PSN models.py: Layer(fwd=SeqToANNContainer(conv, bn)), then the neuron module
    "psn_vggsnn": ([0, 2, 5, 7, 10, 12, 15, 17], "features.{k}.fwd.module.0", "features.{k}.fwd.module.1",
                   "features.{n}", "classifier.1.module"),
}

#: arch -> the adalif model it maps onto
ARCHITECTURES = {
    "spiking_resnet18": "preact_resnet18", "spiking_vgg11_bn": "vgg11_bn", "spiking_vgg13_bn": "vgg13_bn",
    "vggsnn": "vggsnn", "psn_vggsnn": "vggsnn",
}


class Units(NamedTuple):
    """Module key prefixes by kind, in forward order."""

    conv: List[str]
    bn: List[str]
    linear: List[str]
    neuron: List[str]


def _official_units(arch: str, state: Mapping[str, torch.Tensor]) -> Units:
    u = Units([], [], [], [])
    if arch == "spiking_resnet18":
        u.conv.append("conv1")
        for stage in range(1, 5):
            for block in range(2):
                p = f"layer{stage}.{block}."
                u.conv.extend([p + "conv1", p + "conv2"] + ([p + "shortcut"] if p + "shortcut.weight" in state else []))
                u.bn.extend([p + "bn1", p + "bn2"])
                u.neuron.extend([p + "relu1", p + "relu2"])
        u.bn.append("bn1")
        u.neuron.append("relu1")
        u.linear.append("linear")
    elif arch in _VGG_GROUPS:
        for g, group in enumerate(_VGG_GROUPS[arch], start=1):
            j = 0
            for item in group:
                if item == "M":
                    j += 1
                    continue
                # conv, BatchNorm2d, neuron, layer.Dropout
                u.conv.append(f"layer{g}.{j}")
                u.bn.append(f"layer{g}.{j + 1}")
                u.neuron.append(f"layer{g}.{j + 2}")
                j += 4
        u.linear.append("classifier.1")
    elif arch in _VGGSNN_KEYS:
        positions, conv, bn, neuron, linear = _VGGSNN_KEYS[arch]
        for k in positions:
            u.conv.append(conv.format(k=k))
            u.bn.append(bn.format(k=k))
            u.neuron.append(neuron.format(k=k, n=k + 1))
        u.linear.append(linear)
    else:
        raise ValueError(f"arch: got {arch!r}, expected one of {sorted(ARCHITECTURES)}")
    return u


def _adalif_units(model: nn.Module) -> Units:
    # Registration order is forward order in every adalif recipe model (tested by the import tests).
    u = Units([], [], [], [])
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            u.conv.append(name)
        elif isinstance(m, nn.BatchNorm2d):
            u.bn.append(name)
        elif isinstance(m, nn.Linear):
            u.linear.append(name)
        elif isinstance(m, Neuron):
            u.neuron.append(name)
    return u


def detect_architecture(state: Mapping[str, torch.Tensor]) -> str:
    """The official architecture that saved ``state``, from its key names."""
    if "layer1.0.bn1.weight" in state:
        return "spiking_resnet18"
    if "features.0.fwd.module.0.weight" in state:
        return "psn_vggsnn"
    if "features.0.fwd.0.weight" in state:
        return "vggsnn"
    if "layer1.0.weight" in state:
        convs = [k for k in state if re.fullmatch(r"layer\d\.\d+\.weight", k) and state[k].dim() == 4]
        return "spiking_vgg13_bn" if len(convs) == 10 else "spiking_vgg11_bn"
    first = ", ".join(list(state)[:3])
    raise ValueError(f"state dict: not one of the official AR-LIF architectures {sorted(ARCHITECTURES)} "
                     f"(its first keys are {first}); pass arch= to choose one")


def load_official_state_dict(path) -> Dict[str, torch.Tensor]:
    """The model state dict in a file saved by the official code: a checkpoint dict with ``net``
    (AR-LIF ``train.py``) or ``model`` (AR-LIF-PSN ``train_vgg.py``), or a bare state dict;
    ``module.`` prefixes of ``nn.DataParallel`` are removed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"state dict: {path!r} does not exist")
    try:
        # weights_only: the file comes from elsewhere, and tensors and plain containers are all it needs;
        # a file that asks for anything else raises UnsafeFileError, naming it, before anything runs.
        obj = load_torch(path, "state dict:")
    except CorruptFileError as err:
        raise ValueError(f"state dict: {path!r} is not a readable PyTorch checkpoint ({err.reason})") from None
    for key in ("net", "model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"state dict: {path!r} holds no state dict (expected a dict of tensors, or a checkpoint "
                         f"with 'net' or 'model')")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def _param_names(state: Mapping[str, torch.Tensor], prefix: str) -> List[str]:
    return [k[len(prefix) + 1:] for k in state if k.startswith(prefix + ".") and "." not in k[len(prefix) + 1:]]


class ImportedWeights(NamedTuple):
    state_dict: Dict[str, torch.Tensor]  # keys of the adalif model
    arch: str
    mapping: List[Tuple[str, str]]  # (official key, adalif key)


def convert_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module, arch: Optional[str] = None) -> ImportedWeights:
    """Map an official state dict onto ``model``'s keys; every official key must be used and every
    key of ``model`` filled, with matching shapes."""
    arch = arch or detect_architecture(state)
    ours, theirs = _adalif_units(model), _official_units(arch, state)
    target = model.state_dict()
    mapping: List[Tuple[str, str]] = []
    for kind in Units._fields:
        a, b = getattr(theirs, kind), getattr(ours, kind)
        if len(a) != len(b):
            raise ValueError(f"state dict: the official {arch} has {len(a)} {kind} layers, the adalif "
                             f"{type(model).__name__} has {len(b)}; is the config's model the recipe's ({ARCHITECTURES[arch]})?")
        for src, dst in zip(a, b):
            for name in _param_names(state, src):
                mapping.append((f"{src}.{name}", f"{dst}.{name}"))
    converted: Dict[str, torch.Tensor] = {}
    for src, dst in mapping:
        if dst not in target:
            raise ValueError(f"state dict: {src} has no counterpart {dst} in the adalif model (is the config's neuron "
                             f"the one the official run used?)")
        if tuple(state[src].shape) != tuple(target[dst].shape):
            raise ValueError(f"state dict: {src} has shape {tuple(state[src].shape)}, but {dst} of the adalif model "
                             f"has shape {tuple(target[dst].shape)} (check num_classes, in_channels and input_size)")
        converted[dst] = state[src].to(target[dst].dtype)
    unused = sorted(set(state) - {src for src, _ in mapping})
    if unused:
        raise ValueError(f"state dict: {unused[0]} does not map onto the adalif model ({len(unused)} such keys)")
    missing = sorted(set(target) - set(converted))
    if missing:
        raise ValueError(f"state dict: nothing in the official state dict fills {missing[0]} of the adalif model "
                         f"({len(missing)} such keys; is the config's neuron the one the official run used?)")
    return ImportedWeights(converted, arch, mapping)
