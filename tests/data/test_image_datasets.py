"""CIFAR, Tiny-ImageNet and ImageNet trees through the registry: labels, decoding, layouts, errors."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from adalif.data import images, registry
from adalif.data.errors import DatasetFileError

from .fixtures import IMAGENET_WNIDS, TINY_WNIDS, cifar_tree, imagenet_tree, tiny_imagenet_tree


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_sets(tmp_path, name):
    cifar_tree(tmp_path, name, n=6)
    sets = registry.build(name, str(tmp_path), 4, {})
    assert (len(sets.train), len(sets.test)) == (30, 6)
    x, y = sets.train[7]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and 0 <= int(y) < sets.info.num_classes


def test_tiny_imagenet_sorted_wnids_grayscale_and_tab_annotations(tmp_path):
    base = tiny_imagenet_tree(tmp_path, per_class=2)
    sets = registry.build("tiny_imagenet", str(tmp_path), 4, {})
    classes = sorted(TINY_WNIDS)  # ImageFolder order, not the order of wnids.txt
    train = images.tiny_imagenet(base, True)
    assert train.classes == classes and len(sets.train) == 6 and len(sets.test) == 6
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # val_i has wnid TINY_WNIDS[i % 3] (val_annotations.txt column 2)
    val = images.tiny_imagenet(base, False)
    assert [os.path.basename(p) for p in val.paths][:3] == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG"]
    assert val.labels.tolist() == [classes.index(TINY_WNIDS[i % 3]) for i in range(6)]
    gray = [i for i, p in enumerate(train.paths) if p.endswith("n04000000_0.JPEG")][0]
    with Image.open(train.paths[gray]) as img:
        assert img.mode == "L"
    x, y = sets.train[gray]
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8 and y == 1
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey converted to RGB
    with open(os.path.join(base, "val", "val_annotations.txt"), "a") as fh:
        fh.write("val_9.JPEG n12345678\t0\t0\t1\t1\n")
    with pytest.raises(DatasetFileError, match=r"val_annotations.txt: line 7: expected 'file<TAB>wnid"):
        images.tiny_imagenet(base, False)


def test_unreadable_image_is_named(tmp_path):
    base = tiny_imagenet_tree(tmp_path, per_class=1)
    path = os.path.join(base, "train", TINY_WNIDS[0], "images", f"{TINY_WNIDS[0]}_0.JPEG")
    with open(path, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    sets = registry.build("tiny_imagenet", str(tmp_path), 4, {})
    bad = sets.train.images.paths.index(path)
    with pytest.raises(DatasetFileError, match=f"{TINY_WNIDS[0]}_0.JPEG: unreadable image"):
        sets.train[bad]


@pytest.mark.parametrize("flat", [False, True])
def test_imagenet_both_val_layouts(tmp_path, flat):
    labels = imagenet_tree(tmp_path, flat_val=flat)
    sets = registry.build("imagenet", str(tmp_path), 4, {"augment": ["random_resized_crop224"]})
    assert len(sets.train) == 6 and len(sets.test) == 3
    assert sets.test.images.labels.tolist() == [IMAGENET_WNIDS.index(w) for _, w in labels]
    x, y = sets.train[3]
    assert x.shape == (3, 224, 224) and y == 1
    assert sets.test[2][0].shape == (3, 224, 224) and sets.test[2][1] == 2


def test_imagenet_flat_val_with_devkit_ground_truth(tmp_path):
    from scipy.io import savemat

    labels = imagenet_tree(tmp_path, flat_val=True)
    os.remove(tmp_path / "val_labels.txt")
    with pytest.raises(FileNotFoundError, match="val/ is flat but no label file was found"):
        images.imagenet(tmp_path, False)
    # Devkit ids are not in sorted-WNID order: id 1 -> third wnid, 2 -> first, 3 -> second.
    devkit = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    order = [IMAGENET_WNIDS[2], IMAGENET_WNIDS[0], IMAGENET_WNIDS[1]]
    synsets = np.array([(i + 1, w, 0) for i, w in enumerate(order)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    savemat(devkit / "meta.mat", {"synsets": synsets})
    ids = {w: i + 1 for i, w in enumerate(order)}
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for _, w in labels))
    val = images.imagenet(tmp_path, False)
    assert val.labels.tolist() == [0, 1, 2]


def test_random_resized_crop_and_center_crop_sizes():
    img = Image.fromarray(np.arange(300 * 200 * 3, dtype=np.uint8).reshape(200, 300, 3))
    torch.manual_seed(0)
    a = images.random_resized_crop(img, 56)
    torch.manual_seed(0)
    assert a.size == (56, 56) and np.array_equal(np.asarray(a), np.asarray(images.random_resized_crop(img, 56)))
    c = images.resize_center_crop(img, 64, 56)
    assert c.size == (56, 56)
    # shorter side 200 -> 64 gives 96x64; the central 56x56 starts at column 20, row 4
    expected = img.resize((96, 64), Image.BILINEAR).crop((20, 4, 76, 60))
    assert np.array_equal(np.asarray(c), np.asarray(expected))


def test_missing_roots_list_expected_files_and_sources(tmp_path):
    for name, text in [("cifar10", "cifar-10-python.tar.gz"), ("tiny_imagenet", "tiny-imagenet-200.zip"),
                       ("imagenet", "image-net.org"), ("dvs128_gesture", "DvsGesture.tar.gz")]:
        with pytest.raises(FileNotFoundError, match=f"{name}: .*adalif never downloads.*{text}"):
            registry.check_root(name, str(tmp_path / "missing"), 4, {})
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="cifar100: .*cifar-100-python/train.* not found"):
        registry.check_root("cifar100", str(tmp_path / "half"), 4, {})
