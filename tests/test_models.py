"""Every registered model: output shape, backward, and parameter counts of recipes.md."""

import math

import pytest
import torch
from torch import nn

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
        (lambda: create_model("resnet19", shortcut_bn="yes"), "model.shortcut_bn: expected true or false, got 'yes'"),
        (lambda: create_model("preact_resnet18", zero_conv_bias=0), "model.zero_conv_bias: expected true or false, got 0"),
    ],
)
def test_bad_model_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_resnet19_shortcut_bn_adds_the_glif_codes_tdbn_to_the_six_identity_shortcuts():
    """GLIF's blocks.py:237-238: the identity shortcut is tdBN(alpha = 1/sqrt 2); with stem 128 six of
    the eight blocks have one: 2 x (3 x 128 + 2 x 256 + 512) = 2,816 parameters (stem 64: five)."""
    for stem, extra in ((128, 2_816), (64, 2_560)):
        plain = create_model("resnet19", neuron="lif", stem=stem)
        assert count(create_model("resnet19", neuron="lif", stem=stem, shortcut_bn=True)) - count(plain) == extra
    from adalif.layers import TimeBatchNorm

    model = create_model("resnet19", neuron={"name": "glif", "random_gate": True}, head="glif", bn_threshold=0.5,
                         shortcut_bn=True, T=2)
    blocks = list(model.features[1])
    identity = [i for i, b in enumerate(blocks) if isinstance(b.shortcut, TimeBatchNorm)]
    assert identity == [0, 1, 2, 4, 5, 7]
    for i, block in enumerate(blocks):
        # Both shortcuts, and the branch's last BN, scale by alpha V_th = 0.5 / sqrt 2 (tdBN, GLIF's V_th 0.5).
        bn = block.shortcut if i in identity else block.shortcut[1]
        assert bn.scale == pytest.approx(0.5 / math.sqrt(2)) and block.branch[2][1].scale == bn.scale
        if i not in identity:
            conv = next(m for m in block.shortcut[0].modules() if isinstance(m, nn.Conv2d))
            assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None


def glif_td_batch_norm(x, bn, alpha, v_threshold=0.5):
    """GLIF's layers.py tdBatchNorm in training mode on [T, B, C, H, W]: statistics over T·B·H·W,
    biased variance, alpha·V_th·(x - mean)/sqrt(var + eps), then the affine map."""
    y = x.flatten(0, 1)
    mean, var = y.mean([0, 2, 3]), y.var([0, 2, 3], unbiased=False)
    y = alpha * v_threshold * (y - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
    return (y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]).view_as(x)


def test_resnet19_shortcut_bn_block_equals_the_glif_codes_block_forward():
    torch.manual_seed(0)
    model = create_model("resnet19", neuron={"name": "glif", "random_gate": True}, head="glif", bn_threshold=0.5,
                         shortcut_bn=True, T=2).double().train()
    block = model.features[1][4]  # 256 channels, identity shortcut
    with torch.no_grad():
        block.shortcut.bn.weight.uniform_(0.5, 1.5), block.shortcut.bn.bias.uniform_(-0.3, 0.3)
    x = (torch.rand(2, 3, 256, 4, 4, dtype=torch.float64) < 0.3).double()  # spikes, as the previous block's
    expected = block.neuron(block.branch(x) + glif_td_batch_norm(x, block.shortcut.bn, 1 / math.sqrt(2)))
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)
    # The whole network: forward, and gradients reach the shortcut BNs.
    out = model(torch.rand(2, 3, 16, 16, dtype=torch.float64))
    assert out.shape == (2, 2, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert block.shortcut.bn.weight.grad.abs().sum() > 0


def test_preact_resnet18_can_keep_the_default_conv_bias_init_of_the_official_clif_code():
    """The official CLIF (and AR-LIF) PreActResNet re-draws only the conv weights (Kaiming-normal,
    fan_out); its conv biases keep PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The FC bias is 0."""
    torch.manual_seed(0)
    zeroed = create_model("preact_resnet18", neuron="clif")
    kept = create_model("preact_resnet18", neuron="clif", zero_conv_bias=False)

    def convs(model):
        return [c for c in model.modules() if isinstance(c, nn.Conv2d) and c.bias is not None]

    assert len(convs(kept)) == len(convs(zeroed)) == 19  # 2 per block x 8, 3 shortcut convs; the stem has none
    assert all((c.bias == 0).all() for c in convs(zeroed))
    for c in convs(kept):
        bound = 1 / math.sqrt(c.in_channels * c.kernel_size[0] * c.kernel_size[1])
        assert c.bias.abs().max() <= bound and c.bias.std() > 0.4 * bound  # U(-b, b) has std b / sqrt 3
        fan_out = c.out_channels * c.kernel_size[0] * c.kernel_size[1]
        assert abs(float(c.weight.detach().std()) / math.sqrt(2 / fan_out) - 1) < 0.1  # still Kaiming-normal
    for model in (zeroed, kept):
        assert all((m.bias == 0).all() for m in model.modules() if isinstance(m, nn.Linear))


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
