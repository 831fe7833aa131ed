# %% [markdown]
# # From SpikingJelly
#
# Most published spiking-network code is written for SpikingJelly's `activation_based` API:
# single-step modules called once per time step, a state kept between calls, and
# `functional.reset_net(net)` between batches. This page puts adalif's neurons into such code
# unchanged, and then loads weights trained with the official AR-LIF code (itself SpikingJelly
# code) into an adalif model, from a small checkpoint written here.
#
# ## Drop-in nodes
#
# `adalif.compat.spikingjelly` has a node per neuron (`LIFNode`, `ParametricLIFNode`,
# `DALIFNode`, `ARLIFNode`, and `node_class(name)` for any registered one). Each is the adalif
# neuron with SpikingJelly's calling convention: `step_mode="s"` or `"m"`, a state carried between
# calls, `reset()`. Below, a SpikingJelly network built from its own `layer` modules, with
# SpikingJelly's LIF node swapped for adalif's.

# %%
import os

import torch
from spikingjelly.activation_based import functional, layer, neuron as sj_neuron
from torch import nn

from adalif.compat.spikingjelly import DALIFNode, LIFNode, reset_net

torch.manual_seed(0)


def make_net(node):
    return nn.Sequential(
        layer.Conv2d(2, 8, 3, padding=1), layer.BatchNorm2d(8), node(),
        layer.AvgPool2d(2), layer.Flatten(), layer.Linear(8 * 4 * 4, 5),
    )


T, N = 6, 4
x_seq = torch.rand(T, N, 2, 8, 8) * 3                 # [T, N, C, H, W]

net = make_net(DALIFNode).eval()
with torch.no_grad():
    single = torch.stack([net(x_t) for x_t in x_seq])  # step_mode "s": one call per step
    functional.reset_net(net)                          # SpikingJelly's own reset
    functional.set_step_mode(net, "m")                 # every module, adalif's node included
    multi = net(x_seq)                                 # one call on [T, N, ...]
    functional.reset_net(net)
print("outputs", tuple(multi.shape))
print("single-step == multi-step:", torch.allclose(single, multi, atol=1e-6))

# %% [markdown]
# The warnings above are SpikingJelly's: its `reset_net` and `set_step_mode` log one for every
# module that is not its own `MemoryModule` or `StepModule`, and then do their work all the same.
# `adalif.compat.spikingjelly.reset_net(net)` does the same reset without the warning.
#
# ## The same spikes as SpikingJelly's LIF
#
# adalif's `LIFNode` has SpikingJelly's `LIFNode` equations and defaults ([Neurons](../neurons.md)).
# Copy the weights of one network into another whose only difference is the node, and compare:

# %%
sj = make_net(sj_neuron.LIFNode).eval()
ours = make_net(LIFNode).eval()
ours.load_state_dict(sj.state_dict())
for module in (sj, ours):
    functional.set_step_mode(module, "m")
with torch.no_grad():
    features_sj = sj[:3](x_seq)                        # the spikes after the node
    features_ours = ours[:3](x_seq)
    out_sj, out_ours = sj(x_seq), ours(x_seq)
functional.reset_net(sj)
reset_net(ours)
print("spikes:", int(features_sj.sum()), "(SpikingJelly)", int(features_ours.sum()), "(adalif)")
print("identical spikes:", torch.equal(features_sj, features_ours))
print("largest output difference:", (out_sj - out_ours).abs().max().item())

# %% [markdown]
# ## Official AR-LIF weights
#
# `adalif import-weights --from arlif-official` reads a checkpoint saved by the official AR-LIF
# `train.py` (`checkpoint["net"]`, key names of its single-step modules) and writes an adalif
# checkpoint of the same recipe's model, which `adalif eval` and the analysis tools read
# ([Models](../models.md#weights-trained-with-the-official-ar-lif-code)). Its smallest
# architecture is the CIFAR pre-activation ResNet-18 (`spiking_resnet18`, 11 million weights);
# the official code has no smaller network, so we write that one, with random weights, under the
# official key names: a stem convolution, four stages of two pre-activation blocks (each with two
# batch norms, two convolutions, a 1x1 shortcut where the width changes, and two XLIF neurons whose
# parameters are `a` and `c`), a last batch norm and neuron, and the classifier `linear`.

# %%
import math


def conv(sd, key, cin, cout, k, bias=True):
    sd[key + ".weight"] = torch.randn(cout, cin, k, k) * math.sqrt(2.0 / (cin * k * k))
    if bias:
        sd[key + ".bias"] = torch.randn(cout) * 0.1


