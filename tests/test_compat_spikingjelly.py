"""adalif's SpikingJelly-style nodes inside a real SpikingJelly network, against the adalif model.

The nodes themselves import nothing of SpikingJelly (checked here); the SpikingJelly network is
optional and skipped where SpikingJelly is absent.
"""

import subprocess
import sys

import pytest
import torch
from torch import nn

from adalif.compat.spikingjelly import ARLIFNode, DALIFNode, LIFNode, ParametricLIFNode, reset_net
from adalif.layers import SeqToANN, TimeBatchNorm
from adalif.neurons import ARLIF, DALIF, LIF, PLIF
from adalif.surrogate import ATan, Rectangle

NODES = {
    "lif": (LIFNode, LIF, dict(tau=2.0, decay_input=False, v_reset=0.0, surrogate=Rectangle(1.0))),
    "plif": (ParametricLIFNode, PLIF, dict(init_tau=2.5, v_reset=None)),
    "dalif": (DALIFNode, DALIF, dict(granularity="channel", num_channels=4)),
    "arlif": (ARLIFNode, ARLIF, dict()),
}


def test_plain_neurons_survive_spikingjellys_reset_net():
    # reset_net calls reset() on every module that has an attribute of that name.
    for neuron in (LIF(), PLIF(), DALIF(reset="soft"), ARLIF()):
        assert not hasattr(neuron, "reset")
    assert DALIF(reset="soft").reset_mode == "soft"


def test_compat_module_does_not_import_spikingjelly():
    code = "import sys, adalif.compat.spikingjelly; print(any(m.startswith('spikingjelly') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kind", sorted(NODES))
