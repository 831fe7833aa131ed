"""Every fast path (compiled CPU loops, Triton kernels) against the reference loops.

The Triton kernels run here through Triton's CPU interpreter (``TRITON_INTERPRET=1``, set
before the kernels are first used); on a CUDA machine the same tests also run at full size.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from adalif.definitions import CLIF  # noqa: E402
from adalif.kernels import cpu, dispatch  # noqa: E402
from adalif.functional import ARLIFState  # noqa: E402
from adalif.neurons import ARLIF, DALIF, LIF, PLIF  # noqa: E402
from adalif.surrogate import ATan, Rectangle, Sigmoid, Triangle  # noqa: E402

triton = pytest.importorskip("triton")

CASES = {
    "lif_hard_sigmoid": lambda b: LIF(backend=b),
    "lif_soft_detach_triangle": lambda b: LIF(tau=3.0, v_reset=None, detach_reset=True, surrogate=Triangle(1.0), backend=b),
    "lif_vreset_no_decay_input_atan": lambda b: LIF(decay_input=False, v_reset=-0.3, surrogate=ATan(2.0), backend=b),
    "plif_vreset": lambda b: PLIF(init_tau=2.5, v_reset=0.2, backend=b),
    "plif_soft_rectangle": lambda b: PLIF(v_reset=None, decay_input=False, surrogate=Rectangle(0.8), backend=b),
    "dalif_layer_dspike": lambda b: DALIF(backend=b),
    "dalif_channel_atan": lambda b: DALIF(granularity="channel", num_channels=6, alpha_init=0.8, surrogate=ATan(), backend=b),
    "dalif_soft_sigmoid_detach": lambda b: DALIF(decay_fn="sigmoid", alpha_init=0.7, reset="soft", detach_reset=True, backend=b),
    "arlif": lambda b: ARLIF(a_init=0.4, c_init=0.7, backend=b),
    "arlif_reset_only": lambda b: ARLIF(adaptive_threshold=False, backend=b),
    "arlif_threshold_only": lambda b: ARLIF(adaptive_reset=False, a_init=0.5, backend=b),
    "arlif_dvs": lambda b: ARLIF(decay=0.2, carry_memory=False, a_init=0.3, surrogate=Triangle(1.0), backend=b),
}
FAST = ["cpu", "triton"]


def run_with_half_state(neuron, x, state, dtype, return_traces=True):
    """``neuron`` (the float32 reference) stepped by hand, its state rounded to ``dtype`` after each
    step: what the fast paths compute for a ``dtype`` input (docs/kernels.md, "Dtypes")."""
    outs = []
    for t in range(x.shape[0]):
        out = neuron.run(x[t:t + 1], state, return_traces=return_traces)
        state = type(out.state)(*(s.to(dtype).float() for s in out.state))
        outs.append(out)
    cat = lambda name: torch.cat([getattr(o, name) for o in outs]) if return_traces else None  # noqa: E731
    v_seq = torch.cat([o.v_seq.to(dtype).float() for o in outs]) if return_traces else None
    return type(outs[0])(torch.cat([o.spikes for o in outs]), state, cat("h_seq"), v_seq)


def compare(make, backend, x, *, state=None, dtype=None, rtol=1e-5, atol=1e-5, traces=True):
    """Reference (float32 or float64 as given) against ``backend`` on the same input and loss.

    ``dtype``: run the fast path on ``x`` cast to it (float16/bfloat16 checks); the reference
    stays in ``x.dtype``, with its state rounded to ``dtype`` after each step as the fast paths do.
    """
    weights = torch.randn_like(x)
    results = {}
    for name in ("reference", backend):
        torch.manual_seed(1)
        neuron = make(name)
        inp = x if name == "reference" or dtype is None else x.to(dtype)
        inp = inp.detach().clone().requires_grad_(True)
        st = None if state is None else type(state)(*(s.detach().clone().requires_grad_(True) for s in state))
        if name == "reference" and dtype is not None:
            out = run_with_half_state(neuron, inp, st, dtype, traces)
        else:
            out = neuron.run(inp, st, return_traces=traces)
        assert neuron.last_backend == name
        loss = (out.spikes.float() * weights).sum() + 0.3 * sum(s.float().sum() for s in out.state)
        if traces:
            loss = loss + 0.1 * out.v_seq.float().sum() + 0.05 * out.h_seq.float().sum()
        wrt = [inp, *neuron.parameters(), *(st or ())]
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        results[name] = (out, grads)
    (ref, g_ref), (fast, g_fast) = results["reference"], results[backend]
    # One contract for every backend: spikes, state and traces in the input's dtype. The casts
    # below only bring a half-precision run to the float32 reference's dtype for comparison.
    fast_dtype = dtype or x.dtype
    outputs = [fast.spikes, *fast.state, *((fast.h_seq, fast.v_seq) if traces else ())]
    assert all(t.dtype == fast_dtype for t in outputs), [t.dtype for t in outputs]
    assert torch.equal(fast.spikes.to(ref.spikes.dtype), ref.spikes), "spikes differ"
    for a, b in zip(fast.state, ref.state):
        torch.testing.assert_close(a.to(b.dtype), b, rtol=rtol, atol=atol)
    if traces:
        torch.testing.assert_close(fast.h_seq.to(x.dtype), ref.h_seq, rtol=rtol, atol=atol)
        torch.testing.assert_close(fast.v_seq.to(x.dtype), ref.v_seq, rtol=rtol, atol=atol)
    for gf, gr in zip(g_fast, g_ref):
        torch.testing.assert_close(gf.to(gr.dtype), gr, rtol=rtol, atol=atol)
    return ref


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_equals_reference_float32(case, backend):
    # 2 x 6 x 211 = 2532 neurons: more than two Triton blocks of 1024, not a multiple of one.
    x = torch.randn(5, 2, 6, 211) * 1.5
    ref = compare(CASES[case], backend, x)
    assert 0.02 < ref.spikes.mean() < 0.9


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("case", ["lif_hard_sigmoid", "dalif_channel_atan", "arlif"])
def test_fast_path_equals_reference_with_state_T1_and_non_contiguous(case, backend):
    x = torch.randn(1, 3, 6, 5) * 2
    make = CASES[case]
    probe = make("reference")
    state = type(probe.initial_state(x[0]))(*(torch.randn(3, 6, 5) * 0.5 for _ in probe.initial_state(x[0])))
    compare(make, backend, x, state=state)
    # non-contiguous: channels at dim 2 after a permute, odd strides
    base = torch.randn(4, 5, 3, 6) * 1.5
    xn = base.permute(0, 2, 3, 1)[..., ::2]  # [T=4, B=3, C=6, 3]
    assert not xn.is_contiguous()
    if backend == "cpu" and case == "arlif" and cpu.SLEEF_SIGMOID:
        # torch's sigmoid rounds by an element's position in memory; the C kernels follow the
        # contiguous layout's, and refuse another (the automatic choice runs the reference loop).
        with pytest.raises(RuntimeError, match="backend 'cpu' cannot run: the input or state is not contiguous") as err:
            make("cpu").run(xn)
        assert "\n" not in str(err.value)
        assert make(None).run(xn).spikes.shape == xn.shape
        xn = xn.contiguous()
    compare(make, backend, xn)


@pytest.mark.skipif(not cpu.SLEEF_SIGMOID, reason="torch's sigmoid here is not SLEEF's AVX2/AVX-512 one")
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", ["arlif", "arlif_dvs"])
def test_arlif_cpu_kernels_round_every_sigmoid_where_torch_does(case, threads, sigmoid_splits):
    """torch's sigmoid and tanh are SLEEF's in their vectorised loop and libm's for the elements
    left over (the tensor's end, or each thread's share's end above 32768 elements), so the
    reference's state depends on a neuron's position. On inputs whose sigmoids differ between the
    two, at sizes around each boundary, the C kernels give the reference's spikes, state and
    traces bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n in (24, 32, 33, 32769, 40000):
            x = sigmoid_splits[torch.randint(0, sigmoid_splits.numel(), (3, 2, n))]
            want, got = (CASES[case](backend).run(x, return_traces=True) for backend in ("reference", "cpu"))
            assert 0 < want.spikes.mean() < 1
            for a, b in zip(want, got):
                assert torch.equal(a, b) if isinstance(a, torch.Tensor) else all(map(torch.equal, a, b)), n
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", ["dalif_layer_dspike", "arlif"])
def test_half_precision_against_float32_reference(case, backend, dtype):
    # Inputs exactly representable in the half type, so that both sides see the same numbers;
    # the fast paths compute in float32 and round the state to the half type after each step, the
    # reference likewise (run_with_half_state). Tolerances: spikes identical, values to the half
    # type's resolution.
    x = (torch.randn(4, 2, 6, 40) * 1.5).to(dtype).float()
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    compare(CASES[case], backend, x, dtype=dtype, rtol=tol, atol=tol, traces=False)


@pytest.mark.parametrize("backend", FAST)
def test_float64_fast_paths_agree_to_rounding(backend):
    x = torch.randn(3, 2, 6, 9, dtype=torch.float64) * 2
    compare(lambda b: DALIF(granularity="channel", num_channels=6, backend=b).double(), backend, x, rtol=1e-12, atol=1e-12)
    compare(lambda b: ARLIF(a_init=0.3, backend=b).double(), backend, x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", FAST)
def test_no_grad_inference_saves_nothing_and_matches(backend):
    x = torch.randn(6, 4, 300) * 2
    for make in (CASES["plif_vreset"], CASES["arlif"]):
        with torch.no_grad():
            a = make("reference")(x)
            b = make(backend)(x)
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("case", ["lif_soft_detach_triangle", "arlif"])
def test_half_inputs_compute_in_float32_with_the_state_in_the_input_dtype(case, backend):
    """The fast paths compute half inputs in float32, with coefficients (LIF's k = 1/3) never
    rounded to float16 first, and keep the state in the input's dtype after every step, as the
    reference loop does: so a sequence split into chunks, each from the state the last returned
    (checkpoint: time), gives the numbers of one run."""
    x = (torch.randn(5, 3, 300) * 1.5).half()
    half = CASES[case](backend).run(x, return_traces=True)
    with torch.no_grad():
        ref = run_with_half_state(CASES[case]("reference"), x.float(), None, torch.float16)
    assert half.state[0].dtype == half.h_seq.dtype == torch.float16
    assert torch.equal(half.spikes.float(), ref.spikes)
    assert torch.equal(half.h_seq, ref.h_seq.half())  # H computed in float32, rounded once
    assert all(torch.equal(a.float(), b) for a, b in zip(half.state, ref.state))
    first = CASES[case](backend).run(x[:2])
    rest = CASES[case](backend).run(x[2:], first.state)
    assert torch.equal(torch.cat([first.spikes, rest.spikes]), half.spikes)
    assert all(torch.equal(a, b) for a, b in zip(rest.state, half.state))


# -- selection ---------------------------------------------------------------------------------
class DoubledSigmoid(Sigmoid):
    """A user's surrogate: Sigmoid's forward, but its own derivative."""

    def derivative(self, u):
        return 2.0 * super().derivative(u)


def test_subclassed_surrogate_gets_its_own_derivative_and_one_warning(monkeypatch, caplog):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "_warned", set())
    x = torch.randn(3, 2, dispatch.AUTO_CPU_MIN_STEP_NUMEL // 2)
    grads = {}
    for name, surrogate in (("custom", DoubledSigmoid(4.0)), ("builtin", Sigmoid(4.0))):
        xi = x.clone().requires_grad_()
        neuron = LIF(surrogate=surrogate)
        with caplog.at_level("WARNING", logger="adalif.kernels"):
            neuron(xi).sum().backward()
            neuron(x)
        grads[name] = (xi.grad, neuron.last_backend)
    assert grads["custom"][1] == "reference" and grads["builtin"][1] == "cpu"
    assert not torch.allclose(grads["custom"][0], grads["builtin"][0])
    xr = x.clone().requires_grad_()
    LIF(surrogate=DoubledSigmoid(4.0), backend="reference")(xr).sum().backward()
    torch.testing.assert_close(grads["custom"][0], xr.grad)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "surrogate DoubledSigmoid is not one of the built-in surrogates" in warnings[0]
    with pytest.raises(RuntimeError, match="backend 'cpu' cannot run: surrogate DoubledSigmoid is not one of the built-in"):
        LIF(surrogate=DoubledSigmoid(4.0), backend="cpu")(x)


def test_automatic_choice_on_other_devices_is_the_reference_with_one_warning(monkeypatch, caplog):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "_warned", set())
    neuron = DALIF()
    x = torch.empty(2, 4, dispatch.AUTO_CPU_MIN_STEP_NUMEL, device="meta")  # stands for MPS or XPU
    with caplog.at_level("WARNING", logger="adalif.kernels"):
        for _ in range(3):
            assert dispatch.select("dalif", None, x, neuron.params()) == "reference"
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["adalif dalif: using the reference loop (slower) because no fused kernel runs on meta tensors"]
def test_automatic_selection_by_size_and_configuration(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    small = torch.randn(2, 4, 10)
    large = torch.randn(2, 4, dispatch.AUTO_CPU_MIN_STEP_NUMEL // 4)
    with torch.no_grad():
        for x in (small, large):  # the C kernels at every size
            neuron = LIF()
            neuron(x)
            assert neuron.last_backend == "cpu"
        smooth = LIF(surrogate=Sigmoid(4.0, spiking=False))
        smooth(large)
        assert smooth.last_backend == "reference"
        clif = CLIF()
        clif(small)  # its step translates to C (where the C's sigmoid vectorises): compiled at every size
        assert clif.last_backend == ("compiled" if cpu.SLEEF_SIGMOID else "reference")


def test_environment_variable_and_argument_override(monkeypatch):
    x = torch.randn(2, 4, 10)
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    neuron = DALIF()
    neuron(x)
    assert neuron.last_backend == "cpu"
    explicit = DALIF(backend="reference")
    explicit(x)
    assert explicit.last_backend == "reference"


def test_requested_backend_that_cannot_run_raises_with_reason(monkeypatch):
    x = torch.randn(2, 4, 10)
    with pytest.raises(RuntimeError, match="backend 'cpu' cannot run: the fused kernels implement spiking surrogates only"):
        LIF(surrogate=Sigmoid(4.0, spiking=False), backend="cpu")(x)
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="backend 'triton' cannot run: Triton kernels need a CUDA tensor"):
        ARLIF(backend="triton")(x)


def test_forward_without_save_stores_no_potential():
    x = torch.randn(2, 1, 1, 8)
    with torch.no_grad():
        ops = torch.ops.adalif.lif_forward(x, torch.zeros(1, 1, 8), *(torch.ones(1),) * 3, 1.0, 0.0, True, False, "sigmoid", 4.0, False, "cpu")
    assert ops[1].numel() == 0


# -- torch.compile -------------------------------------------------------------------------------
class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.dalif = DALIF(granularity="channel", num_channels=4, backend="cpu")
        self.arlif = ARLIF(backend="cpu")
        self.lif = PLIF(backend="cpu")
        self.fc = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):  # x: [T, B, 2, 6, 6]
        T, B = x.shape[:2]
        y = self.conv(x.flatten(0, 1)).unflatten(0, (T, B))
        y = self.lif(self.arlif(self.dalif(y)))
        return self.fc(y.flatten(2))


def test_dynamo_explain_reports_no_graph_break_and_compiled_equals_eager():
    torch.manual_seed(0)
    net = SmallNet()
    x = torch.randn(3, 2, 2, 6, 6) * 2
    explanation = torch._dynamo.explain(net)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    eager = net(x)
    (g_eager,) = torch.autograd.grad(eager.sum(), net.dalif.tau_a)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    (g_comp,) = torch.autograd.grad(out.sum(), net.dalif.tau_a)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_comp, g_eager)