def batch_norm(sd, key, c):
    sd.update({key + ".weight": 1 + 0.2 * torch.randn(c), key + ".bias": 0.2 * torch.randn(c) + 0.3,
               key + ".running_mean": 0.2 * torch.randn(c), key + ".running_var": 0.5 + torch.rand(c),
               key + ".num_batches_tracked": torch.tensor(100)})


def xlif(sd, key):                                     # the official AR-LIF neuron's parameters
    sd[key + ".a"] = 0.3 * torch.randn(())
    sd[key + ".c"] = 1 + 0.3 * torch.randn(())


torch.manual_seed(0)
official = {}
conv(official, "conv1", 3, 64, 3, bias=False)
cin = 64
for stage, width in enumerate((64, 128, 256, 512), start=1):
    for block in range(2):
        p = f"layer{stage}.{block}."
        batch_norm(official, p + "bn1", cin)
        conv(official, p + "conv1", cin, width, 3)
        batch_norm(official, p + "bn2", width)
        conv(official, p + "conv2", width, width, 3)
        if cin != width:
            conv(official, p + "shortcut", cin, width, 1)
        xlif(official, p + "relu1")
        xlif(official, p + "relu2")
        cin = width
batch_norm(official, "bn1", 512)
xlif(official, "relu1")
official["linear.weight"] = torch.randn(10, 512) * math.sqrt(3.0 / 512)
official["linear.bias"] = 0.1 * torch.randn(10)
torch.save({"net": official, "epoch": 399, "max_test_acc": 0.0}, "checkpoint_max.pth")
print(len(official), "tensors,", sum(v.numel() for v in official.values()), "numbers;",
      f"{os.path.getsize('checkpoint_max.pth') / 2**20:.1f} MiB on disk")

# %% [markdown]
# The command needs the recipe's config (the model, its neuron and its batch norm; the data section
# gives the classes and input size). The repository's `configs/arlif_cifar10_resnet18_T4.yaml` is
# the one to use; here we write its model and data parts to a file. It is run in-process, as
# `adalif.cli.main` with the command's arguments:

# %%
from adalif.cli import main

with open("recipe.yaml", "w") as f:
    f.write("model: {name: preact_resnet18, neuron: arlif, options: {bn: per_step}}\n"
            "data: {name: cifar10, root: data/cifar10, T: 4, options: {normalize: cifar10_tet}}\n")
status = main(["import-weights", "--from", "arlif-official", "checkpoint_max.pth",
               "--config", "recipe.yaml", "--out", "official_r18.ckpt"])
checkpoint = torch.load("official_r18.ckpt", weights_only=True)
print("exit status", status, "| imported from:", checkpoint["adalif"]["imported_from"]["arch"])

# %% [markdown]
# From Python, `convert_state_dict` maps the same keys onto a model you built yourself, and says
# which official key went where. Every official key must find its place and every shape must fit,
# or it stops naming the key:

# %%
from adalif.compat.arlif_official import convert_state_dict, load_official_state_dict
from adalif.models import create_model

model = create_model("preact_resnet18", neuron="arlif", num_classes=10, in_channels=3, T=4, bn="per_step")
imported = convert_state_dict(load_official_state_dict("checkpoint_max.pth"), model)
model.load_state_dict(imported.state_dict)
print("architecture:", imported.arch, "|", len(imported.mapping), "keys mapped, for example:")
for src, dst in imported.mapping[:2] + [m for m in imported.mapping if m[0].endswith(".a")][:1]:
    print(f"  {src:28s} -> {dst}")
saved = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
print("the command's checkpoint holds the same weights:",
      all(torch.equal(saved[k], v) for k, v in model.state_dict().items()))

wrong = create_model("preact_resnet18", neuron="arlif", num_classes=100, in_channels=3, T=4, bn="per_step")
try:
    convert_state_dict(official, wrong)
except ValueError as err:
    print("wrong number of classes:", err)

# %% [markdown]
# The imported model runs like any adalif model, on `[T, B, C, H, W]` or on images it repeats
# over `T`. (The weights here are random, so its predictions mean nothing; the tests check the
# import against a forward pass written from the official single-step code, to 1e-9.)

# %%
model.eval()
with torch.no_grad():
    logits = model(torch.rand(2, 3, 32, 32))           # [T, B, classes]
print("logits", tuple(logits.shape), "predictions", logits.mean(0).argmax(1).tolist())
