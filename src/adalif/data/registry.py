"""Every dataset by name: what it holds, which options it takes, and its train/test sets.

``data.options`` of a config are checked here (an unknown key or value is an error naming it),
so a mistyped option stops a run before anything is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .cache import FrameSpec

AUGMENT_OPTIONS = ("augment", "normalize", "random_erasing", "mixup", "cutmix", "mix_prob")
EVENT_OPTIONS = ("split_by", "leftover", "size", "resize", "cache_dir", "cache_dtype", "workers")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "image": uint8 [3, H, W] samples; "frames": float [T, C, H, W] samples
    num_classes: int
    in_channels: int
    normalize: Optional[str]  # default normalisation
    options: Tuple[str, ...]  # accepted data.options keys
    source: str  # where the official files come from


def _info() -> Dict[str, DatasetInfo]:
    from . import cifar, cifar10_dvs, gesture, images

    return {
        "digits": DatasetInfo("digits", "image", 10, 1, None, AUGMENT_OPTIONS, "embedded (scikit-learn)"),
        "digits_events": DatasetInfo("digits_events", "frames", 10, 2, None, AUGMENT_OPTIONS + ("event_seed", "size", "split_by"),
                                     "embedded (scikit-learn, emulated event camera)"),
        "cifar10": DatasetInfo("cifar10", "image", 10, 3, "cifar10_tet", AUGMENT_OPTIONS, cifar.SOURCES["cifar10"]),
        "cifar100": DatasetInfo("cifar100", "image", 100, 3, "cifar100", AUGMENT_OPTIONS, cifar.SOURCES["cifar100"]),
        "tiny_imagenet": DatasetInfo("tiny_imagenet", "image", 200, 3, "tiny_imagenet", AUGMENT_OPTIONS,
                                     images.SOURCES["tiny_imagenet"]),
        "imagenet": DatasetInfo("imagenet", "image", 1000, 3, "imagenet",
                                AUGMENT_OPTIONS + ("val_labels", "crop", "resize", "scale"), images.SOURCES["imagenet"]),
        "cifar10_dvs": DatasetInfo("cifar10_dvs", "frames", 10, 2, None,
                                   AUGMENT_OPTIONS + EVENT_OPTIONS + ("split", "convention"), cifar10_dvs.SOURCE),
        "dvs128_gesture": DatasetInfo("dvs128_gesture", "frames", 11, 2, None,
                                      AUGMENT_OPTIONS + EVENT_OPTIONS + ("keep_invalid", "label_order"), gesture.SOURCE),
    }


EVENT_DATASETS = ("cifar10_dvs", "dvs128_gesture")
DEFAULT_SPLIT = {"cifar10_dvs": "tebn", "dvs128_gesture": "official"}


def dataset_info(name: str) -> DatasetInfo:
    infos = _info()
    if name not in infos:
        raise ValueError(f"data.name: got {name!r}, expected one of {list(infos)}")
    return infos[name]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Reject unknown option keys and values of ``data.options`` for dataset ``name``."""
    info = dataset_info(name)
    for key in options:
        if key not in info.options:
            raise ValueError(f"data.options.{key}: not an option of {name}; expected any of {list(info.options)}")
    augment = list(options.get("augment", []))
    if name == "dvs128_gesture" and {"hflip", "tet_roll"} & set(augment):
        raise ValueError("data.options.augment: hflip and tet_roll mirror DVS128 Gesture samples, which changes their "
                         "labels (classes 2/3, 4/6 and 5/7 are left/right pairs)")
    if name in EVENT_DATASETS:
        frame_spec(name, 1, options)
        from . import cifar10_dvs, gesture

        split = options.get("split", DEFAULT_SPLIT[name])
        allowed = cifar10_dvs.SPLITS if name == "cifar10_dvs" else gesture.SPLITS
        if split not in allowed:
            raise ValueError(f"data.options.split: got {split!r}, expected one of {list(allowed)}")
        if name == "dvs128_gesture":
            gesture.relabel(np.zeros(0, dtype=np.int64), options.get("label_order", "csv"))
    batch_augment(info, options, size=(8, 8))  # validates the augmentation options (builds nothing heavy)


