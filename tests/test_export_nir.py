"""NIR export: the exported graph, run step by step by an interpreter written here from NIR's
equations, gives the adalif network's spikes and outputs; every refusal names the layer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

nir = pytest.importorskip("nir")

from adalif.export import to_nir  # noqa: E402
from adalif.layers import DirectEncoder, SeqToANN, TimeBatchNorm  # noqa: E402
from adalif.neurons import ARLIF, DALIF, LIF, PLIF  # noqa: E402

DT = 1e-4


def run_nir(graph, x_seq):
    """NIR semantics, one step at a time: forward-Euler LIF (v += dt/tau (v_leak - v + r I); a spike
    where v > v_threshold, then v = v_reset), the synaptic and pooling nodes applied per step; a
    node's input is the sum of its incoming edges' outputs (graphs may branch and merge)."""
    incoming = {}
    for src, dst in graph.edges:
        incoming.setdefault(dst, []).append(src)
    order, done = [], {"input"}
    while len(order) < len(graph.nodes) - 1:  # topological order of every node but the input
        ready = [k for k in graph.nodes if k not in done and all(s in done for s in incoming.get(k, []))]
        assert ready, "the graph has a cycle or a node without input"
        order += ready
        done.update(ready)
    chain = [k for k in order if k != "output"]
    state, current, outputs = {}, {}, []
    spikes = {k: [] for k in chain if isinstance(graph.nodes[k], (nir.LIF, nir.CubaLIF))}
    for x in x_seq:
        values = {"input": x}
        for key in chain:
            h = sum(values[s] for s in incoming[key])
            node = graph.nodes[key]
            if isinstance(node, nir.Conv2d):
                h = F.conv2d(h, torch.from_numpy(node.weight), torch.from_numpy(node.bias), tuple(node.stride),
                             tuple(node.padding), tuple(node.dilation), node.groups)
            elif isinstance(node, nir.Affine):
                h = h @ torch.from_numpy(node.weight).T + torch.from_numpy(node.bias)
            elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
                k = tuple(int(v) for v in node.kernel_size)
                h = F.avg_pool2d(h, k, tuple(int(v) for v in node.stride), tuple(int(v) for v in node.padding))
                h = h * (k[0] * k[1]) if isinstance(node, nir.SumPool2d) else h
            elif isinstance(node, nir.Flatten):
                h = h.flatten(node.start_dim + 1, node.end_dim if node.end_dim < 0 else node.end_dim + 1)
            elif isinstance(node, (nir.CubaLIF, nir.CubaLI, nir.LI)):
                f = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64))  # noqa: E731
                if not isinstance(node, nir.LI):  # the synaptic current, then the membrane with it
                    i = current.get(key, torch.zeros_like(h))
                    h = current[key] = i + DT / f(node.tau_syn) * (-i + f(node.w_in) * h)
                tau = f(node.tau if isinstance(node, nir.LI) else node.tau_mem)
                v = state.get(key, torch.zeros_like(h))
                v = v + DT / tau * (f(node.v_leak) - v + f(node.r) * h)
                if isinstance(node, nir.CubaLIF):
                    s = (v > f(node.v_threshold)).double()
                    v = torch.where(s.bool(), torch.zeros_like(v), v)
                    spikes[key].append(s)
                    h = s
                else:
                    h = v
                state[key] = v
            elif isinstance(node, nir.LIF):
                tau, r = torch.from_numpy(node.tau), torch.from_numpy(node.r)
                v = state.get(key, torch.zeros_like(h))
                v = v + DT / tau * (torch.from_numpy(node.v_leak) - v + r * h)
                s = (v > torch.from_numpy(node.v_threshold)).double()
                state[key] = torch.where(s.bool(), torch.from_numpy(node.v_reset).expand_as(v), v)
                spikes[key].append(s)
                h = s
            else:
                raise AssertionError(f"unexpected node {type(node).__name__}")
            values[key] = h
        outputs.append(sum(values[s] for s in incoming["output"]))
    return torch.stack(outputs), {k: torch.stack(v) for k, v in spikes.items()}


def _spiking_run(model, x, kinds):
    """``(output, {name: spikes})`` of ``model(x)`` for its neurons of the given classes."""
    spikes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: spikes.__setitem__(n, o)) for n, m in model.named_modules()
             if isinstance(m, kinds)]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return out, spikes


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = DirectEncoder(5)
        self.features = nn.Sequential(
            SeqToANN(nn.Conv2d(2, 4, 3, padding=1)), TimeBatchNorm(4, scale=0.7),
            DALIF(granularity="channel", num_channels=4, alpha_init=0.8, beta_init=0.3, backend="reference"),
            SeqToANN(nn.AvgPool2d(2)),
            SeqToANN(nn.Conv2d(4, 3, 3, padding=1, bias=False)), TimeBatchNorm(3),
            LIF(tau=3.0, decay_input=False, v_threshold=0.5, backend="reference"),
            SeqToANN(nn.AvgPool2d(2, divisor_override=1)),
        )
        self.head = nn.Sequential(SeqToANN(nn.Flatten(), nn.Linear(12, 6)), PLIF(init_tau=2.5, backend="reference"),
                                  SeqToANN(nn.Dropout(0.3), nn.Linear(6, 3)))
        with torch.no_grad():  # make every layer fire sometimes
            self.head[0][1].weight.mul_(6.0)
            self.head[0][1].bias.fill_(0.4)

    def forward(self, x):
        return self.head(self.features(self.encoder(x)))


def test_exported_graph_runs_like_the_network():
    model, x = _chain_and_input()
    graph = to_nir(model, x[:1], dt=DT)
    assert [type(n).__name__ for n in graph.nodes.values()] == [
        "Input", "Conv2d", "LIF", "AvgPool2d", "Conv2d", "LIF", "SumPool2d", "Flatten", "Affine", "LIF", "Affine", "Output"]
    expect, spikes = _spiking_run(model, x, (DALIF, LIF))
    out, nir_spikes = run_nir(graph, model.encoder(x))
    for name, s in spikes.items():
        assert torch.equal(nir_spikes[name], s) and 0 < s.mean() < 1, name
    torch.testing.assert_close(out, expect, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("neuron, message", [
    (ARLIF(), "AR-LIF's adaptive reset and input-dependent threshold have no NIR node"),
    (LIF(v_reset=None), "soft reset"),
    (DALIF(reset="soft"), "soft reset"),
    (LIF(v_reset=-0.5), "reset to -0.5"),
    (DALIF(beta_init=-0.2, decay_fn="none"), "temporal decay beta=.* outside \\[0, 1\\)"),
])
def test_neurons_nir_cannot_express_are_refused_by_name(neuron, message):
    model = nn.Sequential(SeqToANN(nn.Linear(4, 3)), neuron)
    with pytest.raises(ValueError, match=f"^1: {message}"):
        to_nir(model, torch.rand(2, 1, 4))


def test_max_pooling_and_unmapped_operations_are_refused():
    model = nn.Sequential(SeqToANN(nn.Conv2d(1, 2, 3, padding=1)), LIF(), SeqToANN(nn.MaxPool2d(2)))
    with pytest.raises(ValueError, match="2.0: MaxPool2d has no NIR node"):
        to_nir(model, torch.rand(2, 1, 1, 4, 4))

    class Scaled(nn.Module):  # x * 2 between two layers: no NIR node records it
        def __init__(self):
            super().__init__()
            self.fc, self.neuron = SeqToANN(nn.Linear(4, 3)), LIF()

        def forward(self, x):
            return self.neuron(self.fc(x) * 2)

    with pytest.raises(ValueError, match="^fc.0: its output goes through mul\\(x, 2\\) in the network's forward; NIR"):
        to_nir(Scaled(), torch.rand(2, 1, 4))

    class InPlace(Scaled):  # the layer's output changed in place: the graph would not know
        def forward(self, x):
            h = self.fc(x)
            h.mul_(2)
            return self.neuron(h)

    with pytest.raises(ValueError, match="^fc.0: its output goes through x.mul_\\(2\\) in the network's forward"):
        to_nir(InPlace(), torch.rand(2, 1, 4))


@pytest.mark.parametrize("name, kwargs", [
    ("resnet19", dict(neuron={"name": "lif", "backend": "reference"})),
    ("resnet20_mpbn", dict(neuron={"name": "dalif", "backend": "reference", "granularity": "channel"})),
    ("resnet18", dict(neuron={"name": "plif", "backend": "reference"})),
])
def test_residual_networks_export_with_their_merges_and_run_like_the_network(name, kwargs):
    """The papers' ResNets: each residual sum becomes two edges into the neuron after it (NIR
    sums incoming edges), identity and 1x1-conv (or pooled) shortcuts alike, batch norm folded."""
    from adalif.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, T=3, **kwargs).double()
    for m in model.modules():  # non-trivial eval statistics to fold
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2
    graph = to_nir(model, x[:1], dt=DT)
    merges = [k for k in graph.nodes if sum(dst == k for _, dst in graph.edges) == 2]
    blocks = [m for m in model.modules() if type(m).__name__ in ("BasicBlock", "PreActBlock")]
    assert len(merges) == len(blocks) > 0
    expect, spikes = _spiking_run(model, x, (LIF, PLIF, DALIF))
    out, nir_spikes = run_nir(graph, model.encoder(x))
    assert set(nir_spikes) == set(spikes)
    differing = {n: int((nir_spikes[n] != s).sum()) for n, s in spikes.items()}
    assert sum(differing.values()) == 0, differing
    assert 0 < sum(float(s.mean()) for s in spikes.values()) / len(spikes) < 1
    torch.testing.assert_close(out, expect, rtol=1e-9, atol=1e-9)


def test_export_nir_command_writes_the_graph_of_a_trained_checkpoint(tmp_path, monkeypatch):
    from adalif.cli import main, parse_config
    from adalif.train.run import train

    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    cfg = parse_config(["--config", "configs/digits_dalif.yaml", "--output_dir", str(tmp_path), "--trainer.max_epochs", "1",
                        "--trainer.limit_train_batches", "3", "--trainer.progress_bar", "false"])
    run = train(cfg).run_dir
    out = tmp_path / "digits.nir"
    assert main(["export-nir", f"{run}/checkpoints/last.ckpt", str(out)]) == 0
    graph = nir.read(str(out))
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert kinds.count("LIF") == 2 and kinds.count("Conv2d") == 2 and "Affine" in kinds
    assert main(["export-nir", f"{run}/checkpoints/last.ckpt", str(tmp_path / "portable.nir"), "--portable", "true"]) == 0
    portable = nir.read(str(tmp_path / "portable.nir"))
    assert all(np.all(n.r == 1) for n in portable.nodes.values() if isinstance(n, nir.LIF))
    assert not any(isinstance(n, nir.AvgPool2d) for n in portable.nodes.values())
    arlif = parse_config(["--config", "configs/digits_arlif.yaml", "--output_dir", str(tmp_path), "--trainer.max_epochs", "1",
                          "--trainer.limit_train_batches", "1", "--trainer.progress_bar", "false"])
    run = train(arlif).run_dir
    assert main(["export-nir", f"{run}/checkpoints/last.ckpt", str(tmp_path / "x.nir")]) == 2
    assert not (tmp_path / "x.nir").exists()


def test_time_major_layers_get_sample_types_and_run_like_the_network():
    """A plain nn.Flatten(2) and nn.Linear called on [T, B, ...] (not inside a SeqToANN): the NIR
    types leave out time and batch (Flatten of [4, 6, 6] from dimension 0, an input of (20,))."""
    torch.manual_seed(0)
    model = nn.Sequential(SeqToANN(nn.Conv2d(1, 4, 3, padding=1)), LIF(tau=2.0, backend="reference"), nn.Flatten(2),
                          nn.Linear(4 * 6 * 6, 5), LIF(tau=2.0, v_threshold=0.3, backend="reference")).double().eval()
    with torch.no_grad():  # make every layer fire sometimes
        model[3].weight.mul_(8.0)
        model[3].bias.fill_(0.3)
    x = torch.rand(3, 2, 1, 6, 6, dtype=torch.float64) * 3
    graph = to_nir(model, x, dt=DT)
    flatten = next(n for n in graph.nodes.values() if isinstance(n, nir.Flatten))
    assert list(flatten.input_type["input"]) == [4, 6, 6] and flatten.start_dim == 0 and flatten.end_dim == -1
    assert list(graph.nodes["input"].input_type["input"]) == [1, 6, 6]
    expect, spikes = _spiking_run(model, x, LIF)
    out, nir_spikes = run_nir(graph, x)
    assert all(torch.equal(nir_spikes[n], s) and 0 < s.mean() < 1 for n, s in spikes.items())
    assert torch.equal(out, expect)
    linear = to_nir(nn.Sequential(nn.Linear(20, 5), LIF()), torch.rand(3, 2, 20))
    assert list(linear.nodes["input"].input_type["input"]) == [20]


@pytest.mark.parametrize("layer, message", [
    (nn.AvgPool2d(2, padding=1, count_include_pad=False), "count_include_pad=False"),
    (nn.AvgPool2d(3, stride=2, ceil_mode=True), "ceil_mode=True"),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override=3"),
    (nn.BatchNorm2d(2, track_running_stats=False), "without running statistics"),
])
def test_layer_options_nir_would_compute_differently_are_refused_by_name(layer, message):
    model = nn.Sequential(SeqToANN(nn.Conv2d(1, 2, 3, padding=1), layer), LIF())
    with pytest.raises(ValueError, match=f"^0.1: .*{message}"):
        to_nir(model.eval(), torch.rand(2, 1, 1, 5, 5))


def test_flattening_time_or_batch_is_refused():
    model = nn.Sequential(SeqToANN(nn.Conv2d(1, 2, 3, padding=1)), LIF(), nn.Flatten(1), nn.Linear(32, 3))
    with pytest.raises(ValueError, match="^2: Flatten\\(start_dim=1, end_dim=-1\\) of \\[2, 1, 2, 4, 4\\] to \\[2, 32\\] merges the time or batch dimension"):
        to_nir(model, torch.rand(2, 1, 1, 4, 4))


def _snntorch_spikes(graph, seq):
    """Every snn.Leaky layer's spikes ``[T, B, ...]`` and the outputs of snnTorch's own NIR importer
    (nirtorch's executor: incoming edges summed), run one sample at a time: its Flatten takes
    NIR's sample dimensions as they are, so it runs unbatched."""
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    layers, outputs = None, []
    for b in range(seq.shape[1]):
        net, seen = import_from_nir(graph), []
        hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
                 for m in net.modules() if isinstance(m, snn.Leaky)]
        steps = []
        with torch.no_grad():
            for t in range(seq.shape[0]):
                out = net(seq[t, b].float())
                steps.append(out[0] if isinstance(out, tuple) else out)
        for h in hooks:
            h.remove()
        n = len(hooks)
        per_layer = [torch.stack(seen[i::n]) for i in range(n)]
        layers = [p.unsqueeze(1) for p in per_layer] if layers is None else [
            torch.cat([a, p.unsqueeze(1)], 1) for a, p in zip(layers, per_layer)]
        outputs.append(torch.stack(steps))
    return layers, torch.stack(outputs, 1)


