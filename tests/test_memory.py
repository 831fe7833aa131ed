"""Training memory (adalif.memory): spikes kept as bits and checkpointed blocks give gradients and
batch-norm statistics bit-identical to a plain run, and the packing really happens."""

import pytest
import torch
from torch import nn

from adalif import memory
from adalif.models import create_model
from adalif.neurons import Neuron


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000, 4099])
def test_bits_round_trip(n):
    x = (torch.rand(n) > 0.6).float()
    packed = memory.pack_bits(x)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-n // 8)
    assert torch.equal(memory.unpack_bits(packed, n, torch.float32), x)
    assert torch.equal(memory.unpack_bits(packed, n, torch.bfloat16), x.bfloat16())


def _step(model, x, spikes="plain", checkpoint="none", packs=None, unpacked_spikes=None):
    """One training step's gradients and buffers; ``packs`` collects the packed saves,
    ``unpacked_spikes`` the saves of a neuron's output (or a view of it) left as floats."""
    model.zero_grad(set_to_none=True)
    outputs, handles = [], []  # every neuron output, kept alive so that no address is reused
    if packs is not None:
        original = memory._pack_hook
        handles = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in model.modules()
                   if isinstance(m, Neuron)]

        def counting(t):
            out = original(t)
            if isinstance(out, memory._Packed):
                packs.append(out)
            elif any(t.untyped_storage().data_ptr() == o.untyped_storage().data_ptr() for o in outputs):
                unpacked_spikes.append(tuple(t.shape))
            return out
        memory._pack_hook = counting
    try:
        with memory.training_memory(model, spikes, checkpoint):
            out = model(x)
            loss = (out.float() ** 2).mean()
    finally:
        if packs is not None:
            memory._pack_hook = original
        for handle in handles:
            handle.remove()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()], [b.clone() for b in model.buffers()], loss.detach()


