"""The reference dynamics against the equations and the numeric traces of docs/neurons.md."""

import math

import pytest
import torch

import adalif.functional as F
from adalif.surrogate import Sigmoid, Triangle

X_TRACE = torch.tensor([1.2, 0.3, -0.5, 2.0, 0.8, 1.5, 1.5, -1.0], dtype=torch.float64).view(8, 1)

# neurons.md section 5.6: (H, theta, S, M, V) per step.
ARLIF_A0 = [
    (1.20000, 1.00000, 1, 0.76852, -0.48320),
    (0.05840, 1.00000, 0, -0.13297, 0.05840),
    (-0.47080, 1.00000, 0, -0.46031, -0.47080),
    (1.76460, 1.00000, 1, 0.82593, 0.06911),
    (0.83455, 1.00000, 0, -0.12011, 0.83455),
    (1.91728, 1.00000, 1, 0.79566, 0.22823),
    (1.61412, 1.00000, 1, 1.46809, -0.19865),
    (-1.09933, 1.00000, 0, 0.12589, -1.09933),
]
ARLIF_A05 = [
    (1.20000, 1.38525, 0, -0.76852, 1.20000),
    (0.90000, 1.13462, 0, -0.90149, 0.90000),
    (-0.05000, 0.78645, 0, -0.93868, -0.05000),
    (1.97500, 1.44549, 1, 0.76890, -0.15378),
    (0.72311, 1.30686, 0, -0.15945, 0.72311),
    (1.86156, 1.41828, 1, 0.78849, -0.24424),
    (1.37788, 1.41828, 0, -0.17293, 1.37788),
    (-0.31106, 0.64805, 0, -0.39536, -0.31106),
]


@pytest.mark.parametrize("a, table", [(0.0, ARLIF_A0), (0.5, ARLIF_A05)])
def test_arlif_traces_of_neurons_md(a, table):
    params = F.ARLIFParameters(a=a)
    state = F.arlif_initial_state(X_TRACE[0])
    for x_t, (h, theta, s, m, v) in zip(X_TRACE, table):
        out = F.arlif_step(x_t, state, params)
        state = out.state
        assert out.h.item() == pytest.approx(h, abs=1e-5)
        assert 1.0 + math.tanh(a) * math.tanh(x_t.item()) == pytest.approx(theta, abs=1e-5)
        assert out.spikes.item() == s
        assert state.m.item() == pytest.approx(m, abs=1e-5)
        assert state.v.item() == pytest.approx(v, abs=1e-5)
    # The sequence function agrees with the step loop.
    seq = F.arlif(X_TRACE, params=params, return_traces=True)
    assert seq.spikes.flatten().tolist() == [row[2] for row in table]
    assert seq.v_seq.flatten().tolist() == pytest.approx([row[4] for row in table], abs=1e-5)


def test_arlif_cifar10dvs_variant_trace():
    params = F.ARLIFParameters(decay=0.2, carry_memory=False, surrogate=Triangle(1.0))
    out = F.arlif(X_TRACE, params=params, return_traces=True)
    assert out.spikes.flatten().tolist() == [1, 0, 0, 1, 0, 1, 1, 0]
    expected = [-0.48320, 0.20336, -0.45933, 0.20115, 0.84023, -0.02568, -0.19886, -1.03977]
    assert out.v_seq.flatten().tolist() == pytest.approx(expected, abs=1e-5)


def test_arlif_ablations_follow_their_definitions():
    x = torch.randn(6, 50, dtype=torch.float64)
    # Both adaptations off is the soft-reset LIF H = 0.5 V + X, V = H - S.
    out = F.arlif(x, params=F.ARLIFParameters(adaptive_reset=False, adaptive_threshold=False), return_traces=True)
    v = torch.zeros(50, dtype=torch.float64)
    for t in range(6):
        h = 0.5 * v + x[t]
        s = (h >= 1.0).double()
        v = h - s
        assert torch.equal(out.spikes[t], s)
        torch.testing.assert_close(out.v_seq[t], v)
    # Threshold only: soft reset by the adaptive threshold.
    a = 0.7
    out = F.arlif(x, params=F.ARLIFParameters(a=a, adaptive_reset=False), return_traces=True)
    v = torch.zeros(50, dtype=torch.float64)
    for t in range(6):
        h = 0.5 * v + x[t]
        theta = 1.0 + math.tanh(a) * torch.tanh(x[t])
        s = (h >= theta).double()
        v = h - s * theta
        torch.testing.assert_close(out.v_seq[t], v)
    # Reset only: a has no effect.
    r1 = F.arlif(x, params=F.ARLIFParameters(a=0.9, adaptive_threshold=False)).spikes
    r0 = F.arlif(x, params=F.ARLIFParameters(a=0.0)).spikes
    assert torch.equal(r1, r0)


