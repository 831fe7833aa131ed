"""The generic compiled path (``backend="compiled"``: the step function compiled over the whole
sequence, forward and backward derived by torch.compile) against the reference loop, for every
registered definition: identical spikes, state and traces; gradients of the input, the initial
state and every parameter within 1e-5 relative (float32) and 1e-10 (float64); what it saves
for backward; and a step function that does not compile as one graph (automatic choice: the
reference, said once; explicit: refused)."""

import re
from typing import NamedTuple

import pytest
import torch

import adalif
from adalif import definitions as D
from adalif.functional import StepOutput
from adalif.kernels import stepgen
from adalif.surrogate import Triangle

pytestmark = pytest.mark.skipif(adalif.kernels.generic.UNAVAILABLE_REASON is not None,
                                reason="torch.compile's CPU backend needs a C++ compiler")

T = 6


class _Options(NamedTuple):
    """The options of this file's one-state neurons."""

    v_threshold: float = 1.0
    surrogate: object = Triangle(1.0)


class _State(NamedTuple):
    v: torch.Tensor


def make(name):
    torch.manual_seed(11)
    return {
        "lif": lambda: adalif.LIF(tau=3.0, v_reset=-0.1, detach_reset=True),
        "plif": lambda: adalif.PLIF(init_tau=2.5, decay_input=False, v_reset=None),
        "dalif": lambda: adalif.DALIF(granularity="channel", num_channels=3, beta_init=0.4),
        "arlif": lambda: adalif.ARLIF(a_init=0.3, c_init=0.7),
        "clif": lambda: adalif.CLIF(),
        "glif": lambda: adalif.GLIF(num_channels=3, T=T, random_gate=True),
    }[name]()


def run(neuron, backend, x, state, weights):
    neuron.backend = backend
    neuron.zero_grad()
    x = x.detach().clone().requires_grad_()
    state = None if state is None else type(state)(*(s.detach().clone().requires_grad_() for s in state))
    out = neuron.run(x, state, return_traces=True)
    loss = (out.spikes * weights[0]).sum() + (out.h_seq * weights[1]).sum() + (out.v_seq * weights[2]).sum()
    loss = loss + sum((s * w).sum() for s, w in zip(out.state, weights[3:]))
    loss.backward()
    grads = [x.grad] + ([s.grad for s in state] if state is not None else [])
    grads += [p.grad for p in neuron.parameters()]
    return out, grads, neuron.last_backend


# float64 too for the neurons whose only fused path this is; float32 for the others.
@pytest.mark.parametrize("name, dtype", [(n, torch.float32) for n in ("clif", "glif", "lif", "plif", "dalif", "arlif")]
                         + [("clif", torch.float64), ("glif", torch.float64)])
def test_compiled_equals_reference(name, dtype):
    neuron = make(name).to(dtype)
    torch.manual_seed(5)
    x = torch.randn(T, 4, 3, 5, dtype=dtype) * 1.5
    state = neuron.dynamics.initial_state(x[0], neuron.params())
    state = type(state)(*(s + 0.3 * torch.randn_like(s) for s in state))
    weights = [torch.randn(T, 4, 3, 5, dtype=dtype) for _ in range(3)] + [torch.randn(4, 3, 5, dtype=dtype)
                                                                          for _ in state]
    ref, ref_grads, _ = run(neuron, "reference", x, state, weights)
    out, grads, used = run(neuron, "compiled", x, state, weights)
    assert used == "compiled"
    assert torch.equal(out.spikes, ref.spikes)
    for a, b in [*zip(out.state, ref.state), (out.h_seq, ref.h_seq), (out.v_seq, ref.v_seq)]:
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert len(grads) == len(ref_grads) and any(g is not None for g in grads)
    for g, r in zip(grads, ref_grads):
        if r is None:
            assert g is None or not g.any()
            continue
        scale = r.abs().max().clamp_min(1e-30)
        assert float((g - r).abs().max() / scale) <= tol


