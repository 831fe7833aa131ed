"""What adalif knows about one dataset, as one record: each dataset module exports its own, and
:mod:`.registry` maps names to them (as timm's model registry maps names to constructors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple

__all__ = ["DatasetSpec"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset.

    Args:
        name: the ``data.name`` of configs.
        kind: ``"image"`` (uint8 ``[C, H, W]`` samples, repeated T times by the model) or
            ``"frames"`` (float ``[T, C, H, W]`` event frames).
        num_classes: the number of classes a model for it predicts.
        in_channels: the number of channels of its samples (a model's first layer takes them).
        source: where its official files come from (adalif never downloads).
        options: its own ``data.options`` with their defaults (the augmentation options, common
            to every dataset, are the registry's).
        side: the side of its (square) batches, from its resolved options; no file is read.
        normalize: its default normalisation (``adalif.data.augment.NORMALIZE``), or None.
        check_root: fails, naming what is expected, when the files are not under a root (None:
            the data ship with adalif).
        load: ``(root, T, options) -> (train, test)`` datasets, for data read into memory or per
            image; event datasets have ``layout`` instead and are read through the frame cache.
        layout: ``root -> adalif.data.layout.Layout``, for event datasets.
        splits: the names of its train/test splits (the first is the default).
        check: extra checks of its resolved options (combinations a single value cannot express).
        check_steps: ``(T, options)``: checks of the number of time steps with the resolved options
            (a dataset that shows one row per step needs at least as many steps as rows).
        relabel: ``(labels, options) -> labels``: the label order a config asks for.
    """

    name: str
    kind: str
    num_classes: int
    in_channels: int
    source: str
    side: Callable[[Mapping[str, Any]], int]
    options: Mapping[str, Any] = field(default_factory=dict)
    normalize: Optional[str] = None
    check_root: Optional[Callable[[Any], Any]] = None
    load: Optional[Callable[..., Tuple[Any, Any]]] = None
    layout: Optional[Callable[[Any], Any]] = None
    splits: Tuple[str, ...] = ()
    check: Optional[Callable[[Mapping[str, Any]], None]] = None
    check_steps: Optional[Callable[[int, Mapping[str, Any]], None]] = None
    relabel: Optional[Callable[[Any, Mapping[str, Any]], Any]] = None
