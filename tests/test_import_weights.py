"""Weights from the official AR-LIF code: state dicts written here with the official key names and
shapes (read from the official model files), imported, and run against a reference forward that
follows the official single-step networks, written here from their source."""

import math

import pytest
import torch
import torch.nn.functional as F

from adalif.compat.arlif_official import convert_state_dict, detect_architecture, load_official_state_dict
from adalif.models import create_model


@pytest.fixture(autouse=True)
def _reference_backend(monkeypatch):
    # These tests check key mapping and architectures, not kernels (tested in test_kernels.py).
    monkeypatch.setenv("ADALIF_BACKEND", "reference")


# -- official state dicts ------------------------------------------------------------------------
def _conv(sd, key, cin, cout, k, bias=True):
    sd[key + ".weight"] = torch.randn(cout, cin, k, k) * math.sqrt(2.0 / (cin * k * k))
    if bias:
        sd[key + ".bias"] = torch.randn(cout) * 0.1


def _bn(sd, key, c):
    sd[key + ".weight"] = 1 + 0.2 * torch.randn(c)
    sd[key + ".bias"] = 0.2 * torch.randn(c) + 0.3
    sd[key + ".running_mean"] = 0.2 * torch.randn(c)
    sd[key + ".running_var"] = 0.5 + torch.rand(c)
    sd[key + ".num_batches_tracked"] = torch.tensor(123)


def _xlif(sd, key):
    sd[key + ".a"] = torch.tensor(0.3) * torch.randn(())
    sd[key + ".c"] = 1 + 0.3 * torch.randn(())


def _linear(sd, key, cin, cout):
    sd[key + ".weight"] = torch.randn(cout, cin) * math.sqrt(3.0 / cin)
    sd[key + ".bias"] = 0.1 * torch.randn(cout)


