"""Peak training memory and step time of the memory settings (docs/training.md, "Training memory").

    .venv/bin/python benchmarks/memory.py                       # every network, its settings
    .venv/bin/python benchmarks/memory.py --cases resnet19 vggsnn --rounds 3   # the table in docs/training.md
    .venv/bin/python benchmarks/memory.py --small               # tiny shapes (a smoke run)

Networks (the issue's): ResNet-19 on CIFAR-shaped input (T = 4, batch 32) and VGGSNN on
CIFAR10-DVS-shaped input (2x48x48, T = 10, batch 8), with LIF neurons, one SGD step per iteration;
and VGGSNN with per-step batch norm at T = 10 and 20, where time chunks are exact.

Settings: adalif's ``memory`` options (spikes plain|packed x checkpoint none|neurons|blocks, and
time chunks ``time`` (1 step), ``time:2``, ``time:4``), and the same
network with SpikingJelly 2.0.0's ``LIFNode`` (multi-step) in place of adalif's
neurons, plain and with its memory optimiser (``memopt.optimize_memory`` level 1: checkpointing of
the target modules with 1-bit compression of binary inputs; levels 2-4 need CUDA), when
SpikingJelly 2.0.0 is importable (``PYTHONPATH``).

Each setting runs in a fresh process; with ``--rounds N`` every setting runs N times, round by
round, and the table gives the medians and the median over rounds of each setting's ratio to the
plain run of the same round (a shared machine's slow spells then cancel out). Memory: on CUDA ``torch.cuda.max_memory_allocated`` over
the timed steps; on the CPU the peak resident set size during the timed steps (sampled every
millisecond from /proc/self/statm, with glibc's mmap threshold fixed at 64 KiB so that freed
tensors leave the resident set) minus the resident set before them, after a warm-up step (which
also compiles the fused neuron kernels). Time: the median of the timed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

CASES = {  # name: (model, model kwargs, input shape, time-major)
    "resnet19": ("resnet19", {"T": 4, "num_classes": 10}, (32, 3, 32, 32), False),
    "vggsnn": ("vggsnn", {"T": 10, "num_classes": 10, "input_size": 48}, (10, 8, 2, 48, 48), True),
    # The same with per-step batch norm, the models that time chunks (checkpoint: time) can run.
    "vggsnn-step": ("vggsnn", {"T": 10, "num_classes": 10, "input_size": 48, "bn": "per_step"}, (10, 8, 2, 48, 48), True),
    "vggsnn-step-t20": ("vggsnn", {"T": 20, "num_classes": 10, "input_size": 48, "bn": "per_step"}, (20, 8, 2, 48, 48),
                        True),
}
SMALL = {
    "resnet19": ("resnet19", {"T": 2, "num_classes": 10}, (4, 3, 16, 16), False),
    "vggsnn": ("vggsnn", {"T": 3, "num_classes": 10, "input_size": 16}, (3, 2, 2, 16, 16), True),
    "vggsnn-step": ("vggsnn", {"T": 3, "num_classes": 10, "input_size": 16, "bn": "per_step"}, (3, 2, 2, 16, 16), True),
    "vggsnn-step-t20": ("vggsnn", {"T": 6, "num_classes": 10, "input_size": 16, "bn": "per_step"}, (6, 2, 2, 16, 16),
                        True),
}
SETTINGS = ["plain", "packed", "neurons", "packed+neurons", "blocks", "packed+blocks", "time", "time:2", "time:4",
            "sj", "sj-memopt"]
#: The settings each network runs by default: time chunks only where they are exact (per-step BN).
DEFAULT_SETTINGS = {"resnet19": SETTINGS[:6] + SETTINGS[-2:], "vggsnn": SETTINGS[:6] + SETTINGS[-2:],
                    "vggsnn-step": ["plain", "packed", "blocks", "time", "time:2"],
                    "vggsnn-step-t20": ["plain", "blocks", "time", "time:2"]}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakSampler:
    def __init__(self) -> None:
        self.peak, self.running = 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __enter__(self):
        self.peak = _rss_bytes()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _spikingjelly_neurons(model, targets):
    """The model with every adalif neuron replaced by SpikingJelly's multi-step LIFNode."""
    from spikingjelly.activation_based import neuron as sj_neuron

    from adalif.neurons import Neuron

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Neuron):
                setattr(module, child_name, sj_neuron.LIFNode(tau=2.0, step_mode="m"))
    return model


