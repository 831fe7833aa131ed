"""CIFAR10-DVS and DVS128 Gesture from official-format trees: frame cache, splits, labels, errors."""

import os

import numpy as np
import pytest
import torch

from adalif.data import cifar10_dvs, registry
from adalif.data.aedat import EventFileError, read_aedat2
from adalif.data.cache import FrameSpec
from adalif.data.frames import integrate
from adalif.data.gesture import cut, read_labels

from .fixtures import cifar10_dvs_tree, gesture_tree

PER_CLASS = 10


@pytest.fixture
def dvs_root(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10_dvs, "FILES_PER_CLASS", PER_CLASS)
    root = tmp_path / "CIFAR10-DVS"
    names = cifar10_dvs_tree(root, PER_CLASS, events=150)
    return str(root), names


def test_cifar10_dvs_cache_frames_labels_and_stored_splits(dvs_root, monkeypatch):
    root, names = dvs_root
    spec = FrameSpec(T=4)
    sets = registry.build("cifar10_dvs", root, 4, {"workers": 1})
    target = registry.cache_folder("cifar10_dvs", root, spec)
    assert os.path.isfile(os.path.join(target, "frames.npy")) and not [d for d in os.listdir(os.path.dirname(target)) if ".tmp-" in d]
    frames = np.load(os.path.join(target, "frames.npy"), mmap_mode="r")
    assert frames.shape == (10 * PER_CLASS, 4, 2, 128, 128) and frames.dtype == np.float32
    # Every sample is the integration of its file; frame sums equal the event counts (150 each).
    for k in (0, 37, 99):
        expected = integrate(read_aedat2(os.path.join(root, names[k])), 4, 128, 128)
        np.testing.assert_array_equal(frames[k], expected)
        assert frames[k].sum() == 150
    # The TEBN split (default) holds out the first tenth of each class; the index lists are stored.
    assert len(sets.train) == 90 and len(sets.test) == 10
    x, y = sets.test[3]
    assert x.shape == (4, 2, 128, 128) and y == 3
    np.testing.assert_array_equal(x.numpy(), frames[3 * PER_CLASS + 0])
    tet = registry.build("cifar10_dvs", root, 4, {"split": "tet"})
    np.testing.assert_array_equal(tet.test[3][0].numpy(), frames[3 * PER_CLASS + PER_CLASS - 1])
    # A second load reads the cache and never decodes.
    monkeypatch.setattr(cifar10_dvs, "read", lambda *a: pytest.fail("decoded although the cache exists"))
    again = registry.build("cifar10_dvs", root, 4, {"workers": 1})
    torch.testing.assert_close(again.train[5][0], sets.train[5][0], rtol=0, atol=0)


def test_resize_and_every_parameter_keys_its_own_cache(dvs_root):
    root, names = dvs_root
    a = registry.build("cifar10_dvs", root, 3, {"size": 48, "workers": 1})
    b = registry.build("cifar10_dvs", root, 3, {"size": 48, "interpolation": "nearest", "workers": 1})
    folders = {registry.cache_folder("cifar10_dvs", root, FrameSpec(T=3, size=48)),
               registry.cache_folder("cifar10_dvs", root, FrameSpec(T=3, size=48, interpolation="nearest"))}
    # The old name of the option (it also meant ImageNet's resize side) still loads, with a warning.
    with pytest.warns(DeprecationWarning, match="data.options.resize is deprecated for cifar10_dvs"):
        old = registry.build("cifar10_dvs", root, 3, {"size": 48, "resize": "nearest", "workers": 1})
    assert old.train.path == b.train.path
    assert len(folders) == 2 and all(os.path.isdir(f) for f in folders)
    full = torch.from_numpy(integrate(read_aedat2(os.path.join(root, names[10])), 3, 128, 128))
    expected = torch.nn.functional.interpolate(full, size=(48, 48), mode="bilinear", antialias=True)
    x = a.test[1][0]  # class 1, file 0 under the TEBN split
    assert x.shape == (3, 2, 48, 48)
    torch.testing.assert_close(x, expected)
    torch.testing.assert_close(b.test[1][0], torch.nn.functional.interpolate(full, size=(48, 48), mode="nearest"))


def test_parallel_prepare_equals_serial_and_cli_reuses_the_cache(dvs_root, tmp_path, capsys):
    from adalif.cli import main

    root, _ = dvs_root
    serial = registry.prepare("cifar10_dvs", root, FrameSpec(T=2, size=16), cache_dir=str(tmp_path / "c1"), workers=1)
    assert main(["prepare", "cifar10_dvs", "--root", root, "--T", "2", "--size", "16", "--cache_dir",
                 str(tmp_path / "c2"), "--workers", "2"]) == 0
    parallel = registry.cache_folder("cifar10_dvs", root, FrameSpec(T=2, size=16), str(tmp_path / "c2"))
    assert parallel in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(os.path.join(serial, "frames.npy")), np.load(os.path.join(parallel, "frames.npy")))
    before = os.stat(os.path.join(parallel, "frames.npy")).st_mtime_ns
    assert main(["prepare", "cifar10_dvs", "--root", root, "--T", "2", "--size", "16", "--cache_dir", str(tmp_path / "c2")]) == 0
    assert os.stat(os.path.join(parallel, "frames.npy")).st_mtime_ns == before