# -- full size on a GPU --------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("case", list(CASES))
def test_triton_equals_reference_on_cuda_full_size(case):
    x = torch.randn(8, 32, 6, 64, 64, device="cuda") * 1.5
    make = lambda b: CASES[case](b).cuda()  # noqa: E731
    compare(make, "triton", x, rtol=1e-4, atol=1e-5)


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_on_cuda(dtype):
    x = (torch.randn(8, 32, 6, 64, 64, device="cuda") * 1.5).to(dtype).float()
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    for case in ("dalif_channel_atan", "arlif"):
        compare(lambda b: CASES[case](b).cuda(), "triton", x, dtype=dtype, rtol=tol, atol=tol, traces=False)


def test_missing_triton_is_reported_with_the_reason(monkeypatch):
    monkeypatch.setattr(dispatch, "_TRITON_INSTALLED", False)
    with pytest.raises(RuntimeError, match="backend 'triton' cannot run: the triton package is not installed"):
        DALIF(backend="triton")(torch.randn(2, 3, 4))


import triton.language as tl  # noqa: E402

from adalif.kernels.triton_impl import _step_base  # noqa: E402


@triton.jit
def _offsets_kernel(out_ptr, T, N):
    for t in range(T):
        tl.store(out_ptr + t, _step_base(t, N))


