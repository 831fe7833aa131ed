"""DVS128 Gesture: label CSVs, trial lists and per-gesture segments (docs/data.md).

Each trial ``userNN_<lighting>.aedat`` has ``userNN_<lighting>_labels.csv`` with a header line
``class,startTime_usec,endTime_usec`` and one row per gesture (classes 1-11; a class may appear
twice). Each row is cut independently as :math:`t_{start} \\le t < t_{end}` (overlapping rows are
tolerated) and labelled ``class - 1``. ``trials_to_train.txt`` / ``trials_to_test.txt`` list the
trials of each split (1,176 / 288 segments in the full dataset).
"""

from __future__ import annotations

import os
from typing import List, NamedTuple

import numpy as np

from .aedat import EventFileError

NUM_CLASSES = 11


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
    """One event array per segment, :math:`t_{start} \\le t < t_{end}`; events are sorted by time.

    A segment with no events gives an empty array (integrated, it makes all-zero frames).
    """
    t = events["t"]
    out = []
    for seg in segments:
        lo, hi = np.searchsorted(t, [seg.start_us, seg.end_us], side="left")
        out.append(events[lo:hi])
    return out