def test_definitions_without_kernels_choose_the_compiled_path_automatically(monkeypatch):
    monkeypatch.delenv("ADALIF_BACKEND", raising=False)
    clif = adalif.CLIF()
    clif(torch.randn(2, 4, 8))
    assert clif.last_backend == "compiled"  # its step translates to C: no compile to amortise
    clif(torch.randn(2, 1, 1 << 14))
    assert clif.last_backend == "compiled"
    dalif = adalif.DALIF(granularity="channel", num_channels=4)  # its step views [C]: not translated
    assert not adalif.kernels.stepgen.translates(dalif.dynamics, torch.randn(2, 3, 4, 5), dalif.params())
    with pytest.raises(RuntimeError, match="clif has no hand-written kernels; use backend='compiled'"):
        adalif.CLIF(backend="cpu")(torch.randn(2, 4))


def test_compiled_path_saves_little_for_backward():
    """At most (state variables + 1/T) input-sized tensors are saved (docs/kernels.md)."""
    for neuron in (adalif.CLIF(backend="compiled"), adalif.GLIF(granularity="layer", T=8, backend="compiled")):
        x = torch.randn(8, 1 << 15, requires_grad=True)
        neuron(x)  # compile first: the hooks below see the compiled graph's saved tensors only
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            neuron(x)
        limit = (len(neuron.dynamics.initial_state(x[0], neuron.params())) + 1 / 8) * x.numel() * x.element_size()
        assert sum(saved) <= limit, (type(neuron).__name__, sum(saved) / (x.numel() * x.element_size()))


def test_a_new_layer_shape_does_not_recompile():
    import time

    glif = adalif.GLIF(num_channels=3, T=4, backend="compiled")
    glif(torch.randn(4, 2, 3, 6, 6, requires_grad=True)).sum().backward()
    start = time.perf_counter()
    glif2 = adalif.GLIF(num_channels=7, T=4, backend="compiled")
    glif2(torch.randn(4, 5, 7, 3, 9, requires_grad=True)).sum().backward()
    assert time.perf_counter() - start < 1.0  # measured 0.01 s; a recompile takes seconds


def test_registered_definitions_are_all_tested_here():
    assert set(D.registered()) >= {"lif", "plif", "dalif", "arlif", "clif", "glif"}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_against_float32_reference(dtype):
    """Half inputs (exactly representable) on the compiled path against the float32 reference:
    inductor keeps the unrolled loop's values in float32 and rounds only what it stores, so the
    spikes agree and the values are within the half type's resolution (docs/kernels.md)."""
    torch.manual_seed(3)
    x = (torch.randn(T, 2, 3, 40) * 1.5).to(dtype).float()
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    for make in (lambda: adalif.CLIF(), lambda: adalif.GLIF(num_channels=3, T=T)):
        ref_neuron, fast_neuron = make(), make()
        ref_neuron.backend, fast_neuron.backend = "reference", "compiled"
        ref = ref_neuron.run(x)
        fast = fast_neuron.to(dtype).run(x.to(dtype))
        assert fast.spikes.dtype == dtype
        mismatch = float((fast.spikes.float() != ref.spikes).float().mean())
        assert mismatch <= 1e-3, mismatch  # a spike may flip where the half type rounds a parameter
        for a, b in zip(fast.state, ref.state):
            assert float((a.float() - b).abs().max()) <= 10 * tol * max(1.0, float(b.abs().max()))


def graph_breaking_neuron(step_body):
    """A neuron (unregistered) whose step runs ``step_body(h, p)`` after charging: a fresh step
    function per call, since what the dispatcher learns about a step is kept per function."""

    def guarded_step(x, state, p):
        h = 0.9 * state.v + x
        step_body(h, p)
        s = p.surrogate(h - p.v_threshold)
        return StepOutput(s, _State(h - s * p.v_threshold), h)

    return D.NeuronDefinition("guarded", "Guarded", _Options, _State, guarded_step).module_class()


def warn_if_large(h, p):
    import warnings

    if (h.abs() > 1e3).any():  # Python control flow on a tensor's value: dynamo cannot capture it
        warnings.warn("potential above 1e3")