def _fresh(name, neuron, seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(name, neuron=neuron, num_classes=10, **kwargs).train()


CASES = [
    ("resnet19", "lif", dict(T=2), (2, 3, 16, 16)),
    ("resnet19", "dalif", dict(T=2), (2, 3, 16, 16)),
    ("vggsnn", "lif", dict(T=3, input_size=16, dropout=0.3), (3, 2, 2, 16, 16)),
    ("vggsnn", "arlif", dict(T=2, input_size=16), (2, 2, 2, 16, 16)),
]


@pytest.mark.parametrize("name, neuron, kwargs, shape", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@pytest.mark.parametrize("spikes, checkpoint", [("packed", "none"), ("plain", "blocks"), ("packed", "blocks"),
                                               ("plain", "neurons"), ("packed", "neurons")])
def test_gradients_and_statistics_are_bit_identical_to_a_plain_run(name, neuron, kwargs, shape, spikes, checkpoint):
    x = torch.rand(*shape)
    plain_model, model = _fresh(name, neuron, **kwargs), _fresh(name, neuron, **kwargs)
    torch.manual_seed(1)  # the same dropout masks for both (the checkpointed one recomputes its own)
    grads, buffers, loss = _step(plain_model, x)
    torch.manual_seed(1)
    packs, unpacked = [], []
    got_grads, got_buffers, got_loss = _step(model, x, spikes, checkpoint, packs, unpacked)
    assert torch.equal(loss, got_loss)
    assert all(torch.equal(a, b) for a, b in zip(grads, got_grads))
    # Running mean, variance and batch count: updated once per step, as in the plain run.
    assert all(torch.equal(a, b) for a, b in zip(buffers, got_buffers))
    kept = {id(p.bits) for p in packs}
    if spikes == "packed":
        # No spike tensor is kept as floats; each is stored once as bits, however many layers
        # read it (a residual block's two convolutions). Without checkpointing, every neuron's
        # spikes but the last feature layer's (global pooling keeps only their shape) are kept.
        assert unpacked == []
        if checkpoint == "none":
            assert len(kept) >= sum(isinstance(m, Neuron) for m in model.modules()) - 1
        else:  # the input of every checkpointed segment but the first
            assert len(kept) >= len(memory.segments(model.features)) - 1


def test_a_spike_tensor_changed_in_place_is_not_packed():
    """The mark records the tensor's version: once changed in place (no longer binary), it is
    saved as it is, and the gradients stay right."""

    class Doubling(nn.Module):
        def __init__(self):
            super().__init__()
            self.neuron = create_model("digits_cnn", neuron="lif", num_classes=10, T=2).features[1]
            self.fc = nn.Linear(32, 3)

        def forward(self, x):
            s = self.neuron(x)
            s.mul_(2)  # no longer 0/1
            return self.fc(s)

    torch.manual_seed(0)
    model = Doubling()
    x = torch.randn(2, 4, 32) + 1
    grads, _, _ = _step(model, x)
    packs, unpacked = [], []
    got, _, _ = _step(model, x, "packed", packs=packs, unpacked_spikes=unpacked)
    assert packs == [] and unpacked and all(torch.equal(a, b) for a, b in zip(grads, got))


def test_segments_end_in_spikes():
    model = create_model("resnet19", neuron="lif", num_classes=10, T=2)
    parts = memory.segments(model.features)
    assert len(parts) == 1 + 8  # the stem (conv, BN, neuron), then one per residual block
    assert all(any(isinstance(m, Neuron) for m in part[-1].modules()) for part in parts)
    vgg = create_model("vggsnn", neuron="lif", num_classes=10, T=2, input_size=16)
    assert [len(p) for p in memory.segments(vgg.features)] == [3, 3, 4, 3, 4, 3, 4, 4]
    with pytest.raises(ValueError, match="container="):
        memory.default_container(nn.Linear(2, 2))


def test_training_with_both_settings_ends_with_the_same_weights(tmp_path):
    """Through the config (model.memory) and Lightning: three steps of the digits DA-LIF recipe,
    plain, with packed spikes and checkpointed blocks, and with packed spikes and recomputed
    neurons, end bit-identical."""
    from adalif.cli import main, parse_config
    from adalif.safe_load import load_torch
    from adalif.train.run import train

    states = []
    for spikes, checkpoint in (("plain", "none"), ("packed", "blocks"), ("packed", "neurons")):
        cfg = parse_config(["--config", "configs/digits_dalif.yaml", "--output_dir", str(tmp_path / checkpoint),
                            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
                            "--trainer.limit_val_batches", "1", "--trainer.progress_bar", "false",
                            "--trainer.logger", "none", "--model.memory.spikes", spikes,
                            "--model.memory.checkpoint", checkpoint])
        run = train(cfg).run_dir
        states.append(load_torch(f"{run}/checkpoints/last.ckpt")["state_dict"])
    for other in states[1:]:
        assert states[0].keys() == other.keys()
        assert all(torch.equal(states[0][k], other[k]) for k in states[0])
    assert main(["train", "--config", "configs/digits_dalif.yaml", "--model.memory.spikes", "bits",
                 "--output_dir", str(tmp_path / "bad")]) == 2
    assert main(["train", "--config", "configs/digits_dalif.yaml", "--model.memory.checkpoint", "time",
                 "--output_dir", str(tmp_path / "bad")]) == 2  # the digits CNN's BN is over T·B
    assert main(["train", "--config", "configs/digits_dalif.yaml", "--model.memory.chunk", "0",
                 "--output_dir", str(tmp_path / "bad")]) == 2


@pytest.mark.parametrize("checkpoint, recomputed", [("neurons", 0), ("blocks", 8)])
def test_neurons_recomputes_no_convolution(checkpoint, recomputed, monkeypatch):
    """``neurons`` keeps each convolution's output and convolves only in the first pass;
    ``blocks`` convolves every layer twice."""
    calls = []
    convolve = nn.Conv2d._conv_forward
    monkeypatch.setattr(nn.Conv2d, "_conv_forward", lambda self, *args: calls.append(self) or convolve(self, *args))
    model = _fresh("vggsnn", "lif", T=2, input_size=16)
    x = torch.rand(2, 2, 2, 16, 16)
    with memory.training_memory(model, "packed", checkpoint):
        loss = model(x).square().mean()
    forward = len(calls)
    loss.backward()
    assert forward == 8 and len(calls) - forward == recomputed


def test_neurons_under_autocast_gives_the_plain_gradients():
    """bf16 autocast: the kept convolution outputs are bf16, and the casts of input and weight
    backpropagate as in a plain run."""
    x = torch.rand(2, 2, 2, 16, 16)
    results = []
    for checkpoint in ("none", "neurons"):
        model = _fresh("vggsnn", "dalif", T=2, input_size=16)
        with torch.autocast("cpu", dtype=torch.bfloat16), memory.training_memory(model, "packed", checkpoint):
            loss = model(x).float().square().mean()
        loss.backward()
        results.append([p.grad for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_autocast_copies_of_spikes_are_packed(monkeypatch):
    """Under bf16 autocast a convolution that reads float32 spikes (ResNet-19's neurons after a
    residual sum) keeps autocast's bf16 copy of them: that copy is packed too (it traces back to
    a neuron's output through views and one cast), no binary tensor is left as it is, and the
    gradients are the plain run's."""
    x = torch.rand(2, 3, 16, 16)
    results, saved = [], []
    original = memory._pack_hook
    monkeypatch.setattr(memory, "_pack_hook", lambda t: saved.append((t, original(t))) or saved[-1][1])
    for spikes in ("plain", "packed"):
        saved.clear()
        model = _fresh("resnet19", "lif", T=2)
        with torch.autocast("cpu", dtype=torch.bfloat16), memory.training_memory(model, spikes):
            loss = model(x).float().square().mean()
        loss.backward()
        results.append([p.grad for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))
    casts = [t for t, kept in saved if isinstance(kept, memory._Packed) and t.grad_fn.name() == "ToCopyBackward0"]
    assert len(casts) >= 8 and all(t.dtype == torch.bfloat16 for t in casts)
    # No cast of 0s and 1s is left as it is.
    left = [t for t, kept in saved if kept is t and t.grad_fn is not None and t.grad_fn.name() == "ToCopyBackward0"
            and bool(((t == 0) | (t == 1)).all())]
    assert left == []


def _close(grads, got):
    """Gradients equal up to float rounding: within 1e-5 of the largest of each tensor (a
    convolution's bias before a batch norm has a gradient of rounding noise only)."""
    scale = max(float(g.abs().max()) for g in grads)
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-5 * scale) for a, b in zip(grads, got))


TIME_CASES = [
    ("vggsnn", "lif", dict(T=5, input_size=16), (5, 2, 2, 16, 16), 1),
    ("vggsnn", "arlif", dict(T=5, input_size=16), (5, 2, 2, 16, 16), 2),
    ("resnet19", "dalif", dict(T=3), (2, 3, 16, 16), 2),
    ("vggsnn", "plif", dict(T=5, input_size=16), (5, 2, 2, 16, 16), 3),
]


@pytest.mark.parametrize("name, neuron, kwargs, shape, chunk", TIME_CASES, ids=[f"{c[0]}-{c[1]}-{c[4]}" for c in TIME_CASES])
def test_time_chunks_give_the_plain_run(name, neuron, kwargs, shape, chunk):
    """Per-step batch norm: the same outputs and running statistics, and gradients equal up to
    rounding (the weight gradients are summed chunk by chunk), for chunks that do and do not
    divide T."""
    x = torch.rand(*shape)
    results = []
    for checkpoint in ("none", "time"):
        model = _fresh(name, neuron, bn="per_step", **kwargs)
        with memory.training_memory(model, "plain", checkpoint, chunk=chunk):
            out = model(x)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()], list(model.buffers())))
    (out, grads, buffers), (got_out, got_grads, got_buffers) = results
    assert torch.equal(out, got_out)
    assert all(torch.equal(a, b) for a, b in zip(buffers, got_buffers))
    assert _close(grads, got_grads)


