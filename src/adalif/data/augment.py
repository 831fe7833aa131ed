"""Batched augmentation on the training device with Kornia (docs/data.md, recipes.md).

:class:`BatchAugment` turns a collated batch into the network's input: uint8 images ``[B, 3, H, W]``
become normalised floats; event frames ``[B, T, C, H, W]`` are augmented as ``[B, T*C, H, W]``, so
every geometric op moves all T frames of a sample identically. Names in ``augment`` (applied in
the order given):

==========================  ===============================================================
``random_crop_pad4``        random crop back to the input size after zero-padding by 4
``hflip``                   horizontal flip with p = 0.5 (never on DVS128 Gesture: mirror classes)
``randaugment``             RandAugment, 2 ops, magnitude 9 of 30 (torchvision's defaults)
``randaugment_m5``          RandAugment, 2 ops, magnitude 5
``trivialaugment``          TrivialAugment (one op, uniform magnitude)
``autoaugment_cifar10``     AutoAugment's CIFAR-10 policy
``cutout16``                one 16x16 hole per image, centre anywhere, clipped at the border
``cutout_torchtoolbox``     torchtoolbox's ``Cutout()`` (CLIF): p = 0.5, a box of area U(0.02, 0.4) and
                            aspect ratio U(0.4, 2.5) inside the image, filled with one integer c in
                            [0, 255] as Pillow paints it on RGB, (c, 0, 0); before normalisation
``snn_augment_wide``        one of identity, shear-x 0.3, translate-x/y 5 px, rotate 30 deg, erasing
``tet_roll``                TET: flip with p = 0.5, then roll by up to 5 px along H and W
``nda``                     NDA: one of roll 5 px, rotate 30 deg, shear 30 deg
``random_resized_crop224``  (ImageNet, per sample in the loader: images differ in size)
==========================  ===============================================================

Then ``normalize`` (images), ``random_erasing`` (probability) and Mixup/CutMix with soft targets
(``mixup``/``cutmix`` = Beta parameters, one chosen per batch, applied with ``mix_prob``).

Kornia's auto-augment containers draw their operations once per *batch*; torchvision (which the
recipes used) draws them per image. :class:`PerSample` restores per-image choices by running each
candidate operation on the rows that drew it, which keeps the work batched (one call per
candidate, whatever the batch size).
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

NORMALIZE: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "cifar10_tet": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),  # TET, AR-LIF (the widely copied value)
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),  # GLIF (the true per-pixel std)
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tiny_imagenet": ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),
}
IMAGE_OPS = ("random_crop_pad4", "hflip", "randaugment", "randaugment_m5", "trivialaugment", "autoaugment_cifar10",
             "cutout16", "cutout_torchtoolbox")
FRAME_OPS = ("random_crop_pad4", "hflip", "snn_augment_wide", "tet_roll", "nda", "cutout16")
SAMPLE_OPS = ("random_resized_crop224",)  # done by the image loader, before batching
_AFTER_NORMALIZE = ("cutout16",)


class PerSample(nn.Module):
    """Each row draws ``n`` distinct candidates uniformly; candidate k runs on the rows that drew it."""

    def __init__(self, candidates: Sequence[nn.Module], n: int = 1) -> None:
        super().__init__()
        self.candidates, self.n = nn.ModuleList(candidates), n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The draw is made on the host, so the size of each candidate's group is known there: no
        # device-to-host synchronisation (a nonzero() per candidate made about 28 per RandAugment
        # batch). Rows are grouped by candidate with one gather and put back with one scatter.
        k = len(self.candidates)
        choice = torch.rand(x.shape[0], k).argsort(dim=1)[:, : self.n]
        out = x.clone()
        for position in range(self.n):
            order = torch.argsort(choice[:, position], stable=True)
            counts = torch.bincount(choice[:, position], minlength=k).tolist()
            order = order.to(x.device, non_blocking=True)
            groups = out[order].split(counts)
            out[order] = torch.cat([op(g).to(out.dtype) if len(g) else g for op, g in zip(self.candidates, groups)])
        return out


class RandomRoll(nn.Module):
    """TET's translation: roll every row by its own integer (a, b) in [-shift, shift] along H and W
    (wrapping around). Kornia's translations fill instead of wrapping, hence this module."""

    def __init__(self, shift: int = 5) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        a = torch.randint(-self.shift, self.shift + 1, (B, 1), device=x.device)
        b = torch.randint(-self.shift, self.shift + 1, (B, 1), device=x.device)
        rows = (torch.arange(H, device=x.device) - a) % H  # [B, H]
        cols = (torch.arange(W, device=x.device) - b) % W  # [B, W]
        x = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, W))
        return x.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], H, -1))