def test_automatic_choice_falls_back_from_compiled_to_reference_once_when_the_step_breaks_the_graph(monkeypatch):
    import warnings

    monkeypatch.delenv("ADALIF_BACKEND", raising=False)
    neuron = graph_breaking_neuron(warn_if_large)()
    x = torch.randn(2, 1, adalif.kernels.dispatch.AUTO_CPU_MIN_STEP_NUMEL) * 2  # large enough for `compiled`
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = neuron(x), neuron(x)
    assert neuron.last_backend == "reference"
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "\n" not in messages[0], messages
    assert re.search(r"adalif guarded: using the reference loop \(slower\) because its step function "
                     r".*guarded_step does not compile as one graph \(torch.compile: Data-dependent branching at "
                     r".*test_generic_path.py:\d+\)", messages[0]), messages[0]
    neuron.backend = "reference"
    reference = neuron(x)
    assert torch.equal(first, reference) and torch.equal(second, reference) and reference.any()


def test_explicit_compiled_backend_refuses_a_step_that_breaks_the_graph_in_one_line():
    neuron = graph_breaking_neuron(warn_if_large)(backend="compiled")
    for _ in range(2):  # found out by the first compile, then refused up front
        with pytest.raises(RuntimeError, match=r"adalif guarded: backend 'compiled' cannot run: its step function "
                                               r".*guarded_step does not compile as one graph") as err:
            neuron(torch.randn(2, 3, 4))
        assert "\n" not in str(err.value) and "Data-dependent branching" in str(err.value)


def test_a_bug_in_the_step_raises_as_itself_on_compiled_not_as_a_graph_break(monkeypatch):
    """Dynamo reports an AttributeError in the step as Unsupported too: it must not become a
    fallback that hides the bug."""
    import warnings

    monkeypatch.delenv("ADALIF_BACKEND", raising=False)
    neuron = graph_breaking_neuron(lambda h, p: p.missing_option)()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning either
        with pytest.raises(AttributeError, match="missing_option"):
            neuron(torch.randn(2, 1, adalif.kernels.dispatch.AUTO_CPU_MIN_STEP_NUMEL))
    assert neuron.dynamics.step not in adalif.kernels.dispatch._NOT_ONE_GRAPH


# -- the C generator (kernels/stepgen.py) ----------------------------------------------------------------
def custom_neuron(step_body, name="custom"):
    """An unregistered one-state neuron whose step runs ``step_body(h, x)`` to get its spike input."""

    def step(x, state, p):
        h = 0.9 * state.v + x
        s = p.surrogate(step_body(h, x) - p.v_threshold)
        return StepOutput(s, _State(h - s * p.v_threshold), h)

    return D.NeuronDefinition(name, name.title(), _Options, _State, step).module_class()


@pytest.mark.parametrize("body, translated", [
    (lambda h, x: torch.where(h > 0, h, 0.5 * h) + torch.sigmoid(x).clamp(0.1, 0.9) ** 2, None),
    (lambda h, x: h + x * (x.abs() + 1.0).reciprocal() / (1.0 + x * x).sqrt() - x.clamp_min(0.5), None),
    (lambda h, x: h + torch.tanh(x), "aten.tanh, which the C would evaluate one element at a time"),
    (lambda h, x: h + x.mean(), "aten.mean"),                    # a reduction
    (lambda h, x: h + x.view(-1).flip(0).view(x.shape), "aten.view"),  # a view
])
def test_the_c_generator_translates_elementwise_steps_exactly_and_refuses_the_rest(body, translated, caplog):
    neuron = custom_neuron(body)(backend="compiled")
    x = torch.randn(5, 3, 40) * 1.5
    assert adalif.kernels.stepgen.translates(neuron.dynamics, x, neuron.params()) == (translated is None)
    if translated is not None:
        with pytest.raises(adalif.kernels.stepgen.Unsupported, match=translated):
            adalif.kernels.stepgen.plan(neuron.dynamics, neuron.params(), neuron.dynamics.initial_state(x[0], None),
                                        x.dtype)
        return
    runs = []
    for backend in ("compiled", "reference"):
        neuron.backend = backend
        xi = x.clone().requires_grad_()
        out = neuron.run(xi, return_traces=True)
        ((out.spikes * x).sum() + (out.h_seq * x.cos()).sum() + out.state.v.sum()).backward()
        runs.append((out, xi.grad))
    (fast, gf), (ref, gr) = runs
    assert torch.equal(fast.spikes, ref.spikes) and torch.equal(fast.h_seq, ref.h_seq)
    assert torch.equal(fast.v_seq, ref.v_seq) and torch.equal(fast.state.v, ref.state.v)
    torch.testing.assert_close(gf, gr, rtol=1e-5, atol=1e-5)