def test_corrupt_recording_names_the_file_and_leaves_no_cache(dvs_root, tmp_path):
    root, names = dvs_root
    path = os.path.join(root, names[42])
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 3)
    with pytest.raises(EventFileError, match=f"{names[42].split('/')[1]}: body of .* not a whole number"):
        registry.build("cifar10_dvs", root, 4, {"workers": 1, "cache_dir": str(tmp_path / "frames")})
    # Neither the cache, nor its temporary folder, nor the empty folders made for it.
    assert not (tmp_path / "frames").exists()


def test_incomplete_or_missing_root_lists_what_is_expected(dvs_root, tmp_path):
    root, names = dvs_root
    os.remove(os.path.join(root, names[-1]))
    with pytest.raises(FileNotFoundError, match=r"1 of 10 recordings of class 'truck' are missing .*truck/cifar10_truck_9.aedat"):
        registry.build("cifar10_dvs", root, 4, {})
    with pytest.raises(FileNotFoundError, match="cifar10_dvs: folder .*nowhere' does not exist.*figshare"):
        registry.check_root("cifar10_dvs", str(tmp_path / "nowhere"), 4, {})


def test_gesture_segments_labels_overflow_and_empty_segment(tmp_path):
    base, trials = gesture_tree(tmp_path)
    sets = registry.build("dvs128_gesture", str(tmp_path), 3, {"workers": 1})
    assert len(sets.train) == 8 and len(sets.test) == 4  # 4 label rows per trial, a class twice
    assert [sets.train[i][1] for i in range(4)] == [0, 7, 7, 2]
    for k, trial in enumerate(["user01_fluorescent", "user02_led"]):
        events, rows = trials[trial]
        segments = cut(events, read_labels(os.path.join(base, trial + "_labels.csv")))
        for r, seg in enumerate(segments):
            x, _ = sets.train[4 * k + r]
            assert x.shape == (3, 2, 128, 128)
            np.testing.assert_array_equal(x.numpy(), integrate(seg, 3, 128, 128))
            assert x.sum() == len(seg)
        # The third row reaches past the timestamp overflow; the last row holds no events.
        assert sets.train[4 * k + 2][0].sum() == np.count_nonzero((events["t"] >= 2000) & (events["t"] < 2**31 + 5000)) > 100
        assert sets.train[4 * k + 3][0].sum() == 0
    with pytest.raises(ValueError, match="hflip and tet_roll mirror DVS128 Gesture samples"):
        registry.check_options("dvs128_gesture", {"augment": ["hflip"]})


def test_gesture_label_order_option(tmp_path):
    gesture_tree(tmp_path)
    csv = registry.build("dvs128_gesture", str(tmp_path), 2, {"workers": 1})
    sj = registry.build("dvs128_gesture", str(tmp_path), 2, {"workers": 1, "label_order": "spikingjelly"})
    # Rows of the fixture: classes 1, 8, 8, 3 -> csv labels 0, 7, 7, 2 -> SpikingJelly targets 0, 8, 8, 3.
    assert [csv.train[i][1] for i in range(4)] == [0, 7, 7, 2]
    assert [sj.train[i][1] for i in range(4)] == [0, 8, 8, 3]
    assert [sj.test[i][1] for i in range(4)] == [0, 8, 8, 3]
    assert np.array_equal(sj.train[1][0].numpy(), csv.train[1][0].numpy())  # same frames, same cache
    with pytest.raises(ValueError, match=r"data.options.label_order: got 'sorted'"):
        registry.check_options("dvs128_gesture", {"label_order": "sorted"})
    with pytest.raises(ValueError, match=r"data.options.label_order: not an option of cifar10_dvs"):
        registry.check_options("cifar10_dvs", {"label_order": "csv"})
    recorded = registry.explicit_options("dvs128_gesture", {"label_order": "spikingjelly"})
    assert recorded["label_order"] == "spikingjelly" and recorded["keep_invalid"] is True and recorded["split"] == "official"


def test_gesture_time_split_of_an_empty_segment_is_all_zero(tmp_path):
    gesture_tree(tmp_path)
    sets = registry.build("dvs128_gesture", str(tmp_path), 2, {"split_by": "time", "workers": 1})
    assert sets.test[3][0].sum() == 0 and sets.test[0][0].sum() > 0


def test_gesture_missing_trial_file_is_named(tmp_path):
    base, _ = gesture_tree(tmp_path)
    os.remove(os.path.join(base, "user24_lab_labels.csv"))
    with pytest.raises(FileNotFoundError, match="user24_lab_labels.csv not found.*research.ibm.com"):
        registry.build("dvs128_gesture", str(tmp_path), 2, {})
