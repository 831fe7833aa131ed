# %% [markdown]
# # Your own neuron
#
# A neuron of your own is one record, a `NeuronDefinition`: its options, its state, one time step
# written with plain tensor operations, and its learnable parameters. From that record adalif
# derives the module (time-major `[T, B, ...]` sequences, a fresh state on every call), the fused
# path, `create_model(..., neuron=name)`, the analysis tools and a SpikingJelly-style node.
# This page builds the adaptive-threshold ALIF of Bellec et al. (2018) from
# [Neurons, "Your own neuron"](../neurons.md#your-own-neuron), checks it against a plain loop over
# its step, trains it briefly, and uses it as a SpikingJelly-style node.
#
# ## The definition
#
# The threshold $\theta_t = b_0 + \beta a_{t-1}$ grows with each spike and decays back with
# $\rho$; the membrane leaks with `decay` (one per channel) and resets softly by subtracting the
# threshold it crossed.

# %%
import math
from typing import NamedTuple


import torch

from adalif import definitions
from adalif.functional import StepOutput
from adalif.surrogate import Surrogate, Triangle


class ALIFOptions(NamedTuple):
    v_threshold: float = 1.0     # baseline threshold b0
    adaptation: float = 1.8      # beta: how much each spike raises the threshold
    surrogate: Surrogate = Triangle(1.0)


class ALIFState(NamedTuple):
    v: torch.Tensor              # membrane potential (after reset)
    a: torch.Tensor              # threshold adaptation


def alif_step(x, state, p):
    h = p.decay * state.v + x                          # leak and charge
    theta = p.v_threshold + p.adaptation * state.a      # adaptive threshold
    s = p.surrogate(h - theta)
    v = h - s * theta                                   # soft reset
    a = p.rho * state.a + s                             # grows with each spike, decays back
    return StepOutput(s, ALIFState(v, a), h)


def logit(p):
    return math.log(p / (1 - p))


ALIF = definitions.register(definitions.NeuronDefinition(
    name="alif", class_name="ALIF", options=ALIFOptions, state=ALIFState, step=alif_step,
    parameters=(
        definitions.Parameter("decay", 0.9, per="channel", constrain=torch.sigmoid, inverse=logit),
        definitions.Parameter("rho", 0.95, constrain=torch.sigmoid, inverse=logit),
    ),
    ops={"mul": 4, "add": 4},
    nir="ALIF's adaptive threshold has no NIR node",
), replace=True).module_class()

neuron = ALIF(granularity="channel", num_channels=4)
print(neuron)
print("decay per channel:", [round(v, 4) for v in neuron.decay.tolist()], " rho:", round(neuron.rho.item(), 4))

# %% [markdown]
# ## Exactly the step you wrote
#
# The module runs the definition's step once per time step (here on its fused path, the C that
# adalif writes from the step: see below). To check that nothing else happens, run the same step
# in a plain Python loop, from a zero state, with the module's constrained
# parameters (the decay per channel broadcast over `[B, C, H, W]`), and compare spikes and
# potentials.

# %%
import time
from types import SimpleNamespace

torch.manual_seed(0)
T, B, C = 12, 3, 4
x = torch.randn(T, B, C, 5, 5) * 1.5                 # [T, B, C, H, W]
start = time.perf_counter()
out = neuron.run(x, return_traces=True)
print(f"first call: {time.perf_counter() - start:.2f} s on the {neuron.last_backend!r} path")

p = SimpleNamespace(**ALIFOptions()._asdict(), decay=neuron.decay.detach().view(C, 1, 1),
                    rho=neuron.rho.detach())
state = ALIFState(torch.zeros_like(x[0]), torch.zeros_like(x[0]))
loop_spikes, loop_h = [], []
with torch.no_grad():
    for t in range(T):
        step = alif_step(x[t], state, p)
        loop_spikes.append(step.spikes)
        loop_h.append(step.h)
        state = step.state
loop_spikes, loop_h = torch.stack(loop_spikes), torch.stack(loop_h)