def test_time_chunks_keep_less_than_the_plain_run():
    """What the graph keeps between the passes: the chunks' inputs and the neurons' states at the
    chunk boundaries, far less than the plain run's activations of every step."""
    x = torch.rand(6, 2, 2, 16, 16)
    kept = []
    for checkpoint in ("none", "time"):
        model = _fresh("vggsnn", "lif", T=6, input_size=16, bn="per_step")
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with memory.training_memory(model, "plain", checkpoint, chunk=2):
                model(x)
        kept.append(sum(storages.values()))
    assert kept[1] < kept[0] / 4


def test_time_chunks_refuse_layers_that_mix_steps():
    with pytest.raises(ValueError, match="bn: per_step"):
        with memory.checkpoint_time(_fresh("vggsnn", "lif", T=2, input_size=16)):
            pass
    with pytest.raises(ValueError, match="dropout"):
        with memory.checkpoint_time(_fresh("vgg11_bn", "lif", T=2, bn="per_step", dropout=0.2)):
            pass
    with pytest.raises(ValueError, match="parameter per time step"):
        with memory.checkpoint_time(_fresh("vggsnn", "glif", T=2, input_size=16, bn="per_step")):
            pass
    with pytest.raises(ValueError, match="memory.chunk"):
        with memory.checkpoint_time(_fresh("vggsnn", "lif", T=2, input_size=16, bn="per_step"), chunk=0):
            pass


