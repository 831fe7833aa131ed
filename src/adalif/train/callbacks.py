"""Cross-cutting concerns of a run, as Lightning callbacks and plugins."""

from __future__ import annotations

import os
import subprocess
from typing import Any, Dict

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .. import __version__
from ..neurons import ARLIF, DALIF, PLIF, Neuron


def git_commit() -> str:
    """The commit of the adalif source tree, or "unknown" outside a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def neuron_layers(model: torch.nn.Module) -> Dict[str, Neuron]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Neuron)}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same folder, then rename it into place:
    an interrupted write never corrupts the previous checkpoint of that name."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options=None) -> None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


class RunMetadata(L.Callback):
    """Records the adalif version, git commit, resolved config and every neuron's
    hyper-parameters in each checkpoint (``checkpoint["adalif"]``) and in the loggers'
    hyper-parameters (``hparams.yaml`` of the CSV log, TensorBoard's HParams)."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.config = config
        self.commit = git_commit()

    def metadata(self, pl_module) -> Dict[str, Any]:
        return {
            "version": __version__,
            "git_commit": self.commit,
            "config": self.config,
            "neurons": {name: f"{type(m).__name__}({m.extra_repr()})" for name, m in neuron_layers(pl_module).items()},
        }

    def on_fit_start(self, trainer, pl_module) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"adalif": self.metadata(pl_module)})

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["adalif"] = self.metadata(pl_module)


class FiringRateMonitor(L.Callback):
    """Mean firing rate of every neuron layer: the average over layers in the progress bar
    (``fr``) during training, and per layer (``fr/<layer>``) over each validation epoch."""

    def __init__(self) -> None:
        self.handles = []
        self.sums: Dict[str, torch.Tensor] = {}
        self.counts: Dict[str, int] = {}

    def _hook(self, name):
        def hook(module, inputs, output):
            # Kept as tensors: a float() here would synchronise a GPU at every layer and step.
            self.sums[name] = self.sums.get(name, 0.0) + output.detach().float().mean()
            self.counts[name] = self.counts.get(name, 0) + 1
        return hook

    def setup(self, trainer, pl_module, stage=None) -> None:
        if not self.handles:
            self.handles = [m.register_forward_hook(self._hook(n)) for n, m in neuron_layers(pl_module.model).items()]

    def teardown(self, trainer, pl_module, stage=None) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _reset(self):
        self.sums, self.counts = {}, {}

    def _rates(self):
        return {n: self.sums[n] / self.counts[n] for n in self.sums}

    def on_train_batch_start(self, *args) -> None:
        self._reset()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rates = self._rates()
        if rates:
            pl_module.log("fr", sum(rates.values()) / len(rates), prog_bar=True, on_step=True, on_epoch=True,
                          batch_size=batch[1].shape[0])

    def on_validation_epoch_start(self, *args) -> None:
        self._reset()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        rates = self._rates()
        for name, rate in rates.items():
            pl_module.log(f"fr/{name}", rate, sync_dist=True)
        if rates:
            pl_module.log("val/fr", sum(rates.values()) / len(rates), sync_dist=True)
        self._reset()


class ParameterTracker(L.Callback):
    """Logs the learned neuron parameters of every layer at each epoch: DA-LIF ``alpha``/``beta``
    (mean over channels), AR-LIF ``tanh(a)`` and ``c``, PLIF ``tau``."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        values = {}
        for name, m in neuron_layers(pl_module.model).items():
            if isinstance(m, DALIF):
                values[f"param/{name}/alpha"] = float(m.alpha.detach().mean())
                values[f"param/{name}/beta"] = float(m.beta.detach().mean())
            elif isinstance(m, ARLIF):
                values[f"param/{name}/tanh_a"] = float(torch.tanh(m.a.detach()))
                values[f"param/{name}/c"] = float(m.c.detach())
            elif isinstance(m, PLIF):
                values[f"param/{name}/tau"] = m.tau
        if values:
            pl_module.log_dict(values)