def test_single_step_calls_and_reset_equal_the_multi_step_adalif_call(kind):
    node_cls, neuron_cls, kwargs = NODES[kind]
    torch.manual_seed(0)
    node, neuron = node_cls(**kwargs), neuron_cls(**kwargs)
    neuron.load_state_dict(node.state_dict())
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64) * 2
    w = torch.randn_like(x)
    node.double(), neuron.double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    for _ in range(2):  # the second batch equals the first only because reset() forgot the state
        spikes = torch.stack([node(xa[t]) for t in range(6)])
        reset_net(node)
    expect = neuron(xb)
    assert torch.equal(spikes, expect) and 0 < spikes.mean() < 1
    (spikes * w).sum().backward()
    (expect * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(node.named_parameters(), neuron.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    # Multi-step mode continues from the stored state: two chunks equal one call.
    node.step_mode = "m"
    chunked = torch.cat([node(x[:2]), node(x[2:])])
    assert torch.equal(chunked, neuron(x))
    node.reset()
    assert node.v == 0.0 and node.state is None


def test_node_accepts_spikingjelly_arguments_and_stores_v_seq():
    class ATanLike:  # stands for spikingjelly's surrogate.ATan: translated by class name and alpha
        alpha, spiking = 3.0, True

    ATanLike.__name__ = "ATan"
    node = LIFNode(tau=3.0, surrogate_function=ATanLike(), backend="cupy", step_mode="m", store_v_seq=True)
    assert node.surrogate == ATan(3.0) and node.backend is None
    spikes = node(torch.randn(4, 2, 3) * 3)
    assert node.v_seq.shape == spikes.shape and torch.equal(node.v, node.v_seq[-1])
    node.detach()
    assert not node.v.requires_grad
    with pytest.raises(ValueError, match="step_mode: got 'x'"):
        LIFNode(step_mode="x")
    with pytest.raises(ValueError, match="surrogate_function: cannot translate object"):
        LIFNode(surrogate_function=object())


sj = pytest.importorskip("spikingjelly.activation_based", exc_type=ImportError)
from spikingjelly.activation_based import functional as sj_functional  # noqa: E402
from spikingjelly.activation_based import layer as sj_layer  # noqa: E402


def _spikingjelly_net(node_cls, kwargs):
    return nn.Sequential(
        sj_layer.Conv2d(2, 4, 3, padding=1), sj_layer.BatchNorm2d(4), node_cls(**kwargs),
        sj_layer.AvgPool2d(2), sj_layer.Flatten(), sj_layer.Linear(4 * 4 * 4, 4), node_cls(**{**kwargs, **(
            {"num_channels": 4} if "num_channels" in kwargs else {})}),
    )


def _adalif_net(neuron_cls, kwargs, bn):
    return nn.Sequential(
        SeqToANN(nn.Conv2d(2, 4, 3, padding=1)), TimeBatchNorm(4, mode=bn), neuron_cls(**kwargs),
        SeqToANN(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 4)), neuron_cls(**kwargs),
    )


# SpikingJelly network index -> adalif network key prefix
_KEYS = {"0.": "0.0.", "1.": "1.bn.", "2.": "2.", "5.": "3.2.", "6.": "4."}


def _ours(key: str) -> str:
    prefix = next(p for p in _KEYS if key.startswith(p))
    return _KEYS[prefix] + key[len(prefix):]


@pytest.mark.parametrize("step_mode, bn", [("s", "per_step"), ("m", "time_batch")])
@pytest.mark.parametrize("kind", sorted(NODES))
def test_nodes_inside_a_spikingjelly_network_equal_the_adalif_model(kind, step_mode, bn):
    """A SpikingJelly network (its Conv2d, BatchNorm2d, pooling and Linear layers) with our nodes,
    run as SpikingJelly code runs: single-step calls in a loop over T, or one multi-step call, and
    reset_net between batches. Single-step BN normalises each step over B (adalif's per_step),
    multi-step BN over T·B (time_batch)."""
    node_cls, neuron_cls, kwargs = NODES[kind]
    torch.manual_seed(0)
    theirs = _spikingjelly_net(node_cls, kwargs).double()
    sj_functional.set_step_mode(theirs, step_mode)
    with torch.no_grad():
        theirs[5].weight.mul_(4.0), theirs[5].bias.fill_(1.5)  # make the output layer fire
    ours = _adalif_net(neuron_cls, kwargs, bn).double()
    ours.load_state_dict({_ours(k): v for k, v in theirs.state_dict().items()})
    x = torch.rand(5, 3, 2, 8, 8, dtype=torch.float64) * 2
    w = torch.randn(5, 3, 4, dtype=torch.float64)
    for batch in range(2):  # the second batch sees a reset network and the first's BN statistics
        out = torch.stack([theirs(x[t]) for t in range(5)]) if step_mode == "s" else theirs(x)
        sj_functional.reset_net(theirs)
        expect = ours(x)
        assert torch.equal(out, expect) and 0 < expect.mean() < 1
    (out * w).sum().backward()
    (expect * w).sum().backward()
    ours_params = dict(ours.named_parameters())
    for key, p in theirs.named_parameters():
        torch.testing.assert_close(p.grad, ours_params[_ours(key)].grad, rtol=1e-9, atol=1e-12, msg=key)
    ours_buffers = dict(ours.named_buffers())
    for key, b in theirs.named_buffers():  # BN running statistics, updated per step or per call
        torch.testing.assert_close(b, ours_buffers[_ours(key)], rtol=1e-9, atol=1e-12, msg=key)
    assert int(ours_buffers["1.bn.num_batches_tracked"]) == (10 if bn == "per_step" else 2)


def test_spikingjelly_monitor_set_backend_initial_v_and_single_step_v_seq():
    """The four gaps found inside SpikingJelly's own tools (issue 15, item 5), each against SpikingJelly."""
    sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, monitor

    # SpikingJelly's initial v is v_reset (0 for soft reset), before the first step and after reset.
    ours, theirs = LIFNode(v_reset=-0.3), sj.LIFNode(v_reset=-0.3)
    assert ours.v == theirs.v == -0.3
    x = torch.randn(3, 5)
    ours(x), theirs(x)
    reset_net(ours), functional.reset_net(theirs)
    assert ours.v == theirs.v == -0.3
    assert LIFNode(v_reset=None).v == sj.LIFNode(v_reset=None).v == 0.0
    # AttributeMonitor reads the state with module.__getattr__ (no property is seen that way).
    net = nn.Sequential(nn.Linear(5, 4), LIFNode(), nn.Linear(4, 3), ARLIFNode())
    mon = monitor.AttributeMonitor("v", False, net, instance=(LIFNode, ARLIFNode))
    for x_t in torch.randn(4, 2, 5):
        net(x_t)
    assert len(mon.records) == 8 and all(r.shape in ((2, 4), (2, 3)) for r in mon.records)
    assert torch.equal(mon.records[-1], net[3].state.v)
    mon.remove_hooks()
    # functional.set_backend checks supported_backends, then assigns; "torch" means automatic here.
    functional.set_backend(net, "torch", instance=(LIFNode, ARLIFNode))
    assert net[1].backend is None and net[3].backend is None
    # store_v_seq in single-step mode records v step by step (SpikingJelly 2.0.0's behaviour).
    node = LIFNode(store_v_seq=True)
    xs = torch.randn(4, 2, 3)
    for x_t in xs:
        node(x_t)
    reference = LIF().run(xs, return_traces=True).v_seq
    assert torch.equal(node.v_seq, reference)


def _spikingjelly_model_zoo():
    """SpikingJelly's model zoo imports torchvision only to download pretrained weights, and
    torchvision cannot be imported beside the CPU build of torch here: a stand-in module that
    refuses downloads lets the zoo import (nothing is downloaded)."""
    import sys
    import types

    if "torchvision" not in sys.modules:
        stub = types.ModuleType("torchvision._internally_replaced_utils")
        stub.load_state_dict_from_url = lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("no downloads"))
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        sys.modules["torchvision._internally_replaced_utils"] = stub
    return pytest.importorskip("spikingjelly.activation_based.model.spiking_resnet").__package__


