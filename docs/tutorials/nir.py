# %% [markdown]
# # NIR: run a trained network in another simulator
#
# [NIR](https://neuroir.org) (the Neuromorphic Intermediate Representation) is a graph format that
# simulators and neuromorphic hardware read and write. This page trains a small network on the
# 8x8 digits for a few seconds, exports it with `adalif.export.to_nir`, runs the graph in snnTorch
# (installed in adalif's environment), compares the spikes layer by layer, and imports the graph
# back into adalif with `adalif.import_nir`. [Analysis](../analysis.md#nir-export) gives the rules
# of the export and what each importer assumes.
#
# ## A small trained network
#
# The digits CNN with DA-LIF neurons (one decay per layer, which snnTorch represents exactly),
# trained for a few steps on scikit-learn's 8x8 digits.

# %%
import os

import torch
from sklearn.datasets import load_digits

from adalif.models import create_model

digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16   # [N, 1, 8, 8] in [0, 1]
labels = torch.tensor(digits.target)
train_x, train_y, test_x, test_y = images[:1500], labels[:1500], images[1500:], labels[1500:]

torch.manual_seed(0)
model = create_model("digits_cnn", neuron="dalif", num_classes=10, in_channels=1, T=4)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(25):
    batch = torch.randint(0, len(train_x), (32,))
    loss = torch.nn.functional.cross_entropy(model(train_x[batch]).mean(0), train_y[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
model.eval()
with torch.no_grad():
    accuracy = (model(test_x).mean(0).argmax(1) == test_y).float().mean().item()
print(f"loss {loss.item():.3f} after 25 steps; test accuracy {accuracy:.3f} on {len(test_x)} digits")

# %% [markdown]
# ## Export
#
# `to_nir(model, sample)` traces the forward pass on one sample and writes one NIR node per
# layer: the convolutions with the eval-mode batch norm folded in, the DA-LIF neurons as NIR `LIF`
# nodes (forward Euler with the time step `dt`, default 1e-4), pooling, flatten and the classifier.

# %%
import nir

from adalif.export import to_nir

graph = to_nir(model, test_x[:1])
nir.write("digits.nir", graph)
print("nodes:", [f"{name}:{type(node).__name__}" for name, node in graph.nodes.items()])
print("edges:", len(graph.edges), "| file:", os.path.getsize("digits.nir"), "bytes")

# %% [markdown]
# ## Run it in snnTorch
#
# snnTorch's importer (`snntorch.import_nir.import_from_nir`) builds an snnTorch network from the
# file. It runs one time step per call and one sample at a time (its `Flatten` takes NIR's
# per-sample dimensions), so we feed it the network's input sequence, `model.encoder(x)`
# (`[T, B, 1, 8, 8]`), step by step, and record every `snn.Leaky` layer's spikes with hooks.

# %%
import contextlib
import io

import snntorch as snn
from snntorch.import_nir import import_from_nir

from adalif import DALIF

x = test_x[:8]
ours = []
hooks = [m.register_forward_hook(lambda mod, i, o: ours.append(o)) for m in model.modules() if isinstance(m, DALIF)]
with torch.no_grad():
    logits = model(x)
for h in hooks:
    h.remove()

sequence = model.encoder(x)                          # [T, B, 1, 8, 8]
theirs, their_logits = [[] for _ in ours], []
for b in range(sequence.shape[1]):
    with contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints a note per layer it adapts
        net = import_from_nir(nir.read("digits.nir"))
    seen = []
    leaky = [m for m in net.modules() if isinstance(m, snn.Leaky)]
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
             for m in leaky]
    steps = []
    with torch.no_grad():
        for t in range(sequence.shape[0]):
            out = net(sequence[t, b])
            steps.append(out[0] if isinstance(out, tuple) else out)
    for h in hooks:
        h.remove()
    for k in range(len(leaky)):
        theirs[k].append(torch.stack(seen[k::len(leaky)]))
    their_logits.append(torch.stack(steps))
theirs = [torch.stack(s, 1) for s in theirs]         # [T, B, ...] per layer
their_logits = torch.stack(their_logits, 1)

for k, (a, b) in enumerate(zip(ours, theirs)):
    print(f"layer {k}: {a.numel():6d} neuron-steps, firing rate {a.mean().item():.3f}, "
          f"differing spikes {int((a != b.reshape(a.shape)).sum())}")
print("largest logit difference:", f"{(logits - their_logits.reshape(logits.shape)).abs().max().item():.2e}")
print("same predictions:", torch.equal(logits.mean(0).argmax(1), their_logits.mean(0).reshape(logits.shape[1:]).argmax(1)))

# %% [markdown]
# ## Import a NIR graph into adalif
#
# `adalif.import_nir(graph_or_path, dt)` builds an adalif module from a NIR graph, whoever wrote
# it: each `LIF` node becomes a DA-LIF neuron with NIR's forward-Euler step as its decays
# ($\beta = 1 - dt/\tau$, $\alpha = dt\,R/\tau$), on adalif's kernels and trainable. It runs whole
# `[T, B, ...]` sequences, so it takes the sequence from the encoder.
#
# The import computes what the graph says, which is the trained network with its batch norm folded
# into the convolution: in float32 that rounds a little differently from a convolution followed by
# a batch norm, so a potential that lands within rounding of the threshold can, rarely, flip a spike
# (in float64 the tests find none).

# %%
from adalif import import_nir

back = import_nir("digits.nir", dt=1e-4).eval()
mine, imported = [], []
hooks = [m.register_forward_hook(lambda mod, i, o: mine.append(o)) for m in model.modules() if isinstance(m, DALIF)]
hooks += [m.register_forward_hook(lambda mod, i, o: imported.append(o)) for m in back.modules() if isinstance(m, DALIF)]
with torch.no_grad():
    again = back(model.encoder(test_x))
    original = model(test_x)
for h in hooks:
    h.remove()
print(type(back).__name__, "with", len(imported), "DA-LIF layers, on", len(test_x), "digits:")
for k, (a, b) in enumerate(zip(mine, imported)):
    print(f"  layer {k}: {a.numel()} neuron-steps, differing spikes {int((a != b).sum())}")
print("largest logit difference:", f"{(again - original).abs().max().item():.2e}")
print("same predictions:", torch.equal(again.mean(0).argmax(1), original.mean(0).argmax(1)))
