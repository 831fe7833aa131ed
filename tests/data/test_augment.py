"""Batched augmentation: what each op computes, per-sample choices, identical ops over T, seeds."""

import pytest
import torch
from torch import nn

from adalif.data.augment import NORMALIZE, BatchAugment, Cutout, MixBatch, PerSample, RandomRoll


def test_eval_path_normalises_with_the_recipe_constants():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    aug = BatchAugment("image", (8, 8), 10, ["hflip", "randaugment"], normalize="cifar10_tet", mixup=0.2)
    y = torch.arange(4)
    out, y_out = aug(x, y, train=False)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZE["cifar10_tet"])
    torch.testing.assert_close(out, (x.float() / 255 - mean) / std)
    assert torch.equal(y_out, y)


class AddK(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x + 10 ** self.k


def test_per_sample_choice_draws_distinct_candidates_per_row():
    torch.manual_seed(0)
    x = torch.zeros(256, 1, 2, 2)
    out = PerSample([AddK(k) for k in range(4)], n=2)(x)[:, 0, 0, 0]
    digits = torch.stack([(out // 10**k) % 10 for k in range(4)], 1)
    assert torch.all(digits.sum(1) == 2) and torch.all(digits <= 1)  # two distinct ops per row
    counts = digits.sum(0)
    assert torch.all(counts > 80)  # each op chosen for about half the rows (per-row, not per-batch)


def test_per_sample_choice_never_reads_the_device_batch_back():
    """The batch lives on the meta device, which has no data: any device-to-host read of it (the
    nonzero() per candidate that synchronised a GPU about 28 times per RandAugment batch) would
    raise. Only the host-side draw is read."""
    x = torch.zeros(64, 1, 2, 2, device="meta")
    out = PerSample([AddK(k) for k in range(4)], n=2)(x)
    assert out.shape == x.shape and out.device.type == "meta"


def test_frame_ops_move_all_time_steps_of_a_sample_identically():
    torch.manual_seed(1)
    frame = torch.rand(6, 1, 2, 16, 16)
    x = frame.expand(6, 5, 2, 16, 16).contiguous()  # the same frame at each of T = 5 steps
    for ops in (["random_crop_pad4", "hflip"], ["snn_augment_wide"], ["tet_roll"], ["nda"], ["cutout16"]):
        out, _ = BatchAugment("frames", (16, 16), 10, ops)(x, torch.zeros(6, dtype=torch.long))
        assert out.shape == x.shape
        assert torch.equal(out, out[:, :1].expand_as(out)), ops
    assert not torch.equal(out, x)


def test_random_roll_is_a_cyclic_shift_of_at_most_5_pixels():
    torch.manual_seed(2)
    x = torch.rand(8, 3, 12, 12)
    out = RandomRoll(5)(x)
    for b in range(8):
        shifts = [(a, c) for a in range(-5, 6) for c in range(-5, 6) if torch.equal(out[b], x[b].roll((a, c), (1, 2)))]
        assert len(shifts) == 1


def test_cutout_zeroes_one_clipped_square():
    torch.manual_seed(3)
    x = torch.ones(64, 2, 32, 32)
    holes = (Cutout(16)(x) == 0).all(1)  # [B, H, W]
    for b in range(64):
        rows, cols = holes[b].any(1).nonzero(), holes[b].any(0).nonzero()
        h, w = len(rows), len(cols)
        assert holes[b].sum() == h * w and 0 < h <= 16 and 0 < w <= 16
    assert (holes.sum((1, 2)) == 256).any() and (holes.sum((1, 2)) < 256).any()  # whole and clipped holes


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_gives_soft_targets_that_match_the_mixed_pixels(kind):
    torch.manual_seed(4)
    B, K = 8, 5
    x = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 2, 16, 16).contiguous()
    y = torch.arange(B) % K
    mix = MixBatch(K, mixup=0.2 if kind == "mixup" else 0.0, cutmix=1.0 if kind == "cutmix" else 0.0)
    out, soft = mix(x, y)
    assert soft.shape == (B, K) and torch.allclose(soft.sum(1), torch.ones(B))
    partner = torch.arange(B).roll(1)
    for b in range(B):
        # the share of this row's own content, from the pixels, equals its label weight
        own = ((out[b] - partner[b]) / (b - partner[b])).mean()
        lam = soft[b, y[b]] if y[b] != y[partner[b]] else None
        if lam is not None:
            torch.testing.assert_close(own, lam, rtol=0, atol=1e-5)
    one_hot, _ = MixBatch(K, mixup=0.2, prob=0.0)(x, y)
    assert torch.equal(one_hot, x)


def test_augmentation_is_deterministic_under_a_seed_and_varies_across_seeds():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (16,))
    aug = BatchAugment("image", (32, 32), 10, ["random_crop_pad4", "hflip", "autoaugment_cifar10", "cutout16"],
                       normalize="cifar10", random_erasing=0.5, mixup=0.2, cutmix=1.0)
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(aug(x, y))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[2][0])


def test_random_crop_with_padding_is_a_window_of_the_padded_image():
    torch.manual_seed(5)
    x = torch.rand(4, 3, 10, 10)
    out, _ = BatchAugment("image", (10, 10), 10, ["random_crop_pad4"])(x, torch.zeros(4, dtype=torch.long))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for b in range(4):
        windows = [(i, j) for i in range(9) for j in range(9) if torch.allclose(out[b], padded[b, :, i:i + 10, j:j + 10], atol=1e-5)]
        assert windows


def test_unknown_ops_and_normalisations_are_named():
    with pytest.raises(ValueError, match="data.options.augment: unknown op 'randaugment' for frames data"):
        BatchAugment("frames", (8, 8), 10, ["randaugment"])
    with pytest.raises(ValueError, match="data.options.normalize: got 'cifar11'"):
        BatchAugment("image", (8, 8), 10, [], normalize="cifar11")
