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
