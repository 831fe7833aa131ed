"""Datasets that ship with the install: scikit-learn's 1,797 handwritten 8x8 digits, and an
event-camera version of them.

The split is fixed and stored (``digits_split.json``: stratified 80/20, 1,437 train / 360
test). The event version emulates a DVS watching each digit move in three small saccades, as
N-MNIST was recorded: the digit is upsampled to 16x16 on a 20x20 canvas. Along a triangular
path sampled at ``steps`` instants, every pixel emits an ON (OFF) event each time its
log-intensity rises (falls) by its contrast threshold since its last event. Thresholds carry a
per-pixel mismatch, and sparse background events are added. Everything is drawn from a seeded
generator, so the events are identical for the same seed.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .frames import EVENT_DTYPE, SPLIT_BY, integrate
from .spec import DatasetSpec

CANVAS = 20  # event frames are [T, 2, 20, 20]


class Split(NamedTuple):
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _load():
    from sklearn.datasets import load_digits  # the data ship inside scikit-learn: no download

    digits = load_digits()
    meta = json.loads(resources.files("adalif.data").joinpath("digits_split.json").read_text())
    test = np.zeros(len(digits.target), dtype=bool)
    test[meta["test"]] = True
    images = digits.images.astype(np.float32) / 16.0  # [N, 8, 8] in [0, 1]
    return images, digits.target.astype(np.int64), test


@functools.lru_cache(maxsize=None)
def load_static() -> Split:
    """Images ``[N, 1, 8, 8]`` normalised with the training set's mean and std, labels ``[N]``."""
    images, labels, test = _load()
    mean, std = images[~test].mean(), images[~test].std()
    x = torch.from_numpy((images - mean) / std).unsqueeze(1)
    y = torch.from_numpy(labels)
    t = torch.from_numpy(test)
    return Split(x[~t], y[~t], x[t], y[t])


def saccade_path(steps: int, amplitude: float) -> np.ndarray:
    """``[steps, 2]`` (dx, dy) offsets along N-MNIST's triangle: right-down, left-down, up."""
    corners = np.array([[0.0, 0.0], [amplitude, amplitude], [-amplitude, amplitude], [0.0, 0.0]])
    s = np.linspace(0.0, 3.0, steps)
    seg = np.minimum(s.astype(int), 2)
    frac = (s - seg)[:, None]
    return corners[seg] * (1 - frac) + corners[seg + 1] * frac


