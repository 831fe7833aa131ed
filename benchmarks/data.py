"""Event data benchmarks (docs/benchmarks.md): decoding speed, preparing a CIFAR10-DVS-format
dataset into the frame cache, and reading batches from the cache.

    python benchmarks/data.py [--recordings 1000] [--events 100000] [--workers 2] [--dir /tmp/x]

The recordings are synthetic (random events in the official AEDAT 2.0 format; no dataset may
be downloaded). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

import numpy as np
import torch


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def decode_rates(folder: str, n: int = 2_000_000) -> dict:
    from adalif.data import synthetic
    from adalif.data.aedat import read_aedat2, read_aedat31

    rng = np.random.default_rng(0)
    a2 = os.path.join(folder, "decode.aedat")
    synthetic.write_aedat2(a2, *synthetic.random_recording(rng, n))
    x, y, p, t = synthetic.random_recording(rng, n)
    words = synthetic.polarity_word(x, y, p)
    packets = [synthetic.aedat3_packet(1, np.stack([words[i:i + 4096], t[i:i + 4096]], 1)) for i in range(0, n, 4096)]
    a3 = os.path.join(folder, "decode31.aedat")
    synthetic.write_aedat31(a3, packets)
    torch.set_num_threads(1)
    return {"AEDAT 2.0": n / best_of(lambda: read_aedat2(a2)), "AEDAT 3.1": n / best_of(lambda: read_aedat31(a3))}


def prepare_time(folder: str, recordings: int, events: int, workers: int) -> tuple:
    from adalif.data import cifar10_dvs, registry, synthetic
    from adalif.data.cache import FrameSpec

    per_class = recordings // 10
    root = os.path.join(folder, "CIFAR10-DVS")
    start = time.perf_counter()
    synthetic.write_cifar10_dvs(root, per_class, events)
    written = time.perf_counter() - start
    os.system("sync")
    spec = FrameSpec(T=10, size=48)
    layout = cifar10_dvs.layout(root, files_per_class=per_class)
    start = time.perf_counter()
    target = registry.prepare("cifar10_dvs", root, spec, workers=workers, layout=layout, progress=False)
    return time.perf_counter() - start, written, target


def load_rate(target: str, batch_size: int, workers: int, batches: int = 60) -> float:
    from torch.utils.data import DataLoader, RandomSampler

    from adalif.data.registry import FrameDataset

    with open(os.path.join(target, "meta.json")) as fh:
        labels = np.asarray(json.load(fh)["labels"])
    dataset = FrameDataset(target, np.arange(len(labels)), labels)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * batches)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # start workers, map the file
    start = time.perf_counter()
    count = 0
    for x, _ in iterator:
        count += len(x)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--dir", default=None, help="scratch folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="adalif-bench-")
    try:
        rates = decode_rates(folder)
        prep, written, target = prepare_time(folder, args.recordings, args.events, args.workers)
        torch.set_num_threads(1)
        loads = {w: load_rate(target, 128, w) for w in (0, args.workers)}
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}\n")
    print("| measurement | result | target |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| decode {name}, one core | {rate / 1e6:.1f} M events/s | >= 20 M events/s |")
    print(f"| prepare {args.recordings} CIFAR10-DVS recordings x {args.events:,} events -> T=10, 48x48, "
          f"{args.workers} processes (decode, integrate, resize, cache) | {prep:.1f} s | < 60 s |")
    for w, rate in loads.items():
        print(f"| load batches of 128 x [10, 2, 48, 48] from the cache, random order, {w} loader workers "
              f"| {rate:,.0f} samples/s | >= 5,000 samples/s |")
    print(f"\n(writing the synthetic recordings took {written:.1f} s, not counted)")


if __name__ == "__main__":
    main()
