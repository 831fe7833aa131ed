"""Shared by the benchmark scripts: run with glibc reusing freed memory.

A fresh CPU output of tens of MiB is mapped from the OS and page-faults on first touch (about 6x
the time of writing warm memory, docs/benchmarks.md). Raising glibc's mmap and trim thresholds
keeps freed memory for reuse, the usual advice for PyTorch on CPU. glibc reads them at process
start, so the script re-executes itself with them set.
"""

import os
import sys

_KEY, _VALUE = "MALLOC_MMAP_THRESHOLD_", str(1 << 34)


def reuse_freed_memory() -> None:
    """Re-run this process with the raised thresholds, unless they are already set."""
    if os.environ.get(_KEY) != _VALUE:
        env = dict(os.environ, **{_KEY: _VALUE, "MALLOC_TRIM_THRESHOLD_": _VALUE})
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
