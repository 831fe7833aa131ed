"""Data for training: a LightningDataModule over the configured dataset.

Samples are ``(x, y)`` with ``x`` an image ``[C, H, W]`` or event frames ``[T, C, H, W]``;
event batches are made time-major (``[T, B, ...]``) after their transfer to the device.
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from ..data import registry

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


class ShardSampler(Sampler):
    """The evaluation order under DDP: process ``rank`` takes samples ``rank, rank + world, ...``.
    Every sample is evaluated exactly once (no padding, nothing dropped); the shards may differ
    by one sample, and the metrics are reduced as sums, so the accuracy is exact."""

    def __init__(self, n: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


class SpikingDataModule(L.LightningDataModule):
    """The configured dataset (:mod:`adalif.data.registry`): event frames are cached by
    ``prepare_data`` (once per node), and batches are augmented on the training device after
    transfer, with a random stream that depends only on (seed, step, rank), so a resumed run
    draws the same augmentation as an uninterrupted one."""

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        """``cfg`` has passed :func:`adalif.train.config.validate`."""
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self.info = registry.get(cfg.name)
        self.sets = None
        self.augment = None

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def in_channels(self) -> int:
        return self.info.in_channels

    @property
    def input_size(self):
        """``(H, W)`` of the batches, from the config alone (no file is read)."""
        return registry.input_size(self.cfg.name, self.cfg.options)

    def prepare_data(self) -> None:
        if self.cfg.name in registry.EVENT_DATASETS:
            registry.prepare_options(self.cfg.name, self.cfg.root, self.cfg.T, self.cfg.options)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.sets is not None:
            return
        self.sets = registry.build(self.cfg.name, self.cfg.root, self.cfg.T, self.cfg.options)
        self.augment = registry.batch_augment(self.info, self.cfg.options, self.sets.size)

    @property
    def train_set(self):
        return self.sets.train

    @property
    def test_set(self):
        return self.sets.test

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Augment on the device and make event batches time-major (:func:`registry.model_input`,
        the one place where the layout changes: the model never guesses it)."""
        x, y = batch
        trainer = self.trainer
        if self.augment is None or trainer is None or not trainer.training:
            if self.augment is not None:
                self.augment.to(x.device)
            return registry.model_input(x, y, self.info, self.augment)
        self.augment.to(x.device)
        stream = (self.seed * 1_000_003 + trainer.global_step) * 4099 + trainer.global_rank
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=x.device.type if devices else "cuda"):
            torch.manual_seed(stream)
            return registry.model_input(x, y, self.info, self.augment, train=True)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(len(self.train_set), self.seed, self.cfg.shuffle, rank, world)
        return DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, drop_last=self.cfg.drop_last,
            num_workers=self.cfg.num_workers, pin_memory=torch.cuda.is_available(),
            persistent_workers=self.cfg.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        # The papers report test accuracy per epoch (there is no separate validation split). Under
        # DDP each process evaluates its shard; the module reduces the metrics as sums.
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return DataLoader(self.test_set, batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                          sampler=ShardSampler(len(self.test_set), rank, world),
                          num_workers=self.cfg.num_workers, pin_memory=torch.cuda.is_available(),
                          persistent_workers=self.cfg.num_workers > 0)

    test_dataloader = val_dataloader
