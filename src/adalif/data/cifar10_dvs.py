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

from typing import List, NamedTuple

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FILES_PER_CLASS = 1000
SPLITS = ("tebn", "tet", "lexicographic")


class SplitIndices(NamedTuple):
    train: List[int]
    test: List[int]


def split_indices(name: str) -> SplitIndices:
    """File indices ``i`` (the same for every class) of the train and test halves of split ``name``."""
    if name not in SPLITS:
        raise ValueError(f"split: unknown value {name!r}; expected one of {list(SPLITS)}")
    indices = list(range(FILES_PER_CLASS))
    if name == "tebn":
        test = indices[:100]
    elif name == "tet":
        test = indices[900:]
    else:
        # SpikingJelly sorts file names as strings and keeps the first ceil(0.9 n) for training.
        by_name = sorted(indices, key=lambda i: f"cifar10_x_{i}.aedat")
        test = sorted(by_name[900:])
    test_set = set(test)
    return SplitIndices([i for i in indices if i not in test_set], test)


def file_name(label: int, index: int) -> str:
    """Relative path of one recording: ``<class>/cifar10_<class>_<index>.aedat``."""
    cls = CLASSES[label]
    return f"{cls}/cifar10_{cls}_{index}.aedat"