@pytest.mark.parametrize("name, neuron, tolerance", [("resnet19", "lif", 1e-3), ("digits_cnn", "dalif", 0),
                                                     ("digits_cnn", "plif", 0)])
def test_snntorch_importer_reproduces_the_spikes(name, neuron, tolerance, capsys):
    """A real consumer: snnTorch 1.0's import_from_nir (fixed dt = 1e-4, threshold divided by the
    layer's input scale) on adalif's graphs, a ResNet with its residual merges included. The chains
    give identical spikes. snnTorch runs in float32 only (its spikes are float32), where the batch
    norm folded into the convolution rounds differently from convolution then batch norm; in a
    19-layer network a few spikes within that rounding of the threshold flip and the flips spread
    (docs/analysis.md gives the counts): at most 1 in 1000 neuron-steps."""
    from adalif.models import create_model

    torch.manual_seed(0)
    model = create_model(name, neuron={"name": neuron, "backend": "reference"}, num_classes=10, T=3).eval()
    for m in model.modules():  # eval statistics and scales that keep every layer firing
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(0.3, 1.3)
    x = torch.rand(2, 3, 16, 16) * 2 if name == "resnet19" else torch.rand(2, 1, 8, 8) * 3
    graph = to_nir(model, x[:1])
    ours = []
    hooks = [m.register_forward_hook(lambda mod, i, o: ours.append(o)) for m in model.modules() if isinstance(m, (LIF, DALIF))]
    with torch.no_grad():
        expect = model(x)
    for h in hooks:
        h.remove()
    theirs, out = _snntorch_spikes(graph, model.encoder(x))
    capsys.readouterr()  # snnTorch prints a note per layer whose input scale it moves into the threshold
    assert len(theirs) == len(ours) > 0
    differing = sum(int((a != b).sum()) for a, b in zip(ours, theirs))
    assert differing <= tolerance * sum(s.numel() for s in ours), differing
    hidden = ours if name != "resnet19" else ours[:-1]  # ResNet-19's head neuron may stay silent
    assert all(0 < float(s.mean()) < 1 for s in hidden), [float(s.mean()) for s in ours]
    if tolerance == 0:
        torch.testing.assert_close(out, expect, rtol=1e-4, atol=1e-4)


