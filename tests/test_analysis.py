"""Firing rates: exact counts over unequal batches, per step and per channel, no growth, hooks removed."""

import pytest
import torch
from torch import nn

from adalif.analysis import FiringRateMonitor
from adalif.layers import SeqToANN
from adalif.neurons import LIF
from adalif.surrogate import Rectangle


def _net():
    # A threshold far below any input fires every neuron at every step; inputs of 0 never fire.
    return nn.Sequential(LIF(v_threshold=1e-3, decay_input=False, surrogate=Rectangle(1.0), backend="reference"),
                         SeqToANN(nn.Identity()),
                         LIF(v_threshold=1e-3, decay_input=False, backend="reference"))


def test_rates_are_exact_over_unequal_batches_and_per_step_and_channel():
    net = _net()
    # [T=2, B, C=3]: batch 1 fires everywhere (4 samples), batch 2 nowhere (4), batch 3 (2 samples)
    # only at step 1 and channel 0.
    batches = [torch.ones(2, 4, 3), torch.zeros(2, 4, 3), torch.zeros(2, 2, 3)]
    batches[2][1, :, 0] = 1.0
    with FiringRateMonitor(net, per_step=True, per_channel=True) as monitor:
        for x in batches:
            net(x)
    spikes = 2 * 4 * 3 + 2  # all of batch 1, then step 1 x 2 samples x channel 0
    elements = 2 * 10 * 3
    assert monitor.rates() == {"0": pytest.approx(spikes / elements), "2": pytest.approx(spikes / elements)}
    # The average of per-batch means would be (1 + 0 + 1/6) / 3: not the rate.
    assert abs(monitor.rates()["0"] - (1 + 0 + 1 / 6) / 3) > 1e-2
    torch.testing.assert_close(monitor.step_rates()["0"], torch.tensor([12 / 30, 14 / 30], dtype=torch.float64))
    torch.testing.assert_close(monitor.channel_rates()["0"], torch.tensor([10 / 20, 8 / 20, 8 / 20], dtype=torch.float64))
    assert monitor.official_arlif_rates()["0"] == pytest.approx(spikes / elements / 2)  # "FR / T" of inference.py
    assert monitor.mean_rate() == pytest.approx(spikes / elements)


def test_hooks_are_removed_on_exit_and_counts_do_not_grow():
    net = _net()
    with FiringRateMonitor(net) as monitor:
        x = torch.rand(3, 5, 7, requires_grad=True)
        for _ in range(50):
            net(x).sum().backward()
        # One reduced count per layer, detached: no spike tensor and no graph is kept.
        assert all(t.numel() == 1 and not t.requires_grad for t in monitor.spikes.values())
        assert monitor.elements["0"] == 50 * 3 * 5 * 7
    assert all(not m._forward_hooks for m in net.modules())
    before = dict(monitor.elements)
    net(x)
    assert monitor.elements == before  # detached: nothing more is counted
