"""Every registered model: output shape, backward, and parameter counts of recipes.md."""

import pytest
import torch

from adalif.models import create_model, list_models, neuron_factory
from adalif.neurons import ARLIF, DALIF, Neuron

@pytest.fixture(autouse=True)
def _reference_backend(monkeypatch):
    # These tests check architectures; the fused kernels have their own tests, and compiling
    # them for every layer shape here would only cost time.
    monkeypatch.setenv("ADALIF_BACKEND", "reference")


count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731

# name -> (kwargs, input shape)
TINY = {
    "resnet19": (dict(num_classes=10, T=2), (2, 3, 16, 16)),
    "resnet20_mpbn": (dict(num_classes=10, T=2), (2, 3, 16, 16)),
    "resnet18": (dict(num_classes=7, T=2), (2, 3, 32, 32)),
    "resnet34": (dict(num_classes=7, T=2), (2, 3, 32, 32)),
    "preact_resnet18": (dict(num_classes=10, T=2, dropout=0.1), (2, 3, 16, 16)),
    "vgg11_bn": (dict(num_classes=11, T=2, in_channels=2, dropout=0.2), (2, 2, 2, 32, 32)),
    "vgg13_bn": (dict(num_classes=200, T=2), (2, 3, 32, 32)),
    "vggsnn": (dict(num_classes=10, T=2, in_channels=2), (2, 2, 2, 48, 48)),
    "digits_cnn": (dict(num_classes=10, T=3), (4, 1, 8, 8)),
}


def test_every_registered_model_is_covered():
    assert sorted(TINY) == list_models()


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("neuron", ["lif", {"name": "dalif", "granularity": "channel"}, "arlif"])
def test_forward_backward_and_output_shape(name, neuron):
    kwargs, shape = TINY[name]
    torch.manual_seed(0)
    model = create_model(name, neuron=neuron, **kwargs)
    x = torch.randn(*shape)
    out = model(x)
    T = kwargs["T"]
    B = shape[0] if len(shape) == 4 else shape[1]
    assert out.shape == (T, B, kwargs["num_classes"])
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("resnet19", dict(num_classes=10), 12_697_994),
        ("resnet19", dict(num_classes=10, stem=64), 12_630_858),
        ("resnet19", dict(num_classes=100), 12_721_124),
        ("vggsnn", dict(in_channels=2, num_classes=10), 9_271_498),
        ("vggsnn", dict(in_channels=2, num_classes=10, input_size=128), 9_553_098),
        ("vggsnn", dict(in_channels=3, num_classes=200, input_size=64), 10_864_584),
    ],
)
def test_parameter_counts_of_recipes_md(name, kwargs, expected):
    assert count(create_model(name, neuron="lif", **kwargs)) == expected


def test_neuron_parameter_overhead_is_two_scalars_per_layer():
    lif = create_model("resnet19", neuron="lif")
    dalif = create_model("resnet19", neuron="dalif")
    layers = [m for m in dalif.modules() if isinstance(m, Neuron)]
    assert len(layers) == 18  # stem + 2 per block x 8 + head
    assert count(dalif) - count(lif) == 2 * 18
    arlif = create_model("vggsnn", neuron={"name": "arlif", "decay": 0.2, "carry_memory": False})
    assert all(isinstance(m, ARLIF) and m.decay == 0.2 for m in arlif.modules() if isinstance(m, Neuron))


