"""What an event dataset's files hold, as the frame cache (:mod:`.cache`) needs it."""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional

__all__ = ["Job", "Layout", "DVS128", "frames_side"]

DVS128 = (128, 128)  # the sensor of both event datasets


def frames_side(options) -> int:
    """The side of an event dataset's frames: ``options["size"]`` once resized, else the sensor's."""
    return options["size"] or DVS128[0]


class Job(NamedTuple):
    """One event file and the samples cut from it."""

    path: str
    segments: Optional[list]  # None: the whole recording is one sample; else (label, start, end) rows


class Layout(NamedTuple):
    """What a dataset's files hold: the jobs, and per sample (in job order) its label and name."""

    jobs: List[Job]
    labels: List[int]
    names: List[str]
    groups: Dict[str, Dict[str, List[int]]]  # split name -> {"train": indices, "test": indices}
    sensor: tuple  # (height, width)
    reader: Callable  # (path, spec) -> events