# -- Exact or refused (issue 25): each of these gave silently wrong numbers or an error before ----

def _chain(neuron_kwargs=None, hook=None, seed=0):
    """``features = Linear -> LIF -> Linear -> LIF`` and a readout, time-major ``[T, B, 5]``."""
    from adalif.layers import SeqToANN
    from adalif.neurons import LIF

    torch.manual_seed(seed)
    features = nn.Sequential(SeqToANN(nn.Linear(5, 8)), LIF(**(neuron_kwargs or {})),
                             SeqToANN(nn.Linear(8, 4)), LIF(**(neuron_kwargs or {})))
    model = nn.Sequential()
    model.features = features
    model.head = SeqToANN(nn.Linear(4, 3))
    model.forward = lambda x: model.head(model.features(x))
    if hook is not None:
        features[1].register_forward_hook(hook)
    return model.train()


def _chain_grads(model, x, spikes="plain", checkpoint="none", chunk=2):
    model.zero_grad(set_to_none=True)
    with memory.training_memory(model, spikes, checkpoint, chunk=chunk):
        out = model(x)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def test_packed_spikes_keep_a_non_spiking_surrogates_smooth_outputs():
    """``ATan(spiking=False)`` emits smooth values: they fail the 0/1 check and are kept as they are."""
    from adalif.surrogate import ATan

    x = torch.randn(4, 3, 5) * 2
    model = _chain(dict(surrogate=ATan(spiking=False)))
    plain, packed = _chain_grads(model, x), _chain_grads(model, x, "packed")
    assert all(torch.equal(a, b) for a, b in zip(plain, packed))


def test_packed_spikes_keep_what_a_users_forward_hook_returns():
    x = torch.randn(4, 3, 5) * 2
    model = _chain(hook=lambda m, i, o: o * 0.5)
    plain, packed = _chain_grads(model, x), _chain_grads(model, x, "packed")
    assert all(torch.equal(a, b) for a, b in zip(plain, packed))


def test_packed_spikes_keep_pytorchs_in_place_error():
    """Spikes changed in place after a layer saved them: the plain run raises at backward, and so
    does the packed one (it used to read the old bits silently)."""
    from adalif.neurons import LIF

    torch.manual_seed(0)
    fc1, n1, fc2 = nn.Linear(5, 8), LIF(), nn.Linear(8, 3)
    model = nn.Sequential(fc1, n1, fc2)
    for spikes in ("plain", "packed"):
        with memory.training_memory(model, spikes):
            s = n1(fc1(torch.randn(4, 3, 5) * 3))
            out = fc2(s)
            s.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


@pytest.mark.parametrize("calls", [1, 2])
@pytest.mark.parametrize("checkpoint", ["blocks", "neurons"])
def test_checkpointed_blocks_recompute_spikingjelly_style_nodes_from_their_start_state(checkpoint, calls):
    """Multi-step nodes and ``reset_net`` after the step (SpikingJelly's loop): the recomputation
    starts from the state the first pass started from, not the one it left."""
    from adalif.compat import spikingjelly as sj
    from adalif.layers import SeqToANN

    def model():
        torch.manual_seed(0)
        m = nn.Sequential()
        m.features = nn.Sequential(SeqToANN(nn.Conv2d(2, 4, 3, padding=1)), sj.LIFNode(step_mode="m"),
                                   SeqToANN(nn.Conv2d(4, 4, 3, padding=1)), sj.LIFNode(step_mode="m"))
        return m.train()

    x = torch.rand(2, 3, 2, 6, 6) * 3  # [T, B, C, H, W]

    def run(m, mode):
        m.zero_grad()
        with memory.training_memory(m, "plain", mode):
            out = m.features(x).sum()
            if calls == 2:  # the second call continues from the state the first left, graph and all
                out = out + m.features(x).square().sum()
        out.backward()
        sj.reset_net(m)
        return [p.grad.clone() for p in m.parameters()]

    plain, got = run(model(), "none"), run(model(), checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(plain, got))


