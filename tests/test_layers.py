import math

import pytest
import torch
from torch import nn

from adalif.layers import DirectEncoder, SeqToANN, SharedDropout, TimeBatchNorm


def test_seq_to_ann_folds_time_into_batch():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(4, 2, 3, 6, 6)
    y = SeqToANN(conv)(x)
    assert y.shape == (4, 2, 5, 6, 6)
    torch.testing.assert_close(y[2, 1], conv(x[2, 1:2])[0])


def test_time_batch_norm_statistics_over_T_and_B_and_tdbn_scale():
    x = torch.randn(3, 4, 2, 5, 5) * 3 + 1
    bn = TimeBatchNorm(2)
    y = bn(x)
    flat = x.transpose(0, 2).reshape(2, -1)  # channel-major over T, B, H, W
    expect = (x - flat.mean(1).view(1, 1, 2, 1, 1)) / torch.sqrt(flat.var(1, unbiased=False).view(1, 1, 2, 1, 1) + 1e-5)
    torch.testing.assert_close(y, expect, rtol=1e-4, atol=1e-4)
    scaled = TimeBatchNorm(2, scale=1 / math.sqrt(2))
    with torch.no_grad():
        scaled.bn.weight.fill_(2.0)
        scaled.bn.bias.fill_(0.5)
    torch.testing.assert_close(scaled(x), 2.0 * expect / math.sqrt(2) + 0.5, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.bn.running_mean, 0.1 * flat.mean(1))


def test_time_batch_norm_converts_to_sync_batchnorm():
    m = nn.Sequential(TimeBatchNorm(3))
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(m)
    assert isinstance(converted[0], TimeBatchNorm) and isinstance(converted[0].bn, nn.SyncBatchNorm)


def test_shared_dropout_mask_is_the_same_at_every_step():
    drop = SharedDropout(0.5).train()
    y = drop(torch.ones(6, 8, 10))
    assert torch.equal(y[0], y[5]) and (y == 0).any() and set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(6, 8, 10)), torch.ones(6, 8, 10))
    with pytest.raises(ValueError, match="p: expected a dropout probability"):
        SharedDropout(1.0)


def test_direct_encoder_repeats_input():
    x = torch.randn(2, 3, 4)
    y = DirectEncoder(5)(x)
    assert y.shape == (5, 2, 3, 4) and torch.equal(y[4], x)
    with pytest.raises(ValueError, match="T: expected a number of time steps >= 1"):
        DirectEncoder(0)


