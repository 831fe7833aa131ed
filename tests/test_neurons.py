"""The neuron modules: call protocol, special cases, gradients and input validation."""

import math
import pickle

import pytest
import torch
from torch.func import functional_call

import adalif.functional as F
from adalif.neurons import ARLIF, DALIF, LIF, PLIF
from adalif.surrogate import ATan, Sigmoid


def make_neurons():
    return {
        "lif_hard": LIF(),
        "lif_soft": LIF(tau=3.0, decay_input=False, v_reset=None, detach_reset=True),
        "plif": PLIF(init_tau=3.0),
        "dalif_layer": DALIF(),
        "dalif_channel": DALIF(granularity="channel", num_channels=4, alpha_init=0.7, beta_init=0.4),
        "dalif_soft_sigmoid": DALIF(decay_fn="sigmoid", reset="soft", alpha_init=0.6),
        "arlif": ARLIF(a_init=0.4, c_init=0.8),
        "arlif_reset_only": ARLIF(adaptive_threshold=False),
        "arlif_threshold_only": ARLIF(adaptive_reset=False, a_init=0.5),
        "arlif_dvs": ARLIF(decay=0.2, carry_memory=False),
    }


NAMES = list(make_neurons())


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_dtype_and_binary(name):
    neuron = make_neurons()[name]
    x = torch.randn(5, 3, 4, 6, 2) * 2
    s = neuron(x)
    assert s.shape == x.shape and s.dtype == x.dtype
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert 0 < s.mean() < 1
    x64 = x.double()
    assert neuron.double()(x64).dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
def test_multistep_equals_step_by_step_and_chunked_streaming(name):
    neuron = make_neurons()[name]
    x = torch.randn(9, 2, 4, 3) * 2
    full = neuron.run(x, return_traces=True)
    state, spikes = None, []
    for x_t in x:
        out = neuron.step(x_t, state)
        state = out.state
        spikes.append(out.spikes)
    assert torch.equal(torch.stack(spikes), full.spikes)
    for a, b in zip(state, full.state):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Streaming in two chunks with the state passed along gives the same result.
    first = neuron.run(x[:4])
    second = neuron.run(x[4:], first.state)
    assert torch.equal(torch.cat([first.spikes, second.spikes]), full.spikes)


@pytest.mark.parametrize("name", NAMES)
def test_every_call_starts_from_a_fresh_state(name):
    neuron = make_neurons()[name]
    x = torch.randn(4, 2, 4) * 3
    assert torch.equal(neuron(x), neuron(x))
    neuron(torch.randn(3, 7, 4))  # another batch size in between needs no reset
    assert torch.equal(neuron(x), neuron(x))


@pytest.mark.parametrize("name", NAMES)
def test_edge_shapes_and_non_contiguous_input(name):
    neuron = make_neurons()[name]
    assert neuron(torch.randn(1, 1, 4)).shape == (1, 1, 4)
    base = torch.randn(3, 4, 6, 5) * 2
    x = base.permute(0, 3, 1, 2)[..., ::2]  # [T, B=5, C=4, 3], non-contiguous
    assert not x.is_contiguous()
    assert torch.equal(neuron(x), neuron(x.contiguous()))


def test_dalif_none_special_case_equals_lif():
    x = torch.randn(10, 8, 16) * 2
    for tau, decay_input in [(2.0, False), (4.0, False), (2.0, True), (3.0, True)]:
        k = 1.0 / tau
        alpha = k if decay_input else 1.0
        dalif = DALIF(alpha_init=alpha, beta_init=1 - k, decay_fn="none", v_threshold=1.0, surrogate=ATan())
        lif = LIF(tau=tau, decay_input=decay_input, v_reset=0.0, surrogate=ATan())
        a, b = dalif.run(x, return_traces=True), lif.run(x, return_traces=True)
        assert torch.equal(a.spikes, b.spikes)
        torch.testing.assert_close(a.v_seq, b.v_seq, rtol=1e-6, atol=1e-6)
        # The same with soft reset.
        dalif_soft = DALIF(alpha_init=alpha, beta_init=1 - k, decay_fn="none", v_threshold=1.0, reset="soft", surrogate=ATan())
        lif_soft = LIF(tau=tau, decay_input=decay_input, v_reset=None, surrogate=ATan())
        assert torch.equal(dalif_soft(x), lif_soft(x))


