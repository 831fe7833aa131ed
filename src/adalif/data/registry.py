"""Every dataset by name: a mapping from names to the :class:`~adalif.data.spec.DatasetSpec` that
each dataset module exports (what it holds, its options and defaults, its folder check, its
loader), and what is common to all of them: the augmentation options, option checking, the
frame cache of the event datasets, and the train/test sets.

``data.options`` of a config are checked here (an unknown key or value is an error naming it),
so a mistyped option stops a run before anything is read.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from . import cache, cifar, cifar10_dvs, digits, gesture, images
from .augment import BatchAugment
from .cache import FrameSpec
from .spec import DatasetSpec

DATASETS: Dict[str, DatasetSpec] = {
    s.name: s for s in (digits.SPEC, digits.EVENTS_SPEC, digits.ROWS_SPEC, digits.DELAYED_SPEC, cifar.CIFAR10,
                        cifar.CIFAR100, images.TINY_IMAGENET, images.IMAGENET, cifar10_dvs.SPEC, gesture.SPEC)
}
"""Every built-in dataset: name -> its :class:`DatasetSpec`."""
EVENT_DATASETS = tuple(name for name, s in DATASETS.items() if s.layout is not None)
"""The datasets read through the frame cache (``adalif prepare``)."""
AUGMENT_OPTIONS = {"augment": [], "normalize": None, "random_erasing": 0.0, "mixup": 0.0, "cutmix": 0.0, "mix_prob": 1.0}
"""The batch augmentation options every dataset takes, with their defaults (``normalize``: the dataset's own)."""
_FRAME_FIELDS = tuple(f.name for f in dataclasses.fields(FrameSpec) if f.name != "T")


def get(name: str) -> DatasetSpec:
    """The spec of dataset ``name``."""
    if name not in DATASETS:
        raise ValueError(f"data.name: got {name!r}, expected one of {list(DATASETS)}")
    return DATASETS[name]


#: Old option names of the event datasets: ``resize`` said "interpolation" for frames and "size" for
#: ImageNet; it still loads, with a warning.
_RENAMED_EVENT_OPTIONS = {"resize": "interpolation"}


def resolve(name: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` with every default of dataset ``name`` filled in (unknown keys are errors)."""
    spec = get(name)
    if spec.layout is not None and _RENAMED_EVENT_OPTIONS.keys() & set(options):
        options = dict(options)
        for old, new in _RENAMED_EVENT_OPTIONS.items():
            if old in options:
                warnings.warn(f"data.options.{old} is deprecated for {name}: use data.options.{new}",
                              DeprecationWarning, stacklevel=2)
                options.setdefault(new, options.pop(old))
    defaults = {**AUGMENT_OPTIONS, "normalize": spec.normalize, **spec.options}
    for key in options:
        if key not in defaults:
            raise ValueError(f"data.options.{key}: not an option of {name}; expected any of {list(defaults)}")
    return {**defaults, **options}


def explicit_options(name: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` with the dataset's own defaults written out, as a run records them (so that a
    checkpoint keeps its meaning, label order included, if a default changes)."""
    resolve(name, options)
    return {**get(name).options, **options}


def check_steps(name: str, T: int, options: Mapping[str, Any]) -> None:
    """Reject a number of time steps ``T`` that dataset ``name`` cannot give with ``options``."""
    spec = get(name)
    if spec.check_steps is not None:
        try:
            spec.check_steps(T, resolve(name, options))
        except ValueError as err:
            raise ValueError(f"data.{err}") from None


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Reject unknown option keys and values of ``data.options`` for dataset ``name``."""
    spec, resolved = get(name), resolve(name, options)
    if spec.layout is not None:
        frame_spec(name, 1, resolved)
        if resolved["split"] not in spec.splits:
            raise ValueError(f"data.options.split: got {resolved['split']!r}, expected one of {list(spec.splits)}")
    if spec.check is not None:
        try:
            spec.check(resolved)
        except ValueError as err:
            raise ValueError(f"data.options.{err}" if not str(err).startswith("data.") else str(err)) from None
    batch_augment(spec, resolved, size=(8, 8))  # validates the augmentation options (builds nothing heavy)


def input_size(name: str, options: Mapping[str, Any]) -> Tuple[int, int]:
    """``(H, W)`` of the batches of dataset ``name`` with ``options``, without reading a file: the
    one place a model's input size comes from."""
    side = get(name).side(resolve(name, options))
    return (side, side)


def frame_spec(name: str, T: int, options: Mapping[str, Any]) -> FrameSpec:
    """The frames an event dataset's options ask for."""
    resolved = resolve(name, options)
    try:
        return FrameSpec(T=T, **{k: resolved[k] for k in _FRAME_FIELDS if k in resolved})
    except ValueError as err:
        raise ValueError(f"data.options.{err}") from None


def batch_augment(spec: DatasetSpec, options: Mapping[str, Any], size: Tuple[int, int]) -> Optional[BatchAugment]:
    """The batch augmentation of a dataset and its options, or None when it would be the identity."""
    options = resolve(spec.name, options)
    normalize = None if options["normalize"] in (None, "none") else options["normalize"]
    kwargs = dict(augment=list(options["augment"]), normalize=normalize, random_erasing=float(options["random_erasing"]),
                  mixup=float(options["mixup"]), cutmix=float(options["cutmix"]), mix_prob=float(options["mix_prob"]))
    if not kwargs["augment"] and normalize is None and not (kwargs["random_erasing"] or kwargs["mixup"] or kwargs["cutmix"]):
        if spec.kind == "frames" or spec.load is not None and spec.check_root is None:
            return None  # event counts and the embedded digits need no conversion
    return BatchAugment(spec.kind, size, spec.num_classes, **kwargs)


def model_input(x: torch.Tensor, y: torch.Tensor, spec: DatasetSpec, augment: Optional[BatchAugment] = None,
                train: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch of samples (``[B, C, H, W]`` images or ``[B, T, C, H, W]`` event frames) as the
    model sees it: augmented (at test time: only converted and normalised), then event frames
    made time-major ``[T, B, ...]``. The one place this path is written: the data module, the
    reports, the figures and the NIR export all go through it."""
    if augment is not None:
        x, y = augment(x, y, train=train)
    if spec.kind == "frames":
        x = x.transpose(0, 1)
    return x, y


def test_inputs(name: str, root: Optional[str], T: int, options: Mapping[str, Any],
                indices) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: test samples ``indices`` (a list, or a slice such as ``slice(64)``: the first 64,
    or fewer when the test set is smaller) of a dataset as the model sees them (:func:`model_input`)."""
    sets = build(name, root, T, options)
    if isinstance(indices, slice):
        indices = range(len(sets.test))[indices]
    for i in indices:
        if not -len(sets.test) <= i < len(sets.test):
            raise ValueError(f"sample: got {i}, expected an index below the {len(sets.test)} test samples of {name}")
    batch = [sets.test[i] for i in indices]
    x, y = torch.stack([b[0] for b in batch]).float(), torch.tensor([b[1] for b in batch])
    return model_input(x, y, sets.info, batch_augment(sets.info, options, sets.size))


def example_input(name: str, T: int, options: Mapping[str, Any]) -> torch.Tensor:
    """A zero batch of one sample in the model's input layout, from the config alone (no file is
    read): ``[1, C, H, W]`` for images, ``[T, 1, C, H, W]`` for event frames."""
    spec = get(name)
    x = torch.zeros(1, spec.in_channels, *input_size(name, options))
    if spec.kind == "frames":
        x = x.unsqueeze(1).expand(1, T, *x.shape[1:])
    return model_input(x, torch.zeros(1, dtype=torch.long), spec)[0]


def cache_folder(name: str, root: str, spec: FrameSpec, cache_dir: Optional[str] = None) -> str:
    """Where the frames of ``spec`` live: ``CACHE_DIR/<dataset>/T..-<hash>`` (default CACHE_DIR:
    ``<root>/adalif_frames``)."""
    base = cache_dir or os.path.join(os.fspath(root), "adalif_frames")
    return os.path.join(base, spec.folder(name))


def prepare(name: str, root: str, spec: FrameSpec, cache_dir: Optional[str] = None, workers: Optional[int] = None,
            force: bool = False, progress: bool = True, layout=None) -> str:
    """Build the frame cache of an event dataset unless it exists; returns its folder."""
    if name not in EVENT_DATASETS:
        raise ValueError(f"dataset: got {name!r}; only event datasets are prepared: {list(EVENT_DATASETS)}")
    target = cache_folder(name, root, spec, cache_dir)
    if cache.is_complete(target) and not force:
        return target
    layout = layout if layout is not None else get(name).layout(root)
    if force and os.path.isdir(target):
        import shutil

        shutil.rmtree(target)
    cache.build(layout, spec, target, workers=workers, progress=progress)
    return target


def prepare_options(name: str, root: str, T: int, options: Mapping[str, Any], force: bool = False) -> str:
    """:func:`prepare` with everything taken from a config's data section."""
    resolved = resolve(name, options)
    return prepare(name, root, frame_spec(name, T, resolved), resolved["cache_dir"], resolved["workers"], force=force)


class FrameDataset(Dataset):
    """Samples ``(float32 [T, 2, S, S], label)`` of a frame cache, memory-mapped. Only the file path
    is pickled, so worker processes map the file themselves instead of copying the array."""

    def __init__(self, path: str, indices, labels: np.ndarray) -> None:
        self.path, self.indices = path, np.asarray(indices, dtype=np.int64)
        self.labels = labels[self.indices]
        self._frames = None

    def __getstate__(self):
        return {**self.__dict__, "_frames": None}

    @property
    def frames(self) -> np.ndarray:
        if self._frames is None:
            self._frames = np.load(os.path.join(self.path, "frames.npy"), mmap_mode="r", allow_pickle=False)
        return self._frames

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.frames[self.indices[i]], dtype=np.float32)), int(self.labels[i])


