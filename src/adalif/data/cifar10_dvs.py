"""CIFAR10-DVS layout and its train/test splits (docs/data.md).

The official files are ``<class>/cifar10_<class>_<i>.aedat``, i = 0..999 for each of 10 classes.
There is no official split; every common variant holds out 100 files per class, but which ones
differs:

* ``tebn`` (SpikingJelly ``CIFAR10DVSTEBNSplit``; the AR-LIF CIFAR10-DVS code): test = 0-99;
* ``tet`` (TET / conv_snn; the AR-LIF main code): test = 900-999;
* ``lexicographic`` (SpikingJelly ``split_to_train_test_set(0.9, ..., random_split=False)``):
  the last 100 file names in lexicographic order, i.e. {91..99} and {909..999}.
"""

from __future__ import annotations

import os
import re
from typing import List, NamedTuple, Optional

from .aedat import read_aedat2
from .errors import MissingFileError, missing_files
from .cache import FrameSpec
from .layout import DVS128, Job, Layout, frames_side
from .spec import DatasetSpec

SOURCE = "figshare article 4724671 'CIFAR10-DVS New' (one zip per class; extract all ten into one folder)"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FILES_PER_CLASS = 1000
SPLITS = ("tebn", "tet", "lexicographic")


class SplitIndices(NamedTuple):
    train: List[int]
    test: List[int]


def split_indices(name: str, files_per_class: int = FILES_PER_CLASS) -> SplitIndices:
    """File indices ``i`` (the same for every class) of the train and test halves of split ``name``.

    Every convention holds out a tenth of each class; ``files_per_class`` < 1000 serves test
    fixtures and subsets (the first, last, or last-in-string-order tenth).
    """
    if name not in SPLITS:
        raise ValueError(f"split: unknown value {name!r}; expected one of {list(SPLITS)}")
    indices = list(range(files_per_class))
    n_train = -(-9 * files_per_class // 10)  # ceil(0.9 n), as SpikingJelly
    n_test = files_per_class - n_train
    if name == "tebn":
        test = indices[:n_test]
    elif name == "tet":
        test = indices[n_train:]
    else:
        # SpikingJelly sorts file names as strings and keeps the first ceil(0.9 n) for training.
        by_name = sorted(indices, key=lambda i: f"cifar10_x_{i}.aedat")
        test = sorted(by_name[n_train:])
    test_set = set(test)
    return SplitIndices([i for i in indices if i not in test_set], test)


def file_name(label: int, index: int) -> str:
    """Relative path of one recording: ``<class>/cifar10_<class>_<index>.aedat``."""
    cls = CLASSES[label]
    return f"{cls}/cifar10_{cls}_{index}.aedat"


def read(path: str, spec):
    """Events of one recording with the cache's coordinate convention."""
    return read_aedat2(path, spec.convention)


def check_root(root) -> str:
    """``root`` once its ten class folders are found there."""
    root = os.fspath(root)
    expected = [f"{c}/cifar10_{c}_<i>.aedat" for c in CLASSES[:2]] + ["... (10 class folders of 1000 recordings)"]
    missing_files("cifar10_dvs", root, CLASSES, expected, SOURCE)
    return root


def layout(root, files_per_class: Optional[int] = None):
    """The cache layout of the dataset under ``root``: every recording in (class, index) order,
    and the stored index lists of all split conventions. All ``files_per_class`` (default
    :data:`FILES_PER_CLASS`, read at call time so that tests can shrink the dataset) must exist."""
    files_per_class = files_per_class or FILES_PER_CLASS
    root = check_root(root)
    pattern = re.compile(r"^cifar10_([a-z]+)_(\d+)\.aedat$")
    jobs, labels, names = [], [], []
    for label, cls in enumerate(CLASSES):
        present = {int(m.group(2)) for f in os.listdir(os.path.join(root, cls))
                   if (m := pattern.match(f)) and m.group(1) == cls}
        absent = [i for i in range(files_per_class) if i not in present]
        if absent:
            shown = ", ".join(file_name(label, i) for i in absent[:3]) + (" ..." if len(absent) > 3 else "")
            raise MissingFileError(
                f"cifar10_dvs: {len(absent)} of {files_per_class} recordings of class {cls!r} are missing under "
                f"{root!r} ({shown}); adalif never downloads: get {SOURCE}"
            )
        for i in range(files_per_class):
            name = file_name(label, i)
            jobs.append(Job(os.path.join(root, name), None))
            labels.append(label)
            names.append(name)
    groups = {}
    for split in SPLITS:
        idx = split_indices(split, files_per_class)
        groups[split] = {part: [c * files_per_class + i for c in range(len(CLASSES)) for i in getattr(idx, part)]
                         for part in ("train", "test")}
    return Layout(jobs, labels, names, groups, DVS128, read)


SPEC = DatasetSpec(
    "cifar10_dvs", "frames", 10, 2, SOURCE, side=frames_side, options={**FrameSpec.options("keep_invalid"), "split": SPLITS[0]},
    check_root=check_root, layout=lambda root: layout(root), splits=SPLITS,
)
