"""Writers of event files in the official formats, for fixtures and benchmarks (docs/data.md).

They encode the byte layouts of data-formats.md directly, so a file written here is read by
SpikingJelly, jAER and adalif alike. ``random_recording`` fabricates a plausible recording: no
dataset ships sample files, and none may be downloaded.
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, Sequence, Tuple

import numpy as np

AEDAT2_HEADER = (
    b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
    b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
    b"# Timestamps tick is 1 us\r\n"
)
AEDAT3_HEADER = (
    b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n"
)


def write_aedat2(path, x_raw, y_raw, bit0, t) -> None:
    """A DVS128 AEDAT 2.0 file: big-endian (address, timestamp) records, address bits
    ``y_raw << 8 | x_raw << 1 | bit0`` (bit0 = 0 is ON in jAER)."""
    n = len(t)
    records = np.empty((n, 2), dtype=">u4")
    records[:, 0] = (np.asarray(y_raw, np.uint32) << 8) | (np.asarray(x_raw, np.uint32) << 1) | np.asarray(bit0, np.uint32)
    records[:, 1] = np.asarray(t, np.uint32)
    with open(path, "wb") as fh:
        fh.write(AEDAT2_HEADER)
        fh.write(records.tobytes())


def aedat3_packet(kind: int, words: Sequence[Tuple[int, int]], overflow: int = 0) -> bytes:
    """A packet: the 28-byte little-endian header, then (data, timestamp) pairs."""
    head = struct.pack("<hhiiiiii", kind, 1, 8, 4, overflow, len(words), len(words), len(words))
    body = np.asarray(words, dtype="<u4").reshape(-1, 2) if len(words) else np.zeros((0, 2), "<u4")
    return head + body.tobytes()


def polarity_word(x, y, on, valid=True):
    """The 32-bit data of an AEDAT 3.1 polarity event."""
    return (np.asarray(x, np.uint32) << 17) | (np.asarray(y, np.uint32) << 2) | (np.asarray(on, np.uint32) << 1) | np.asarray(valid, np.uint32)


def write_aedat31(path, packets: Iterable[bytes], header: bytes = AEDAT3_HEADER) -> None:
    with open(path, "wb") as fh:
        fh.write(header)
        for p in packets:
            fh.write(p)


def random_recording(rng: np.random.Generator, n: int, duration_us: int = 1_000_000, sensor: int = 128):
    """Raw fields ``(x_raw, y_raw, bit0, t)`` of ``n`` events with sorted timestamps."""
    t = np.sort(rng.integers(0, duration_us, n)).astype(np.uint32)
    return rng.integers(0, sensor, n), rng.integers(0, sensor, n), rng.integers(0, 2, n), t


def write_cifar10_dvs(root, files_per_class: int, events: int, seed: int = 0) -> None:
    """A CIFAR10-DVS tree: ``<class>/cifar10_<class>_<i>.aedat`` with ``events`` random events each."""
    from .cifar10_dvs import CLASSES, file_name

    rng = np.random.default_rng(seed)
    for label, cls in enumerate(CLASSES):
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for i in range(files_per_class):
            write_aedat2(os.path.join(root, file_name(label, i)), *random_recording(rng, events))
