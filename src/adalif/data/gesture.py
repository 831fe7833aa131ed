"""DVS128 Gesture: label CSVs, trial lists and per-gesture segments (docs/data.md).

Each trial ``userNN_<lighting>.aedat`` has ``userNN_<lighting>_labels.csv`` with a header line
``class,startTime_usec,endTime_usec`` and one row per gesture (classes 1-11; a class may appear
twice). Each row is cut independently as :math:`t_{start} \\le t < t_{end}` (overlapping rows are
tolerated) and labelled ``class - 1`` (or in SpikingJelly's order, :func:`relabel`). ``trials_to_train.txt`` / ``trials_to_test.txt`` list the
trials of each split (1,176 / 288 segments in the full dataset).
"""

from __future__ import annotations

import os
from typing import List, NamedTuple

import numpy as np

from .aedat import EventFileError, read_aedat31
from .errors import dataset_folder, missing_files
from .frames import slice_by_time
from .cache import FrameSpec
from .layout import DVS128, Job, Layout, frames_side
from .spec import DatasetSpec

SOURCE = "https://research.ibm.com/interactive/dvsgesture (DvsGesture.tar.gz; extract it: DvsGesture/)"
SPLITS = ("official",)

NUM_CLASSES = 11

#: ``label_order`` values. "csv": label = CSV class - 1 (tonic, the IBM class list).
#: "spikingjelly": the targets SpikingJelly's ``DVS128Gesture`` gives. It saves each sample in a
#: folder named ``str(class - 1)``, and torchvision's ``DatasetFolder`` numbers the folders in
#: string order ['0', '1', '10', '2', ..., '9'], so a network trained through SpikingJelly (the
#: official AR-LIF Gesture run) has its outputs in that order.
LABEL_ORDERS = ("csv", "spikingjelly")
SPIKINGJELLY_TARGET = np.array([sorted(str(k) for k in range(NUM_CLASSES)).index(str(k)) for k in range(NUM_CLASSES)])


def relabel(labels: np.ndarray, label_order: str) -> np.ndarray:
    """CSV-order labels (class - 1) in ``label_order``."""
    if label_order not in LABEL_ORDERS:
        raise ValueError(f"data.options.label_order: got {label_order!r}, expected one of {list(LABEL_ORDERS)}")
    return SPIKINGJELLY_TARGET[labels] if label_order == "spikingjelly" else labels


class Segment(NamedTuple):
    label: int  # 0..10
    start_us: int
    end_us: int


def read_labels(path) -> List[Segment]:
    """The gesture rows of a ``*_labels.csv`` file."""
    with open(path, "r", newline="") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    if not lines or not lines[0].lower().startswith("class"):
        raise EventFileError(f"{os.fspath(path)}: expected the header line 'class,startTime_usec,endTime_usec'")
    segments = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            label, start, end = (int(v) for v in line.split(","))
        except ValueError as err:
            raise EventFileError(f"{os.fspath(path)}: line {number} is not 'class,start,end' integers: {line!r}") from err
        if not 1 <= label <= NUM_CLASSES:
            raise EventFileError(f"{os.fspath(path)}: line {number}: class {label} outside 1..{NUM_CLASSES}")
        segments.append(Segment(label - 1, start, end))
    return segments


def read_trials(path) -> List[str]:
    """Trial file names (``userNN_<lighting>.aedat``) of a ``trials_to_*.txt`` list."""
    with open(path, "r") as fh:
        return [line.strip() for line in fh if line.strip()]


def cut(events: np.ndarray, segments: List[Segment]) -> List[np.ndarray]:
    """One event array per label row, :math:`t_{start} \\le t < t_{end}`, in file order
    (:func:`adalif.data.frames.slice_by_time`)."""
    return slice_by_time(events, [(start, end) for _, start, end in segments])


def read(path: str, spec) -> np.ndarray:
    """Polarity events of one trial, in file order, with the cache's valid-bit choice."""
    return read_aedat31(path, keep_invalid=spec.keep_invalid)


TRIAL_LISTS = ("trials_to_train.txt", "trials_to_test.txt")


def check_root(root) -> str:
    """The dataset folder (``root`` or ``root/DvsGesture``) once its trial lists are found there."""
    root = dataset_folder(root, "DvsGesture")
    missing_files("dvs128_gesture", root, TRIAL_LISTS,
                  [*TRIAL_LISTS, "userNN_<lighting>.aedat", "userNN_<lighting>_labels.csv"], SOURCE)
    return root


def layout(root):
    """The cache layout: one sample per label row of each trial of ``trials_to_train.txt`` then
    ``trials_to_test.txt`` (1,176 + 288 in the full dataset)."""
    root = check_root(root)
    jobs, labels, names, parts = [], [], [], {"train": [], "test": []}
    for part, listing in zip(("train", "test"), TRIAL_LISTS):
        stems = [t[: -len(".aedat")] if t.endswith(".aedat") else t for t in read_trials(os.path.join(root, listing))]
        needed = [f for s in stems for f in (s + ".aedat", s + "_labels.csv")]
        missing_files("dvs128_gesture", root, needed, [f"the trials listed in {listing} and their label CSVs"], SOURCE)
        for stem in stems:
            segments = read_labels(os.path.join(root, stem + "_labels.csv"))
            jobs.append(Job(os.path.join(root, stem + ".aedat"), [tuple(s) for s in segments]))
            for k, seg in enumerate(segments):
                parts[part].append(len(labels))
                labels.append(seg.label)
                names.append(f"{stem}_{k}")
    return Layout(jobs, labels, names, {"official": parts}, DVS128, read)


def _check(options) -> None:
    if {"hflip", "tet_roll"} & set(options.get("augment", ())):
        raise ValueError("data.options.augment: hflip and tet_roll mirror DVS128 Gesture samples, which changes their "
                         "labels (classes 2/3, 4/6 and 5/7 are left/right pairs)")
    relabel(np.zeros(0, dtype=np.int64), options["label_order"])


SPEC = DatasetSpec(
    "dvs128_gesture", "frames", NUM_CLASSES, 2, SOURCE, side=frames_side,
    options={**FrameSpec.options("convention"), "split": SPLITS[0], "label_order": LABEL_ORDERS[0]},
    check_root=check_root, layout=layout, splits=SPLITS, check=_check,
    relabel=lambda labels, options: relabel(labels, options["label_order"]),
)
