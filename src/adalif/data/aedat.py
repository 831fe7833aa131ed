"""Readers of the event-camera files of CIFAR10-DVS (AEDAT 2.0) and DVS128 Gesture (AEDAT 3.1).

Both are written with numpy, vectorised over events, from the byte layouts in docs/data.md
(no reader on PyPI handles both originals correctly: tonic 1.7's AEDAT 2 readers crash and its
AEDAT 3 reader ignores event types). They return structured arrays of
:data:`adalif.data.frames.EVENT_DTYPE` (``t`` in µs, ``x``, ``y``, ``p`` with 1 = ON).

Conventions:

* AEDAT 2.0 (big-endian ``address, timestamp`` pairs, DVS128 bits): ``convention="spikingjelly"``
  (default, so that published models transfer) gives :math:`x = 127 - y_{raw}`,
  :math:`y = 127 - x_{raw}`, :math:`p = 1 - \\text{bit}_0`; ``"jaer"`` gives
  :math:`x = 127 - x_{raw}`, :math:`y = y_{raw}`, same polarity.
* AEDAT 3.1: only polarity packets (type 1) are decoded; other packets (e.g. type-0 special
  events) are skipped. The timestamp is ``overflow << 31 | ts``. By default every event slot of
  a polarity packet (``eventCapacity`` of them) is kept whatever its valid bit, exactly as
  SpikingJelly decodes them, so that frames equal those behind every published Gesture number;
  ``keep_invalid=False`` reads the first ``min(eventNumber, eventCapacity)`` slots and drops
  the events whose valid bit is 0 (docs/data.md). The header ends at the first line that
  *starts with* ``#!END-HEADER``, so LF-only headers parse too.

Every malformed file raises :class:`EventFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import DatasetFileError
from .frames import EVENT_DTYPE

CONVENTIONS = ("spikingjelly", "jaer")
"""The AEDAT 2.0 address conventions ``read_aedat2`` takes: SpikingJelly's (default)
or jAER's (the module docstring)."""


class EventFileError(DatasetFileError):
    """A malformed or truncated event file."""


def _read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _skip_header(data: bytes, path, magic: bytes, end_marker: bytes = None) -> int:
    """Offset of the body: after the ``#`` lines (AEDAT 2) or after the end-marker line (AEDAT 3)."""
    if not data.startswith(magic):
        found = data[:16].split(b"\n")[0]
        raise EventFileError(f"{os.fspath(path)}: bad header: expected a first line {magic!r}, found {found!r}")
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"#":
        line_end = data.find(b"\n", pos)
        if line_end < 0:
            raise EventFileError(f"{os.fspath(path)}: header line at byte {pos} never ends (truncated file)")
        line, pos = data[pos:line_end], line_end + 1
        if end_marker is not None and line.startswith(end_marker):
            return pos
    if end_marker is not None:
        raise EventFileError(f"{os.fspath(path)}: no {end_marker.decode()} line: the header never ends")
    return pos


def read_aedat2(path, convention: str = "spikingjelly") -> np.ndarray:
    """Events of a DVS128 AEDAT 2.0 file (CIFAR10-DVS)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: unknown value {convention!r}; expected one of {list(CONVENTIONS)}")
    data = _read(path)
    body = memoryview(data)[_skip_header(data, path, b"#!AER-DAT2.0"):]
    if len(body) % 8:
        raise EventFileError(f"{os.fspath(path)}: body of {len(body)} bytes is not a whole number of 8-byte events (truncated file)")
    words = np.frombuffer(body, dtype=">u4").reshape(-1, 2)
    # The DVS128 address uses bits 0-14 only: unpacking in uint16 halves the memory traffic.
    address, t = words[:, 0].astype(np.uint16), words[:, 1]
    x_raw = (address >> 1) & 0x7F
    y_raw = (address >> 8) & 0x7F
    events = np.empty(len(words), dtype=EVENT_DTYPE)
    events["t"] = t
    events["p"] = 1 - (address & 1)
    if convention == "spikingjelly":
        events["x"], events["y"] = 127 - y_raw, 127 - x_raw
    else:
        events["x"], events["y"] = 127 - x_raw, y_raw
    return events


_PACKET_HEADER = np.dtype([
    ("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"), ("ts_overflow", "<i4"),
    ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4"),
])
POLARITY_EVENT = 1
"""The AEDAT 3.1 event type of polarity events, the only packets read."""


def read_aedat31(path, keep_invalid: bool = True) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (DVS128 Gesture), in file order.

    ``keep_invalid=True`` (default, SpikingJelly): every slot of a polarity packet;
    ``False``: the packet's ``eventNumber`` first slots whose valid bit is 1."""
    data = _read(path)
    pos = _skip_header(data, path, b"#!AER-DAT3", b"#!END-HEADER")
    chunks = []
    while pos < len(data):
        if len(data) - pos < _PACKET_HEADER.itemsize:
            raise EventFileError(f"{os.fspath(path)}: truncated packet header at byte {pos}")
        head = np.frombuffer(data, dtype=_PACKET_HEADER, count=1, offset=pos)[0]
        size, capacity = int(head["size"]), int(head["capacity"])
        body_start = pos + _PACKET_HEADER.itemsize
        body_end = body_start + size * capacity
        if size <= 0 or capacity < 0 or body_end > len(data):
            raise EventFileError(
                f"{os.fspath(path)}: packet at byte {pos} announces {capacity} events of {size} bytes "
                f"but the file ends at byte {len(data)} (truncated or corrupt)"
            )
        if int(head["type"]) == POLARITY_EVENT and capacity:
            if size < 8 or size % 4 or int(head["ts_offset"]) != 4:
                raise EventFileError(f"{os.fspath(path)}: polarity packet at byte {pos} has event size {size}, expected 8")
            n = capacity if keep_invalid else min(int(head["number"]), capacity)
            words = np.frombuffer(data, dtype="<u4", count=n * size // 4, offset=body_start).reshape(n, size // 4)
            d = words[:, 0]
            t = words[:, 1].astype(np.int64) | (np.int64(int(head["ts_overflow"])) << 31)
            if not keep_invalid:
                valid = (d & 1).astype(bool)
                d, t = d[valid], t[valid]
            ev = np.empty(len(d), dtype=EVENT_DTYPE)
            ev["t"] = t
            ev["x"] = (d >> 17) & 0x7FFF
            ev["y"] = (d >> 2) & 0x7FFF
            ev["p"] = (d >> 1) & 1
            chunks.append(ev)
        pos = body_end
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)