def test_dalif_mpbn_fixed_lif_equals_lif_tau_4_3():
    # alpha 1, beta 0.25, V_th 0.5 is LIFNode(tau=4/3, decay_input=False, v_threshold=0.5).
    x = torch.randn(8, 4, 32)
    dalif = DALIF(alpha_init=1.0, beta_init=0.25, decay_fn="none", v_threshold=0.5, surrogate=ATan())
    lif = LIF(tau=4 / 3, decay_input=False, v_threshold=0.5, surrogate=ATan())
    assert torch.equal(dalif(x), lif(x))


def test_dalif_sigmoid_special_case_equals_plif_forward_and_gradient():
    init_tau = 3.0
    w = -math.log(init_tau - 1)
    x = (torch.randn(6, 4, 10, dtype=torch.float64) * 2).requires_grad_(True)
    plif = PLIF(init_tau=init_tau, surrogate=ATan()).double()
    dalif = DALIF(alpha_init=1 / init_tau, beta_init=1 - 1 / init_tau, decay_fn="sigmoid", v_threshold=1.0, surrogate=ATan()).double()
    with torch.no_grad():
        dalif.tau_a.fill_(w)
        dalif.tau_b.fill_(-w)
    weights = torch.randn(6, 4, 10, dtype=torch.float64)
    sp, sd = plif(x), dalif(x)
    assert torch.equal(sp, sd)
    gp = torch.autograd.grad((sp * weights).sum(), [x, plif.w])
    gd = torch.autograd.grad((sd * weights).sum(), [x, dalif.tau_a, dalif.tau_b])
    torch.testing.assert_close(gp[0], gd[0])
    torch.testing.assert_close(gp[1], gd[1] - gd[2])


def test_dalif_parameters_alpha_beta_and_gradients():
    d = DALIF()
    assert d.alpha.item() == pytest.approx(math.tanh(2.0))
    assert d.beta.item() == pytest.approx(0.25)
    assert d.tau_b.item() == pytest.approx(0.2554128, abs=1e-6)
    assert sorted(n for n, _ in d.named_parameters()) == ["tau_a", "tau_b"]
    d(torch.randn(4, 8, 16) * 2).sum().backward()
    assert d.tau_a.grad.abs() > 0 and d.tau_b.grad.abs() > 0
    c = DALIF(granularity="channel", num_channels=3, alpha_init=0.5)
    assert c.alpha.shape == (3,) and torch.allclose(c.alpha, torch.full((3,), 0.5))
    # Single-decay ablation: alpha fixed at 1 (not reachable by tanh, allowed because it is fixed).
    vd = DALIF(alpha_init=1.0, learn_alpha=False)
    assert [n for n, _ in vd.named_parameters()] == ["tau_b"] and vd.alpha.item() == 1.0


def test_dalif_per_channel_decays_act_per_channel():
    alphas = [0.2, 0.9]
    c = DALIF(granularity="channel", num_channels=2, decay_fn="none", alpha_init=0.5)
    with torch.no_grad():
        c.tau_a.copy_(torch.tensor(alphas))
    x = torch.randn(5, 3, 2, 7) * 2
    out = c(x)
    for ch, a in enumerate(alphas):
        ref = DALIF(decay_fn="none", alpha_init=a)(x[:, :, ch])
        assert torch.equal(out[:, :, ch], ref)


