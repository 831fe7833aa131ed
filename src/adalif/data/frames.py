"""Event-to-frame integration with SpikingJelly's conventions (docs/data.md).

Events are a numpy structured array of :data:`EVENT_DTYPE` (``t`` in µs, ``x``, ``y``, ``p``
with 1 = ON). ``integrate`` returns event counts per (frame, polarity, y, x) as float32
``[T, 2, H, W]``:

* ``split_by="number"``: with :math:`d = \\lfloor N/T \\rfloor`, frame j takes events
  :math:`[jd, (j+1)d)`;
* ``split_by="time"``: with :math:`\\Delta = \\lfloor (t_{N-1}-t_0)/T \\rfloor`, frame j takes
  :math:`t_0 + j\\Delta \\le t < t_0 + (j+1)\\Delta`. :math:`t_0` and :math:`t_{N-1}` are the
  first and last events *in file order*; recordings can have small timestamp inversions, so an
  event earlier than :math:`t_0` counts in the first frame (and one later than the last window,
  in the last frame, as ``leftover`` says).

``leftover="last"`` (SpikingJelly, default): the last frame runs to the end and absorbs the
remainder; ``"drop"`` (tonic): the remainder is dropped. No events give all-zero frames.
"""

from __future__ import annotations

from typing import List

import numpy as np

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])
"""One event: ``t`` in µs, pixel ``x``, ``y``, polarity ``p`` (1 = ON)."""
SPLIT_BY = ("number", "time")
"""How ``integrate`` divides events into frames: equal counts or equal time windows (not a train/test split)."""
LEFTOVERS = ("last", "drop")
"""What ``integrate`` does with the remainder: the last frame absorbs it (SpikingJelly) or it is dropped (tonic)."""


def integrate(events: np.ndarray, T: int, height: int, width: int, split_by: str = "number", leftover: str = "last") -> np.ndarray:
    """Event counts ``[T, 2, height, width]`` (float32) of ``events`` split into ``T`` frames."""
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by: unknown value {split_by!r}; expected one of {list(SPLIT_BY)}")
    if leftover not in LEFTOVERS:
        raise ValueError(f"leftover: unknown value {leftover!r}; expected one of {list(LEFTOVERS)}")
    if not (isinstance(T, int) and T >= 1):
        raise ValueError(f"T: expected a number of frames >= 1, got {T!r}")
    frames = np.zeros((T, 2, height, width), dtype=np.float32)
    n = len(events)
    if n == 0:
        return frames
    if split_by == "number":
        d = n // T
        index = np.arange(n) // d if d > 0 else np.full(n, T)
    else:
        t = events["t"]
        delta = (int(t[-1]) - int(t[0])) // T
        # An event earlier than t_0 (a timestamp inversion) belongs to the first frame.
        index = np.maximum((t - t[0]) // delta, 0) if delta > 0 else np.full(n, T)
    keep = index < T
    if leftover == "last":
        index = np.minimum(index, T - 1)
    else:
        index, events = index[keep], events[keep]
    flat = ((index * 2 + events["p"].astype(np.int64)) * height + events["y"]) * width + events["x"]
    frames.reshape(-1)[:] = np.bincount(flat, minlength=frames.size).astype(np.float32)
    return frames


def slice_by_time(events: np.ndarray, windows) -> List[np.ndarray]:
    """One event array per ``(start, end)`` window: the events with :math:`start \\le t < end`, in
    file order (SpikingJelly's boolean mask). Recordings can hold small timestamp inversions, and
    the order decides which frame an event falls in when frames are split by number. Windows may
    overlap; an empty window gives an empty array (integrated, all-zero frames)."""
    t = events["t"]
    # One stable sort, then a binary search per window (instead of a pass over the whole recording
    # per window); sorting the selected positions restores the file order.
    order = np.argsort(t, kind="stable")
    sorted_t = t[order]
    out = []
    for start, end in windows:
        lo, hi = np.searchsorted(sorted_t, [start, end], side="left")
        out.append(events[np.sort(order[lo:hi])])
    return out
