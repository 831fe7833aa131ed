"""CIFAR pickle batches: Python-2 style str keys and bytes keys, fine labels, pixel layout, errors."""

import pickle

import numpy as np
import pytest

from adalif.data.cifar import DatasetFileError, load, read_batch


def write_batch(path, n, bytes_keys=False, label_key="labels", seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {"data": data, label_key: list(rng.integers(0, 10, n)), "batch_label": "training batch 1 of 5",
             "filenames": [f"img_{i}.png" for i in range(n)]}
    if label_key == "fine_labels":
        batch["coarse_labels"] = list(rng.integers(0, 20, n))
    if bytes_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    return data, batch


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_batch_layout_and_keys(tmp_path, bytes_keys):
    data, batch = write_batch(tmp_path / "data_batch_1", 5, bytes_keys)
    out = read_batch(tmp_path / "data_batch_1")
    assert out.images.shape == (5, 3, 32, 32) and out.images.dtype == np.uint8
    # row 2: pixel (row 3, column 7) of the green plane is data[2, 1024 + 3 * 32 + 7]
    assert out.images[2, 1, 3, 7] == data[2, 1024 + 3 * 32 + 7]
    assert out.labels.tolist() == list(batch[b"labels" if bytes_keys else "labels"])


def test_cifar10_and_cifar100_trees(tmp_path):
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        write_batch(c10 / f"data_batch_{i}", 3, seed=i)
    write_batch(c10 / "test_batch", 4, seed=9)
    train = load("cifar10", tmp_path, train=True)
    assert train.images.shape == (15, 3, 32, 32) and len(load("cifar10", tmp_path, train=False).labels) == 4
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    _, batch = write_batch(c100 / "train", 6, label_key="fine_labels")
    write_batch(c100 / "test", 2, label_key="fine_labels")
    assert load("cifar100", tmp_path, train=True).labels.tolist() == list(batch["fine_labels"])


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10: .*data_batch_1.* not found.*adalif never downloads"):
        load("cifar10", tmp_path, train=True)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(DatasetFileError, match="bad: not a readable CIFAR pickle"):
        read_batch(bad)
    truncated = tmp_path / "truncated"
    write_batch(truncated, 4)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(DatasetFileError, match="truncated: not a readable CIFAR pickle"):
        read_batch(truncated)
    wrong = tmp_path / "wrong"
    with open(wrong, "wb") as fh:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, fh)
    with pytest.raises(DatasetFileError, match=r"wrong: expected data of shape \(N, 3072\)"):
        read_batch(wrong)
