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


class EpochSampler(Sampler):
    """The training order: a permutation that depends only on (seed, epoch), or the plain order
    with ``shuffle=False``, sharded over DDP processes as ``order[rank::world]`` (the tail that
    does not divide evenly is dropped, so every process runs the same number of steps).

    Written here rather than taken from torch: RandomSampler draws from a generator whose state a
    resumed run cannot restore, and Lightning's automatic DistributedSampler shuffles even when
    the loader was sequential. Lightning calls ``set_epoch`` on any sampler that has it.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        return iter(order[self.rank : len(self) * self.world : self.world].tolist())

    def __len__(self) -> int:
        return self.n // self.world


class SpikingDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        """``cfg`` has passed :func:`adalif.train.config.validate` (an embedded dataset name)."""
        super().__init__()
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
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(len(self.train_set), self.seed, self.cfg.shuffle, rank, world)
        return DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, drop_last=self.cfg.drop_last,
            num_workers=self.cfg.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        # The papers report test accuracy per epoch (there is no separate validation split). Under
        # DDP every process evaluates the whole split, so the synchronised mean is the accuracy.
        return DataLoader(self.test_set, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                          num_workers=self.cfg.num_workers)

    test_dataloader = val_dataloader