#: Options whose default decides what a trained network's outputs or inputs mean: a run records
#: them explicitly in its config (and so in its checkpoints), so that ``adalif eval`` reproduces
#: them even if a default changes.
RECORDED_DEFAULTS = {"dvs128_gesture": {"label_order": "csv", "keep_invalid": True}}


def explicit_options(name: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` with the :data:`RECORDED_DEFAULTS` of dataset ``name`` filled in."""
    return {**RECORDED_DEFAULTS.get(name, {}), **options}


def frame_spec(name: str, T: int, options: Mapping[str, Any]) -> FrameSpec:
    try:
        return FrameSpec(
            T=T, split_by=options.get("split_by", "number"), leftover=options.get("leftover", "last"),
            size=options.get("size"), resize=options.get("resize", "bilinear"),
            convention=options.get("convention", "spikingjelly"), keep_invalid=bool(options.get("keep_invalid", True)),
            dtype=options.get("cache_dtype", "float32"),
        )
    except ValueError as err:
        key = str(err).split(":")[0]
        raise ValueError(f"data.options.{'cache_dtype' if key == 'dtype' else key}{str(err)[len(key):]}") from None


def input_size(name: str, options: Mapping[str, Any]) -> Tuple[int, int]:
    """``(H, W)`` of the batches of dataset ``name`` with ``options``, without reading a file: the
    one place a model's input size comes from."""
    from . import digits

    if name == "digits":
        return (8, 8)
    if name == "digits_events":
        side = int(options.get("size", digits.CANVAS))
    elif name in ("cifar10", "cifar100"):
        side = 32
    elif name == "tiny_imagenet":
        side = 64
    elif name == "imagenet":
        side = int(options.get("crop", 224))
    else:
        side = options.get("size") or 128
    return (side, side)


def batch_augment(info: DatasetInfo, options: Mapping[str, Any], size: Tuple[int, int]):
    """The :class:`~adalif.data.augment.BatchAugment` of a dataset and its options, or None when it
    would be the identity."""
    from .augment import BatchAugment

    normalize = options.get("normalize", info.normalize)
    normalize = None if normalize in (None, "none") else normalize
    kwargs = dict(augment=list(options.get("augment", [])), normalize=normalize,
                  random_erasing=float(options.get("random_erasing", 0.0)), mixup=float(options.get("mixup", 0.0)),
                  cutmix=float(options.get("cutmix", 0.0)), mix_prob=float(options.get("mix_prob", 1.0)))
    if not kwargs["augment"] and normalize is None and not (kwargs["random_erasing"] or kwargs["mixup"] or kwargs["cutmix"]):
        if info.kind == "frames" or info.name.startswith("digits"):
            return None
    return BatchAugment(info.kind, size, info.num_classes, **kwargs)


def cache_folder(name: str, root: str, spec: FrameSpec, cache_dir: Optional[str] = None) -> str:
    """Where the frames of ``spec`` live: ``CACHE_DIR/<dataset>/T..-<hash>`` (default CACHE_DIR:
    ``<root>/adalif_frames``)."""
    base = cache_dir or os.path.join(os.fspath(root), "adalif_frames")
    return os.path.join(base, spec.folder(name))


def event_layout(name: str, root: str):
    from . import cifar10_dvs, gesture

    return cifar10_dvs.layout(root) if name == "cifar10_dvs" else gesture.layout(root)


def prepare(name: str, root: str, spec: FrameSpec, cache_dir: Optional[str] = None, workers: Optional[int] = None,
            force: bool = False, progress: bool = True, layout=None) -> str:
    """Build the frame cache of an event dataset unless it exists; returns its folder."""
    from . import cache

    if name not in EVENT_DATASETS:
        raise ValueError(f"dataset: got {name!r}; only event datasets are prepared: {list(EVENT_DATASETS)}")
    target = cache_folder(name, root, spec, cache_dir)
    if cache.is_complete(target) and not force:
        return target
    layout = layout if layout is not None else event_layout(name, root)
    if force and os.path.isdir(target):
        import shutil

        shutil.rmtree(target)
    cache.build(layout, spec, target, workers=workers, progress=progress)
    return target


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
            self._frames = np.load(os.path.join(self.path, "frames.npy"), mmap_mode="r")
        return self._frames

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.frames[self.indices[i]], dtype=np.float32)), int(self.labels[i])


class Sets(NamedTuple):
    train: Dataset
    test: Dataset
    info: DatasetInfo
    size: Tuple[int, int]  # (H, W) of the batches


def build(name: str, root: Optional[str], T: int, options: Mapping[str, Any]) -> Sets:
    """The train and test sets of dataset ``name`` (options already checked); an event dataset's
    frame cache is built first if it does not exist."""
    from . import cache, cifar, digits, images

    info = dataset_info(name)
    options = dict(options)
    if name == "digits":
        split = digits.load_static()
        return Sets(TensorDataset(split.x_train, split.y_train), TensorDataset(split.x_test, split.y_test), info,
                    input_size(name, options))
    if name == "digits_events":
        extra = {k: options[k] for k in ("size", "split_by") if k in options}
        split = digits.load_events(T=T, seed=options.get("event_seed", 0), **extra)
        return Sets(TensorDataset(split.x_train, split.y_train), TensorDataset(split.x_test, split.y_test), info,
                    input_size(name, options))
    if root is None:
        raise ValueError(f"data.root: {name} needs the folder of its official files ({info.source})")
    if name in ("cifar10", "cifar100"):
        parts = [cifar.load(name, root, train) for train in (True, False)]
        sets = [TensorDataset(torch.from_numpy(p.images), torch.from_numpy(p.labels)) for p in parts]
        return Sets(sets[0], sets[1], info, input_size(name, options))
    if name == "tiny_imagenet":
        return Sets(images.ImageDataset(images.tiny_imagenet(root, True)), images.ImageDataset(images.tiny_imagenet(root, False)),
                    info, input_size(name, options))
    if name == "imagenet":
        from functools import partial

        crop, resize = input_size(name, options)[0], int(options.get("resize", 256))
        scale = tuple(options.get("scale", (0.08, 1.0)))
        train_tf = (partial(images.random_resized_crop, size=crop, scale=scale)
                    if any(a.startswith("random_resized_crop") for a in options.get("augment", []))
                    else partial(images.resize_center_crop, resize=resize, crop=crop))
        test_tf = partial(images.resize_center_crop, resize=resize, crop=crop)
        val_labels = options.get("val_labels")
        return Sets(images.ImageDataset(images.imagenet(root, True), train_tf),
                    images.ImageDataset(images.imagenet(root, False, val_labels), test_tf), info, input_size(name, options))
    spec = frame_spec(name, T, options)
    target = prepare(name, root, spec, options.get("cache_dir"), options.get("workers"))
    frames = cache.load(target, spec)
    split = options.get("split", DEFAULT_SPLIT[name])
    labels = frames.labels
    if name == "dvs128_gesture":
        from .gesture import relabel

        labels = relabel(labels, options.get("label_order", "csv"))
    sets = [FrameDataset(target, cache.group_indices(frames, split, train), labels) for train in (True, False)]
    return Sets(sets[0], sets[1], info, input_size(name, options))


def check_root(name: str, root: Optional[str], T: int, options: Mapping[str, Any]) -> None:
    """Fail early, before a run creates anything, when the files of dataset ``name`` are not under
    ``root``: the error lists what is expected and where to get it. Reads only directory entries
    (an event dataset whose frame cache is complete needs no raw files)."""
    from . import cache, cifar, cifar10_dvs, gesture, images
    from .errors import missing_files

    info = dataset_info(name)
    if name.startswith("digits"):
        return
    if root is None:
        raise ValueError(f"data.root: {name} needs the folder of its official files; get {info.source}")
    if name in ("cifar10", "cifar100"):
        folder, train, test = cifar.FILES[name]
        files = [f"{folder}/{f}" for f in train + test]
        missing_files(name, root, files, files, cifar.SOURCES[name])
    elif name == "tiny_imagenet":
        images.check_tiny_root(root)
    elif name == "imagenet":
        images.check_imagenet_root(root)
    elif not cache.is_complete(cache_folder(name, root, frame_spec(name, T, options), options.get("cache_dir"))):
        (cifar10_dvs if name == "cifar10_dvs" else gesture).check_root(root)