def emulate_events(
    images: np.ndarray, seed: int = 0, steps: int = 48, amplitude: float = 1.5, threshold: float = 0.2,
    mismatch: float = 0.05, noise_rate: float = 0.0005, duration_us: int = 300_000,
) -> list:
    """Event streams (:data:`EVENT_DTYPE`, sorted by time) for ``images`` ``[N, 8, 8]`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    n = len(images)
    big = F.interpolate(torch.from_numpy(images)[:, None], size=16, mode="bilinear", align_corners=False)
    canvas = F.pad(big, (2, 2, 2, 2))  # [N, 1, 20, 20]
    path = saccade_path(steps, amplitude)
    # Sub-pixel shifts by bilinear resampling of the whole batch at each instant.
    theta = torch.zeros(steps, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = torch.from_numpy(-path * 2.0 / CANVAS).float()
    log_i = []
    for k in range(steps):
        grid = F.affine_grid(theta[k : k + 1].expand(n, 2, 3), (n, 1, CANVAS, CANVAS), align_corners=False)
        frame = F.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        log_i.append(torch.log(frame[:, 0] + 0.1).numpy())
    log_i = np.stack(log_i, axis=1)  # [N, steps, H, W]
    thresholds = threshold * (1.0 + mismatch * rng.standard_normal((n, CANVAS, CANVAS)))
    reference = log_i[:, 0].copy()
    times = np.linspace(0, duration_us, steps).astype(np.int64)
    chunks = []  # (sample, t, x, y, p, count)
    for k in range(1, steps):
        diff = log_i[:, k] - reference
        count = np.floor(np.abs(diff) / thresholds).astype(np.int64)
        reference += np.sign(diff) * count * thresholds
        s, y, x = np.nonzero(count)
        p = (diff[s, y, x] > 0).astype(np.int8)
        noise = rng.random((n, CANVAS, CANVAS)) < noise_rate
        ns, ny, nx = np.nonzero(noise)
        chunks.append((
            np.concatenate([s, ns]), np.full(len(s) + len(ns), times[k]), np.concatenate([x, nx]),
            np.concatenate([y, ny]), np.concatenate([p, rng.integers(0, 2, len(ns)).astype(np.int8)]),
            np.concatenate([count[s, y, x], np.ones(len(ns), dtype=np.int64)]),
        ))
    sample, t, x, y, p, count = (np.concatenate(parts) for parts in zip(*chunks))
    order = np.lexsort((t, sample))  # by sample, then time
    sample, t, x, y, p, count = (a[order] for a in (sample, t, x, y, p, count))
    events = np.empty(int(count.sum()), dtype=EVENT_DTYPE)
    events["t"], events["x"], events["y"], events["p"] = (np.repeat(a, count) for a in (t, x, y, p))
    bounds = np.searchsorted(np.repeat(sample, count), np.arange(n + 1))
    return [events[bounds[i] : bounds[i + 1]] for i in range(n)]


@functools.lru_cache(maxsize=4)
def load_events(T: int = 8, seed: int = 0, split_by: str = "number", size: int = CANVAS) -> Split:
    """Event frames ``[N, T, 2, size, size]`` (counts) of the emulated recordings, labels ``[N]``.

    ``size`` divides the 20x20 canvas: frames are summed over ``20/size`` square pixel blocks.
    """
    _check_events({"size": size, "split_by": split_by})
    images, labels, test = _load()
    streams = emulate_events(images, seed=seed)
    frames = np.stack([integrate(ev, T, CANVAS, CANVAS, split_by) for ev in streams])
    k = CANVAS // size
    frames = frames.reshape(*frames.shape[:3], size, k, size, k).sum(axis=(4, 6))
    x = torch.from_numpy(frames)
    y = torch.from_numpy(labels)
    t = torch.from_numpy(test)
    return Split(x[~t], y[~t], x[t], y[t])


def _check_events(options) -> None:
    size = options["size"]
    if not (isinstance(size, int) and size >= 1 and CANVAS % size == 0):
        raise ValueError(f"size: expected a divisor of {CANVAS}, got {size!r}")
    if options["split_by"] not in SPLIT_BY:
        raise ValueError(f"split_by: got {options['split_by']!r}, expected one of {list(SPLIT_BY)}")


def _tensor_sets(split: Split):
    from torch.utils.data import TensorDataset

    return TensorDataset(split.x_train, split.y_train), TensorDataset(split.x_test, split.y_test)


SPEC = DatasetSpec(
    "digits", "image", 10, 1, "embedded (scikit-learn's 8x8 digits, a stored split)", side=lambda o: 8,
    load=lambda root, T, options: _tensor_sets(load_static()),
)
EVENTS_SPEC = DatasetSpec(
    "digits_events", "frames", 10, 2, "embedded (scikit-learn's digits through an emulated event camera)",
    side=lambda o: o["size"], options={"event_seed": 0, "size": CANVAS, "split_by": "number"}, check=_check_events,
    load=lambda root, T, o: _tensor_sets(load_events(T=T, seed=o["event_seed"], split_by=o["split_by"], size=o["size"])),
)


# -- Tasks on which a neuron's memory matters (docs/analysis.md, "Comparing neurons") ---------------
# The digit reaches the network over time, and the answer is read at the last step (loss.kind:
# last), so the network must hold in its neurons' states what it saw: a neuron that forgets in a
# few steps cannot solve them, one that learns to keep (a learnable decay, an adaptive reset) can.
# The intensities are the raw ones in [0, 1], so that a blank step is no input at all.

ROWS = 8  # the digits are 8x8: one row per step


@functools.lru_cache(maxsize=None)
def _raw() -> Split:
    images, labels, test = _load()
    x, y, t = torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels), torch.from_numpy(test)
    return Split(x[~t], y[~t], x[t], y[t])


def rows_sequence(images: torch.Tensor, T: int) -> torch.Tensor:
    """``[N, T, 1, 8, 8]``: step ``t < 8`` shows row ``t`` of each image in its place (the rest of
    the canvas blank), the steps after the eighth are blank."""
    n = images.shape[0]
    out = torch.zeros(n, T, 1, ROWS, ROWS)
    steps = torch.arange(min(T, ROWS))
    out[:, steps, 0, steps, :] = images[:, 0, steps, :]  # step t, row t
    return out


def delayed_sequence(images: torch.Tensor, T: int, show: int) -> torch.Tensor:
    """``[N, T, 1, 8, 8]``: the whole image for the first ``show`` steps, then ``T - show`` blank steps."""
    out = torch.zeros(images.shape[0], T, *images.shape[1:])
    out[:, :show] = images.unsqueeze(1)
    return out


def _check_rows(T: int, options=None) -> None:
    if T < ROWS:
        raise ValueError(f"T: digits_rows shows one of the {ROWS} rows per step, so T must be at least {ROWS}, got {T}")


def _check_delayed(options) -> None:
    show = options["show"]
    if not (isinstance(show, int) and not isinstance(show, bool) and show >= 1):
        raise ValueError(f"show: expected the number of steps the digit is shown (an integer >= 1), got {show!r}")


def _load_rows(root, T, options):
    _check_rows(T)
    split = _raw()
    return _tensor_sets(Split(rows_sequence(split.x_train, T), split.y_train, rows_sequence(split.x_test, T),
                              split.y_test))


def _check_delayed_steps(T: int, options) -> None:
    _check_delayed(options)
    if not options["show"] < T:
        raise ValueError(f"options.show: the digit must leave at least one blank step before the answer: expected "
                         f"show < T = {T}, got {options['show']}")


def _load_delayed(root, T, options):
    _check_delayed_steps(T, options)
    split = _raw()
    return _tensor_sets(Split(delayed_sequence(split.x_train, T, options["show"]), split.y_train,
                              delayed_sequence(split.x_test, T, options["show"]), split.y_test))


ROWS_SPEC = DatasetSpec(
    "digits_rows", "frames", 10, 1, "embedded (scikit-learn's digits, one row per time step; read at the last step)",
    side=lambda o: ROWS, load=_load_rows, check_steps=_check_rows,
)
DELAYED_SPEC = DatasetSpec(
    "digits_delayed", "frames", 10, 1,
    "embedded (scikit-learn's digits shown for `show` steps, then blank steps; read at the last step)",
    side=lambda o: ROWS, options={"show": 2}, check=_check_delayed, check_steps=_check_delayed_steps,
    load=_load_delayed,
)
