"""Neuron definitions: CLIF and GLIF against the reference values of their official code, the
module derived from a record (constructor, validation, parameters), the registry that models,
analysis, export and the SpikingJelly-style nodes read, and the parameter groups of the optimiser."""

import math

import pytest
import torch
from torch import nn

import adalif
from adalif import definitions as D
from adalif.functional import StepOutput
from adalif.surrogate import Triangle


def check_input(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.randn(8, 4, 3, 5, 5).to(dtype)  # drawn in float32, as the reference document does


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clif_reference_values(dtype):
    """neurons.md section 7: spikes per step 38, 56, 44, 31, 56, 41, 34, 39 (339), |V_8| = 17.4057,
    |M_8| = 8.7705 (float32 or float64)."""
    out = adalif.CLIF(backend="reference").run(check_input(dtype))
    assert out.spikes.sum(dim=(1, 2, 3, 4)).tolist() == [38, 56, 44, 31, 56, 41, 34, 39]
    assert float(out.state.v.detach().norm()) == pytest.approx(17.4057, abs=5e-5)
    assert float(out.state.m.norm()) == pytest.approx(8.7705, abs=5e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_glif_reference_values(dtype):
    """neurons.md section 8: channel-wise, gates 0.55/0.65/0.55, T = 8, C = 3: spikes per step
    61, 67, 53, 41, 61, 51, 40, 40 (414), |U_8| = 14.3752 (pre-reset)."""
    glif = adalif.GLIF(num_channels=3, T=8, backend="reference").to(dtype)
    out = glif.run(check_input(dtype))
    assert out.spikes.sum(dim=(1, 2, 3, 4)).tolist() == [61, 67, 53, 41, 61, 51, 40, 40]
    assert float(out.state.v.detach().norm()) == pytest.approx(14.3752, abs=5e-5)


def test_glif_parameters_and_initial_values():
    glif = adalif.GLIF(num_channels=3, T=4)
    shapes = {name: tuple(p.shape) for name, p in glif.named_parameters()}
    assert shapes == {"raw_alpha": (3,), "raw_beta": (3,), "raw_gamma": (3,), "raw_tau": (3,), "raw_Vth": (3,),
                      "raw_leak": (3,), "raw_reVth": (3,), "raw_conduct": (4, 3)}
    for name, value in {"alpha": 0.55, "beta": 0.65, "gamma": 0.55, "tau": 0.25, "Vth": 0.5, "leak": 0.0625,
                        "reVth": 0.5, "conduct": 0.5}.items():
        assert torch.allclose(getattr(glif, name), torch.tensor(value)), name
    layer = adalif.GLIF(granularity="layer", T=4, layerwise_gate_quirk=True)
    assert layer.raw_alpha.shape == () and layer.raw_conduct.shape == (4,)
    assert [round(float(getattr(layer, g)), 6) for g in ("alpha", "beta", "gamma")] == [0.45, 0.35, 0.45]
    torch.manual_seed(3)
    random = adalif.GLIF(num_channels=64, T=2, random_gate=True)
    assert random.raw_beta.abs().max() <= 0.1 and random.raw_beta.std() > 0.03
    static = adalif.GLIF(num_channels=3, T=2, static_gate=True)
    assert "raw_alpha" in dict(static.named_buffers()) and "raw_alpha" not in dict(static.named_parameters())


def test_glif_strict_threshold_and_open_window():
    """U = V_th does not fire (strict), and U - V_th = 1/2 gets no gradient (open window)."""
    glif = adalif.GLIF(granularity="layer", T=1, backend="reference")
    with torch.no_grad():
        glif.raw_conduct.fill_(30.0)  # conductance 1: I = X exactly
        glif.raw_alpha.fill_(30.0)  # alpha = 1 (float32): U_1 = 0 * ... - 0 + X
    x = torch.tensor([[0.5, 0.5000001, 1.0, 0.0]]).unsqueeze(0).requires_grad_()
    out = glif.run(x)
    assert out.spikes[0, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    out.spikes.sum().backward()
    assert x.grad[0, 0].tolist() == [1.0, 1.0, 0.0, 0.0]  # |u| = 1/2 at x = 1 and x = 0: outside the window


def test_glif_hard_gates_are_straight_through():
    glif = adalif.GLIF(num_channels=2, T=3, soft_mode=False, backend="reference")
    assert torch.equal(D.glif._gates(glif.params())[0], torch.ones(2))  # 0.55 > 1/2
    x = torch.randn(3, 5, 2, requires_grad=True)
    glif.run(x).spikes.sum().backward()
    assert glif.raw_alpha.grad is not None and glif.raw_alpha.grad.abs().sum() > 0


def test_glif_static_soft_gates_are_the_sigmoids_of_the_frozen_raw_gates():
    """The official LIFSpike_CW (layers.py:168-169 at ac20aa7): static gates in soft mode are the
    sigmoids of the frozen raw gates, so section 8's check values hold with static_gate=True."""
    glif = adalif.GLIF(num_channels=3, T=8, static_gate=True, backend="reference").double()
    out = glif.run(check_input())
    assert out.spikes.sum(dim=(1, 2, 3, 4)).tolist() == [61, 67, 53, 41, 61, 51, 40, 40]
    assert float(out.state.v.norm()) == pytest.approx(14.3752, abs=5e-5)


@pytest.mark.parametrize("soft_mode", [True, False])
def test_glif_static_gates_compute_what_the_learnable_gates_compute_frozen(soft_mode):
    """Static gates are the learnable gates detached: sigmoids in soft mode, binarised (sigmoid > 1/2,
    the official raw > 0) only when soft_mode is false; no gradient reaches them."""
    torch.manual_seed(1)
    learnable = adalif.GLIF(num_channels=16, T=4, random_gate=True, soft_mode=soft_mode, backend="reference").double()
    static = adalif.GLIF(num_channels=16, T=4, static_gate=True, soft_mode=soft_mode, backend="reference").double()
    static.load_state_dict(learnable.state_dict())
    raw = [getattr(learnable, f"raw_{g}").detach() for g in ("alpha", "beta", "gamma")]
    expected = [r.sigmoid() if soft_mode else (r > 0).double() for r in raw]
    for gate, want in zip(D.glif._gates(static.params()), expected):
        assert torch.equal(gate, want) and not gate.requires_grad
    if not soft_mode:
        assert 0 < float(expected[0].sum()) < 16  # random gates: some channels 0, some 1
    torch.manual_seed(2)
    x = torch.randn(4, 5, 16, 3, dtype=torch.float64, requires_grad=True)
    a, b = learnable.run(x), static.run(x)
    assert torch.equal(a.spikes, b.spikes) and torch.equal(a.state.v, b.state.v)
    b.spikes.sum().backward()
    assert x.grad is not None and "raw_alpha" not in dict(static.named_parameters())


def test_glif_sequence_length_is_fixed():
    glif = adalif.GLIF(num_channels=3, T=4)
    with pytest.raises(ValueError, match=r"x: GLIF was built for T=4 steps .*got a sequence of 6 steps"):
        glif(torch.randn(6, 2, 3))
    with pytest.raises(ValueError, match=r"T: GLIF has a parameter per time step, so it needs the number of steps T"):
        adalif.GLIF(num_channels=3)
    with pytest.raises(ValueError, match=r"x: GLIF with num_channels=3 expects input \[T, B, 3, ...\]"):
        glif(torch.randn(4, 2, 5))
    with pytest.raises(ValueError, match=r"t: expected a step in \[0, 4\)"):
        glif.step(torch.randn(2, 3), t=4)


def test_single_steps_equal_the_sequence():
    torch.manual_seed(1)
    for neuron in (adalif.CLIF(backend="reference"), adalif.GLIF(num_channels=3, T=5, random_gate=True,
                                                                 backend="reference")):
        x = torch.randn(5, 2, 3, 4)
        seq = neuron.run(x)
        state, spikes = None, []
        for t in range(5):
            out = neuron.step(x[t], state, t)
            state = out.state
            spikes.append(out.spikes)
        assert torch.equal(torch.stack(spikes), seq.spikes)
        assert all(torch.equal(a, b) for a, b in zip(state, seq.state))


def test_derived_constructor_validates_every_argument():
    with pytest.raises(TypeError, match="unexpected keyword argument 'taus'"):
        adalif.CLIF(taus=2.0)
    with pytest.raises(ValueError, match=r"tau: expected a membrane time constant > 1, got 0.5"):
        adalif.CLIF(tau=0.5)
    with pytest.raises(ValueError, match=r"v_threshold: expected a finite number, got 'high'"):
        adalif.CLIF(v_threshold="high")
    with pytest.raises(ValueError, match=r"soft_mode: expected true or false, got 1"):
        adalif.GLIF(num_channels=2, T=2, soft_mode=1)
    with pytest.raises(ValueError, match=r"tau_init: 1.5 is outside the range of GLIF's tau"):
        adalif.GLIF(num_channels=2, T=2, tau_init=1.5)
    with pytest.raises(ValueError, match=r"num_channels: granularity='channel' needs a positive channel count"):
        adalif.GLIF(T=2)
    with pytest.raises(ValueError, match=r"surrogate: unknown name 'relu'"):
        adalif.CLIF(surrogate="relu")
    clif = adalif.CLIF(tau=3.0, surrogate={"name": "atan", "scale": 2.0})
    assert clif.tau == 3.0 and clif.options.surrogate.kind == "atan" and list(clif.parameters()) == []


def test_registry_lists_every_neuron_and_refuses_duplicates():
    assert {"lif", "plif", "dalif", "arlif", "clif", "glif"} <= set(D.registered())
    assert D.get("clif").module_class() is adalif.CLIF and D.definition_of(adalif.PLIF()).name == "plif"
    with pytest.raises(ValueError, match="a neuron named 'clif' is registered already"):
        D.register(D.NeuronDefinition("clif", "Other", D.clif.CLIFOptions, D.clif.CLIFState, D.clif.clif_step))

    class Unregistered(adalif.LIF.__mro__[1]):  # a Neuron subclass nobody registered
        pass

    with pytest.raises(ValueError, match="Unregistered: not a registered neuron"):
        D.definition_of(Unregistered())


def test_models_configs_analysis_and_export_read_the_registry():
    from adalif.analysis import count_operations
    from adalif.export import to_nir
    from adalif.models import create_model

    model = create_model("digits_cnn", neuron={"name": "glif", "random_gate": True}, num_classes=10, in_channels=1,
                         T=3, width=4)
    glifs = [m for m in model.modules() if isinstance(m, adalif.GLIF)]
    assert glifs and all(m.T == 3 and m.granularity == "channel" for m in glifs)
    assert model(torch.rand(2, 1, 8, 8)).shape == (3, 2, 10)
    clif_model = create_model("digits_cnn", neuron="clif", num_classes=10, in_channels=1, T=2, width=4)
    x = torch.rand(2, 1, 8, 8)
    counts = count_operations(clif_model, x, neuron_ops=True)
    neuron_steps = sum(o.numel() for o in _neuron_outputs(clif_model, x)) / 2  # per sample
    assert counts.neuron_ops["transcendental"] == pytest.approx(2 * neuron_steps)
    assert counts.neuron_ops["mul"] == pytest.approx(5 * neuron_steps)
    with pytest.raises(ValueError, match=r"CLIF's complementary memory M .* has no NIR node"):
        to_nir(clif_model, x)
    with pytest.raises(ValueError, match="unknown neuron 'clfi'; expected one of"):
        create_model("digits_cnn", neuron="clfi")
    scaled = create_model("resnet19", neuron={"name": "glif", "granularity": "layer"}, T=2, bn_threshold=0.5,
                          num_classes=10)
    from adalif.layers import TimeBatchNorm

    scales = sorted({round(m.scale, 6) for m in scaled.modules() if isinstance(m, TimeBatchNorm)})
    assert scales == [round(0.5 / math.sqrt(2), 6), 0.5]


def _neuron_outputs(model, x):
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in model.modules()
             if isinstance(m, adalif.CLIF)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return outputs


def test_parameter_tracker_and_optimiser_groups_follow_the_definitions():
    from adalif.train.callbacks import ParameterTracker
    from adalif.train.module import SpikingClassifier

    module = SpikingClassifier({"name": "digits_cnn", "neuron": "glif", "options": {"width": 4}},
                               {"kind": "ce"}, {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4}, {"name": "constant"},
                               T=2, num_classes=10, in_channels=1)
    module._trainer = type("Trainer", (), {"max_epochs": 2})()
    opt = module.configure_optimizers()["optimizer"]
    glif = next(m for m in module.model.modules() if isinstance(m, adalif.GLIF))
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert group_of[id(glif.raw_alpha)]["lr"] == pytest.approx(0.01) and group_of[id(glif.raw_alpha)]["weight_decay"] == 0
    assert group_of[id(glif.raw_Vth)]["lr"] == pytest.approx(0.1) and group_of[id(glif.raw_Vth)]["weight_decay"] == 0
    conv = next(m for m in module.model.modules() if isinstance(m, nn.Conv2d))
    assert group_of[id(conv.weight)]["weight_decay"] == 5e-4
    logged = {}
    module.log_dict = logged.update
    ParameterTracker().on_train_epoch_end(None, module)
    name = next(n for n, m in module.model.named_modules() if m is glif)
    assert logged[f"param/{name}/alpha"] == pytest.approx(0.55) and logged[f"param/{name}/conduct"] == pytest.approx(0.5)


def test_spikingjelly_style_nodes_are_made_from_the_definitions():
    from adalif.compat import spikingjelly as sj

    torch.manual_seed(2)
    x = torch.randn(4, 3, 2, 5)
    for make in (lambda: sj.CLIFNode(), lambda: sj.GLIFNode(num_channels=2, T=4, random_gate=True)):
        torch.manual_seed(7)
        node = make()
        torch.manual_seed(7)
        multi = make()
        multi.step_mode = "m"
        single = torch.stack([node(x_t) for x_t in x])
        assert torch.equal(single, multi(x))
        assert torch.equal(node.v, multi.v)
        node.reset()
        assert node.t == 0 and node.state is None


def test_generic_module_repr_and_state_dict_round_trip():
    glif = adalif.GLIF(num_channels=2, T=3, random_gate=True)
    clone = adalif.GLIF(num_channels=2, T=3)
    clone.load_state_dict(glif.state_dict())
    assert torch.equal(clone.alpha, glif.alpha)
    assert "granularity='channel', num_channels=2, T=3" in repr(glif)


class ALIFLike:
    """A neuron defined in a test: the definition alone gives a module and every path."""

    @staticmethod
    def definition():
        from typing import NamedTuple

        class Options(NamedTuple):
            v_threshold: float = 1.0
            surrogate: object = Triangle(1.0)

        class State(NamedTuple):
            v: torch.Tensor
            a: torch.Tensor

        def step(x, state, p):
            h = p.decay * state.v + x
            theta = p.v_threshold + 1.8 * state.a
            s = p.surrogate(h - theta)
            return StepOutput(s, State(h - s * theta, 0.9 * state.a + s), h)

        return D.NeuronDefinition("alif_test", "ALIFTest", Options, State, step,
                                  parameters=(D.Parameter("decay", 0.8, per="channel", constrain=torch.sigmoid,
                                                          inverse=lambda d: math.log(d / (1 - d))),),
                                  ops={"mul": 3, "add": 3})


def test_a_registered_definition_is_a_neuron_everywhere():
    from adalif.compat.spikingjelly import node_class
    from adalif.models import create_model

    d = D.register(ALIFLike.definition(), replace=True)
    model = create_model("digits_cnn", neuron={"name": "alif_test", "granularity": "channel"}, num_classes=10,
                         in_channels=1, T=2, width=4)
    neurons = [m for m in model.modules() if isinstance(m, d.module_class())]
    assert neurons and neurons[0].raw_decay.shape == (4,)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 2, 10)
    node = node_class("alif_test")(granularity="layer")
    assert node(torch.randn(3, 5)).shape == (3, 5) and node.__getattr__("a").shape == (3, 5)


def test_core_with_definitions_imports_only_torch_and_numpy():
    import subprocess
    import sys

    code = ("import sys, adalif, adalif.definitions, adalif.neurons, adalif.functional, adalif.surrogate, adalif.kernels; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for library in ("lightning", "jsonargparse", "nir", "sklearn", "matplotlib", "kornia", "PIL", "yaml", "scipy",
                    "torchmetrics", "spikingjelly", "h5py"):
        assert f"'{library}'" not in out, library


def test_every_parameter_of_every_registered_definition_reads_back_its_init():
    checked = []
    for name in D.registered():
        d = D.get(name)
        if d.module is not None:  # hand-written modules: their own constructors (tests/test_neurons.py)
            continue
        kwargs = {"num_channels": 3} if d.per_channel and d.granularity == "channel" else {}
        kwargs.update({"T": 2} if d.per_step else {})
        module = d.module_class()(**kwargs)
        for p in d.parameters:
            if callable(p.init):  # a function giving the raw tensor (random gates): no value to read back
                continue
            value = getattr(module, p.name).detach().double()
            assert float((value - p.init).abs().max()) <= 1e-6, (name, p.name, value, p.init)
            checked.append((name, p.name))
    assert ("glif", "tau") in checked and ("cuba_lif", "mem_decay") in checked


def bad_record(**parameter):
    return D.NeuronDefinition("bad", "Bad", D.clif.CLIFOptions, D.clif.CLIFState, D.clif.clif_step,
                              parameters=(D.Parameter("decay", 0.9, **parameter),))


def test_a_constrained_parameter_without_inverse_is_refused_at_definition_time():
    # sigma(0.9) = 0.711 would be what users read for decay_init=0.9
    with pytest.raises(ValueError, match=r"^NeuronDefinition\('bad'\).parameters: 'decay' has constrain=sigmoid but "
                                         r"no inverse; its init 0.9 is the value users read, so give inverse"):
        bad_record(constrain=torch.sigmoid)
    logit = lambda v: math.log(v / (1 - v))  # noqa: E731
    good = bad_record(constrain=torch.sigmoid, inverse=logit).module_class()
    assert float(good().decay.detach()) == pytest.approx(0.9)
    assert float(good(decay_init=0.2).decay.detach()) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"decay_init: 0.9 reads back as 0.97\d+ through Bad's decay"):
        bad_record(constrain=torch.tanh, inverse=logit).module_class()()  # an inverse of another constraint
    raw = lambda shape, options: torch.zeros(shape)  # noqa: E731
    assert float(D.NeuronDefinition("bad", "Bad", D.clif.CLIFOptions, D.clif.CLIFState, D.clif.clif_step,
                                    parameters=(D.Parameter("decay", raw, constrain=torch.sigmoid),))
                 .module_class()().decay.detach()) == 0.5  # an init function gives the raw tensor: no inverse needed


def test_report_labels_come_from_the_definitions():
    from adalif.experiments import report

    assert not hasattr(report, "PARAMETER_LABELS")  # no per-name table: each definition labels its own
    arlif = D.get("arlif")
    assert arlif.label("tanh_a") == "tanh(a) (threshold amplitude)"  # theta_t = V_th + tanh(a) tanh(X_t)
    assert arlif.label("c") == "c (leak-gate input scale)"  # sigma(c X_t) gates the memory's leak
    assert D.get("dalif").label("alpha") == "α (spatial decay)" and D.get("plif").label("tau") == "τ (time constant)"
    assert D.get("glif").label("alpha") == "α (leak gate)"  # GLIF's alpha is a gate, not DA-LIF's decay
    assert D.Parameter("rho", 0.5).label == "rho" and arlif.label("not_tracked") == "not_tracked"
    label = report.parameter_labels({"config": {"model": {"neuron": {"name": "arlif", "a_init": 0.1}}}}, "run")
    assert label("tanh_a") == "tanh(a) (threshold amplitude)" and label("other") == "other"
    assert report.parameter_labels({"config": {"model": {"neuron": "hard_lif"}}}, "run")("tau") == "tau"  # a preset: LIF