@pytest.mark.parametrize("checkpoint", ["blocks", "neurons", "time"])
def test_checkpointing_a_frozen_first_block(checkpoint):
    """Fine-tuning: the first block's parameters need no gradient (and the input none either)."""
    x = torch.rand(4, 2, 2, 16, 16)
    results = []
    for mode in ("none", checkpoint):
        model = _fresh("vggsnn", "lif", T=4, input_size=16, bn="per_step")
        for p in model.features[0].parameters():
            p.requires_grad_(False)
        with memory.training_memory(model, "packed", mode):
            loss = model(x).square().mean()
        loss.backward()
        results.append([p.grad for p in model.parameters() if p.requires_grad])
    assert _close(*results) if checkpoint == "time" else all(torch.equal(a, b) for a, b in zip(*results))


@pytest.mark.parametrize("spikes, checkpoint", [("packed", "none"), ("plain", "blocks"), ("plain", "neurons"),
                                               ("plain", "time")])
def test_memory_options_refuse_torch_compile_in_one_line(spikes, checkpoint):
    import torch._dynamo

    torch._dynamo.reset()
    model = _chain()
    compiled = torch.compile(model)
    with pytest.raises(RuntimeError, match=rf"memory\.{'spikes' if spikes == 'packed' else 'checkpoint'}.*torch\.compile") as err:
        with memory.training_memory(model, spikes, checkpoint):
            compiled(torch.rand(4, 2, 5)).sum().backward()
    assert "\n" not in str(err.value)


def test_a_config_refuses_memory_options_with_compile(tmp_path, capsys):
    """Lightning used to turn the options off silently under trainer.compile."""
    from adalif.cli import main

    for key, value in (("spikes", "packed"), ("checkpoint", "blocks")):
        assert main(["train", "--config", "configs/digits_dalif.yaml", "--trainer.compile", "true",
                     f"--model.memory.{key}", value, "--output_dir", str(tmp_path)]) == 2
        assert f"model.memory.{key}: {value} does not run inside torch.compile" in capsys.readouterr().err


# -- Combinations a review found (each gave silently wrong numbers before) -------------------------

def _conv_net(shared: str = "", seed: int = 0):
    """``features``: conv -> per-step BN -> LIF, twice, with a pooling; ``shared``: one LIF or one
    pooling module listed twice in ``features`` (``nn.Sequential`` runs every entry)."""
    from adalif.layers import SeqToANN, TimeBatchNorm
    from adalif.neurons import LIF

    torch.manual_seed(seed)
    lif, pool = LIF(), SeqToANN(nn.AvgPool2d(2))
    layers = [SeqToANN(nn.Conv2d(2, 4, 3, padding=1)), TimeBatchNorm(4, mode="per_step"), lif, pool,
              SeqToANN(nn.Conv2d(4, 4, 3, padding=1)), TimeBatchNorm(4, mode="per_step"),
              lif if shared == "neuron" else LIF(), pool if shared == "pool" else nn.Identity()]
    model = nn.Module()
    model.features = nn.Sequential(*layers)
    model.head = SeqToANN(nn.Flatten(), nn.LazyLinear(3) if False else nn.Linear(4 * (2 if shared == "pool" else 4) ** 2, 3))
    model.forward = lambda x: model.head(model.features(x))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    return model.train()


