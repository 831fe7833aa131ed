import os

# Triton's CPU interpreter for the kernel tests: set before any test module imports Triton (an
# import of triton.language without it makes its jit functions uncallable by the interpreter).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one PyTorch thread each (and in the commands they
    # start) keeps the cores from being oversubscribed, where every parallel operation waits for a
    # descheduled thread (benchmarks/under_load.py).
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sigmoid_splits():
    """float32 values whose sigmoid torch rounds differently in its vectorised loop (SLEEF's exp)
    and in its scalar loop (libm's): an input made of them tells, at every element, which of the two
    a kernel used (adalif.kernels.cpu.scalar_ranges)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        v = torch.randn(1 << 16, generator=torch.Generator().manual_seed(0)) * 4
        vectorised = torch.sigmoid(v)  # 2^16 elements on one thread: no scalar leftover
        scalar = torch.cat([torch.sigmoid(v[i:i + 8]) for i in range(0, v.numel(), 8)])  # under one vector
    finally:
        torch.set_num_threads(threads)
    return v[vectorised != scalar]