def test_triton_step_offsets_are_64_bit_past_2_to_the_31():
    """T·N >= 2^31 elements: the step offset t·N must not wrap in 32 bits. The helper every kernel
    uses is checked on the numbers of such a tensor without allocating it."""
    N = 3 * 2**29  # 1,610,612,736 neurons per step: step 2 starts at 3,221,225,472 > 2^31
    out = torch.zeros(3, dtype=torch.int64)
    _offsets_kernel[(1,)](out, 3, N)
    assert out.tolist() == [0, N, 2 * N]


@pytest.mark.parametrize("backend", FAST)
def test_public_fast_path_has_the_reference_signature(backend):
    """adalif.kernels.lif/dalif/arlif(x, state, params, return_traces, backend) equal
    adalif.functional.lif/dalif/arlif(x, state, params, return_traces)."""
    import adalif.functional as F
    from adalif import kernels

    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 5) * 2
    cases = [
        (kernels.lif, F.lif, F.LIFParameters(decay=0.4, v_reset=None, surrogate=ATan(2.0))),
        (kernels.dalif, F.dalif, F.DALIFParameters(alpha=torch.rand(6) + 0.5, beta=torch.rand(6), per_channel=True)),
        (kernels.arlif, F.arlif, F.ARLIFParameters(a=torch.tensor(0.3), c=torch.tensor(0.8))),
    ]
    for fast, reference, params in cases:
        state = reference(x[:1], params=params).state  # a non-trivial initial state
        a = fast(x, state, params, return_traces=True, backend=backend)
        b = reference(x, state, params, return_traces=True)
        assert torch.equal(a.spikes, b.spikes)
        for u, v in zip((*a.state, a.h_seq, a.v_seq), (*b.state, b.h_seq, b.v_seq)):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="backend: unknown backend 'gpu'"):
        kernels.lif(x, backend="gpu")


@pytest.mark.parametrize("flags", [dict(carry_memory=False), dict(adaptive_reset=False), {}])
@pytest.mark.parametrize("use_m", [False, True])
def test_arlif_initial_memory_gradient_is_none_where_the_references_is(flags, use_m):
    """Without the carried memory M_0 reaches nothing, and without the adaptive reset only the end
    state: autograd through the reference gives M_0 no gradient (None) then, and so does cpu."""
    x = torch.randn(3, 8)
    grads = []
    for backend in ("reference", "cpu"):
        v0, m0 = torch.zeros(8, requires_grad=True), torch.full((8,), 0.3, requires_grad=True)
        out = ARLIF(backend=backend, **flags).run(x.clone().requires_grad_(), ARLIFState(v0, m0))
        (out.spikes.sum() + out.state.v.sum() + (2 * out.state.m.sum() if use_m else 0)).backward()
        grads.append(m0.grad)
    assert (grads[0] is None) == (grads[1] is None)
    if grads[0] is not None:
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
