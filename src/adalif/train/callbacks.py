"""Cross-cutting concerns of a run, as Lightning callbacks and plugins."""

from __future__ import annotations

import os
import subprocess
from typing import Any, Dict, Optional

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .. import __version__
from ..analysis import FiringRateMonitor
from ..definitions import definition_of, source_of
from ..files import replaced_atomically
from ..neurons import Neuron
from ..safe_load import load_torch


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
    an interrupted write never corrupts the previous checkpoint of that name. Read checkpoints with
    ``torch.load(weights_only=True)`` (:func:`adalif.safe_load.load_torch`), whatever Lightning asks:
    resuming from a file never runs code from it."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> Dict[str, Any]:
        return load_torch(path, "checkpoint:")

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options=None) -> None:
        with replaced_atomically(path) as tmp, open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())


def plain(value: Any) -> Any:
    """``value`` as plain data (dict, list, tuple, str, int, float, bool, None) that
    ``torch.load(weights_only=True)`` reads back: paths become strings and numpy scalars Python numbers.
    What a checkpoint records (the config a user may build in Python) goes through here."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value) if type(value) in (list, tuple) else [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:  # numpy scalar
        return value.item()
    return value


def neuron_sources(model: torch.nn.Module) -> Dict[str, Dict[str, str]]:
    """Where each neuron of ``model`` that is not adalif's own was defined, by neuron name:
    ``{"kind": "file", "location": "/abs/my_neurons.py"}`` (:class:`adalif.definitions.Source`)."""
    sources = {}
    for m in neuron_layers(model).values():
        name = definition_of(m).name
        source = source_of(name)
        if source.kind != "adalif":
            sources[name] = dict(source._asdict())
    return sources


class RunMetadata(L.Callback):
    """Records the adalif version, git commit, resolved config, every neuron's hyper-parameters
    and where the neurons that are not adalif's own were defined (``neuron_sources``, names only:
    nothing recorded is imported when the checkpoint is opened) in each checkpoint
    (``checkpoint["adalif"]``) and in the loggers' hyper-parameters (``hparams.yaml`` of the CSV
    log, TensorBoard's HParams)."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.config = plain(config)
        self.commit = git_commit()

    def metadata(self, pl_module) -> Dict[str, Any]:
        return {
            "version": __version__,
            "git_commit": self.commit,
            "config": self.config,
            "neurons": {name: f"{type(m).__name__}({m.extra_repr()})" for name, m in neuron_layers(pl_module).items()},
            "neuron_sources": neuron_sources(pl_module),
        }

    def on_fit_start(self, trainer, pl_module) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"adalif": self.metadata(pl_module)})

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["adalif"] = self.metadata(pl_module)


class FiringRates(L.Callback):
    """Firing rates of every neuron layer with :class:`adalif.analysis.FiringRateMonitor`: the mean
    over layers of each training batch's exact rates in the progress bar (``fr``), and per layer
    (``fr/<layer>``) and their mean (``val/fr``) over each whole validation epoch, exact (spike
    counts over neuron-steps, summed over DDP processes before dividing)."""

    def __init__(self) -> None:
        self.monitor: Optional[FiringRateMonitor] = None

    def setup(self, trainer, pl_module, stage=None) -> None:
        if self.monitor is None:
            self.monitor = FiringRateMonitor(pl_module.model).attach()

    def teardown(self, trainer, pl_module, stage=None) -> None:
        if self.monitor is not None:
            self.monitor.detach()
            self.monitor = None

    def on_train_batch_start(self, *args) -> None:
        self.monitor.reset()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rate = self.monitor.mean_rate()
        if rate is not None:
            pl_module.log("fr", rate, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch[1].shape[0])

    def on_validation_epoch_start(self, *args) -> None:
        self.monitor.reset()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        rates = {}
        for name, spikes in self.monitor.spikes.items():
            total = trainer.strategy.reduce(spikes, reduce_op="sum")
            elements = trainer.strategy.reduce(torch.tensor(float(self.monitor.elements[name]), device=spikes.device),
                                               reduce_op="sum")
            rates[name] = float(total) / float(elements)
        for name, rate in rates.items():
            pl_module.log(f"fr/{name}", rate)
        if rates:
            pl_module.log("val/fr", sum(rates.values()) / len(rates))
        self.monitor.reset()


class ParameterTracker(L.Callback):
    """Logs the learned neuron parameters of every layer at each epoch, as each neuron's definition
    says (``param/<layer>/<name>``): DA-LIF ``alpha``/``beta`` (mean over channels), AR-LIF
    ``tanh_a`` and ``c``, PLIF ``tau``, and the mean value of each parameter of a derived neuron
    (CLIF has none; GLIF's gates, decay, threshold, leak, reset amount and conductance)."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        values = {}
        for name, m in neuron_layers(pl_module.model).items():
            for key, value in definition_of(m).tracked(m).items():
                values[f"param/{name}/{key}"] = value
        if values:
            pl_module.log_dict(values)
