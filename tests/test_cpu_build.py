"""The C kernels of the cpu backend: built once per machine into the cache folder, safely when
processes build at once, independent of the thread count, and replaced by the reference loop with
one warning where no compiler can build them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

from adalif.kernels import cpu
from adalif.neurons import ARLIF, DALIF

# A child process: the C kernels against the reference loop, spikes exactly and gradients to 1e-5.
CHECK = textwrap.dedent("""
    import torch
    from adalif.neurons import ARLIF, LIF
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5000)
    for make in (LIF, ARLIF):
        runs = []
        for backend in ("cpu", "reference"):
            xi = x.clone().requires_grad_()
            layer = make(backend=backend)
            spikes = layer(xi)
            (spikes * torch.linspace(-1, 1, 5000)).sum().backward()
            runs.append((spikes, xi.grad))
        assert torch.equal(runs[0][0], runs[1][0])
        torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-5, atol=1e-5)
    print("ok", layer.last_backend)
""")


def _env(cache, **extra):
    env = dict(os.environ, ADALIF_CACHE_DIR=str(cache), **extra)
    env.pop("ADALIF_BACKEND", None)
    return env


def test_two_processes_building_at_once_both_get_correct_results(tmp_path):
    children = [subprocess.Popen([sys.executable, "-c", CHECK], env=_env(tmp_path), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        assert out.split() == ["ok", "reference"]  # the last layer ran on the reference; both ran
    built = sorted(p.name for p in (tmp_path / "kernels").iterdir())  # one library, its checksum, no leftovers
    assert len(built) == 2 and built[0].startswith("adalif_cpu-") and built[1] == built[0] + ".sha256", built


def test_a_damaged_library_in_the_cache_is_built_again(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHECK], env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    library = next((tmp_path / "kernels").glob("adalif_cpu-*.so"))
    library.write_bytes(library.read_bytes()[:5000])  # truncated: loading it would crash the process
    done = subprocess.run([sys.executable, "-c", CHECK], env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["ok", "reference"], done.stderr
    assert library.stat().st_size > 5000


def test_without_a_compiler_the_automatic_choice_is_the_reference_with_one_warning(tmp_path):
    script = textwrap.dedent("""
        import logging, warnings, torch
        from adalif.neurons import LIF
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        x = torch.randn(3, 2, 100)
        layer = LIF()
        auto = [layer(x) for _ in range(3)][0]
        assert layer.last_backend == "reference"
        assert torch.equal(auto, LIF(backend="reference")(x))
        try:
            LIF(backend="cpu")(x)
        except RuntimeError as err:
            print("refused:", err)
    """)
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path / "cache", PATH=str(empty), CC=""),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("adalif.kernels")]
    assert warnings == ["adalif.kernels: adalif lif: using the reference loop (slower) because the C kernels of the "
                        "cpu backend cannot be built or loaded here (no C compiler (cc, gcc or clang; or $CC) on PATH)"]
    assert done.stdout.startswith("refused: adalif lif: backend 'cpu' cannot run: the C kernels of the cpu backend")


def test_results_do_not_depend_on_the_thread_count():
    x = torch.randn(3, 2, 4, cpu.MIN_NEURONS_PER_THREAD // 2, requires_grad=True)  # 4 blocks of threads' work
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            for layer in (DALIF(granularity="channel", num_channels=4, backend="cpu"), ARLIF(backend="cpu")):
                x.grad = None
                out = layer(x)
                (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
                runs.append((out, x.grad.clone(), [p.grad for p in layer.parameters()]))
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(runs[:2], runs[2:]):
        assert torch.equal(one[0], three[0]) and torch.equal(one[1], three[1])  # the kernels' own outputs
        for a, b in zip(one[2], three[2]):  # reduced by torch.sum, whose order follows the thread count
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
