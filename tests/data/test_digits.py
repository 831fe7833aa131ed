"""The embedded digits: the stored split, and the emulated event camera."""

import numpy as np
import pytest
import torch

from adalif.data import digits


def test_static_split_is_fixed_stratified_and_normalised():
    s = digits.load_static()
    assert s.x_train.shape == (1437, 1, 8, 8) and s.x_test.shape == (360, 1, 8, 8)
    assert torch.bincount(s.y_test).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    assert abs(float(s.x_train.mean())) < 1e-5 and abs(float(s.x_train.std()) - 1) < 1e-3
    # no image appears in both halves
    train = {tuple(x.flatten().tolist()) for x in s.x_train}
    assert sum(tuple(x.flatten().tolist()) in train for x in s.x_test) < 5  # sklearn's digits hold a few exact duplicates


def test_saccade_path_is_a_closed_triangle():
    path = digits.saccade_path(31, 2.0)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == pytest.approx([0, 0])
    assert path[10].tolist() == pytest.approx([2.0, 2.0]) and path[20].tolist() == pytest.approx([-2.0, 2.0])


def test_event_emulation_is_deterministic_and_follows_edges():
    images = digits._load()[0][:6]
    a = digits.emulate_events(images, seed=3)
    b = digits.emulate_events(images, seed=3)
    c = digits.emulate_events(images, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    for ev in a:
        assert 500 < len(ev) < 10_000
        assert np.all(np.diff(ev["t"]) >= 0)
        assert set(np.unique(ev["p"])) == {0, 1}
        assert ev["x"].min() >= 0 and ev["x"].max() < digits.CANVAS
    # A blank image makes only background noise; a bright one makes many events.
    blank = digits.emulate_events(np.zeros((1, 8, 8), dtype=np.float32), seed=0, noise_rate=0.0)
    assert len(blank[0]) == 0


def test_event_frames_count_every_event():
    images = digits._load()[0][:4]
    streams = digits.emulate_events(images, seed=0)
    from adalif.data.frames import integrate

    for ev in streams:
        assert integrate(ev, 5, digits.CANVAS, digits.CANVAS).sum() == len(ev)
    split = digits.load_events(T=4, size=10)
    assert split.x_train.shape == (1437, 4, 2, 10, 10) and split.x_test.shape == (360, 4, 2, 10, 10)
    with pytest.raises(ValueError, match="size: expected a divisor of 20"):
        digits.load_events.__wrapped__(T=4, size=7)


def test_rows_task_shows_row_t_at_step_t_and_nothing_else():
    from adalif.data.registry import build

    sets = build("digits_rows", None, 9, {})
    x, y = sets.train[5]
    image = digits._raw().x_train[5, 0]
    assert x.shape == (9, 1, 8, 8) and y == int(digits._raw().y_train[5])
    for t in range(8):
        assert torch.equal(x[t, 0, t], image[t]) and float(x[t].abs().sum()) == float(image[t].abs().sum())
    assert float(x[8].abs().sum()) == 0.0  # after the eighth row: blank
    with pytest.raises(ValueError, match="T must be at least 8"):
        build("digits_rows", None, 4, {})


def test_delayed_task_shows_the_digit_then_blank_steps():
    from adalif.data.registry import build

    sets = build("digits_delayed", None, 6, {"show": 2})
    x, _ = sets.test[3]
    image = digits._raw().x_test[3]
    assert x.shape == (6, 1, 8, 8) and torch.equal(x[0], image) and torch.equal(x[1], image)
    assert float(x[2:].abs().sum()) == 0.0 and float(image.min()) >= 0.0  # raw intensities: blank is no input
    with pytest.raises(ValueError, match="show < T = 6"):
        build("digits_delayed", None, 6, {"show": 6})
    with pytest.raises(ValueError, match="show: expected"):
        build("digits_delayed", None, 6, {"show": 0})