def _bn_loop_reference(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """What a single-step network computes: one BatchNorm2d call per step, in time order."""
    return torch.stack([bn(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("scale", [1.0, 1 / math.sqrt(2)])
def test_per_step_batch_norm_equals_a_loop_of_batchnorm2d_calls(momentum, scale):
    torch.manual_seed(0)
    x = torch.randn(5, 6, 3, 4, 4) * torch.arange(1, 6).view(5, 1, 1, 1, 1) + torch.arange(5).view(5, 1, 1, 1, 1)
    ours = TimeBatchNorm(3, scale=scale, mode="per_step", momentum=momentum)
    with torch.no_grad():
        ours.bn.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
        ours.bn.bias.copy_(torch.tensor([0.1, -0.3, 0.7]))
        ours.bn.running_mean.fill_(0.2)
        ours.bn.running_var.fill_(1.7)
    reference = nn.BatchNorm2d(3, momentum=momentum)
    reference.load_state_dict(ours.bn.state_dict())
    for step in range(2):  # two training calls: the running statistics compose over calls too
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        y = ours.train()(xa)
        expect = _bn_loop_reference(reference.train(), xb)
        expect = (expect - reference.bias.view(1, 1, 3, 1, 1)) * scale + reference.bias.view(1, 1, 3, 1, 1)
        torch.testing.assert_close(y, expect, rtol=1e-6, atol=1e-6)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        (expect * w).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-6)
        x = x + 0.5 * step
    torch.testing.assert_close(ours.bn.weight.grad, reference.weight.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.bn.bias.grad, reference.bias.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.bn.running_mean, reference.running_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.bn.running_var, reference.running_var, rtol=1e-6, atol=1e-6)
    assert int(ours.bn.num_batches_tracked) == int(reference.num_batches_tracked) == 10  # T updates per call
    # Per-step statistics are not T·B statistics: the running mean moved once per step.
    time_batch = TimeBatchNorm(3, momentum=momentum)
    time_batch(x)
    assert not torch.allclose(time_batch.bn.running_mean, ours.bn.running_mean)
    # Eval: both modes use the running statistics, so they agree exactly.
    time_batch.bn.load_state_dict(ours.bn.state_dict())
    time_batch.scale = scale
    torch.testing.assert_close(time_batch.eval()(x), ours.eval()(x), rtol=0, atol=0)


def test_per_step_batch_norm_converts_to_sync_batchnorm_and_keeps_its_mode():
    torch.manual_seed(1)
    m = nn.Sequential(TimeBatchNorm(3, mode="per_step"))
    reference = nn.BatchNorm2d(3)
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(m)
    assert isinstance(converted[0].bn, nn.SyncBatchNorm) and converted[0].mode == "per_step"
    x = torch.randn(3, 4, 3, 2, 2) * 2
    # Without a process group SyncBatchNorm normalises locally: still the per-step loop.
    torch.testing.assert_close(converted.train()(x), _bn_loop_reference(reference.train(), x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(converted[0].bn.running_var, reference.running_var, rtol=1e-6, atol=1e-6)


def test_batch_norm_mode_is_validated():
    with pytest.raises(ValueError, match=r"bn: got 'per_sample', expected one of \['time_batch', 'per_step'\]"):
        TimeBatchNorm(3, mode="per_sample")
    from adalif.layers import set_batch_norm_mode

    model = set_batch_norm_mode(nn.Sequential(TimeBatchNorm(2), nn.Sequential(TimeBatchNorm(4))), "per_step")
    assert [m.mode for m in model.modules() if isinstance(m, TimeBatchNorm)] == ["per_step", "per_step"]
    assert "mode='per_step'" in repr(model)


def test_per_step_dropout_draws_a_fresh_mask_for_every_step():
    from adalif.layers import dropout

    torch.manual_seed(0)
    per_step = dropout(0.5, "per_step").train()
    y = per_step(torch.ones(6, 8, 100))
    masks = (y != 0).float()
    # Independent over T: no two steps share their mask, and each keeps about half.
    assert all(not torch.equal(masks[i], masks[j]) for i in range(6) for j in range(i + 1, 6))
    assert abs(masks.mean().item() - 0.5) < 0.03 and set(y.unique().tolist()) == {0.0, 2.0}
    # Agreement between two steps is that of independent coins (1/2), not of a shared mask (1).
    assert abs((masks[0] == masks[1]).float().mean().item() - 0.5) < 0.1
    shared = dropout(0.5, "shared").train()(torch.ones(6, 8, 100))
    assert torch.equal(shared[0], shared[5])
    with pytest.raises(ValueError, match=r"dropout_mode: got 'per_sample', expected one of \['shared', 'per_step'\]"):
        dropout(0.5, "per_sample")
    with pytest.raises(ValueError, match="p: expected a dropout probability"):
        dropout(1.0, "per_step")


@pytest.mark.parametrize("mode", ["time_batch", "per_step"])
@pytest.mark.parametrize("shape", [(3, 4, 5), (3, 4, 5, 7)], ids=["TBC", "TBCL"])
def test_time_batch_norm_on_features_and_sequences_equals_batchnorm1d(shape, mode):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 2 + 1
    ours = TimeBatchNorm(5, mode=mode)
    reference = nn.BatchNorm1d(5)
    y = ours(x)
    if mode == "time_batch":
        expect = reference(x.flatten(0, 1)).reshape(shape)
    else:
        expect = torch.stack([reference(x[t]) for t in range(shape[0])])
    torch.testing.assert_close(y, expect, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.bn.running_var, reference.running_var, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"x: expected \[T, B, C\], \[T, B, C, L\] or \[T, B, C, H, W\], got shape \(3, 4\)"):
        ours(torch.randn(3, 4))