def test_the_c_generator_refuses_a_branch_on_a_tensor_value():
    neuron = graph_breaking_neuron(warn_if_large)()  # `if (h.abs() > 1e3).any()`: the reduction is refused
    x = torch.randn(2, 3, 4)
    with pytest.raises(adalif.kernels.stepgen.Unsupported, match="aten.any giving a torch.bool tensor of shape"):
        adalif.kernels.stepgen.plan(neuron.dynamics, neuron.params(), neuron.dynamics.initial_state(x[0], None),
                                    x.dtype)


GAIN = torch.tensor(2.0)  # captured by a step: its value may change between calls


@pytest.mark.parametrize("body, reason", [
    (lambda h, x: h * GAIN, "from outside the step's arguments"),
    (lambda h, x: h + torch.rand(()), "a random draw"),
    (lambda h, x: h + x / x.shape[-1], "depend on the input's size"),
    (lambda h, x: h + x.mean(dim=1, keepdim=True), "fails on one-dimensional inputs"),
])
def test_the_c_generator_refuses_what_it_would_bake_in_and_the_module_stays_exact(body, reason):
    neuron = custom_neuron(body)()
    x = torch.randn(4, 3, 5)
    with pytest.raises(adalif.kernels.stepgen.Unsupported, match=reason):
        adalif.kernels.stepgen.plan(neuron.dynamics, neuron.params(), neuron.dynamics.initial_state(x[0], None),
                                    x.dtype)
    assert not adalif.kernels.stepgen.translates(neuron.dynamics, x, neuron.params())


def test_a_first_call_under_inference_mode_does_not_turn_the_c_path_off():
    neuron = custom_neuron(lambda h, x: h + 0.1 * torch.sigmoid(x), "inference_first")()
    x = torch.randn(4, 3, 5)
    with torch.inference_mode():
        neuron(x)
    assert neuron.last_backend == "compiled"
    assert adalif.kernels.stepgen.translates(neuron.dynamics, x, neuron.params())


@pytest.mark.parametrize("make, fast", [(lambda b: adalif.LIF(backend=b), "cpu"), (lambda b: adalif.CLIF(backend=b),
                                                                                   "compiled")])
def test_double_backward_on_a_fused_path_is_refused_in_one_line(make, fast):
    x = torch.randn(4, 2, 6, requires_grad=True)
    out = make(fast).run(x, return_traces=True)
    with pytest.raises(RuntimeError, match="no second derivative.*use backend='reference'") as err:
        torch.autograd.grad((out.h_seq ** 2).sum(), x, create_graph=True)
    assert "\n" not in str(err.value)


def test_a_state_in_another_dtype_than_the_input_gives_the_reference_numbers():
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    for make in (adalif.CLIF, adalif.LIF):
        neuron, ref = make().double(), make(backend="reference").double()
        state = type(neuron.initial_state(x[0]))(*(torch.full((2, 3), 0.3) for _ in neuron.initial_state(x[0])))
        out, want = neuron.run(x, state), ref.run(x, state)  # CLIF: torch.compile's path, to rounding
        assert torch.equal(out.spikes, want.spikes)
        for a, b in zip(out.state, want.state):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _sigmoid_step(x_t, state, p):
    h = torch.sigmoid(x_t)
    return StepOutput(p.surrogate(h - p.v_threshold), _State(h), h)