def _chain_and_input():
    torch.manual_seed(0)
    model = Chain().double()
    with torch.no_grad():  # decays that differ between channels
        model.features[2].tau_a.add_(torch.linspace(-0.2, 0.2, 4, dtype=torch.float64))
        model.features[2].tau_b.add_(torch.linspace(0.2, -0.2, 4, dtype=torch.float64))
    for m in model.modules():  # non-trivial eval statistics to fold
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 1.5)
    return model.eval(), torch.rand(2, 2, 8, 8, dtype=torch.float64) * 2


def test_portable_form_folds_the_input_scale_and_the_pooling_and_computes_the_same():
    model, x = _chain_and_input()
    graph = to_nir(model, x[:1], dt=DT, portable=True)
    assert [type(n).__name__ for n in graph.nodes.values()] == [
        "Input", "Conv2d", "LIF", "SumPool2d", "Conv2d", "LIF", "SumPool2d", "Flatten", "Affine", "LIF", "Affine", "Output"]
    assert all(np.all(n.r == 1) for n in graph.nodes.values() if isinstance(n, nir.LIF))
    expect, spikes = _spiking_run(model, x, (DALIF, LIF))
    out, nir_spikes = run_nir(graph, model.encoder(x))
    assert all(torch.equal(nir_spikes[n], s) and 0 < s.mean() < 1 for n, s in spikes.items())
    torch.testing.assert_close(out, expect, rtol=1e-9, atol=1e-9)


