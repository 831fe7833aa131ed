"""What the fast paths cost on first use: each neuron family in a fresh process, cold and warm.

    python benchmarks/first_call.py                # every family, and SpikingJelly's LIF for scale
    python benchmarks/first_call.py LIF ALIF       # only these
    python benchmarks/first_call.py --out t.md     # also write the markdown table

For each family, two new processes in turn:

* **cold**: empty cache folders (``ADALIF_CACHE_DIR`` for the C kernels, ``TORCHINDUCTOR_CACHE_DIR``
  for the generic compiled path), as on a fresh machine or CI;
* **warm**: the same folders again, as in any later process on that machine.

Each process times one layer's forward+backward (``.sum().backward()``) on the first input shape
(a ResNet-19 stage at batch 8 and T = 4), the same shape again ("later"), then a new layer shape
of the same rank, a new rank (``[T, B, N]``) and a new T, each the first call of its kind. "import"
is ``import adalif`` (torch included). Families: LIF, PLIF, DA-LIF and AR-LIF on their C kernels
(``backend="cpu"``); CLIF, GLIF and the docs' own neuron (ALIF, the first cell of
docs/tutorials/your_own_neuron.py) on the generic compiled path (``backend="compiled"``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"first": (4, 8, 128, 32, 32), "new shape": (4, 8, 256, 16, 16), "new rank": (4, 16, 512),
          "new T": (6, 8, 256, 16, 16)}
FAMILIES = {  # label: (backend, expression building the module; `shape` is the input's shape)
    "LIF": ("cpu", "adalif.neurons.LIF(backend='cpu')"),
    "PLIF": ("cpu", "adalif.neurons.PLIF(backend='cpu')"),
    "DA-LIF": ("cpu", "adalif.neurons.DALIF(granularity='channel', num_channels=shape[2], backend='cpu')"),
    "AR-LIF": ("cpu", "adalif.neurons.ARLIF(backend='cpu')"),
    "CLIF": ("compiled", "adalif.definitions.CLIF(backend='compiled')"),
    "GLIF": ("compiled", "adalif.definitions.GLIF(granularity='layer', T=shape[0], backend='compiled')"),
    "ALIF (docs' own neuron)": ("compiled", "ALIF(backend='compiled')"),
    "SpikingJelly 0.0.0.0.14 LIFNode": ("torch", "sj_lif()"),
}

CHILD = r'''
import json, sys, time
start = time.perf_counter()
import torch
import adalif, adalif.neurons, adalif.definitions
imported = time.perf_counter() - start
SHAPES, make = json.loads(sys.argv[1]), sys.argv[2]

def sj_lif():
    from spikingjelly.activation_based import functional, neuron
    node = neuron.LIFNode(step_mode="m", backend="torch")
    def run(x):
        functional.reset_net(node)
        return node(x)
    return run

if "ALIF" in make:  # the docs' own neuron: the tutorial's first code cell, as written
    source = open(sys.argv[3]).read().split("# %%\n")[1]
    exec(source.replace('os.environ["ADALIF_BACKEND"] = "reference"', ""), globals())
times = {"import": imported}
for label, shape in SHAPES.items():
    x = torch.randn(*shape, requires_grad=True)
    layer = eval(make)
    for key in ([label, "later"] if label == "first" else [label]):
        begin = time.perf_counter()
        layer(x).sum().backward()
        times[key] = time.perf_counter() - begin
print(json.dumps(times))
'''


def run_child(make: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SHAPES), make,
                           str(ROOT / "docs" / "tutorials" / "your_own_neuron.py")],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{make}: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="family labels (a prefix is enough)")
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args()
    import torch

    header = (f"Device: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
              f"Python {platform.python_version()}. Seconds, each a first call in its process except \"later\".\n")
    columns = ["import", "first", "later", "new shape", "new rank", "new T"]
    lines = [header, "| family | backend | caches | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    print("\n".join(lines), flush=True)
    for label, (backend, make) in FAMILIES.items():
        if args.only and not any(label.startswith(o) for o in args.only):
            continue
        with tempfile.TemporaryDirectory(prefix="adalif-first-call-") as fresh:
            env = dict(os.environ, ADALIF_CACHE_DIR=os.path.join(fresh, "adalif"),
                       TORCHINDUCTOR_CACHE_DIR=os.path.join(fresh, "inductor"))
            env.pop("ADALIF_BACKEND", None)
            for caches in ("cold", "warm"):
                try:
                    times = run_child(make, env)
                except RuntimeError as err:
                    print(f"| {label} | {backend} | {caches} | skipped: {err} |", flush=True)
                    break
                row = f"| {label} | {backend} | {caches} | " + " | ".join(f"{times[c]:.2f}" for c in columns) + " |"
                lines.append(row)
                print(row, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
