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