VGG = {
    "spiking_vgg11_bn": [[64, "M"], [128, "M"], [256, 256, "M"], [512, 512, "M"], [512, 512, "M"]],
    "spiking_vgg13_bn": [[64, 64, "M"], [128, 128, "M"], [256, 256, "M"], [512, 512, "M"], [512, 512, "M"]],
}
VGGSNN = [64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def official_state_dict(arch, c_in, classes, side=None):
    sd = {}
    if arch == "spiking_resnet18":  # PreActResNet(PreActBlock, [2, 2, 2, 2])
        _conv(sd, "conv1", c_in, 64, 3, bias=False)
        cin = 64
        for s, width in enumerate((64, 128, 256, 512), start=1):
            for b in range(2):
                p = f"layer{s}.{b}."
                _bn(sd, p + "bn1", cin)
                _conv(sd, p + "conv1", cin, width, 3)
                _bn(sd, p + "bn2", width)
                _conv(sd, p + "conv2", width, width, 3)
                if cin != width:
                    _conv(sd, p + "shortcut", cin, width, 1)
                _xlif(sd, p + "relu1"), _xlif(sd, p + "relu2")
                cin = width
        _bn(sd, "bn1", 512)
        _linear(sd, "linear", 512, classes)
        _xlif(sd, "relu1")
    elif arch in VGG:  # SpikingVGGBN: layerN = [conv, bn, neuron, dropout] per conv, AvgPool per "M"
        cin = c_in
        for g, group in enumerate(VGG[arch], start=1):
            j = 0
            for item in group:
                if item == "M":
                    j += 1
                    continue
                _conv(sd, f"layer{g}.{j}", cin, item, 3), _bn(sd, f"layer{g}.{j + 1}", item), _xlif(sd, f"layer{g}.{j + 2}")
                cin, j = item, j + 4
        _linear(sd, "classifier.1", 512 * 49, classes)
    else:  # VGGSNN: Tiny-ImageNet (vgg_model.Layer(fwd=[conv, bn], act)) or AR-LIF-PSN (Layer(fwd=SeqToANN), neuron)
        cin, k = c_in, 0
        psn = arch == "psn_vggsnn"
        for item in VGGSNN:
            if item == "M":
                k += 1
                continue
            fwd = f"features.{k}.fwd.module" if psn else f"features.{k}.fwd"
            _conv(sd, fwd + ".0", cin, item, 3), _bn(sd, fwd + ".1", item)
            _xlif(sd, f"features.{k + 1}" if psn else f"features.{k}.act")
            cin, k = item, k + (2 if psn else 1)
        _linear(sd, "classifier.1.module" if psn else "classifier", 512 * (side // 16) ** 2, classes)
    return sd


# -- the official forward, one time step at a time --------------------------------------------------
class XLIF:
    """The official XLIF (and, with ``carry=False, decay=0.2``, the PSN fork's aLIFSpike)."""

    def __init__(self, a, c, decay=0.5, carry=True):
        self.a, self.c, self.decay, self.carry = a, c, decay, carry
        self.v = self.m = 0.0

    def __call__(self, x):
        self.v = self.v * self.decay + x
        shift = torch.tanh(self.a) * torch.tanh(x)
        spike = (self.v - 1.0 - shift >= 0).to(x.dtype)
        m = self.m if self.carry and torch.is_tensor(self.m) else torch.zeros_like(x)
        m = torch.relu(m) * torch.sigmoid(self.c * x) - torch.relu(-m) * (1 - torch.sigmoid(self.c * x))
        self.m = m + spike * torch.sigmoid(x) - (1 - spike) * torch.sigmoid(x)
        self.v = self.v - spike * (1.0 + torch.sigmoid(self.m) + shift)
        return spike


def official_forward(arch, sd, x_seq, **neuron):
    """Per-step logits [T, B, K] of the official network in eval mode, called once per step."""
    neurons = {}

    def act(key, x):
        if key not in neurons:
            neurons[key] = XLIF(sd[key + ".a"], sd[key + ".c"], **neuron)
        return neurons[key](x)

    def bn(key, x):
        return F.batch_norm(x, sd[key + ".running_mean"], sd[key + ".running_var"], sd[key + ".weight"], sd[key + ".bias"])

    def conv(key, x, stride=1):
        w = sd[key + ".weight"]
        return F.conv2d(x, w, sd.get(key + ".bias"), stride, w.shape[-1] // 2)

    outputs = []
    for x in x_seq:
        if arch == "spiking_resnet18":
            out = conv("conv1", x)
            for s in range(1, 5):
                for b in range(2):
                    p, stride = f"layer{s}.{b}.", 2 if s > 1 and b == 0 else 1
                    xs = act(p + "relu1", bn(p + "bn1", out))
                    o = conv(p + "conv2", act(p + "relu2", bn(p + "bn2", conv(p + "conv1", xs, stride))))
                    out = o + (conv(p + "shortcut", xs, stride) if p + "shortcut.weight" in sd else xs)
            out = F.avg_pool2d(act("relu1", bn("bn1", out)), 4).flatten(1)
            outputs.append(F.linear(out, sd["linear.weight"], sd["linear.bias"]))
        elif arch in VGG:
            out = x
            for g, group in enumerate(VGG[arch], start=1):
                j = 0
                for item in group:
                    if item == "M":
                        out, j = F.avg_pool2d(out, 2), j + 1
                    else:
                        out, j = act(f"layer{g}.{j + 2}", bn(f"layer{g}.{j + 1}", conv(f"layer{g}.{j}", out))), j + 4
            out = F.adaptive_avg_pool2d(out, (7, 7)).flatten(1)
            outputs.append(F.linear(out, sd["classifier.1.weight"], sd["classifier.1.bias"]))
        else:
            psn, out, k = arch == "psn_vggsnn", x, 0
            for item in VGGSNN:
                if item == "M":
                    out, k = F.avg_pool2d(out, 2), k + 1
                    continue
                fwd = f"features.{k}.fwd.module" if psn else f"features.{k}.fwd"
                out = act(f"features.{k + 1}" if psn else f"features.{k}.act", bn(fwd + ".1", conv(fwd + ".0", out)))
                k += 2 if psn else 1
            head = "classifier.1.module" if psn else "classifier"
            outputs.append(F.linear(out.flatten(1), sd[head + ".weight"], sd[head + ".bias"]))
    return torch.stack(outputs)


# arch -> (adalif model, its options, neuron spec, official neuron arguments, input [T, B, C, H, W])
CASES = {
    "spiking_resnet18": ("preact_resnet18", {}, "arlif", {}, (2, 2, 3, 32, 32)),
    "spiking_vgg11_bn": ("vgg11_bn", {"dropout": 0.4}, "arlif", {}, (2, 1, 2, 32, 32)),
    "spiking_vgg13_bn": ("vgg13_bn", {}, "arlif", {}, (2, 1, 3, 32, 32)),
    "vggsnn": ("vggsnn", {"input_size": 64}, "arlif", {}, (2, 1, 3, 64, 64)),
    "psn_vggsnn": ("vggsnn", {"input_size": 48, "dropout": 0.25, "dropout_mode": "per_step"},
                   {"name": "arlif", "decay": 0.2, "carry_memory": False, "surrogate": "triangle"},
                   {"decay": 0.2, "carry": False}, (2, 2, 2, 48, 48)),
}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_imported_official_weights_give_the_official_forward(arch, tmp_path):
    name, options, neuron, official_neuron, shape = CASES[arch]
    torch.manual_seed(0)
    c_in, side, classes = shape[2], shape[-1], 7
    sd = official_state_dict(arch, c_in, classes, side)
    wrapped = {"net": {"module." + k: v for k, v in sd.items()}, "epoch": 3, "max_test_acc": 0.5}  # DataParallel-saved
    torch.save(wrapped if arch != "psn_vggsnn" else {"model": sd, "best_acc": 50.0}, tmp_path / "official.pth")
    loaded = load_official_state_dict(tmp_path / "official.pth")
    assert detect_architecture(loaded) == arch and set(loaded) == set(sd)
    model = create_model(name, neuron=neuron, num_classes=classes, in_channels=c_in, T=shape[0], bn="per_step",
                         **options)
    imported = convert_state_dict(loaded, model)
    model.load_state_dict(imported.state_dict)
    assert len(imported.mapping) == len(sd)
    model = model.double().eval()
    sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    x = torch.rand(*shape, dtype=torch.float64) * 2
    with torch.no_grad():
        logits = model(x)
        expect = official_forward(arch, sd64, x, **official_neuron)
    torch.testing.assert_close(logits, expect, rtol=1e-9, atol=1e-9)
    assert logits.std() > 0


def test_import_errors_name_the_key(tmp_path):
    torch.manual_seed(0)
    sd = official_state_dict("spiking_vgg11_bn", 2, 11)
    model = lambda neuron="arlif": create_model("vgg11_bn", neuron=neuron, num_classes=11, in_channels=2)  # noqa: E731
    bad = dict(sd, **{"classifier.1.weight": torch.zeros(10, 512 * 49)})
    with pytest.raises(ValueError, match=r"classifier.1.weight has shape \(10, 25088\), but head.0.2.weight"):
        convert_state_dict(bad, model())
    with pytest.raises(ValueError, match=r"layer1.2.a has no counterpart features.1.a in the adalif model"):
        convert_state_dict(sd, model(neuron="lif"))
    extra = dict(sd, **{"layer1.9.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"layer1.9.weight does not map onto the adalif model"):
        convert_state_dict(extra, model())
    no_a = {k: v for k, v in sd.items() if not k.endswith(".a")}
    with pytest.raises(ValueError, match=r"nothing in the official state dict fills features.1.a"):
        convert_state_dict(no_a, model())
    with pytest.raises(ValueError, match=r"the official spiking_vgg11_bn has 8 conv layers, the adalif SpikingNet has 10"):
        convert_state_dict(sd, create_model("vgg13_bn", neuron="arlif", num_classes=11, in_channels=2))
    with pytest.raises(ValueError, match=r"not one of the official AR-LIF architectures"):
        detect_architecture({"foo.weight": torch.zeros(1)})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk.pth' is not a readable PyTorch checkpoint"):
        load_official_state_dict(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match=r"missing.pth' does not exist"):
        load_official_state_dict(tmp_path / "missing.pth")


def test_import_weights_command_writes_a_checkpoint_that_adalif_eval_reads(tmp_path, monkeypatch):
    """`adalif import-weights` on the CIFAR-10 recipe, then `adalif eval` on a CIFAR-10 fixture:
    its loss equals the TET loss of the official forward on the same (normalised) test images."""
    from adalif.cli import main as cli_main  # noqa: F401  (the console entry point exists)
    from adalif.data.cifar import load
    from adalif.losses import SpikingLoss
    from adalif.cli import main
    from adalif.train.run import evaluate
    from tests.data.fixtures import cifar_tree

    torch.manual_seed(0)
    sd = official_state_dict("spiking_resnet18", 3, 10)
    torch.save({"net": sd, "epoch": 399}, tmp_path / "checkpoint_max.pth")
    out = tmp_path / "r18.ckpt"
    assert main(["import-weights", "--from", "arlif-official", str(tmp_path / "checkpoint_max.pth"), "--config",
                 "configs/arlif_cifar10_resnet18_T4.yaml", "--out", str(out)]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["adalif"]["imported_from"]["arch"] == "spiking_resnet18"
    assert ckpt["adalif"]["config"]["model"]["options"] == {"bn": "per_step"}
    cifar_tree(tmp_path / "cifar10", "cifar10", n=4)
    result = evaluate(str(out), {"data.root": str(tmp_path / "cifar10"), "trainer.progress_bar": False})
    test = load("cifar10", str(tmp_path / "cifar10"), train=False)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    images = (torch.from_numpy(test.images).float() / 255 - mean) / std
    logits = official_forward("spiking_resnet18", sd, images.unsqueeze(0).expand(4, *images.shape))
    labels = torch.from_numpy(test.labels)
    loss = SpikingLoss(kind="tet", mse_weight=0.05, phi=1.0)(logits, labels)
    assert result["loss"] == pytest.approx(float(loss), rel=1e-4)
    assert result["accuracy"] == pytest.approx(float((logits.mean(0).argmax(1) == labels).float().mean()))
    assert main(["import-weights", str(tmp_path / "missing.pth"), "--config", "configs/arlif_cifar10_resnet18_T4.yaml",
                 "--out", str(tmp_path / "x.ckpt")]) == 2
    assert not (tmp_path / "x.ckpt").exists()
