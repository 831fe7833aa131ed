# %% [markdown]
# # adalif neurons in your own PyTorch model
#
# This page is a Python script in jupytext's percent format
# (`docs/tutorials/neurons_in_your_model.py`): the site runs it when it is built, and every output
# below is what it printed. Open it as a notebook with `jupytext --to ipynb`, or run it with
# `.venv/bin/python docs/tutorials/neurons_in_your_model.py`.
#
# ## Shapes: time first
#
# Every adalif neuron takes a sequence `[T, B, ...]` (time steps first, then the batch, then any
# feature shape) and returns spikes of the same shape, 0.0 or 1.0.

# %%
import torch

import adalif
from adalif import ARLIF, DALIF

torch.manual_seed(0)
T, B = 6, 4
neuron = DALIF()
x = torch.randn(T, B, 16) * 2
spikes = neuron(x)
print("input ", tuple(x.shape))
print("spikes", tuple(spikes.shape), "values", spikes.unique().tolist())
print(f"alpha = {neuron.alpha.item():.4f}, beta = {neuron.beta.item():.4f}")

# %% [markdown]
# ## In a network
#
# Layers that act on one step (`Linear`, `Conv2d`) see the time steps as a larger batch: flatten
# `T` into `B` before them and unflatten after. Surrogate gradients reach the layers' weights and
# the neuron's own learnable decays.

# %%
class SpikingMLP(torch.nn.Module):
    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(features, hidden)
        self.lif1 = DALIF()
        self.fc2 = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # x: [T, B, features]
        T, B = x.shape[:2]
        h = self.fc1(x.flatten(0, 1)).unflatten(0, (T, B))
        s = self.lif1(h)                                    # [T, B, hidden] spikes
        return self.fc2(s.flatten(0, 1)).unflatten(0, (T, B)).mean(0)   # [B, classes]


net = SpikingMLP(16, 32, 3)
logits = net(x)
loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0]))
loss.backward()
print("logits", tuple(logits.shape), "loss", round(loss.item(), 4))
print("grad of fc1.weight:", tuple(net.fc1.weight.grad.shape))
print("grads of the decays:", {n: round(p.grad.item(), 5) for n, p in net.lif1.named_parameters()})

# %% [markdown]
# ## A fresh state on every call
#
# There is no `reset_net` to forget: each call starts from the neuron's initial state, so two
# calls on the same input give the same spikes. To carry the state across calls (streaming), pass
# it yourself with `run`.

# %%
same = torch.equal(neuron(x), neuron(x))
first = neuron.run(x[:3])
second = neuron.run(x[3:], state=first.state)
streamed = torch.cat([first.spikes, second.spikes])
print("two calls, same spikes:", same)
print("two halves with the state carried == one call:", torch.equal(streamed, neuron(x)))

# %% [markdown]
# ## Traces
#
# `run(x, return_traces=True)` also returns the potential before firing, `h_seq` ($H$), and after
# the reset, `v_seq` ($V$), each `[T, B, ...]`. AR-LIF's state holds its potential and its memory.

# %%
arlif = ARLIF()
out = arlif.run(torch.randn(T, 2, 5) * 2, return_traces=True)
print("fields:", out._fields)
print("h_seq", tuple(out.h_seq.shape), "v_seq", tuple(out.v_seq.shape))
print("final state:", {k: tuple(v.shape) for k, v in out.state._asdict().items()})
print("H of neuron 0, batch 0 over time:", [round(v, 3) for v in out.h_seq[:, 0, 0].tolist()])
print("its spikes:                       ", out.spikes[:, 0, 0].tolist())

# %% [markdown]
# ## Backends
#
# The same neuron runs on a plain step-by-step reference (`adalif.functional`) or on a fused path:
# `"cpu"` (compiled on its first call, which takes some seconds) or `"triton"` on a GPU.
# `backend=None`, the default, chooses: Triton for CUDA tensors, the CPU path for CPU sequences
# with enough neurons per step, else the reference; `last_backend` says which ran. The paths give
# the same spikes and gradients ([Kernels](../kernels.md)).

# %%
reference = DALIF(backend="reference")
fused = DALIF(backend="cpu")
automatic = DALIF()
xg = x.clone().requires_grad_()
y_ref = reference(x)
y_fused = fused(xg)
y_fused.sum().backward()
automatic(x)
print("ran:", reference.last_backend, fused.last_backend, "| automatic for", tuple(x.shape), "->", automatic.last_backend)
print("fused spikes == reference spikes:", torch.equal(y_ref, y_fused))
