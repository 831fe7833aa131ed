"""Data for training: a LightningDataModule over the configured dataset.

Samples are ``(x, y)`` with ``x`` an image ``[C, H, W]`` or event frames ``[T, C, H, W]``;
batches are made time-major (``[T, B, ...]``) by the LightningModule.
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from .config import DataConfig

EMBEDDED = ("digits", "digits_events")


class EpochSampler(Sampler):
    """A permutation that depends only on (seed, epoch).

    torch's RandomSampler draws from a generator whose state a resumed run cannot restore, so
    resuming at an epoch boundary would change the order; Lightning calls ``set_epoch`` on any
    sampler that has it.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class SpikingDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        if cfg.name not in EMBEDDED:
            raise ValueError(
                f"data.name: dataset {cfg.name!r} is not available in this version of adalif; the "
                f"embedded datasets are {list(EMBEDDED)} (the loaders for CIFAR, Tiny-ImageNet, ImageNet, "
                f"CIFAR10-DVS and DVS128 Gesture from their official files are not implemented yet)"
            )
        self.cfg, self.seed = cfg, seed
        self.train_set: Optional[TensorDataset] = None
        self.test_set: Optional[TensorDataset] = None

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def in_channels(self) -> int:
        return 1 if self.cfg.name == "digits" else 2

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        from ..data import digits

        options = dict(self.cfg.options)
        if self.cfg.name == "digits":
            split = digits.load_static()
        else:
            split = digits.load_events(T=self.cfg.T, seed=options.pop("event_seed", 0), **options)
        self.train_set = TensorDataset(split.x_train, split.y_train)
        self.test_set = TensorDataset(split.x_test, split.y_test)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.train_set), self.seed) if self.cfg.shuffle else None
        return DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, drop_last=self.cfg.drop_last,
            num_workers=self.cfg.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        # The papers report test accuracy per epoch (there is no separate validation split).
        return DataLoader(self.test_set, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                          num_workers=self.cfg.num_workers)

    test_dataloader = val_dataloader