def _grads_of(model, x, checkpoint, spikes="plain"):
    model.zero_grad(set_to_none=True)
    with memory.training_memory(model, spikes, checkpoint, chunk=2):
        out = model(x)
    (out * torch.linspace(-1, 1, 3)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("shared", ["neuron", "pool"])
@pytest.mark.parametrize("checkpoint", ["blocks", "neurons", "time"])
def test_a_module_listed_twice_runs_twice_under_checkpointing(shared, checkpoint):
    x = torch.rand(4, 2, 2, 8, 8)
    out, grads = _grads_of(_conv_net(shared), x, "none")
    got_out, got = _grads_of(_conv_net(shared), x, checkpoint)
    assert torch.equal(out, got_out)
    if checkpoint == "time":
        assert _close(grads, got)
    else:
        assert all(torch.equal(a, b) for a, b in zip(grads, got))


@pytest.mark.parametrize("checkpoint", ["blocks", "neurons", "time"])
def test_a_parameters_gradient_hooks_run_once_per_backward(checkpoint):
    """A hook that scales a gradient (clipping, scaling) gives the plain result: it used to run on
    the recomputation's gradient and again on the accumulated one."""
    x = torch.rand(4, 2, 2, 8, 8)
    results = []
    for mode in ("none", checkpoint):
        model, calls = _conv_net(), []
        for p in model.parameters():
            p.register_hook(lambda g: calls.append(1) or g * 2)
        results.append((_grads_of(model, x, mode)[1], len(calls)))
    (grads, n), (got, m) = results
    assert m == n == len(grads)
    assert _close(grads, got) if checkpoint == "time" else all(torch.equal(a, b) for a, b in zip(grads, got))


@pytest.mark.parametrize("checkpoint", ["blocks", "time"])
def test_a_double_backward_is_refused(checkpoint):
    model, x = _conv_net(), torch.rand(4, 2, 2, 8, 8, requires_grad=True)
    with memory.training_memory(model, "plain", checkpoint):
        out = model(x)
    with pytest.raises(RuntimeError, match=f"memory.checkpoint: {checkpoint}: a backward with create_graph=True"):
        torch.autograd.grad(out.sum(), x, create_graph=True)


def test_time_chunks_refuse_a_layer_not_known_to_act_on_each_step():
    class Centred(nn.Module):  # mixes the steps: x - mean over T
        def forward(self, x):
            return x - x.mean(0, keepdim=True)

    model = _conv_net()
    model.features.insert(2, Centred())
    with pytest.raises(ValueError, match=r"features.2: Centred is not known to act on each time step alone"):
        with memory.checkpoint_time(model):
            pass

    class PerStep(Centred):
        acts_per_step = True  # a claim about Centred's forward, which it does not define: not taken

    model.features[2] = PerStep()
    with pytest.raises(ValueError, match="PerStep is not known"):
        with memory.checkpoint_time(model):
            pass


@pytest.mark.parametrize("checkpoint", ["blocks", "time"])
def test_a_layer_that_keeps_its_own_state_is_refused_when_its_recomputation_differs(checkpoint):
    class Drifting(nn.Module):
        acts_per_step = True  # a false claim: its state changes at every call

        def __init__(self):
            super().__init__()
            self.offset = 0.0

        def forward(self, x):
            self.offset += 0.1
            return x + self.offset

    model = _conv_net()
    model.features.insert(2, Drifting())
    with memory.training_memory(model, "plain", checkpoint):
        out = model(torch.rand(4, 2, 2, 8, 8))
    with pytest.raises(RuntimeError, match=f"memory.checkpoint: {checkpoint}: the recomputed forward pass of .*Drifting"):
        out.sum().backward()


def test_firing_rates_count_each_step_once_under_checkpointing():
    from adalif.analysis import FiringRateMonitor

    x = torch.rand(4, 2, 2, 8, 8)
    results = []
    for checkpoint in ("none", "blocks", "time"):
        model = _conv_net()
        with FiringRateMonitor(model, per_step=True) as monitor:
            _grads_of(model, x, checkpoint)
            results.append((monitor.rates(), monitor.step_rates(), dict(monitor.elements)))
    (rates, steps, elements), *others = results
    assert all(len(s) == 4 for s in steps.values())
    for got_rates, got_steps, got_elements in others:
        assert got_rates == rates and got_elements == elements
        assert all(torch.equal(steps[k], got_steps[k]) for k in steps)


def test_nested_checkpoint_contexts_are_refused_and_leave_the_outer_one_working():
    model, x = _conv_net(), torch.rand(4, 2, 2, 8, 8)
    _, grads = _grads_of(_conv_net(), x, "none")
    with memory.checkpoint_blocks(model):
        with pytest.raises(ValueError, match="checkpointed already"):
            with memory.checkpoint_time(model):
                pass
        out = model(x)
    (out * torch.linspace(-1, 1, 3)).sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters()))
    assert "forward" not in model.features.__dict__
