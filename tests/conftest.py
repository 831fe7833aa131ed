import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one PyTorch thread each (and in the commands they
    # start) keeps the cores from being oversubscribed, where every parallel operation waits for a
    # descheduled thread (benchmarks/under_load.py).
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