@pytest.mark.parametrize("arch", ["spiking_resnet.spiking_resnet18", "sew_resnet.sew_resnet18",
                                  "spiking_vgg.spiking_vgg11_bn"])
def test_spikingjelly_model_zoo_with_adalif_nodes_equals_its_own(arch):
    """SpikingJelly's own networks, built once with its LIFNode and once with adalif's: outputs and
    every weight gradient equal, in single-step and multi-step mode."""
    import importlib

    package = _spikingjelly_model_zoo()
    from spikingjelly.activation_based import functional, neuron, surrogate

    module, name = arch.split(".")
    build = getattr(importlib.import_module(f"{package}.{module}"), name)
    extra = {"cnf": "ADD"} if module == "sew_resnet" else {}
    nets = []
    for node in (neuron.LIFNode, LIFNode):
        torch.manual_seed(0)
        nets.append(build(spiking_neuron=node, surrogate_function=surrogate.Sigmoid(), num_classes=10, **extra))
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.rand(2, 3, 32, 32)  # two samples: batch norm needs more than one value per channel
    for mode in ("s", "m"):
        outs, grads = [], []
        for net, reset in zip(nets, (functional.reset_net, reset_net)):
            functional.set_step_mode(net, mode)
            reset(net)
            net.zero_grad()
            torch.manual_seed(1)  # the same dropout masks (SpikingJelly's Dropout draws one per sequence)
            out = torch.stack([net(x) for _ in range(2)]) if mode == "s" else net(x.unsqueeze(0).repeat(2, 1, 1, 1, 1))
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
            outs.append(out.detach())
            grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
        assert torch.equal(outs[0], outs[1]), mode
        assert len(grads[0]) == len(grads[1]) > 0
        # Within 1e-5 of the largest gradient: a few gradients are rounding noise around zero (a bias
        # whose BN removes it, a deep BN with no spike downstream), where a relative test means nothing.
        scale = max(float(g.abs().max()) for g in grads[0])
        for g0, g1 in zip(*grads):
            assert float((g1 - g0).abs().max()) <= 1e-5 * scale, mode
