"""The on-disk frame cache of the event datasets (``adalif prepare``; docs/data.md).

Decoding and integrating 10,000 CIFAR10-DVS recordings on every run is what makes the usual
loaders slow (SpikingJelly #208). Here each recording is decoded, integrated into T frames and
resized once, in parallel over files, and all samples of a dataset go into one ``frames.npy``
array ``[N, T, 2, S, S]`` that training memory-maps. The folder is named by every integration
parameter (:class:`FrameSpec`), so changing one builds a new cache and never reads a stale one.
It is written under a temporary name and renamed when complete: an interrupted run leaves no
half-written cache. ``meta.json`` stores the labels, the sample names and the split index lists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from .frames import LEFTOVERS, SPLIT_BY, integrate, slice_by_time
from .layout import Job, Layout

FORMAT_VERSION = 1
INTERPOLATIONS = ("bilinear", "nearest")
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class FrameSpec:
    """Every parameter that changes the cached frames.

    Args:
        T: frames per sample.
        split_by: "number" (equal event counts) or "time" (equal durations).
        leftover: "last" (the last frame takes the remainder, SpikingJelly) or "drop" (tonic).
        size: resize the sensor's 128x128 frames to size x size (None: keep 128).
        interpolation: of the resize to ``size``: "bilinear" (with antialiasing, as torchvision's tensor
            Resize) or "nearest".
        convention: coordinates of AEDAT 2.0 files: "spikingjelly" or "jaer" (CIFAR10-DVS).
        keep_invalid: keep every AEDAT 3.1 event slot whatever its valid bit, as SpikingJelly does
            (DVS128 Gesture; False drops the events whose valid bit is 0).
        cache_dtype: "float32" (exact) or "float16" (half the disk and memory; counts up to 2048 exact).
    """

    T: int
    split_by: str = "number"
    leftover: str = "last"
    size: Optional[int] = None
    interpolation: str = "bilinear"
    convention: str = "spikingjelly"
    keep_invalid: bool = True
    cache_dtype: str = "float32"

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.T, int) and self.T >= 1, "T", "an integer >= 1"),
            (self.split_by in SPLIT_BY, "split_by", f"one of {list(SPLIT_BY)}"),
            (self.leftover in LEFTOVERS, "leftover", f"one of {list(LEFTOVERS)}"),
            (self.size is None or (isinstance(self.size, int) and self.size >= 1), "size", "None or an integer >= 1"),
            (self.interpolation in INTERPOLATIONS, "interpolation", f"one of {list(INTERPOLATIONS)}"),
            (self.cache_dtype in DTYPES, "cache_dtype", f"one of {list(DTYPES)}"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ValueError(f"{key}: got {getattr(self, key)!r}, expected {expected}")

    @classmethod
    def options(cls, *exclude: str) -> Dict[str, Any]:
        """The ``data.options`` of an event dataset that set its frames (every field but T, with
        its default) and those that say where and how the cache is built, less ``exclude``."""
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.name != "T"}
        return {k: v for k, v in {**fields, "cache_dir": None, "workers": None}.items() if k not in exclude}

    def folder(self, dataset: str) -> str:
        """``<dataset>/T<T>_<split_by>_<size>-<hash of every parameter>``."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return os.path.join(dataset, f"T{self.T}_{self.split_by}_{self.size or 'full'}-{digest}")


class FrameCache(NamedTuple):
    frames: np.ndarray  # memory-mapped [N, T, 2, S, S]
    labels: np.ndarray  # int64 [N]
    names: List[str]
    groups: Dict[str, Dict[str, List[int]]]
    spec: FrameSpec
    path: str


def frames_of(job: Job, layout_reader: Callable, sensor: tuple, spec: FrameSpec) -> np.ndarray:
    """The samples ``[k, T, 2, S, S]`` of one job: decode, cut, integrate, resize."""
    import torch

    events = layout_reader(job.path, spec)
    pieces = [events] if job.segments is None else slice_by_time(events, [(start, end) for _, start, end in job.segments])
    frames = np.stack([integrate(e, spec.T, sensor[0], sensor[1], spec.split_by, spec.leftover) for e in pieces])
    if spec.size is not None and (spec.size, spec.size) != tuple(sensor):
        k = len(frames)
        x = torch.from_numpy(frames).reshape(k * spec.T, 2, *sensor)
        mode = dict(mode="bilinear", antialias=True, align_corners=False) if spec.interpolation == "bilinear" else dict(mode="nearest")
        x = torch.nn.functional.interpolate(x, size=(spec.size, spec.size), **mode)
        frames = x.reshape(k, spec.T, 2, spec.size, spec.size).numpy()
    return frames.astype(spec.cache_dtype, copy=False)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # the pool already uses every core


