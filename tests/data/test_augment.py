"""Batched augmentation: what each op computes, per-sample choices, identical ops over T, seeds;
torchtoolbox's Cutout (the CLIF recipe) against torchtoolbox 0.1.8.2's own code."""

import ast
import importlib.util
import math
import os
import random
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from adalif.data.augment import NORMALIZE, BatchAugment, Cutout, MixBatch, PerSample, RandomRoll, TorchtoolboxCutout


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


# torchtoolbox's Cutout, the CLIF recipe's (its train.py:153-159: RandomCrop(32, 4) -> Cutout() ->
# RandomHorizontalFlip -> ToTensor -> Normalize, on the PIL images of torchvision's CIFAR datasets).
#
# torchtoolbox 0.1.8.2 cannot be imported here: `torchtoolbox.transform`'s __init__ imports its
# `dynamic_transform`, which imports torchvision, and `transforms.py` imports its `functional`,
# which imports cv2; adalif depends on neither (and torchvision would pull its own torch). So the
# official class runs in two forms, on the same random draws:
#   "torchtoolbox source": the class `Cutout` compiled from the installed package's own
#       transforms.py (lines 1380-1446), read as text, nothing of the package imported; `make venv`
#       installs torchtoolbox==0.1.8.2 without dependencies for this, and the case skips without it;
#   "restated": the PIL branch of that class with its default arguments, restated below in the
#       same operations and order, so that the comparison runs without the package too.
# Both take their random numbers from `Replay`, which answers the calls the class makes to Python's
# `random` module from given uniforms u in [0, 1): random() -> u, uniform(a, b) -> a + (b - a) * u
# (what Python computes), randint(a, b) -> a + int(u * (b - a + 1)) (uniform on the integers, like
# Python's). TorchtoolboxCutout takes the same uniforms, one row of six per image.


class Replay:
    """Python's `random` module, answering from a list of uniforms."""

    def __init__(self):
        self.draws, self.used = [], 0

    def load(self, draws):
        self.draws, self.used = list(draws), 0

    def _next(self):
        self.used += 1
        return self.draws[self.used - 1]

    def random(self):
        return self._next()

    def uniform(self, a, b):
        return a + (b - a) * self._next()

    def randint(self, a, b):
        return a + int(self._next() * (b - a + 1))


class RestatedCutout:
    """torchtoolbox 0.1.8.2's `Cutout()` (p=0.5, scale=(0.02, 0.4), ratio=(0.4, 1/0.4), value=(0, 255),
    pixel_level=False) on a PIL image, in the official operations and order."""

    def __init__(self, rng):
        self.rng = rng

    def __call__(self, img):
        rng = self.rng
        if rng.random() < 0.5:
            img_h, img_w = img.size  # as the official code: PIL's size is (W, H), so these are swapped
            s = rng.uniform(0.02, 0.4)
            r = rng.uniform(0.4, 1 / 0.4)
            s = s * img_h * img_w
            w = int(math.sqrt(s / r))
            h = int(math.sqrt(s * r))
            left = rng.randint(0, img_w - w)
            top = rng.randint(0, img_h - h)
            c = rng.randint(0, 255)
            img.paste(c, (left, top, left + w, top + h))  # Pillow: an integer colour on RGB is (c, 0, 0)
        return img


def torchtoolbox_source_cutout(rng):
    """The `Cutout` class of the installed torchtoolbox's transforms.py, its module-level `random`
    bound to ``rng``."""
    spec = importlib.util.find_spec("torchtoolbox")  # locates the package; imports nothing of it
    if spec is None:
        pytest.skip("torchtoolbox is not installed (`make venv` installs 0.1.8.2 without dependencies)")
    root = spec.submodule_search_locations[0]
    with open(os.path.join(root, "__init__.py")) as f:
        assert re.search(r"VERSION = '([^']+)'", f.read()).group(1) == "0.1.8.2"
    path = os.path.join(root, "transform", "transforms.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Cutout")
    import PIL.Image

    # The names transforms.py imports; `F` (its cv2 functional) serves only numpy images.
    namespace = {"random": rng, "math": math, "np": np, "PIL": PIL, "warnings": warnings, "F": None}
    exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), namespace)
    return namespace["Cutout"]()


@pytest.fixture(params=["torchtoolbox source", "restated"])
def official_cutout(request):
    pytest.importorskip("PIL")
    rng = Replay()
    cutout = torchtoolbox_source_cutout(rng) if request.param == "torchtoolbox source" else RestatedCutout(rng)
    return cutout, rng


