"""adalif's LIF and PLIF against SpikingJelly's LIFNode / ParametricLIFNode (multi-step, torch backend).

SpikingJelly is an optional oracle: ``pip install --no-deps spikingjelly loguru`` (the Makefile does).
"""

import itertools

import pytest
import torch

sj = pytest.importorskip("spikingjelly.activation_based.neuron", exc_type=ImportError)
from spikingjelly.activation_based import functional as sj_functional  # noqa: E402
from spikingjelly.activation_based import surrogate as sj_surrogate  # noqa: E402

from adalif.neurons import DALIF, LIF, PLIF  # noqa: E402
from adalif.surrogate import ATan, Sigmoid  # noqa: E402

COMBOS = list(itertools.product([0.0, None], [True, False], [False, True]))


def run_pair(ours, theirs, x, weights, params_ours=(), params_theirs=()):
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    s1 = ours(x1)
    sj_functional.reset_net(theirs)
    s2 = theirs(x2)
    g1 = torch.autograd.grad((s1 * weights).sum(), [x1, *params_ours])
    g2 = torch.autograd.grad((s2 * weights).sum(), [x2, *params_theirs])
    return s1, s2, g1, g2


@pytest.mark.parametrize("v_reset, decay_input, detach_reset", COMBOS)
@pytest.mark.parametrize("tau", [2.0, 3.0])
def test_lif_equals_spikingjelly_lifnode(v_reset, decay_input, detach_reset, tau):
    x = torch.randn(8, 16, 64) * 3.0
    weights = torch.randn_like(x)
    ours = LIF(tau=tau, decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset, surrogate=Sigmoid(4.0))
    theirs = sj.LIFNode(
        tau=tau, decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset,
        surrogate_function=sj_surrogate.Sigmoid(alpha=4.0), step_mode="m", backend="torch",
    )
    s1, s2, (g1,), (g2,) = run_pair(ours, theirs, x, weights)
    assert torch.equal(s1, s2)
    assert s1.mean() > 0.05
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("v_reset, decay_input, detach_reset", COMBOS)
def test_plif_equals_spikingjelly_parametric_lifnode(v_reset, decay_input, detach_reset):
    x = torch.randn(8, 16, 64) * 1.5
    weights = torch.randn_like(x)
    ours = PLIF(init_tau=2.5, decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset, surrogate=ATan(2.0))
    theirs = sj.ParametricLIFNode(
        init_tau=2.5, decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset,
        surrogate_function=sj_surrogate.ATan(alpha=2.0), step_mode="m", backend="torch",
    )
    s1, s2, (g1, w1), (g2, w2) = run_pair(ours, theirs, x, weights, [ours.w], [theirs.w])
    assert torch.equal(s1, s2)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w1, w2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("soft", [False, True])
def test_dalif_fixed_lif_equals_spikingjelly(soft):
    # neurons.md 4.4: alpha 1, beta 0.25, V_th 0.5 == LIFNode(tau=4/3, decay_input=False, v_threshold=0.5).
    x = torch.randn(8, 16, 64)
    weights = torch.randn_like(x)
    ours = DALIF(alpha_init=1.0, beta_init=0.25, decay_fn="none", v_threshold=0.5,
                 reset="soft" if soft else "hard", surrogate=ATan(2.0))
    theirs = sj.LIFNode(tau=4 / 3, decay_input=False, v_threshold=0.5, v_reset=None if soft else 0.0,
                        surrogate_function=sj_surrogate.ATan(alpha=2.0), step_mode="m", backend="torch")
    s1, s2, (g1,), (g2,) = run_pair(ours, theirs, x, weights)
    assert torch.equal(s1, s2)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(tau=2.0), dict(tau=3.0, v_reset=-0.2), dict(tau=2.0, v_reset=None)],
                         ids=["hard", "v_reset", "soft"])
def test_every_path_rounds_the_charge_as_spikingjelly_does(kw):
    """A crafted input whose second-step potential lands within a few ulps of the threshold: the
    affine form (1 - k) V + k X + gamma, which the fused CPU path used, disagrees with SpikingJelly on
    thousands of spikes; SpikingJelly's own expression in its own order, on every CPU path, on none."""
    torch.manual_seed(0)
    n, tau, v_reset = 1 << 17, kw["tau"], kw.get("v_reset", 0.0)
    x0 = torch.rand(n) * 1.5
    single = sj.LIFNode(step_mode="s", **kw)
    single(x0)
    v1 = single.v.clone()
    x1 = (1.0 - v1) * tau + v1 - (v_reset or 0.0) + torch.randint(-3, 4, (n,)) * 1e-7
    x = torch.stack([x0, x1])
    theirs = sj.LIFNode(step_mode="m", **kw)(x)
    k = 1.0 / tau
    affine = (1 - k) * v1 + k * x1 + k * (v_reset or 0.0) >= 1.0
    assert int((affine.float() != theirs[1]).sum()) > 1000  # the input does probe the rounding
    for backend in ("reference", "cpu"):
        assert torch.equal(LIF(**kw, backend=backend)(x), theirs), backend


def test_triton_kernel_rounds_the_charge_as_spikingjelly_does(monkeypatch):
    """The same crafted ties through the Triton kernels (Triton's CPU interpreter here; IEEE division
    and no fused multiply-add, as on a GPU): SpikingJelly's spikes exactly."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    torch.manual_seed(0)
    n = 1 << 13
    for kw in (dict(tau=2.0), dict(tau=3.0, v_reset=-0.2), dict(tau=3.0, decay_input=False)):
        tau, v_reset = kw["tau"], kw.get("v_reset", 0.0)
        x0 = torch.rand(n) * 1.5
        single = sj.LIFNode(step_mode="s", **kw)
        single(x0)
        v1 = single.v.clone()
        if kw.get("decay_input", True):
            x1 = (1.0 - v1) * tau + v1 - (v_reset or 0.0)
        else:
            x1 = 1.0 - v1 * (1.0 - 1.0 / tau)
        x = torch.stack([x0, x1 + torch.randint(-3, 4, (n,)) * 1e-7])
        theirs = sj.LIFNode(step_mode="m", **kw)(x)
        assert torch.equal(LIF(**kw, backend="triton")(x), theirs), kw
