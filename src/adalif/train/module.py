"""The LightningModule: model, loss and optimiser of a run.

Firing rates, parameter tracking, checkpoint atomicity and run metadata are callbacks
(:mod:`.callbacks`), not branches in the training step.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import lightning as L
import torch
from torchmetrics import MeanMetric, SumMetric

from ..losses import SpikingLoss, hard_labels
from ..memory import training_memory
from ..models import model_for_data
from ..definitions import definition_of
from ..neurons import Neuron
from .config import LossConfig, ModelConfig, OptimConfig, ScheduleConfig
from .lamb import Lamb


class SpikingClassifier(L.LightningModule):
    def __init__(
        self, model: Dict[str, Any], loss: Dict[str, Any], optim: Dict[str, Any], schedule: Dict[str, Any],
        T: int, num_classes: int, in_channels: int, compile: bool = False, input_size: Optional[int] = None,
    ) -> None:
        """``num_classes``, ``in_channels`` and ``input_size`` (the input's side) come from the data."""
        super().__init__()
        self.save_hyperparameters()
        mc, self.optim_cfg, self.schedule_cfg = ModelConfig(**model), OptimConfig(**optim), ScheduleConfig(**schedule)
        # What a training step keeps for backward (adalif.memory); refused under torch.compile, both
        # by the config's checks and by adalif.memory itself.
        self.memory = (mc.memory.spikes, mc.memory.checkpoint, mc.memory.chunk)
        self.model = model_for_data(mc.name, mc.neuron, mc.options, num_classes=num_classes, in_channels=in_channels,
                                    T=T, input_size=input_size)
        self.criterion = SpikingLoss(**vars(LossConfig(**loss)))
        # Evaluation metrics as (sum, count) states that DDP reduces exactly over the shards.
        self.eval_loss, self.eval_acc, self.eval_samples = MeanMetric(), MeanMetric(), SumMetric()
        # Kept out of the module tree: registering it would store every weight twice in checkpoints.
        self.__dict__["_compiled"] = torch.compile(self.model) if compile else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, K]`` of images ``[B, C, H, W]`` or time-major sequences
        ``[T, B, C, H, W]`` (the data module makes event batches time-major, once)."""
        return self._compiled(x) if self._compiled is not None else self.model(x)

    def _step(self, batch, stage: str):
        x, y = batch
        if stage == "train":
            with training_memory(self.model, *self.memory):
                logits = self(x)
                loss = self.criterion(logits, y)
        else:
            logits = self(x)
            loss = self.criterion(logits, y)
        acc = (self.criterion.predict(logits) == hard_labels(y)).float().mean()
        n = y.shape[0]  # explicit: Lightning would guess T from a time-major batch
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
            self.log("train/acc", acc, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
            return loss
        self.eval_loss.update(loss.detach(), weight=n)
        self.eval_acc.update(acc, weight=n)
        self.eval_samples.update(n)
        self.log(f"{stage}/loss", self.eval_loss, prog_bar=True, on_epoch=True, batch_size=n)
        self.log(f"{stage}/acc", self.eval_acc, prog_bar=True, on_epoch=True, batch_size=n)
        self.log(f"{stage}/samples", self.eval_samples, on_epoch=True, batch_size=n)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        cfg = self.optim_cfg
        # (weight decay, learning-rate factor) of each neuron parameter: the config's choice for the
        # neurons, unless the neuron's definition declares its own (GLIF: no decay, gates at lr/10).
        neuron_params = {}
        for m in self.model.modules():
            if isinstance(m, Neuron):
                declared = {name: spec for spec in definition_of(m).parameters
                            for name in (spec.name, f"raw_{spec.name}")}
                for name, p in m.named_parameters(recurse=False):
                    spec = declared.get(name)
                    decay = cfg.neuron_weight_decay and (spec is None or spec.weight_decay)
                    neuron_params[id(p)] = (cfg.weight_decay if decay else 0.0, 1.0 if spec is None else spec.lr_scale)
        # Group 0 holds every other parameter (and neuron parameters treated alike); then one group per
        # (decay, factor). Without neuron weight decay the neurons' group exists even when empty: the
        # optimiser state of earlier checkpoints has that layout.
        other, keyed = [], {}
        for p in (p for p in self.model.parameters() if p.requires_grad):
            key = neuron_params.get(id(p))
            if key is None or (cfg.neuron_weight_decay and key == (cfg.weight_decay, 1.0)):
                other.append(p)
            else:
                keyed.setdefault(key, []).append(p)
        if not cfg.neuron_weight_decay:
            keyed.setdefault((0.0, 1.0), [])
        groups = [{"params": other, "weight_decay": cfg.weight_decay, "lr": cfg.lr}]
        groups += [{"params": ps, "weight_decay": wd, "lr": cfg.lr * scale} for (wd, scale), ps in keyed.items()]
        if cfg.name == "sgd":
            opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        elif cfg.name == "adamw":
            opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
        else:
            opt = Lamb(groups, lr=cfg.lr, betas=tuple(cfg.betas))
        sched = self.schedule_cfg
        epochs = self.trainer.max_epochs

        def factor(epoch: int) -> float:
            if epoch < sched.warmup_epochs:
                start = sched.warmup_start_lr / cfg.lr
                return start + (1 - start) * epoch / sched.warmup_epochs
            if sched.name == "constant":
                return 1.0
            progress = (epoch - sched.warmup_epochs) / max(1, epochs - sched.warmup_epochs)
            low = sched.min_lr / cfg.lr
            return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