print("spikes fired:", int(out.spikes.sum()), "of", out.spikes.numel())
print("identical spikes:", torch.equal(out.spikes, loop_spikes))
print("largest potential difference:", (out.h_seq - loop_h).abs().max().item())
print("final adaptation equal:", torch.equal(out.state.a, state.a))

# %% [markdown]
# ## The fused path
#
# The plain loop launches a few small operations per step. adalif's built-in neurons (LIF, PLIF,
# DA-LIF, AR-LIF) have hand-written fused paths, `backend="cpu"` and `"triton"`, which the first
# tutorial runs ([Backends](neurons_in_your_model.md#backends)). A definition of your own has no
# hand-written kernel: its fused path is derived from the step. On the CPU, `backend="compiled"`
# runs your step once under a recorder of the tensor operations it reaches, forward and backward,
# writes them as C in a loop over the sequence, and has the machine's C compiler build it, about
# a second the first time on a machine and milliseconds in every later process (the first call
# above translated it; [Kernels](../kernels.md#the-generic-path-backendcompiled)). The automatic choice takes it when
# your step translates, which ALIF's does; a step that does not (a reduction, a view) is compiled
# by `torch.compile` instead. Same spikes as the loop, and gradients equal to rounding:

# %%
fused = ALIF(granularity="channel", num_channels=4, backend="compiled")
fused.load_state_dict(neuron.state_dict())
xs = [x.clone().requires_grad_() for _ in range(2)]
fast = fused.run(xs[0], return_traces=True)
fast.h_seq.sum().backward()
reference = ALIF(granularity="channel", num_channels=4, backend="reference")   # the plain loop
reference.load_state_dict(neuron.state_dict())
slow = reference.run(xs[1], return_traces=True)
slow.h_seq.sum().backward()
print("identical spikes:", torch.equal(fast.spikes, slow.spikes), " identical potentials:",
      torch.equal(fast.h_seq, slow.h_seq))
print("largest input-gradient difference:", (xs[0].grad - xs[1].grad).abs().max().item())

# %% [markdown]
# ## Training it
#
# `create_model` takes the registered name like any built-in neuron, with its options. A few
# optimizer steps of the small digits CNN on random 8x8 images with random labels: the loss falls
# as the network fits them, and the gradients reach the definition's own parameters.

# %%
from adalif.models import create_model

torch.manual_seed(0)
model = create_model("digits_cnn", neuron={"name": "alif", "adaptation": 1.5}, num_classes=10,
                     in_channels=1, T=4, width=8)
images, labels = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(15):
    logits = model(images)                          # [T, B, classes]
    loss = torch.nn.functional.cross_entropy(logits.mean(0), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 3 == 0 or step == 14:
        print(f"step {step:2d}  loss {loss.item():.4f}")
first = next(m for m in model.modules() if isinstance(m, ALIF))
print("gradients of the first ALIF layer's parameters:",
      {name: round(param.grad.norm().item(), 6) for name, param in first.named_parameters()})
print("its rho after training:", round(first.rho.item(), 4), "(initial 0.95)")

# %% [markdown]
# ## A SpikingJelly-style node
#
# Code written for SpikingJelly calls a node once per time step and resets it with
# `functional.reset_net`. `adalif.compat.spikingjelly.node_class(name)` gives that node for any
# registered neuron, with the same parameters and spikes as the multi-step module:

# %%
from adalif.compat.spikingjelly import node_class, reset_net

ALIFNode = node_class("alif")
node = ALIFNode(granularity="channel", num_channels=C)
node.load_state_dict(neuron.state_dict())            # the same parameters as `neuron` above
stepped = torch.stack([node(x[t]) for t in range(T)])   # single-step: the state carried between calls
reset_net(node)                                      # as SpikingJelly's functional.reset_net
print(type(node).__name__, "step_mode:", node.step_mode)
print("single-step node == multi-step module:", torch.equal(stepped, out.spikes))
