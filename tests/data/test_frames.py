"""Event-to-frame integration against SpikingJelly's conventions (data-formats.md section 6)."""

import numpy as np
import pytest

from adalif.data.frames import EVENT_DTYPE, integrate


def events(ts, xs=None, ys=None, ps=None):
    n = len(ts)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = ts
    ev["x"] = xs if xs is not None else np.arange(n) % 4
    ev["y"] = ys if ys is not None else (np.arange(n) // 4) % 3
    ev["p"] = ps if ps is not None else np.arange(n) % 2
    return ev


def test_split_by_number_puts_the_remainder_in_the_last_frame():
    ev = events(np.arange(11) * 10)  # 11 events into 3 frames: 3, 3, 5
    f = integrate(ev, 3, 3, 4)
    assert f.shape == (3, 2, 3, 4) and f.dtype == np.float32
    assert f.sum(axis=(1, 2, 3)).tolist() == [3, 3, 5]
    dropped = integrate(ev, 3, 3, 4, leftover="drop")  # tonic: 3 per frame, 2 dropped
    assert dropped.sum(axis=(1, 2, 3)).tolist() == [3, 3, 3]


def test_pixels_and_polarity_land_where_the_event_says():
    ev = events([5, 6, 7], xs=[3, 3, 0], ys=[2, 2, 1], ps=[1, 1, 0])
    f = integrate(ev, 1, 3, 4)
    assert f[0, 1, 2, 3] == 2 and f[0, 0, 1, 0] == 1 and f.sum() == 3


def test_split_by_time():
    ev = events([0, 10, 20, 29, 30, 59, 60])  # t0 = 0, span 60, 3 frames of 20 us
    f = integrate(ev, 3, 3, 4, split_by="time")
    assert f.sum(axis=(1, 2, 3)).tolist() == [2, 3, 2]  # [0,20), [20,40), [40,60] + the last event


def test_fewer_events_than_frames_and_no_events():
    f = integrate(events([1, 2]), 4, 3, 4)
    assert f.sum(axis=(1, 2, 3)).tolist() == [0, 0, 0, 2]  # d = 0: all in the last frame
    assert integrate(events([]), 5, 3, 4).sum() == 0
    assert integrate(events([7, 7, 7]), 2, 3, 4, split_by="time").sum(axis=(1, 2, 3)).tolist() == [0, 3]


def test_bad_arguments():
    with pytest.raises(ValueError, match="split_by: unknown value 'count'"):
        integrate(events([1]), 2, 3, 4, split_by="count")
    with pytest.raises(ValueError, match="T: expected a number of frames >= 1"):
        integrate(events([1]), 0, 3, 4)
