"""Small dataset trees in the exact official layouts and formats, written by the tests."""

from __future__ import annotations

import os
import pickle

import numpy as np
from PIL import Image

from adalif.data import synthetic
from adalif.data.cifar10_dvs import CLASSES, file_name
from adalif.data.frames import EVENT_DTYPE


def cifar_tree(root, name="cifar10", n=20, seed=0):
    """cifar-10-batches-py/ (5 batches of n, bytes keys in one) or cifar-100-python/ (train of 5n)."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, files, key, classes = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10
    else:
        folder, files, key, classes = "cifar-100-python", ["train", "test"], "fine_labels", 100
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    for i, f in enumerate(files):
        count = 5 * n if f == "train" else n
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), key: list(rng.integers(0, classes, count)),
                 "batch_label": f"batch {f}", "filenames": [f"{f}_{k}.png" for k in range(count)]}
        if i == 1:
            batch = {k.encode(): v for k, v in batch.items()}
        with open(os.path.join(root, folder, f), "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return root


def _jpeg(path, rng, size=64, mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, "JPEG")


TINY_WNIDS = ["n09999999", "n01443537", "n04000000"]  # file order differs from sorted order


def tiny_imagenet_tree(root, per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "tiny-imagenet-200")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "wnids.txt"), "w") as fh:
        fh.write("\n".join(TINY_WNIDS) + "\n")
    with open(os.path.join(base, "words.txt"), "w") as fh:  # all synsets, not only the 200
        fh.write("n00001740\tentity\n" + "".join(f"{w}\tthing {w}\n" for w in TINY_WNIDS) + "n15102894\tfirewood\n")
    for w in TINY_WNIDS:
        for k in range(per_class):
            mode = "L" if (w == "n04000000" and k == 0) else "RGB"  # one grayscale JPEG
            _jpeg(os.path.join(base, "train", w, "images", f"{w}_{k}.JPEG"), rng, mode=mode)
        with open(os.path.join(base, "train", w, f"{w}_boxes.txt"), "w") as fh:
            fh.write(f"{w}_0.JPEG\t0\t0\t10\t10\n")
    rows = []
    for i, w in enumerate(TINY_WNIDS * per_class):
        _jpeg(os.path.join(base, "val", "images", f"val_{i}.JPEG"), rng, mode="L" if i == 1 else "RGB")
        rows.append(f"val_{i}.JPEG\t{w}\t0\t32\t44\t62")
    with open(os.path.join(base, "val", "val_annotations.txt"), "w") as fh:
        fh.write("\n".join(rows) + "\n")
    return base


IMAGENET_WNIDS = ["n01440764", "n01443537", "n15075141"]


def imagenet_tree(root, flat_val=False, seed=0):
    """train/<wnid>/ and val/<wnid>/, or a flat val/ with val_labels.txt (file wnid)."""
    rng = np.random.default_rng(seed)
    labels = []
    for c, w in enumerate(IMAGENET_WNIDS):
        for k in range(2):
            _jpeg(os.path.join(root, "train", w, f"{w}_{k}.JPEG"), rng, size=40 + 20 * k)
        name = f"ILSVRC2012_val_{c + 1:08d}.JPEG"
        _jpeg(os.path.join(root, "val", name) if flat_val else os.path.join(root, "val", w, name), rng, size=50)
        labels.append((name, w))
    if flat_val:
        with open(os.path.join(root, "val_labels.txt"), "w") as fh:
            fh.write("".join(f"{n} {w}\n" for n, w in labels))
    return labels


def cifar10_dvs_tree(root, per_class, events=200, seed=0):
    synthetic.write_cifar10_dvs(root, per_class, events, seed)
    return [file_name(c, i) for c in range(len(CLASSES)) for i in range(per_class)]


def gesture_tree(root, seed=0):
    """DvsGesture/: two train trials and one test trial with CRLF headers, a special packet, a
    timestamp overflow, a class twice and an empty segment. Returns {trial: (events, rows)}."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "DvsGesture")
    os.makedirs(base, exist_ok=True)
    trials = {"user01_fluorescent": "train", "user02_led": "train", "user24_lab": "test"}
    out = {}
    for trial in trials:
        n = 300
        t = np.sort(rng.integers(0, 3000, n)).astype(np.int64)
        t[200:] += 2**31  # later events only reachable through eventTSOverflow = 1
        x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
        words = synthetic.polarity_word(x, y, p)
        packets = [
            synthetic.aedat3_packet(1, list(zip(words[:100], t[:100]))),
            synthetic.aedat3_packet(0, [(0x12345678, 10)]),  # special events, skipped
            synthetic.aedat3_packet(1, list(zip(words[100:200], t[100:200]))),
            synthetic.aedat3_packet(1, list(zip(words[200:], t[200:] - 2**31)), overflow=1),
        ]
        synthetic.write_aedat31(os.path.join(base, trial + ".aedat"), packets)
        rows = [(1, 0, 1000), (8, 1000, 2000), (8, 2000, 2**31 + 5000), (3, 5000, 6000)]  # class 8 twice; last is empty
        with open(os.path.join(base, trial + "_labels.csv"), "wb") as fh:
            fh.write(b"class,startTime_usec,endTime_usec\r\n" + b"".join(f"{c},{s},{e}\r\n".encode() for c, s, e in rows))
        ev = np.zeros(n, dtype=EVENT_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, p
        out[trial] = (ev, rows)
    for part in ("train", "test"):
        with open(os.path.join(base, f"trials_to_{part}.txt"), "w") as fh:
            fh.write("".join(f"{k}.aedat\n" for k, v in trials.items() if v == part))
    return base, out


def python2_pickle(obj) -> bytes:
    """``obj`` (dict, list, str, int, uint8 numpy array) as Python 2's cPickle wrote it at protocol 2
    with numpy 1, as in the official CIFAR files: byte strings (``str``) as BINSTRING, arrays rebuilt
    by ``numpy.core.multiarray._reconstruct`` with their raw data as a byte string."""
    import struct

    def string(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    def emit(o) -> bytes:
        if isinstance(o, dict):
            return b"}(" + b"".join(emit(k) + emit(v) for k, v in o.items()) + b"u"
        if isinstance(o, list):
            return b"](" + b"".join(emit(v) for v in o) + b"e"
        if isinstance(o, str):
            return string(o.encode("latin1"))
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            return b"J" + struct.pack("<i", int(o))
        if isinstance(o, np.ndarray) and o.dtype == np.uint8:
            dtype = b"cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R" + b"(K\x03" + string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            shape = b"(" + b"".join(emit(int(n)) for n in o.shape) + b"t"
            state = b"(K\x01" + shape + dtype + b"\x89" + string(np.ascontiguousarray(o).tobytes()) + b"t"
            return b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b") + b"\x87R" + state + b"b"
        raise TypeError(f"python2_pickle: {type(o).__name__}")

    return b"\x80\x02" + emit(obj) + b"."
