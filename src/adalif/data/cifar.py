"""CIFAR-10 / CIFAR-100 from the official python pickle batches (docs/data.md).

Each file is a dict pickled by Python 2; it is loaded with ``encoding="latin1"``, by an unpickler
that rebuilds numpy arrays and nothing else (a crafted file never runs code), and its keys
are normalised to ``str`` (files re-written by Python 3 may carry bytes keys). Rows are 1024
red, 1024 green, then 1024 blue values of a row-major 32x32 image.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from ..errors import UnsafeFileError
from ..safe_load import load_pickle
from .errors import DatasetFileError, missing_files
from .spec import DatasetSpec

FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train"], ["test"]),
}
SOURCES = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}


class CifarSplit(NamedTuple):
    images: np.ndarray  # uint8 [N, 3, 32, 32]
    labels: np.ndarray  # int64 [N] (fine labels for CIFAR-100)


def read_batch(path) -> CifarSplit:
    """One pickle batch: images ``[N, 3, 32, 32]`` uint8 and labels. Read with a restricted unpickler
    (:func:`adalif.safe_load.load_pickle`): a global other than numpy's array and scalar builders is
    refused with :class:`~adalif.errors.UnsafeFileError` before anything of the file is run."""
    try:
        raw = load_pickle(path, "a CIFAR batch holds only dicts, lists, strings, bytes, numbers and numpy arrays",
                          encoding="latin1")
    except (FileNotFoundError, UnsafeFileError):
        raise
    except Exception as err:  # any unpickling failure: say which file and why
        raise DatasetFileError(f"{os.fspath(path)}: not a readable CIFAR pickle ({type(err).__name__}: {err})") from err
    if not isinstance(raw, dict):
        raise DatasetFileError(f"{os.fspath(path)}: expected a pickled dict, found {type(raw).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    label_key = "labels" if "labels" in batch else "fine_labels"
    if "data" not in batch or label_key not in batch:
        raise DatasetFileError(f"{os.fspath(path)}: missing key 'data' or 'labels'/'fine_labels' (found {sorted(batch)})")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DatasetFileError(
            f"{os.fspath(path)}: expected data of shape (N, 3072) and N labels, found {data.shape} and {len(labels)}"
        )
    return CifarSplit(data.reshape(-1, 3, 32, 32), labels)


def load(name: str, root, train: bool) -> CifarSplit:
    """The train or test split of ``cifar10``/``cifar100`` under ``root``."""
    if name not in FILES:
        raise ValueError(f"name: unknown CIFAR dataset {name!r}; expected one of {list(FILES)}")
    folder, train_files, test_files = FILES[name]
    base = os.path.join(os.fspath(root), folder)
    names = train_files if train else test_files
    missing_files(name, root, [f"{folder}/{f}" for f in names],
                  [f"{folder}/ with {', '.join(train_files + test_files)}"], f"{SOURCES[name]} (extract it)")
    files = [os.path.join(base, f) for f in names]
    parts = [read_batch(f) for f in files]
    return CifarSplit(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def check_root(name: str, root) -> None:
    """Fail, listing the files expected, when the batches of ``name`` are not under ``root``."""
    folder, train, test = FILES[name]
    files = [f"{folder}/{f}" for f in train + test]
    missing_files(name, root, files, files, SOURCES[name])


def _spec(name: str, num_classes: int, normalize: str) -> DatasetSpec:
    def load_sets(root, T, options):
        import torch
        from torch.utils.data import TensorDataset

        parts = [load(name, root, train) for train in (True, False)]
        return tuple(TensorDataset(torch.from_numpy(p.images), torch.from_numpy(p.labels)) for p in parts)

    return DatasetSpec(name, "image", num_classes, 3, SOURCES[name], side=lambda o: 32, normalize=normalize,
                       check_root=lambda root: check_root(name, root), load=load_sets)


CIFAR10 = _spec("cifar10", 10, "cifar10_tet")
CIFAR100 = _spec("cifar100", 100, "cifar100")
