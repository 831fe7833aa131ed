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


def spikingjelly_time_frames(ev, T, H, W):
    """SpikingJelly's split_by='time' (utils.cal_fixed_frames_number_segment_index): frame j is the
    index range from the first to the last event whose t lies in [t0 + j*dt, t0 + (j+1)*dt), the
    last range running to N; an empty window raises (it indexes an empty array)."""
    t = ev["t"]
    dt = (int(t[-1]) - int(t[0])) // T
    idx = np.arange(len(ev))
    lo, hi = [], []
    for j in range(T):
        inside = idx[(t >= t[0] + dt * j) & (t < t[0] + dt * (j + 1))]
        lo.append(inside[0])
        hi.append(inside[-1] + 1)
    hi[-1] = len(ev)
    frames = np.zeros((T, 2, H, W), dtype=np.float32)
    for j in range(T):
        part = ev[lo[j] : hi[j]]
        np.add.at(frames[j], (part["p"].astype(int), part["y"], part["x"]), 1)
    return frames


def test_split_by_time_equals_spikingjelly_on_sorted_and_first_event_inverted_recordings():
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 10_000, 400))
    for ts in (t, np.concatenate([[t[5]], t[:5] - 3, t[6:]])):  # the first event is not the earliest
        ev = events(ts, xs=rng.integers(0, 4, 400), ys=rng.integers(0, 3, 400), ps=rng.integers(0, 2, 400))
        np.testing.assert_array_equal(integrate(ev, 5, 3, 4, split_by="time"), spikingjelly_time_frames(ev, 5, 3, 4))


def test_split_by_time_never_fails_on_unsorted_timestamps():
    # Was: numpy ValueError (negative bincount index) when an event precedes the first one.
    ev = events([50, 10, 60, 40, 90, 120, 5, 100])  # t0 = 50, t_last = 100: two windows of 25 us
    f = integrate(ev, 2, 3, 4, split_by="time")
    # 10, 40 and 5 precede t0: first frame; 120 and 100 lie past the last window: last frame.
    assert f.sum(axis=(1, 2, 3)).tolist() == [5, 3]
    assert integrate(ev, 2, 3, 4, split_by="time", leftover="drop").sum(axis=(1, 2, 3)).tolist() == [5, 1]