def test_per_channel_dalif_gets_each_layers_channel_count():
    model = create_model("resnet19", neuron={"name": "dalif", "granularity": "channel"})
    channels = sorted({m.num_channels for m in model.modules() if isinstance(m, DALIF)})
    assert channels == [128, 256, 512]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: create_model("resnet99"), "model: unknown model 'resnet99'"),
        (lambda: create_model("resnet19", neuron="izhikevich"), "neuron: unknown neuron 'izhikevich'"),
        (lambda: create_model("resnet19", neuron={"name": "dalif", "gamma": 1}), "neuron.gamma: not an argument of DALIF"),
        (lambda: create_model("resnet19", neuron={"name": "dalif", "alpha_init": 2.0}), "alpha_init: 2.0 cannot be reached"),
        (lambda: create_model("resnet19", T=0), "T: expected an integer >= 1"),
        (lambda: create_model("resnet19", depth=3), "model.depth: not an option of resnet19"),
        (lambda: neuron_factory({"decay": 0.5}), "neuron: expected a name or a dict with 'name'"),
    ],
)
def test_bad_model_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _as_single_step_network(model):
    """The model as the official AR-LIF code runs it: called once per time step on [1, B, ...]
    (so every batch norm sees one step), each neuron carrying its state between the calls."""
    for neuron in (m for m in model.modules() if isinstance(m, Neuron)):
        neuron.carried = None

        def forward(x, neuron=neuron):
            out = neuron.run(x, neuron.carried)
            neuron.carried = out.state
            return out.spikes

        neuron.forward = forward
    return model


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_per_step_batch_norm_model_equals_the_single_step_network_called_T_times(name, train):
    kwargs, shape = TINY[name]
    kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}  # masks are random: compared elsewhere
    torch.manual_seed(0)
    ours = create_model(name, neuron="arlif", bn="per_step", **kwargs).double().train(train)
    official = _as_single_step_network(create_model(name, neuron="arlif", **kwargs).double().train(train))
    official.load_state_dict(ours.state_dict())
    if not train:  # non-trivial running statistics
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
        official.load_state_dict(ours.state_dict())
    T = kwargs["T"]
    x = torch.rand(*shape, dtype=torch.float64) * 3
    seq = x if len(shape) == 5 else x.unsqueeze(0).expand(T, *shape)
    y = ours(seq)
    expect = torch.cat([official(seq[t : t + 1]) for t in range(T)])
    torch.testing.assert_close(y, expect, rtol=1e-6, atol=1e-6)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (expect * w).sum().backward()
    official_params = dict(official.named_parameters())
    for key, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, official_params[key].grad, rtol=1e-6, atol=1e-6, msg=key)
    official_buffers = dict(official.named_buffers())
    for key, b in ours.named_buffers():  # running mean and variance updated T times, in time order
        torch.testing.assert_close(b, official_buffers[key], rtol=1e-6, atol=1e-6, msg=key)


def test_bn_and_dropout_mode_options():
    model = create_model("vggsnn", neuron="lif", bn="per_step", dropout=0.25, dropout_mode="per_step")
    from adalif.layers import SharedDropout, TimeBatchNorm

    assert {m.mode for m in model.modules() if isinstance(m, TimeBatchNorm)} == {"per_step"}
    assert any(type(m) is torch.nn.Dropout for m in model.modules())
    assert not any(isinstance(m, SharedDropout) for m in model.modules())
    assert {m.mode for m in create_model("resnet19").modules() if isinstance(m, TimeBatchNorm)} == {"time_batch"}
    with pytest.raises(ValueError, match=r"model.bn: got 'batch', expected one of \['time_batch', 'per_step'\]"):
        create_model("resnet19", bn="batch")
    with pytest.raises(ValueError, match=r"dropout_mode: got 'x'"):
        create_model("vgg11_bn", dropout=0.1, dropout_mode="x")


class _OfficialRectangle(torch.autograd.Function):
    """The official AR-LIF ``modules/surrogate.py`` rectangle: gradient 1/alpha where |x| <= alpha/2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 0.5).to(x.dtype)


def _official_baseline(x_seq, reset):
    """hardLIF / softLIF of the official modules/neuron.py, one step at a time."""
    v, out = 0.0, []
    for x in x_seq:
        v = v * 0.5 + x
        s = _OfficialRectangle.apply(v - 1.0)
        v = v * (1 - s) if reset == "hard" else v - s * 1.0
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("preset, reset", [("hard_lif", "hard"), ("soft_lif", "soft")])
def test_official_baseline_presets_equal_the_official_neurons(preset, reset):
    torch.manual_seed(0)
    x = torch.randn(8, 4, 32, dtype=torch.float64) * 1.5
    w = torch.randn_like(x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = neuron_factory(preset)(32)(xa)
    theirs = _official_baseline(xb, reset)
    assert torch.equal(ours, theirs) and 0 < ours.mean() < 1
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
    # LIF's default surrogate (Sigmoid(4)) is not the official one: the gradients differ.
    xc = x.clone().requires_grad_()
    (neuron_factory({"name": "lif", "tau": 2.0, "decay_input": False, "v_reset": 0.0 if reset == "hard" else None})(32)(xc) * w).sum().backward()
    assert (xc.grad - xb.grad).norm() > 0.2 * xb.grad.norm()