def worker(case: str, setting: str, steps: int, small: bool, device: str) -> dict:
    import torch
    import torch.nn.functional as F

    from adalif import memory
    from adalif.models import create_model
    from adalif.models.resnet import BasicBlock

    torch.manual_seed(0)
    name, kwargs, shape, _ = (SMALL if small else CASES)[case]
    kwargs = dict(kwargs)
    model = create_model(name, neuron="lif", **kwargs)
    x = torch.rand(*shape, device=device)
    if name == "vggsnn":  # event counts
        x = (x > 0.8).float()
    y = torch.randint(0, 10, (shape[1] if x.dim() == 5 else shape[0],), device=device)
    targets = (BasicBlock,) if name == "resnet19" else (torch.nn.Sequential,)
    if setting.startswith("sj"):
        _spikingjelly_neurons(model, targets)
    model.to(device).train()
    if setting == "sj-memopt":
        from spikingjelly.activation_based import memopt

        memopt.optimize_memory(model, targets, lambda m: m(x), level=1, compress=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    spikes = "packed" if "packed" in setting else "plain"
    checkpoint = next((c for c in ("neurons", "blocks", "time") if c in setting), "none")
    chunk = int(setting.split(":")[1]) if ":" in setting else 1

    def step():
        if setting.startswith("sj"):
            from spikingjelly.activation_based import functional as sj_functional

            sj_functional.reset_net(model)
        opt.zero_grad(set_to_none=True)
        with memory.training_memory(model, spikes, checkpoint, chunk):
            out = model(x)
            loss = F.cross_entropy(out.mean(0), y)
        loss.backward()
        opt.step()

    step()  # warm-up: compiles the fused kernels, allocates gradients and momentum
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(steps):
            start = time.perf_counter()
            step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        import gc

        gc.collect()
        base = _rss_bytes()
        with _PeakSampler() as sampler:
            for _ in range(steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
        peak = sampler.peak - base
    return {"case": case, "setting": setting, "peak_mb": peak / 2**20, "step_s": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--settings", nargs="+", default=None, choices=SETTINGS,
                        help="default: each network's own list (time chunks only with per-step batch norm)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every setting this many times, in turn; report medians and the median ratio to plain")
    parser.add_argument("--small", action="store_true", help="tiny shapes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(*args.worker, args.steps, args.small, args.device)))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    results = []
    print(f"device: {args.device}; each setting in a fresh process; {args.steps} timed steps after a warm-up; "
          f"{args.rounds} round(s), each running every setting once in turn\n")
    print("| network | setting | peak memory (MB) | vs plain | step (s) | vs plain |\n|---|---|---|---|---|---|")
    for case in args.cases:
        settings = args.settings or DEFAULT_SETTINGS[case]
        runs: dict = {setting: [] for setting in settings}
        failed = {}
        # Rounds outside, settings inside: a machine that slows down for a while (a shared host)
        # slows every setting of a round alike, and the per-round ratio to plain cancels it.
        for _ in range(args.rounds):
            for setting in settings:
                if setting in failed:
                    continue
                cmd = [sys.executable, __file__, "--worker", case, setting, "--steps", str(args.steps), "--device",
                       args.device]
                out = subprocess.run(cmd + (["--small"] if args.small else []), capture_output=True, text=True, env=env)
                line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    failed[setting] = (out.stderr.strip().splitlines() or ["no output"])[-1][:120]
                    continue
                runs[setting].append(json.loads(line[len("RESULT "):]))
        plain = runs.get("plain", [])
        for setting in settings:
            if setting in failed:
                print(f"| {case} | {setting} | not run: {failed[setting]} | | | |", flush=True)
                continue
            rs = runs[setting]
            results.extend(rs)
            peak, step = statistics.median(r["peak_mb"] for r in rs), statistics.median(r["step_s"] for r in rs)
            if plain and len(plain) == len(rs):
                mem = statistics.median(r["peak_mb"] / p["peak_mb"] - 1 for r, p in zip(rs, plain))
                time_ = statistics.median(r["step_s"] / p["step_s"] - 1 for r, p in zip(rs, plain))
                rel_mem, rel_time = f"{100 * mem:+.0f} %", f"{100 * time_:+.0f} %"
            else:
                rel_mem = rel_time = ""
            print(f"| {case} | {setting} | {peak:.0f} | {rel_mem} | {step:.2f} | {rel_time} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