def test_arlif_parameters_and_buffers():
    full = ARLIF()
    assert sorted(n for n, _ in full.named_parameters()) == ["a", "c"]
    assert full.a.item() == 0.0 and full.c.item() == 1.0
    assert [n for n, _ in ARLIF(adaptive_threshold=False).named_parameters()] == ["c"]
    assert [n for n, _ in ARLIF(adaptive_reset=False).named_parameters()] == ["a"]
    assert [n for n, _ in ARLIF(carry_memory=False).named_parameters()] == ["a"]
    full(torch.randn(6, 4, 8) * 2).sum().backward()
    assert full.a.grad.abs() > 0 and full.c.grad.abs() > 0


def test_arlif_module_reproduces_trace():
    x = torch.tensor([1.2, 0.3, -0.5, 2.0, 0.8, 1.5, 1.5, -1.0]).view(8, 1)
    out = ARLIF(a_init=0.5).run(x, return_traces=True)
    assert out.spikes.flatten().tolist() == [0, 0, 0, 1, 0, 1, 0, 0]
    assert out.state.m.item() == pytest.approx(-0.39536, abs=1e-5)


# detach_reset drops part of the true derivative on purpose, so it has no place in gradcheck.
SMOOTH = Sigmoid(4.0, spiking=False)
GRADCHECK_CASES = {
    "lif_hard": (LIF(surrogate=SMOOTH), []),
    "lif_soft": (LIF(v_reset=None, decay_input=False, surrogate=SMOOTH), []),
    "plif": (PLIF(init_tau=2.5, surrogate=SMOOTH), ["w"]),
    "plif_hard_vreset": (PLIF(v_reset=-0.3, decay_input=False, surrogate=SMOOTH), ["w"]),
    "dalif_layer": (DALIF(surrogate=SMOOTH), ["tau_a", "tau_b"]),
    "dalif_channel_soft": (DALIF(granularity="channel", num_channels=3, reset="soft", surrogate=SMOOTH), ["tau_a", "tau_b"]),
    "dalif_sigmoid": (DALIF(decay_fn="sigmoid", alpha_init=0.6, surrogate=SMOOTH), ["tau_a", "tau_b"]),
    "arlif": (ARLIF(a_init=0.3, c_init=0.7, surrogate=SMOOTH), ["a", "c"]),
    "arlif_threshold_only": (ARLIF(a_init=0.3, adaptive_reset=False, surrogate=SMOOTH), ["a"]),
    "arlif_dvs": (ARLIF(a_init=0.2, carry_memory=False, surrogate=SMOOTH), ["a"]),
}


@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
def test_gradcheck_float64_with_smooth_surrogate(name):
    neuron, param_names = GRADCHECK_CASES[name]
    neuron = neuron.double()
    x = (torch.randn(4, 2, 3, 2, dtype=torch.float64) * 1.5).requires_grad_(True)
    params = [getattr(neuron, n).detach().clone().requires_grad_(True) for n in param_names]

    def fn(x, *values):
        out = functional_call(neuron, dict(zip(param_names, values)), (x,), {})
        return out

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


def test_neurons_pickle_and_state_dict_round_trip():
    for neuron in make_neurons().values():
        clone = pickle.loads(pickle.dumps(neuron))
        x = torch.randn(3, 2, 4)
        assert torch.equal(clone(x), neuron(x))
        assert set(neuron.state_dict()) == set(clone.state_dict())