SIGMOID_PROBE = D.NeuronDefinition("sigmoid_probe", "SigmoidProbe", _Options, _State, _sigmoid_step)


@pytest.mark.skipif(not adalif.kernels.cpu.SLEEF_SIGMOID, reason="torch's sigmoid here is not SLEEF's AVX2/AVX-512 one")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_generated_sigmoid_is_torchs_bit_for_bit_at_every_position(threads, sigmoid_splits):
    """torch's float32 sigmoid is SLEEF's in its vectorised loop and libm's for the elements left
    over (at the end of the tensor, or of each thread's share above 32768 elements): the generated C
    follows the same split. The input's values are ones whose two sigmoids differ, so any element
    computed the other way shows; sizes around each boundary, on 1 to 3 threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        probe = SIGMOID_PROBE.module_class()(backend="compiled")
        for n in (1, 15, 16, 17, 31, 32, 33, 100, 32768, 32769, 40000, 65536 + 17, 98307):
            x = sigmoid_splits[torch.randint(0, sigmoid_splits.numel(), (2, n))]
            out = probe.run(x, return_traces=True)
            assert probe.last_backend == "compiled"
            assert torch.equal(out.h_seq, torch.stack([torch.sigmoid(x[0]), torch.sigmoid(x[1])])), n
    finally:
        torch.set_num_threads(before)


def test_sigmoid_of_parameters_alone_in_a_step_is_not_translated():
    """torch's sigmoid of a per-channel parameter rounds by the parameter's size, which the kernels
    do not see: the generator refuses such a step by name (a parameter's constrain does it right)."""

    class Options(NamedTuple):
        w: torch.Tensor = torch.zeros(())
        surrogate: object = Triangle(1.0)

    def step(x_t, state, p):
        h = torch.sigmoid(p.w) * state.v + x_t
        return StepOutput(p.surrogate(h - 1.0), _State(h), h)

    dynamics = adalif.functional.Dynamics("param_sigmoid", step, lambda like, p: _State(torch.zeros_like(like)))
    x = torch.randn(3, 2, 4)
    params = Options(w=torch.full((2, 4), 0.3))
    if adalif.kernels.cpu.SLEEF_SIGMOID:
        with pytest.raises(stepgen.Unsupported, match="sigmoid of parameters alone"):
            stepgen.run(dynamics, x, _State(torch.zeros(2, 4)), params)
    else:
        out = stepgen.run(dynamics, x, _State(torch.zeros(2, 4)), params)
        assert torch.equal(out.spikes, adalif.functional.run(dynamics, x, None, params).spikes)


@pytest.mark.skipif(not adalif.kernels.cpu.SLEEF_SIGMOID, reason="torch's sigmoid here is not SLEEF's AVX2/AVX-512 one")
def test_a_step_with_sigmoid_on_a_non_contiguous_input_is_not_translated():
    """The kernels follow torch's sigmoid split for the contiguous layout only; another layout goes
    to the next path, which the message names."""
    x = torch.randn(3, 4, 2).transpose(1, 2)
    with pytest.raises(stepgen.Unsupported, match="not contiguous"):
        stepgen.run(SIGMOID_PROBE.dynamics, x, _State(torch.zeros(2, 4)), _Options())
    # The automatic choice, which takes the generated C on small inputs, runs the reference loop
    # then (not torch.compile's minutes), for a non-contiguous input or state alike.
    clif, ref = adalif.CLIF(), adalif.CLIF(backend="reference")
    state = type(clif.initial_state(x[0]))(*(torch.rand(4, 2).t() for _ in clif.initial_state(x[0])))
    for inp, st in ((x, None), (x.contiguous(), state)):
        out, want = clif.run(inp, st), ref.run(inp, st)
        assert clif.last_backend == "reference"
        assert torch.equal(out.spikes, want.spikes) and all(map(torch.equal, out.state, want.state))
    clif.run(x.contiguous())
    assert clif.last_backend == "compiled"