class Sets(NamedTuple):
    """What :func:`build` returns: the train and test datasets, the dataset's spec and its input size ``(H, W)``."""

    train: Dataset
    test: Dataset
    info: DatasetSpec
    size: Tuple[int, int]  # (H, W) of the batches


def build(name: str, root: Optional[str], T: int, options: Mapping[str, Any]) -> Sets:
    """The train and test sets of dataset ``name`` (options already checked); an event dataset's
    frame cache is built first if it does not exist."""
    spec, resolved = get(name), resolve(name, options)
    if spec.check_root is not None and root is None:
        raise ValueError(f"data.root: {name} needs the folder of its official files ({spec.source})")
    if spec.layout is None:
        train, test = spec.load(root, T, resolved)
    else:
        fspec = frame_spec(name, T, resolved)
        target = prepare(name, root, fspec, resolved["cache_dir"], resolved["workers"])
        frames = cache.load(target, fspec)
        labels = frames.labels if spec.relabel is None else spec.relabel(frames.labels, resolved)
        train, test = (FrameDataset(target, cache.group_indices(frames, resolved["split"], part), labels)
                       for part in (True, False))
    return Sets(train, test, spec, input_size(name, resolved))


def check_root(name: str, root: Optional[str], T: int, options: Mapping[str, Any]) -> None:
    """Fail early, before a run creates anything, when the files of dataset ``name`` are not under
    ``root``: the error lists what is expected and where to get it. Reads only directory entries
    (an event dataset whose frame cache is complete needs no raw files)."""
    spec = get(name)
    if spec.check_root is None:
        return
    if root is None:
        raise ValueError(f"data.root: {name} needs the folder of its official files; get {spec.source}")
    if spec.layout is not None:
        resolved = resolve(name, options)
        if cache.is_complete(cache_folder(name, root, frame_spec(name, T, resolved), resolved["cache_dir"])):
            return
    spec.check_root(root)