def test_lif_hand_computed_traces():
    x = torch.tensor([1.5, 1.5, 0.4, 2.5]).view(4, 1)
    hard = F.lif(x, params=F.LIFParameters(decay=0.5), return_traces=True)
    assert hard.h_seq.flatten().tolist() == pytest.approx([0.75, 1.125, 0.2, 1.35])
    assert hard.spikes.flatten().tolist() == [0, 1, 0, 1]
    assert hard.v_seq.flatten().tolist() == pytest.approx([0.75, 0.0, 0.2, 0.0])
    soft = F.lif(x, params=F.LIFParameters(decay=0.5, v_reset=None), return_traces=True)
    assert soft.h_seq.flatten().tolist() == pytest.approx([0.75, 1.125, 0.2625, 1.38125])
    assert soft.v_seq.flatten().tolist() == pytest.approx([0.75, 0.125, 0.2625, 0.38125])
    # Reset to a non-zero potential: V0 = v_reset and the charge leaks towards it.
    out = F.lif(torch.tensor([[0.0], [3.0]]), params=F.LIFParameters(decay=0.5, v_reset=-0.5), return_traces=True)
    assert out.h_seq.flatten().tolist() == pytest.approx([-0.5, 1.0])
    assert out.v_seq.flatten().tolist() == pytest.approx([-0.5, -0.5])


def test_potential_equal_to_threshold_fires():
    out = F.lif(torch.tensor([[2.0]]), params=F.LIFParameters(decay=0.5))
    assert out.spikes.item() == 1.0
    out = F.dalif(torch.tensor([[1.0]]), params=F.DALIFParameters(alpha=0.5, beta=0.25, v_threshold=0.5))
    assert out.spikes.item() == 1.0


def test_soft_reset_unrolled_formula():
    # docs/neurons.md: V_t = sum_i lambda^(t-i) (X_i - V_th S_i) for the soft reset.
    lam, vth = 0.75, 1.0
    x = torch.rand(12, 40, dtype=torch.float64) * 1.5
    out = F.lif(x, params=F.LIFParameters(decay=1 - lam, decay_input=False, v_reset=None), return_traces=True)
    for t in range(12):
        w = lam ** torch.arange(t, -1, -1, dtype=torch.float64).view(-1, 1)
        torch.testing.assert_close(out.v_seq[t], (w * (x[: t + 1] - vth * out.spikes[: t + 1])).sum(0))


def test_dalif_equations_and_hard_reset_to_zero():
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    alpha = torch.tensor([0.9, 0.5, 1.2, 0.3], dtype=torch.float64)
    beta = torch.tensor([0.25, 0.8, -0.2, 0.5], dtype=torch.float64)
    out = F.dalif(x, params=F.DALIFParameters(alpha=alpha, beta=beta), return_traces=True)
    v = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(7):
        h = beta * v + alpha * x[t]
        torch.testing.assert_close(out.h_seq[t], h)
        s = (h >= 0.5).double()
        assert torch.equal(out.spikes[t], s)
        v = h * (1 - s)
    assert torch.all(out.v_seq[out.spikes == 1] == 0)
    assert out.spikes.sum() > 0


def test_detach_reset_changes_only_the_gradient():
    x = torch.randn(5, 20, dtype=torch.float64, requires_grad=True)
    grads, spikes = [], []
    for detach in (False, True):
        p = F.LIFParameters(decay=0.5, detach_reset=detach, surrogate=Sigmoid(4.0))
        s = F.lif(x, params=p).spikes
        spikes.append(s)
        grads.append(torch.autograd.grad((s * torch.arange(20.0)).sum(), x)[0])
    assert torch.equal(spikes[0], spikes[1])
    assert not torch.allclose(grads[0], grads[1])