# -- bad input ---------------------------------------------------------------------------------
BAD_CALLS = [
    (lambda: LIF()(torch.ones(3, 2, dtype=torch.int64)), TypeError, "x: expected a floating-point tensor"),
    (lambda: LIF()(torch.ones(0, 2)), ValueError, "x: expected a non-empty tensor"),
    (lambda: LIF()(torch.ones(5)), ValueError, r"x: expected at least 2 dimensions \[T, B, ...\]"),
    (lambda: LIF()([1.0, 2.0]), TypeError, "x: expected a torch.Tensor"),
    (lambda: LIF().step(torch.ones(())), ValueError, "x: expected at least 1 dimensions"),
    (lambda: DALIF(granularity="channel", num_channels=4)(torch.ones(3, 2, 5, 6)), ValueError, "num_channels=4 expects input"),
    (lambda: DALIF(granularity="channel", num_channels=4)(torch.ones(3, 2)), ValueError, "num_channels=4 expects input"),
    (lambda: LIF().run(torch.ones(3, 2, 4), F.LIFState(torch.zeros(2, 5))), ValueError, r"state.v: shape \(2, 5\) does not match"),
    (lambda: ARLIF().run(torch.ones(3, 2), F.ARLIFState(torch.zeros(2), torch.zeros(3))), ValueError, "state.m: shape"),
    (lambda: ARLIF().step(torch.ones(2), F.ARLIFState(torch.zeros(4), torch.zeros(4))), ValueError, "state.v: shape"),
]
BAD_CONSTRUCTORS = [
    (lambda: DALIF(decay_fn="relu"), "decay_fn: unknown value 'relu'"),
    (lambda: DALIF(reset="zero"), "reset: unknown value 'zero'"),
    (lambda: DALIF(granularity="neuron"), "granularity: unknown value 'neuron'"),
    (lambda: DALIF(alpha_init=1.0), r"alpha_init: 1.0 cannot be reached by decay_fn='tanh'"),
    (lambda: DALIF(decay_fn="sigmoid", beta_init=0.0), r"beta_init: 0.0 cannot be reached by decay_fn='sigmoid'"),
    (lambda: DALIF(granularity="channel"), "num_channels: granularity='channel' needs"),
    (lambda: DALIF(num_channels=3), "num_channels: only used with granularity='channel'"),
    (lambda: DALIF(v_threshold=0.0), "v_threshold: expected a positive"),
    (lambda: LIF(v_threshold=-1.0), "v_threshold: expected a positive"),
    (lambda: ARLIF(v_threshold=0), "v_threshold: expected a positive"),
    (lambda: PLIF(v_threshold=float("nan")), "v_threshold: expected a positive"),
    (lambda: LIF(tau=1.0), "tau: expected a membrane time constant > 1"),
    (lambda: PLIF(init_tau=0.5), "init_tau: expected a membrane time constant > 1"),
    (lambda: LIF(backend="cuda"), "backend: unknown backend 'cuda'"),
    (lambda: ARLIF(a_init=float("inf")), "a_init: expected a finite number"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_named_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


@pytest.mark.parametrize("call, message", BAD_CONSTRUCTORS)
def test_bad_constructor_arguments_raise_named_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_backend_environment_variable(monkeypatch):
    monkeypatch.setenv("ADALIF_BACKEND", "gpu")
    with pytest.raises(ValueError, match="ADALIF_BACKEND: unknown backend 'gpu'"):
        LIF()(torch.ones(2, 2))


def test_dalif_state_dict_never_loads_a_decay_with_the_other_meaning():
    """A learned decay is stored as its free parameter (tau_a = f^-1(alpha)), a fixed one as its
    value (fixed_alpha): loading one into the other would change the decay silently."""
    learned, fixed = DALIF(alpha_init=0.9), DALIF(alpha_init=0.9, learn_alpha=False)
    assert sorted(learned.state_dict()) == ["tau_a", "tau_b"] and sorted(fixed.state_dict()) == ["fixed_alpha", "tau_b"]
    torch.testing.assert_close(learned.alpha, fixed.alpha)
    with pytest.raises(ValueError, match=r"tau_a: this state dict holds the free parameter f\^-1\(alpha\) of a learned"):
        fixed.load_state_dict(learned.state_dict())
    with pytest.raises(ValueError, match=r"fixed_alpha: this state dict holds a fixed alpha, but this DALIF learns it"):
        learned.load_state_dict(fixed.state_dict())
    fixed.load_state_dict(DALIF(alpha_init=0.5, learn_alpha=False).state_dict())
    assert fixed.alpha.item() == 0.5