def cifar_batch_and_draws(n=96, seed=0):
    """uint8 images [n, 32, 32, 3] (CIFAR's own layout, which torchvision turns into PIL images) and
    uniforms [n, 6], with rows at the edges of every draw."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    u = torch.rand(n, 6, dtype=torch.float64, generator=g)
    top = 1 - 2.0 ** -53  # the largest double below 1
    u[0] = torch.tensor([0.0, top, top, top, top, top], dtype=torch.float64)  # largest, tallest, far corner, fill 255
    u[1] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # smallest, widest, origin, fill 0
    u[2] = torch.tensor([0.0, 0.5, top, 0.3, 0.7, 0.2], dtype=torch.float64)
    u[3, 0] = 0.5  # not erased: p = 0.5 erases when u < 0.5
    return images, u


def test_torchtoolbox_cutout_equals_torchtoolbox_0_1_8_2_cutout_on_pil_images(official_cutout):
    cutout, rng = official_cutout
    images, u = cifar_batch_and_draws()
    from PIL import Image

    official = []
    for img, row in zip(images.numpy(), u.tolist()):
        rng.load(row)
        official.append(np.asarray(cutout(Image.fromarray(img))))
        assert rng.used == (6 if row[0] < 0.5 else 1)  # the official order of draws, all of them used
    official = torch.from_numpy(np.stack(official))  # [n, 32, 32, 3]
    erased = u[:, 0] < 0.5
    assert 20 < int(erased.sum()) < 76 and not erased[3]

    ours = TorchtoolboxCutout()(images.permute(0, 3, 1, 2), u).permute(0, 2, 3, 1)
    assert torch.equal(ours, official)
    # What ToTensor makes of them: the float path fills c / 255 in the same places.
    ours_float = TorchtoolboxCutout()(images.permute(0, 3, 1, 2).float() / 255, u).permute(0, 2, 3, 1)
    assert torch.equal(ours_float, official.float() / 255)

    # How the integer fill lands on RGB: channel 0 is the integer, channels 1 and 2 are 0.
    boxes = TorchtoolboxCutout().boxes(u, (32, 32))
    # Row 0: s -> 409.6 and r -> 2.5 from below: h = int(sqrt(1024 - e)) = 31, w = int(sqrt(163.84)) = 12.
    # Row 1: s = 20.48, r = 0.4: h = int(sqrt(8.192)) = 2, w = int(sqrt(51.2)) = 7. Row 2: s = 215.04.
    assert (boxes.height[:3].tolist(), boxes.width[:3].tolist()) == ([31, 2, 23], [12, 7, 9])
    for i in (0, 1, 2, 7):
        if not boxes.erase[i]:
            continue
        t, l, h, w = (int(v[i]) for v in (boxes.top, boxes.left, boxes.height, boxes.width))
        box = official[i, t:t + h, l:l + w]
        assert (box[..., 0] == int(boxes.fill[i])).all() and (box[..., 1:] == 0).all()
        assert 0 <= t and t + h <= 32 and 0 <= l and l + w <= 32
    assert (int(boxes.fill[0]), int(boxes.fill[1])) == (255, 0)
    assert torch.equal(official[3], images[3])


def test_torchtoolbox_cutout_draws_the_distribution_of_torchtoolbox_with_pythons_random():
    """Draws made by Python's `random` (as in the official runs) and by torch give the same statistics:
    erased fraction, box area, fill. The box is where channel 1 left the background (it becomes 0)."""
    pytest.importorskip("PIL")
    from PIL import Image

    n, background = 4000, 7
    official = RestatedCutout(random.Random(2022))
    blank = np.full((32, 32, 3), background, dtype=np.uint8)
    theirs = torch.from_numpy(np.stack([np.asarray(official(Image.fromarray(blank))) for _ in range(n)])).permute(0, 3, 1, 2)
    torch.manual_seed(2022)
    ours = TorchtoolboxCutout()(torch.full((n, 3, 32, 32), background, dtype=torch.uint8))
    stats = []
    for out in (theirs, ours):
        box = out[:, 1] != background
        area = box.sum((1, 2)).float()
        first = box.flatten(1).float().argmax(1, keepdim=True)  # one pixel of each box
        fills = out[:, 0].flatten(1).gather(1, first)[area > 0].float()
        stats.append(((area > 0).float().mean(), area[area > 0].mean(), fills.mean()))
        assert area[area > 0].min() >= 14 and area.max() <= 0.4 * 1024 and 0 <= fills.min() and fills.max() <= 255
    (rate_t, area_t, fill_t), (rate_o, area_o, fill_o) = stats
    assert abs(rate_t - 0.5) < 0.03 and abs(rate_o - 0.5) < 0.03
    assert abs(area_t - area_o) < 0.05 * area_t
    assert abs(fill_t - 127.5) < 6 and abs(fill_o - 127.5) < 6


def test_torchtoolbox_cutout_runs_before_normalisation_in_the_batch_pipeline():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    aug = BatchAugment("image", (32, 32), 10, ["cutout_torchtoolbox"], normalize="cifar10_tet")
    torch.manual_seed(4)
    u = torch.rand(8, 6, dtype=torch.float64)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZE["cifar10_tet"])
    expected = (TorchtoolboxCutout()(x.float() / 255, u) - mean) / std
    torch.manual_seed(4)
    out, _ = aug(x, torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(out, expected)
    assert not torch.equal(out, aug(x, torch.zeros(8, dtype=torch.long), train=False)[0])
