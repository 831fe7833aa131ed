"""Training time of a small model on a shared machine: the digits DA-LIF config for a few epochs,
alone and next to other CPU-bound processes, for each intra-op thread setting.

    .venv/bin/python benchmarks/under_load.py --load 0 4 --kind torch --threads 1 2 --epochs 2

``--kind python``: each load process spins one core in pure Python; ``--kind torch``: each runs
2-thread matrix products in a loop (another PyTorch job, the case of two test suites or two
trainings at once). Prints a table of wall seconds per setting (the median of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _spin(kind: str) -> None:
    if kind == "python":
        while True:
            pass
    import torch

    torch.set_num_threads(2)
    a = torch.randn(256, 256)
    while True:
        a = torch.tanh(a @ a) + 0.1


def _train(threads: int, epochs: int, env: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "adalif", "train", "--config", "configs/digits_dalif.yaml", "--output_dir", out,
               "--trainer.max_epochs", str(epochs), "--trainer.progress_bar", "false", "--trainer.logger", "none"]
        if threads:
            cmd += ["--trainer.threads", str(threads)]
        env = {**os.environ, **env}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, nargs="+", default=[0, 4], help="numbers of load processes")
    parser.add_argument("--kind", choices=["python", "torch"], default="torch")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1, 2], help="intra-op threads (0: the default)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE set for the training only (e.g. OMP_WAIT_POLICY=PASSIVE)")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    print(f"| load processes ({args.kind}) | threads | wall s (median of {args.repeat}) |\n|---|---|---|")
    for n in args.load:
        procs = [mp.Process(target=_spin, args=(args.kind,), daemon=True) for _ in range(n)]
        for p in procs:
            p.start()
        time.sleep(1.0 if n else 0.0)
        try:
            for threads in args.threads:
                wall = statistics.median(_train(threads, args.epochs, env) for _ in range(args.repeat))
                print(f"| {n} | {threads or 'default'} | {wall:.1f} |", flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.join()


if __name__ == "__main__":
    main()