class Cutout(nn.Module):
    """DeVries & Taylor's Cutout: one ``size`` x ``size`` zero hole per row, its centre uniform over
    the image and the hole clipped at the border. Kornia's RandomErasing draws an area and aspect
    ratio instead of a fixed, clippable square, hence this module."""

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        cy = torch.randint(0, H, (B, 1, 1), device=x.device)
        cx = torch.randint(0, W, (B, 1, 1), device=x.device)
        ys = torch.arange(H, device=x.device)[None, :, None]
        xs = torch.arange(W, device=x.device)[None, None, :]
        half = self.size // 2
        hole = (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)
        return x.masked_fill(hole[:, None], 0.0)


class CutoutBoxes(NamedTuple):
    """One box per row ``[B]``: whether it is erased, its corner, size and fill (0 to 255)."""

    erase: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    fill: torch.Tensor


class TorchtoolboxCutout(nn.Module):
    """torchtoolbox 0.1.8.2's ``Cutout()`` on a batch: the CLIF recipe's augmentation, between the
    crop and the flip (docs/data.md).

    Per row, with six uniforms :math:`u_0 \\dots u_5 \\in [0, 1)` drawn in the official order: erase
    when :math:`u_0 < p`; area :math:`s = (s_0 + (s_1 - s_0) u_1) H W`, aspect ratio
    :math:`r = r_0 + (r_1 - r_0) u_2`; width :math:`w = \\lfloor\\sqrt{s / r}\\rfloor`, height
    :math:`h = \\lfloor\\sqrt{s r}\\rfloor`; left :math:`\\lfloor u_3 (W - w + 1)\\rfloor`, top
    :math:`\\lfloor u_4 (H - h + 1)\\rfloor` (the box lies inside the image); fill
    :math:`c = \\lfloor u_5 \\cdot 256\\rfloor`. The official code pastes the integer ``c`` on the PIL
    image, and Pillow reads an integer colour on an RGB image as ``(c, 0, 0)``: the box becomes
    ``c`` in channel 0 and 0 in the others (a one-channel image gets ``c``). ``x``: ``[B, C, H, W]``,
    uint8 pixels or floats in ToTensor's [0, 1] scale (the fill is then ``c / 255``).

    On square images (CIFAR) this is the official draw exactly (float64 arithmetic, as Python's).
    On others the official code swaps H and W (PIL's ``size`` is (W, H)) and can leave the image;
    here the box always fits.
    """

    def __init__(self, p: float = 0.5, scale: Tuple[float, float] = (0.02, 0.4), ratio: Tuple[float, float] = (0.4, 1 / 0.4),
                 value: Tuple[int, int] = (0, 255)) -> None:
        super().__init__()
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), tuple(value)

    def boxes(self, u: torch.Tensor, size: Tuple[int, int]) -> CutoutBoxes:
        """The boxes of uniforms ``u`` ``[B, 6]`` (float64) on images of ``size`` (H, W)."""
        H, W = size
        (s0, s1), (r0, r1), (v0, v1) = self.scale, self.ratio, self.value
        s = (s0 + (s1 - s0) * u[:, 1]) * H * W
        r = r0 + (r1 - r0) * u[:, 2]
        w = torch.sqrt(s / r).floor().long().clamp(max=W)
        h = torch.sqrt(s * r).floor().long().clamp(max=H)
        left = (u[:, 3] * (W - w + 1)).floor().long()
        top = (u[:, 4] * (H - h + 1)).floor().long()
        fill = v0 + (u[:, 5] * (v1 - v0 + 1)).floor().long()
        return CutoutBoxes(u[:, 0] < self.p, top, left, h, w, fill)

    def forward(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``u``: the uniforms ``[B, 6]``; drawn here (float64, on the host, then moved) if None."""
        B, C, H, W = x.shape
        if u is None:
            u = torch.rand(B, 6, dtype=torch.float64)
        b = CutoutBoxes(*(t.to(x.device, non_blocking=True) for t in self.boxes(u, (H, W))))
        ys = torch.arange(H, device=x.device)[None, :, None]
        xs = torch.arange(W, device=x.device)[None, None, :]
        inside = ((ys >= b.top[:, None, None]) & (ys < (b.top + b.height)[:, None, None])
                  & (xs >= b.left[:, None, None]) & (xs < (b.left + b.width)[:, None, None]) & b.erase[:, None, None])
        fill = b.fill.to(x.dtype) if not x.is_floating_point() else b.fill.to(x.dtype) / 255
        colour = torch.zeros(B, C, 1, 1, dtype=x.dtype, device=x.device)
        colour[:, 0, 0, 0] = fill  # Pillow's integer colour on RGB: (c, 0, 0)
        return torch.where(inside[:, None], colour, x)


class MixBatch(nn.Module):
    """Mixup and CutMix with soft targets, as torchvision.transforms.v2 does: per batch one of the
    two (uniformly when both are enabled) with probability ``prob``, λ ~ Beta(α, α), each row mixed
    with the next one (the batch rolled by one); CutMix's λ becomes 1 - box area / image area.

    Written by hand because Kornia's RandomMixUpV2 draws λ uniformly in a range, not from the
    Beta(α, α) of the recipes (mixup α = 0.2 puts most mass near 0 and 1).
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0, prob: float = 1.0) -> None:
        super().__init__()
        self.num_classes, self.mixup, self.cutmix, self.prob = num_classes, mixup, cutmix, prob

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        target = nn.functional.one_hot(y, self.num_classes).to(torch.float32) if y.dim() == 1 else y.float()
        kinds = [k for k, a in (("mixup", self.mixup), ("cutmix", self.cutmix)) if a > 0]
        if not kinds or float(torch.rand(())) >= self.prob:
            return x, target
        kind = kinds[int(torch.randint(len(kinds), ()))]
        alpha = self.mixup if kind == "mixup" else self.cutmix
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        x2, t2 = x.roll(1, dims=0), target.roll(1, dims=0)
        if kind == "mixup":
            x = x * lam + x2 * (1 - lam)
        else:
            H, W = x.shape[-2:]
            cy, cx = int(torch.randint(H, ())), int(torch.randint(W, ()))
            rh, rw = int(H * math.sqrt(1 - lam) / 2), int(W * math.sqrt(1 - lam) / 2)
            y0, y1, x0, x1 = max(cy - rh, 0), min(cy + rh, H), max(cx - rw, 0), min(cx + rw, W)
            x = x.clone()
            x[..., y0:y1, x0:x1] = x2[..., y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (H * W)
        return x, target * lam + t2 * (1 - lam)


def _auto_policy(name: str) -> nn.Module:
    from kornia.augmentation.auto import AutoAugment, RandAugment, TrivialAugment
    from kornia.augmentation.auto.autoaugment.autoaugment import cifar10_policy
    from kornia.augmentation.auto.rand_augment.rand_augment import default_policy as rand_policy
    from kornia.augmentation.auto.trivial_augment.trivial_augment import default_policy as trivial_policy

    if name.startswith("randaugment"):
        m = 5 if name == "randaugment_m5" else 9
        return PerSample([RandAugment(n=1, m=m, policy=[entry]) for entry in rand_policy], n=2)
    if name == "trivialaugment":
        return PerSample([TrivialAugment(policy=[entry]) for entry in trivial_policy])
    return PerSample([AutoAugment(policy=[sub]) for sub in cifar10_policy])


def _op(name: str, size: Tuple[int, int]) -> nn.Module:
    import kornia.augmentation as K

    H, W = size
    if name == "random_crop_pad4":
        return K.RandomCrop(size, padding=4, p=1.0)
    if name == "hflip":
        return K.RandomHorizontalFlip(p=0.5)
    if name == "cutout16":
        return Cutout(16)
    if name == "cutout_torchtoolbox":
        return TorchtoolboxCutout()
    if name == "snn_augment_wide":
        # PSN's SNNAugmentWide with continuous magnitudes (it draws one of 31 bins): shear-x 0.3
        # is atan(0.3) = 16.7 degrees.
        shear = math.degrees(math.atan(0.3))
        return PerSample([
            nn.Identity(), K.RandomAffine(degrees=0.0, shear=(-shear, shear), p=1.0),
            K.RandomAffine(degrees=0.0, translate=(5 / W, 0.0), p=1.0),
            K.RandomAffine(degrees=0.0, translate=(0.0, 5 / H), p=1.0), K.RandomRotation(30.0, p=1.0),
            K.RandomErasing(scale=(0.05, 0.33), ratio=(0.2, 5.0), p=1.0),
        ])
    if name == "tet_roll":
        return nn.Sequential(K.RandomHorizontalFlip(p=0.5), RandomRoll(5))
    if name == "nda":
        return PerSample([RandomRoll(5), K.RandomRotation(30.0, p=1.0),
                          K.RandomAffine(degrees=0.0, shear=(-30.0, 30.0), p=1.0)])
    return _auto_policy(name)


class BatchAugment(nn.Module):
    """Training and test transforms of whole batches.

    Args:
        kind: "image" (uint8 ``[B, 3, H, W]`` input) or "frames" (float ``[B, T, C, H, W]``).
        size: (H, W) of the batches.
        num_classes: classes, for soft targets.
        augment: op names (module docstring), in order; names of :data:`SAMPLE_OPS` are skipped.
        normalize: a key of :data:`NORMALIZE`, or None.
        random_erasing: probability of Kornia's RandomErasing (after normalisation).
        mixup, cutmix, mix_prob: see :class:`MixBatch`.
    """

    def __init__(self, kind: str, size: Tuple[int, int], num_classes: int, augment: Sequence[str] = (),
                 normalize: Optional[str] = None, random_erasing: float = 0.0, mixup: float = 0.0,
                 cutmix: float = 0.0, mix_prob: float = 1.0) -> None:
        super().__init__()
        import kornia.augmentation as K

        allowed = (IMAGE_OPS if kind == "image" else FRAME_OPS) + SAMPLE_OPS
        for name in augment:
            if name not in allowed:
                raise ValueError(f"data.options.augment: unknown op {name!r} for {kind} data; expected any of {list(allowed)}")
        if normalize is not None and normalize not in NORMALIZE:
            raise ValueError(f"data.options.normalize: got {normalize!r}, expected one of {list(NORMALIZE)} or none")
        self.kind = kind
        names = [n for n in augment if n not in SAMPLE_OPS]
        self.before = nn.ModuleList([_op(n, size) for n in names if n not in _AFTER_NORMALIZE])
        self.after = nn.ModuleList([_op(n, size) for n in names if n in _AFTER_NORMALIZE])
        if random_erasing > 0:
            self.after.append(K.RandomErasing(p=random_erasing))
        self.normalize = K.Normalize(*map(torch.tensor, NORMALIZE[normalize])) if normalize else None
        self.mix = MixBatch(num_classes, mixup, cutmix, mix_prob) if (mixup > 0 or cutmix > 0) else None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255) if self.kind == "image" and x.dtype == torch.uint8 else x.float()

    def forward(self, x: torch.Tensor, y: torch.Tensor, train: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        x = self._prepare(x)
        if self.kind == "frames":
            x = x.reshape(shape[0], -1, *shape[-2:])  # [B, T*C, H, W]: one op for all frames of a row
        if train:
            for op in self.before:
                x = op(x)
        if self.normalize is not None:
            x = self.normalize(x)
        if train:
            for op in self.after:
                x = op(x)
            if self.mix is not None:
                x, y = self.mix(x, y)
        return x.reshape(shape[0], *shape[1:-2], *x.shape[-2:]), y


__all__: List[str] = ["BatchAugment", "MixBatch", "PerSample", "RandomRoll", "Cutout", "TorchtoolboxCutout", "CutoutBoxes",
                      "NORMALIZE", "IMAGE_OPS", "FRAME_OPS", "SAMPLE_OPS"]
