# %% [markdown]
# # Long sequences in little memory
#
# Backpropagation through time keeps every step's activations until the backward pass, so a
# training step's memory grows with the number of time steps `T`. `adalif.memory` has options
# that keep less ([Training](../training.md#training-memory) gives how each works):
#
# - `spikes="packed"`: the spikes that layers keep for backward are stored as bits, 8 per byte;
# - `checkpoint="neurons"`: keep each convolution's output, recompute the batch norms and neurons;
# - `checkpoint="blocks"`: keep only each block's input, recompute the block;
# - `checkpoint="time"`: run `chunk` time steps at a time, keep only the neurons' states between
#   chunks: memory grows with `chunk` and with the states kept at the `T / chunk` boundaries.
#
# In a config they are `model.memory: {spikes: packed, checkpoint: time, chunk: 4}`; in Python,
# `with adalif.memory.training_memory(model, spikes, checkpoint, chunk):` around the forward pass.
# This page measures, for each, what one training step of a small network keeps for backward, and
# checks its gradients against the plain run.
#
# ## What a step keeps
#
# `adalif.memory.kept_for_backward()` counts the bytes of every distinct storage that the forward
# pass run inside it keeps for backward: the tensors PyTorch's layers save, the bits of packed
# spikes, what a checkpoint saves and the convolution outputs that `checkpoint="neurons"` keeps.
# On the CPU torch keeps no allocator statistics, so this is what we measure: the part of a
# training step's peak memory that grows with `T` (the weights, the input and the largest
# transient buffers make up the rest).

# %%
import time

import torch

from adalif import memory
from adalif.models import create_model

T, B = 32, 8
torch.manual_seed(0)
x = torch.rand(B, 1, 8, 8) * 2                       # 8x8 images, repeated over T = 32 steps


def fresh_model():
    torch.manual_seed(0)   # the same weights every time; bn per_step: statistics of each step alone
    return create_model("digits_cnn", neuron="lif", num_classes=10, in_channels=1, T=T, bn="per_step").train()


def one_step(spikes="plain", checkpoint="none", chunk=4):
    """Bytes kept for backward by one training step, its gradients, and its time."""
    model = fresh_model()
    start = time.perf_counter()
    with memory.kept_for_backward() as kept:
        with memory.training_memory(model, spikes, checkpoint, chunk=chunk):
            loss = model(x).mean(0).logsumexp(1).mean()
    loss.backward()
    seconds = time.perf_counter() - start
    return kept.bytes, [p.grad.clone() for p in model.parameters()], seconds


plain_bytes, plain_grads, plain_seconds = one_step()
print(f"T = {T}, batch {B}: the plain step keeps {plain_bytes / 2**20:.2f} MiB for backward")

# %% [markdown]
# ## Every option against the plain run

# %%
options = [("packed", "none"), ("plain", "neurons"), ("plain", "blocks"), ("packed", "blocks"),
           ("plain", "time"), ("packed", "time")]
largest = max(g.abs().max().item() for g in plain_grads)
print(f"{'spikes':8s} {'checkpoint':12s} {'kept (MiB)':>10s} {'of plain':>9s}  gradients")
print(f"{'plain':8s} {'none':12s} {plain_bytes / 2**20:10.2f} {1:9.0%}  (the reference)")
for spikes, checkpoint in options:
    kept, grads, _ = one_step(spikes, checkpoint)
    if all(torch.equal(a, b) for a, b in zip(grads, plain_grads)):
        same = "bit-identical"
    else:   # the largest difference, against the largest gradient
        worst = max((a - b).abs().max().item() for a, b in zip(grads, plain_grads)) / largest
        same = f"differ by at most {worst:.1e} of the largest gradient"
    print(f"{spikes:8s} {checkpoint:12s} {kept / 2**20:10.2f} {kept / plain_bytes:9.0%}  {same}")

# %% [markdown]
# Packed spikes and checkpointed neurons or blocks give gradients bit-identical to the plain run;
# time chunks sum a weight's gradient chunk by chunk, so theirs agree up to float rounding. What
# `spikes="packed"` saves depends on the network: here most of what the plain step keeps is the
# batch norms' and neurons' floats, and the spikes (the inputs of the second convolution and of the
# pooling, 6 MiB as floats) are the part that shrinks 32-fold; with `time` no spikes are kept
# between the passes, so packing adds nothing there. The
# recomputation costs time: about one more forward pass for `blocks` and `time`.
#
# ## Memory against sequence length
#
# The plain step's memory grows in proportion to `T`. With `checkpoint="time"` (chunks of 4 steps)
# what still grows is what is kept at the chunk boundaries, the neurons' states and each chunk's
# input, about a sixth of it here:

# %%
for steps in (8, 32, 64):
    T = steps
    plain, _, _ = one_step()
    chunked, _, _ = one_step("packed", "time")
    print(f"T = {steps:3d}: plain {plain / 2**20:6.2f} MiB, packed + time chunks {chunked / 2**20:5.2f} MiB "
          f"({chunked / plain:.0%})")