def test_portable_form_refuses_a_scale_it_cannot_fold():
    from adalif.models import create_model

    model = create_model("resnet19", neuron={"name": "dalif", "alpha_init": 0.6, "beta_init": 0.3}, num_classes=10, T=2)
    with pytest.raises(ValueError, match="portable form: r = .* cannot be folded into .*identity"):
        to_nir(model.eval(), torch.rand(1, 3, 16, 16), portable=True)
    lif = create_model("resnet19", neuron="lif", num_classes=10, T=2).eval()  # LIF: r = 1, nothing to fold
    assert sum(isinstance(n, nir.SumPool2d) for n in to_nir(lif, torch.rand(1, 3, 16, 16), portable=True).nodes.values()) == 1


def test_norse_importer_reproduces_the_portable_form():
    """A real consumer: Norse 1.1's from_nir (it ignores r and has no AvgPool2d; dt given) on the
    portable form of a network with per-channel DA-LIF decays, LIF and PLIF layers, average and
    sum pooling: every spike identical (run one sample at a time, as its Flatten has no batch)."""
    pytest.importorskip("norse")
    from norse.torch.utils.import_nir import from_nir

    model, x = _chain_and_input()
    graph = to_nir(model, x[:1], dt=DT, portable=True)
    _, expected = run_nir(graph, model.encoder(x))  # identical to the model's (the test above)
    seq = model.encoder(x).float()
    for b in range(seq.shape[1]):
        net, seen = from_nir(graph, dt=DT), []
        hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(o[0])) for m in net.modules()
                 if type(m).__name__ == "LIFBoxCell"]
        state = None
        for t in range(seq.shape[0]):
            _, state = net(seq[t, b], state)
        for h in hooks:
            h.remove()
        theirs = [torch.stack(seen[i::len(hooks)]) for i in range(len(hooks))]
        assert [int((a.double() != e[:, b]).sum()) for a, e in zip(theirs, expected.values())] == [0] * len(expected)


