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