def _run_job(args):
    index, job, reader, sensor, spec = args
    return index, frames_of(job, reader, sensor, spec)


@contextlib.contextmanager
def _workers_skip_main():
    """Start spawned workers without the parent's ``__main__``. A spawned process imports the
    parent's main script (or module) again, to find what it defines; the pool's work and arguments
    all live in adalif, so the workers need none of it. Hidden while they start, a user's script
    without an ``if __name__ == "__main__":`` guard is not run again in every worker (which would
    fail, or start a pool of its own). Written by hand: multiprocessing has no switch for this."""
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
    try:
        for key in saved:
            setattr(main, key, None) if key == "__spec__" else delattr(main, key)
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


def build(layout: Layout, spec: FrameSpec, target: str, workers: Optional[int] = None, progress: bool = True) -> None:
    """Write the cache of ``layout`` to the folder ``target`` (temporary folder, then rename)."""
    from tqdm.auto import tqdm

    parent = os.path.dirname(target) or "."
    created, folder = [], os.path.abspath(parent)
    while not os.path.isdir(folder):  # the folders made here, removed again if the build fails
        created.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(target) + ".tmp-", dir=parent)
    done = False
    try:
        counts = [1 if j.segments is None else len(j.segments) for j in layout.jobs]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        side = spec.size or layout.sensor[0]
        shape = (int(offsets[-1]), spec.T, 2, side, spec.size or layout.sensor[1])
        out = np.lib.format.open_memmap(os.path.join(tmp, "frames.npy"), mode="w+", dtype=spec.cache_dtype, shape=shape)
        tasks = [(i, job, layout.reader, layout.sensor, spec) for i, job in enumerate(layout.jobs)]
        workers = min(workers or os.cpu_count() or 1, len(tasks)) if tasks else 1
        bar = tqdm(total=shape[0], desc=f"frames -> {target}", unit="sample", disable=not progress)
        if workers <= 1:
            results = map(_run_job, tasks)
            pool = None
        else:
            # spawn: forking a process whose torch/OpenMP threads are running can deadlock.
            with _workers_skip_main():
                pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
            results = pool.imap_unordered(_run_job, tasks, chunksize=max(1, len(tasks) // (workers * 16)))
        try:
            for index, frames in results:
                out[offsets[index] : offsets[index + 1]] = frames
                bar.update(len(frames))
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
        out.flush()
        del out
        meta = {
            "format_version": FORMAT_VERSION, "spec": asdict(spec), "labels": [int(v) for v in layout.labels],
            "names": layout.names, "groups": layout.groups, "shape": list(shape),
        }
        with open(os.path.join(tmp, "meta.json"), "w") as fh:
            json.dump(meta, fh)
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # another process finishing first is fine; anything else is not
                raise
        done = True
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in created if not done else ():  # a failed build leaves no empty cache folders
            try:
                os.rmdir(folder)
            except OSError:
                break


def load(target: str, spec: FrameSpec) -> FrameCache:
    """Memory-map a complete cache folder."""
    with open(os.path.join(target, "meta.json")) as fh:
        meta = json.load(fh)
    if meta.get("format_version") != FORMAT_VERSION or meta.get("spec") != asdict(spec):
        raise ValueError(f"{target}: cache written with other parameters or by another adalif version; delete it "
                         f"or run `adalif prepare ... --force`")
    frames = np.load(os.path.join(target, "frames.npy"), mmap_mode="r", allow_pickle=False)
    if list(frames.shape) != meta["shape"]:
        raise ValueError(f"{target}/frames.npy: shape {list(frames.shape)} differs from meta.json {meta['shape']}")
    return FrameCache(frames, np.asarray(meta["labels"], dtype=np.int64), meta["names"], meta["groups"], spec, target)


def is_complete(target: str) -> bool:
    return os.path.isfile(os.path.join(target, "meta.json")) and os.path.isfile(os.path.join(target, "frames.npy"))


def group_indices(cache: FrameCache, split: str, train: bool) -> List[int]:
    if split not in cache.groups:
        raise ValueError(f"split: got {split!r}, expected one of {sorted(cache.groups)}")
    return cache.groups[split]["train" if train else "test"]


__all__: Sequence[str] = ["FrameSpec", "Job", "Layout", "FrameCache", "frames_of", "build", "load", "is_complete",
                          "group_indices"]