def test_import_of_an_exported_graph_gives_identical_spikes():
    """adalif -> NIR -> adalif: the chain (per-channel DA-LIF, LIF, PLIF, pooling, folded batch
    norm) and a ResNet with its merges come back as DA-LIF neurons on adalif's kernels, spike for
    spike and equal to a direct discretisation of the NIR equations."""
    from adalif import import_nir
    from adalif.models import create_model

    model, x = _chain_and_input()
    graph = to_nir(model, x[:1], dt=DT)
    net = import_nir(graph, dt=DT).double().eval()
    seq = model.encoder(x)
    expect, spikes = _spiking_run(model, x, (DALIF, LIF))
    out, imported = _spiking_run(net, seq, (DALIF,))
    assert [int((a != b).sum()) for a, b in zip(spikes.values(), imported.values())] == [0, 0, 0]
    torch.testing.assert_close(out, expect, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out, run_nir(graph, seq)[0], rtol=1e-9, atol=1e-9)
    assert [m.granularity for m in net.modules() if isinstance(m, DALIF)] == ["channel", "layer", "layer"]

    torch.manual_seed(0)
    resnet = create_model("resnet19", neuron={"name": "lif", "backend": "reference"}, num_classes=10, T=2).double()
    for m in resnet.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(0.3, 1.3)
    resnet.eval()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 2
    back = import_nir(to_nir(resnet, x[:1], dt=DT), dt=DT).double().eval()
    expect, spikes = _spiking_run(resnet, x, (LIF,))
    out, imported = _spiking_run(back, resnet.encoder(x), (DALIF,))
    assert len(imported) == len(spikes) == 18
    assert [int((a != b).sum()) for a, b in zip(spikes.values(), imported.values())] == [0] * 18
    torch.testing.assert_close(out, expect, rtol=1e-9, atol=1e-9)


def test_import_of_a_graph_written_by_snntorch(monkeypatch):
    """snnTorch 1.0's own exporter (Linear -> Leaky chains; its neuron nodes carry no types, so
    nir's type check is skipped) imported into adalif: the same spikes as snnTorch's run."""
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    from adalif import import_nir

    monkeypatch.setattr(nir.NIRGraph, "infer_types", lambda self: None)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 16), snn.Leaky(beta=0.8, threshold=0.7, init_hidden=True, reset_mechanism="zero"),
                        nn.Linear(16, 5), snn.Leaky(beta=0.6, init_hidden=True, output=True, reset_mechanism="zero"))
    with torch.no_grad():
        net[2].weight.mul_(3.0)
    graph = export_to_nir(net, torch.rand(1, 20))
    x = torch.rand(10, 3, 20) * 2
    snn_utils.reset(net)
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
             for m in net.modules() if isinstance(m, snn.Leaky)]
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    for h in hooks:
        h.remove()
    theirs = [torch.stack(seen[i::2]) for i in range(2)]
    _, ours = _spiking_run(import_nir(graph, dt=1e-4).eval(), x, (DALIF,))
    assert [int((a != b).sum()) for a, b in zip(ours.values(), theirs)] == [0, 0]
    assert all(0 < float(s.mean()) < 1 for s in ours.values())


def test_import_refuses_what_it_cannot_build_and_the_command_writes_a_module(tmp_path, capsys):
    from adalif import import_nir
    from adalif.cli import main
    from adalif.export import load_imported

    def graph(node):
        return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}), "n": node,
                                   "output": nir.Output(output_type={"output": np.array([3])})},
                            edges=[("input", "n"), ("n", "output")], type_check=False)

    ones = np.ones(3)
    with pytest.raises(ValueError, match="^n: Threshold nodes cannot be imported yet"):
        import_nir(graph(nir.Threshold(threshold=ones)))
    with pytest.raises(ValueError, match="^n: LIF with v_leak != 0"):
        import_nir(graph(nir.LIF(tau=ones, r=ones, v_leak=ones, v_threshold=ones)))
    with pytest.raises(ValueError, match="^n: v_threshold varies between neurons"):
        import_nir(graph(nir.LIF(tau=ones, r=ones, v_leak=0 * ones, v_threshold=np.arange(1.0, 4.0))))
    # The command: a .pt read back safely, computing what the graph computes; decays trainable.
    model, x = _chain_and_input()
    nir.write(str(tmp_path / "chain.nir"), to_nir(model.float(), x[:1].float(), dt=DT))
    assert main(["import-nir", str(tmp_path / "chain.nir"), "--out", str(tmp_path / "chain.pt")]) == 0
    net = load_imported(str(tmp_path / "chain.pt"))
    seq = model.encoder(x.float())
    torch.testing.assert_close(net(seq), import_nir(str(tmp_path / "chain.nir"), dt=DT)(seq))
    net(seq).sum().backward()
    assert all(m.tau_b.grad is not None for m in net.modules() if isinstance(m, DALIF))
    assert main(["import-nir", str(tmp_path / "missing.nir"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_import_of_current_based_and_non_spiking_nodes_follows_the_nir_equations():
    """CubaLIF (per-channel time constants), CubaLI and LI nodes become adalif's cuba_lif, cuba_li
    and leaky_integrator neurons: spikes and readouts equal to forward Euler of NIR's equations."""
    from adalif import import_nir
    from adalif.neurons import Neuron

    rng = np.random.default_rng(0)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=rng.normal(0, 1.5, (3, 4)), bias=np.full(3, 0.5)),
        "cuba": nir.CubaLIF(tau_syn=np.array([2e-4, 3e-4, 4e-4]), tau_mem=np.array([3e-4, 3e-4, 5e-4]), r=np.full(3, 2.0),
                            v_leak=np.zeros(3), v_threshold=np.full(3, 0.8), w_in=np.full(3, 1.5)),
        "fc2": nir.Affine(weight=rng.normal(0, 1.0, (2, 3)), bias=np.zeros(2)),
        "li": nir.LI(tau=np.full(2, 4e-4), r=np.full(2, 1.5), v_leak=np.zeros(2)),
        "cuba_li": nir.CubaLI(tau_syn=np.full(2, 2e-4), tau_mem=np.full(2, 5e-4), r=np.ones(2), v_leak=np.zeros(2),
                              w_in=np.full(2, 0.5)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "li"), ("fc2", "cuba_li"), ("li", "output"),
             ("cuba_li", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    net = import_nir(graph, dt=DT).double()
    kinds = [type(m).__name__ for m in net.modules() if isinstance(m, Neuron)]
    assert kinds == ["CubaLIF", "LeakyIntegrator", "CubaLI"] and next(
        m for m in net.modules() if type(m).__name__ == "CubaLIF").granularity == "channel"
    x = torch.rand(12, 3, 4, dtype=torch.float64) * 2
    expect, spikes = run_nir(graph, x)
    out, ours = _spiking_run(net, x, (Neuron,))
    assert torch.equal(next(iter(ours.values())), spikes["cuba"]) and 0 < float(spikes["cuba"].mean()) < 1
    # The module stores its weights and coefficients in float32 (PyTorch's default dtype).
    torch.testing.assert_close(out, expect, rtol=1e-6, atol=1e-6)


def test_snntorch_importer_reproduces_the_portable_form_of_a_chain(capsys):
    """The portable form (input scale folded into the weights, r = 1) read by snnTorch: a DA-LIF
    layer whose input scale R = alpha / (1 - beta) is not 1, and a LIF layer: identical spikes.
    (snnTorch has no SumPool2d, so a portable network with pooling is not for it.)"""
    torch.manual_seed(0)
    model = nn.Sequential(SeqToANN(nn.Conv2d(1, 4, 3, padding=1)), TimeBatchNorm(4),
                          DALIF(alpha_init=0.6, beta_init=0.3, backend="reference"),
                          SeqToANN(nn.Flatten(), nn.Linear(4 * 6 * 6, 5)), LIF(tau=2.0, backend="reference")).eval()
    with torch.no_grad():
        model[1].bn.bias.fill_(0.5)
        model[3][1].weight.mul_(4.0)
        model[3][1].bias.fill_(0.5)
    x = torch.rand(6, 3, 1, 6, 6) * 2
    graph = to_nir(model, x[:, :1], portable=True)
    assert all(np.all(n.r == 1) for n in graph.nodes.values() if isinstance(n, nir.LIF))
    _, spikes = _spiking_run(model, x, (DALIF, LIF))
    theirs, _ = _snntorch_spikes(graph, x)
    capsys.readouterr()
    assert [int((a != b).sum()) for a, b in zip(spikes.values(), theirs)] == [0, 0]
    assert all(0 < float(s.mean()) < 1 for s in spikes.values())


# -- The graph is the captured forward pass: one node per call, every operation mapped or refused --------


class _Twice(nn.Module):
    """One LIF module called twice (legitimate: each call starts from a fresh state)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.n1, self.fc2 = nn.Linear(4, 6), LIF(tau=2.0, backend="reference"), nn.Linear(6, 6)
        with torch.no_grad():  # make both calls fire sometimes
            self.fc1.weight.mul_(4.0), self.fc1.bias.fill_(0.3), self.fc2.weight.mul_(4.0), self.fc2.bias.fill_(0.5)

    def forward(self, x):
        return self.n1(self.fc2(self.n1(self.fc1(x))))


def test_a_module_called_twice_gives_a_node_per_call_and_imports_back_with_the_same_spikes(tmp_path):
    from adalif import import_nir

    torch.manual_seed(0)
    model, x = _Twice().double().eval(), torch.rand(6, 3, 4, dtype=torch.float64) * 2
    graph = to_nir(model, x[:, :1], dt=DT)
    assert list(graph.nodes) == ["input", "fc1", "n1", "fc2", "n1.1", "output"]
    assert graph.edges == [("input", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "n1.1"), ("n1.1", "output")]
    calls = []
    hook = model.n1.register_forward_hook(lambda mod, i, o: calls.append(o))
    with torch.no_grad():
        expect = model(x)
    hook.remove()
    assert all(0 < float(s.mean()) < 1 for s in calls)
    out, nir_spikes = run_nir(graph, x)
    assert [torch.equal(nir_spikes[k], s) for k, s in zip(("n1", "n1.1"), calls)] == [True, True]
    torch.testing.assert_close(out, expect, rtol=0, atol=0)
    nir.write(str(tmp_path / "twice.nir"), graph)
    back = import_nir(str(tmp_path / "twice.nir"), dt=DT).double().eval()
    _, imported = _spiking_run(back, x, (DALIF,))
    assert [int((a != b).sum()) for a, b in zip(imported.values(), calls)] == [0, 0]


class _Reads(nn.Module):
    """fc2(op(n1(fc1(x)))) for an operation ``op`` between two layers."""

    def __init__(self, op, width):
        super().__init__()
        self.op, self.fc1, self.n1, self.fc2 = op, nn.Linear(4, 8), LIF(), nn.Linear(width, 3)

    def forward(self, x):
        return self.fc2(self.op(self.n1(self.fc1(x))))


@pytest.mark.parametrize("op, width, message", [
    (lambda h: h[..., :4], 4, r"x\[..., :4\] in the network's forward; NIR export maps layers"),
    (lambda h: h.narrow(-1, 0, 4), 4, r"x.narrow\(-1, 0, 4\) in"),
    (lambda h: h.view(2, 1, 2, 4).flatten(2), 8, r"x.view\(2, 1, 2, 4\) in .* reshapes \[2, 1, 8\] to \[2, 1, 2, 4\], "
                                                r"which is not a Flatten"),
    (lambda h: torch.cat([h, h], -1), 16, r"cat\("),
    (lambda h: h * 2, 8, r"mul\(x, 2\)"),
], ids=["slice at offset 0", "narrow", "view", "concatenation", "product"])
def test_operations_nir_cannot_express_are_refused_naming_the_operation_and_the_layer(op, width, message):
    """A slice at offset 0 used to export 8 neurons into an Affine that expects 4 (the graph was
    written without nir's type check): each operation is now mapped or refused by name."""
    with pytest.raises(ValueError, match=f"^n1: its output goes through {message}"):
        to_nir(_Reads(op, width), torch.rand(2, 1, 4))


def test_flatten_reshape_and_folding_written_as_operations_export_and_run_like_the_network():
    """``x.flatten(2)``, a reshape that folds time into the batch and a view that unfolds it, in a
    forward of one's own: a Flatten node and nothing for the folding; types checked by nir."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.n1 = SeqToANN(nn.Conv2d(1, 2, 3, padding=1)), LIF(tau=2.0, backend="reference")
            self.fc, self.n2 = nn.Linear(2 * 4 * 4, 5), LIF(tau=2.0, v_threshold=0.3, backend="reference")

        def forward(self, x):
            T, B = x.shape[:2]
            h = self.n1(self.conv(x)).flatten(2)
            h = self.fc(h.reshape(T * B, -1).contiguous()).view(T, B, -1)
            return self.n2(h)

    torch.manual_seed(0)
    model = Net().double().eval()
    with torch.no_grad():
        model.conv[0].weight.mul_(4.0), model.conv[0].bias.fill_(0.5)
        model.fc.weight.mul_(4.0), model.fc.bias.fill_(0.2)
    x = torch.rand(4, 2, 1, 4, 4, dtype=torch.float64) * 3
    graph = to_nir(model, x[:, :1], dt=DT)
    assert [type(n).__name__ for n in graph.nodes.values()] == ["Input", "Conv2d", "LIF", "Flatten", "Affine", "LIF",
                                                                "Output"]
    assert list(graph.nodes)[3] == "flatten"
    expect, spikes = _spiking_run(model, x, LIF)
    out, nir_spikes = run_nir(graph, x)
    assert all(torch.equal(nir_spikes[n], s) and 0 < s.mean() < 1 for n, s in spikes.items())
    assert torch.equal(out, expect)


def test_control_flow_on_a_tensors_values_is_refused():
    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.n1 = nn.Linear(4, 3), LIF()

        def forward(self, x):
            h = self.fc(x)
            return self.n1(h if h.sum() > 0 else -h)

    with pytest.raises(ValueError, match="^the network's forward: control flow on a tensor's values"):
        to_nir(Branching(), torch.rand(2, 1, 4))


class ScaledLIF(LIF):
    """A LIF that doubles its input: its own forward, the definition of LIF's is not its."""

    def forward(self, x):
        return super().forward(2 * x)


def test_a_neuron_subclass_is_exported_only_with_its_own_definition(monkeypatch):
    """ScaledLIF used to export as a plain LIF (outputs 0.52 apart): the definition is the exact
    class's. A SpikingJelly-style node (its state kept between calls) is refused alike; ScaledLIF
    with a definition of its own exports, and runs like the network."""
    import dataclasses

    from adalif.compat.spikingjelly import LIFNode
    from adalif.definitions import base, get

    model = nn.Sequential(nn.Linear(4, 3), ScaledLIF(tau=2.0, backend="reference"), nn.Linear(3, 2)).double().eval()
    with pytest.raises(ValueError, match="^1: ScaledLIF is not the class of a registered neuron; it derives from LIF"):
        to_nir(model, torch.rand(2, 1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="^1: LIFNode is not the class of a registered neuron; it derives from LIF"):
        to_nir(nn.Sequential(nn.Linear(4, 3), LIFNode(step_mode="m")), torch.rand(2, 1, 4))
    lif = get("lif")

    def doubled(m, name):
        alpha, beta = lif.nir(m, name)
        return 2 * alpha, beta

    monkeypatch.setitem(base._REGISTRY, "scaled_lif", dataclasses.replace(
        lif, name="scaled_lif", class_name="ScaledLIF", module=ScaledLIF, nir=doubled))
    torch.manual_seed(0)
    with torch.no_grad():
        model[0].weight.mul_(3.0), model[0].bias.fill_(0.2)
    x = torch.rand(8, 3, 4, dtype=torch.float64)
    graph = to_nir(model, x[:, :1], dt=DT)
    expect, spikes = _spiking_run(model, x, LIF)
    out, nir_spikes = run_nir(graph, x)
    assert torch.equal(nir_spikes["1"], spikes["1"]) and 0 < float(spikes["1"].mean()) < 1
    torch.testing.assert_close(out, expect, rtol=1e-9, atol=1e-9)


def test_export_and_operation_counts_restore_every_modules_training_flag():
    """A batch norm frozen in eval mode inside a model in training mode stays frozen (the export
    and the operation counter used to set every module to the model's own flag)."""
    from adalif.analysis import count_operations

    model = nn.Sequential(SeqToANN(nn.Conv2d(1, 2, 3, padding=1)), TimeBatchNorm(2), LIF(),
                          SeqToANN(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, 3))).train()
    model[1].eval()  # frozen statistics
    flags = [m.training for m in model.modules()]
    assert not all(flags) and any(flags)
    to_nir(model, torch.rand(2, 1, 1, 4, 4))
    assert [m.training for m in model.modules()] == flags
    count_operations(model, torch.rand(2, 1, 1, 4, 4))
    assert [m.training for m in model.modules()] == flags


def test_import_nir_of_an_hdf5_file_that_is_not_a_nir_graph_is_one_line(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    from adalif import import_nir
    from adalif.cli import main

    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=np.ones((2, 3)))
    with pytest.raises(ValueError, match="weights.h5' is an HDF5 file but not a NIR graph"):
        import_nir(str(path))
    assert main(["import-nir", str(path), "--out", str(tmp_path / "w.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adalif: error: import-nir:") and str(path) in err, err
    assert "not a NIR graph" in err and not (tmp_path / "w.pt").exists()


def test_a_module_with_a_forward_hook_is_refused():
    """A hook that changes a neuron's output (o * 0.5) used to be left out of the graph silently."""
    model = nn.Sequential(nn.Linear(4, 3), LIF(), nn.Linear(3, 2))
    handle = model[1].register_forward_hook(lambda m, i, o: o * 0.5)
    with pytest.raises(ValueError, match="^1: has a forward hook"):
        to_nir(model, torch.rand(2, 1, 4))
    handle.remove()
    to_nir(model, torch.rand(2, 1, 4))
