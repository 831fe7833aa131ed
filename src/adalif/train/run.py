"""Train and evaluate from a :class:`~adalif.train.config.RunConfig`."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, replace
from typing import Any, Dict, NamedTuple, Optional, Tuple

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..errors import ConfigError, ExistingRunError, MissingFileError
from ..files import replaced_atomically
from ..compat.arlif_official import convert_state_dict, load_official_state_dict
from ..data import registry
from ..safe_load import load_torch
from .callbacks import AtomicCheckpointIO, FiringRates, ParameterTracker, RunMetadata, neuron_sources
from .config import LOGGERS, RunConfig, config_from_dict, import_all, validate
from .datamodule import SpikingDataModule
from .module import SpikingClassifier


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's start-up notes (which accelerators exist, a logging tip, why fit stopped) are
    INFO messages of one logger; adalif prints one line of its own instead. Warnings still show."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class Summary(NamedTuple):
    run_dir: str
    best_acc: float
    last_acc: float
    best_epoch: int
    firing_rate: float
    wall_time_s: float


def run_name(cfg: RunConfig) -> str:
    neuron = cfg.model.neuron if isinstance(cfg.model.neuron, str) else cfg.model.neuron.get("name", "neuron")
    return cfg.name or f"{cfg.model.name}_{neuron}_{cfg.data.name}_T{cfg.data.T}"


def _resume_path(cfg: RunConfig, run_dir: str) -> Tuple[Optional[str], int]:
    """The checkpoint to resume from (None: a new run) and how many epochs it finished."""
    if not cfg.resume:
        return None, 0
    path = os.path.join(run_dir, "checkpoints", "last.ckpt") if cfg.resume == "last" else cfg.resume
    if not os.path.isfile(path):
        raise MissingFileError(f"resume: checkpoint {path!r} does not exist")
    # Memory-mapped: checks the file, safely, without reading its tensors (Lightning reads it next,
    # through AtomicCheckpointIO.load_checkpoint, as safely). A corrupt or crafted file stops here.
    checkpoint = load_torch(path, "resume: checkpoint", mmap=True)
    return path, int(checkpoint.get("epoch", -1)) + 1 if isinstance(checkpoint, dict) else 0


def _prepare_run_dir(cfg: RunConfig) -> str:
    run_dir = os.path.join(cfg.output_dir, run_name(cfg))
    # Lightning sets the global rank from the launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID).
    if rank_zero_only.rank != 0:
        # Under DDP every process runs this command; only global rank 0 checks or replaces the folder.
        os.makedirs(run_dir, exist_ok=True)
        return run_dir
    if os.path.exists(run_dir) and not cfg.resume:
        if not cfg.overwrite:
            raise ExistingRunError(
                f"output: run directory {run_dir!r} exists; pass --overwrite true to replace it, "
                f"--resume last to continue it, or choose another --name"
            )
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    return run_dir


def build_trainer(cfg: RunConfig, run_dir: str, callbacks=()) -> L.Trainer:
    t = cfg.trainer
    folder = os.path.join(run_dir, "checkpoints")
    # Two callbacks: Lightning's save_last=True only refreshes last.ckpt when a best checkpoint is
    # saved, so a run whose accuracy stops improving would resume from a stale epoch.
    best = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/acc", mode="max", enable_version_counter=False)
    last = ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    # Auto-incremented versions: a resumed run writes logs/version_1 and keeps version_0 intact.
    loggers = [CSVLogger(run_dir, name="logs")]  # always: the reports read it
    if t.logger == "tensorboard":
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard"))
    elif t.logger != "none":
        import lightning.pytorch.loggers as pl_loggers

        cls = getattr(pl_loggers, LOGGERS[t.logger][0])
        takes = inspect.signature(cls).parameters  # each takes its own arguments; give what it accepts
        loggers.append(cls(**{k: v for k, v in (("save_dir", run_dir), ("name", run_name(cfg))) if k in takes}))
    return L.Trainer(
        default_root_dir=run_dir, max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator,
        devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, sync_batchnorm=t.sync_batchnorm,
        precision=t.precision, deterministic=t.deterministic, gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, enable_progress_bar=t.progress_bar, logger=loggers,
        callbacks=[best, last, FiringRates(), ParameterTracker(), *callbacks],
        plugins=[AtomicCheckpointIO()], enable_model_summary=False,
        use_distributed_sampler=False,  # the data module shards its own sampler (datamodule.EpochSampler)
    )


def build(cfg: RunConfig):
    """The data module and LightningModule of a run (seeded)."""
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    data = SpikingDataModule(cfg.data, seed=cfg.trainer.seed)
    module = SpikingClassifier(
        asdict(cfg.model), asdict(cfg.loss), asdict(cfg.optim), asdict(cfg.schedule), T=cfg.data.T,
        num_classes=data.num_classes, in_channels=data.in_channels, compile=cfg.trainer.compile,
        input_size=data.input_size[0],
    )
    return data, module


def train(cfg: RunConfig, callbacks=()) -> Summary:
    """Train, evaluate every epoch on the test split, and write ``summary.json`` in the run directory.
    ``callbacks``: extra Lightning callbacks."""
    if cfg.resume:  # before validating: a checkpoint's neuron that is missing names its module
        _require_resumed_neurons(cfg)
    validate(cfg)
    cfg = replace(cfg, data=replace(cfg.data, options=registry.explicit_options(cfg.data.name, cfg.data.options)))
    start = time.perf_counter()
    fresh = not os.path.exists(os.path.join(cfg.output_dir, run_name(cfg))) or (cfg.overwrite and not cfg.resume)
    run_dir = _prepare_run_dir(cfg)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    try:
        resume, done = _resume_path(cfg, run_dir)
        data, module = build(cfg)
        config = asdict(cfg)
        with quiet_lightning(), _library_warnings_silenced(resume is not None):
            trainer = build_trainer(cfg, run_dir, callbacks=[RunMetadata(config), _History(), *callbacks])
            if trainer.is_global_zero:
                what = (f"resuming {run_name(cfg)} after epoch {done} of {cfg.trainer.max_epochs}" if resume else
                        f"training {run_name(cfg)} for {cfg.trainer.max_epochs} epochs")
                print(f"adalif: {what} -> {run_dir} (checkpoints/, logs/, summary.json)", flush=True)
                hint = busy_machine_hint(cfg)
                if hint:
                    print(f"adalif: {hint}", flush=True)
            trainer.fit(module, datamodule=data, ckpt_path=resume)
    except BaseException as err:
        _after_failure(run_dir, fresh, err)
        raise
    history = next(c for c in trainer.callbacks if isinstance(c, _History)).accuracies
    best_epoch = max(history, key=history.get) if history else -1
    summary = Summary(
        run_dir, history.get(best_epoch, float("nan")), history[max(history)] if history else float("nan"),
        best_epoch, float(trainer.callback_metrics.get("val/fr", float("nan"))), time.perf_counter() - start,
    )
    if trainer.is_global_zero:
        tmp = os.path.join(run_dir, "summary.json.tmp")
        with open(tmp, "w") as fh:
            json.dump({**summary._asdict(), "config": config, "accuracy_by_epoch": history,
                       "neuron_sources": neuron_sources(module.model)}, fh, indent=2)
        os.replace(tmp, os.path.join(run_dir, "summary.json"))
    return summary


@contextlib.contextmanager
def _library_warnings_silenced(resuming: bool):
    """Lightning's warnings that every small or resumed run would print, filtered by their exact
    text where they come from the library: a pytree deprecation inside Lightning itself, the
    logging interval of a dataset with fewer batches than it, and (when resuming, which is the
    point) the checkpoint folder that is not empty."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
        warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging "
                                                  r"interval Trainer\(log_every_n_steps=\d+\)")
        if resuming:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty\.")
        yield


def busy_machine_hint(cfg: RunConfig) -> Optional[str]:
    """A line of advice when a CPU run starts with several threads on a machine that is already
    busy: there, each parallel operation waits for its slowest thread, and training slows down 2-3x
    more than the load explains (benchmarks/under_load.py; docs/training.md). The thread count is
    not changed behind the user's back: it changes the last bits of the results."""
    if cfg.trainer.accelerator not in ("cpu", "auto") or (cfg.trainer.accelerator == "auto" and torch.cuda.is_available()):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if torch.get_num_threads() <= 1 or load < cores:
        return None
    return (f"this machine is busy (load {load:.1f} on {cores} cores): with {torch.get_num_threads()} threads "
            "training slows down more than the load explains; --trainer.threads 1 degrades in proportion "
            "(results then differ in their last digits from a run with more threads)")


def _after_failure(run_dir: str, fresh: bool, err: BaseException) -> None:
    """A run that stops before its first checkpoint leaves nothing behind when it created its folder
    (a corrupt dataset file, a bad option found late: the retry must not meet "run directory exists");
    an interrupted run with a checkpoint says how to continue it."""
    if rank_zero_only.rank != 0:
        return
    last = os.path.join(run_dir, "checkpoints", "last.ckpt")
    # Ctrl-C: Lightning shuts down gracefully, then exits with SystemExit(1).
    interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
    if fresh and not os.path.isfile(last):
        shutil.rmtree(run_dir, ignore_errors=True)
        if interrupted:
            print(f"\nadalif: interrupted before the first checkpoint; {run_dir} removed", file=sys.stderr, flush=True)
    elif interrupted:
        print(f"\nadalif: interrupted; continue with --resume last (same --name and --output_dir): {last}",
              file=sys.stderr, flush=True)


class _History(L.Callback):
    """Test accuracy of every epoch (for best and last), kept across a resume in the checkpoint."""

    def __init__(self) -> None:
        self.accuracies: Dict[int, float] = {}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val/acc" in trainer.callback_metrics:
            self.accuracies[trainer.current_epoch] = float(trainer.callback_metrics["val/acc"])

    def state_dict(self) -> Dict[str, Any]:
        return {"accuracies": dict(self.accuracies)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.accuracies = {int(k): v for k, v in state["accuracies"].items()}


def run_neurons(config: Dict[str, Any], sources: Optional[Dict[str, Any]], what: str) -> list:
    """The definitions of the neurons that a recorded run uses (its config's neuron first, a preset
    as the neuron it configures, then those of ``sources``, the record of
    :func:`~adalif.train.callbacks.neuron_sources`). A neuron that is not registered is a one-line
    :class:`~adalif.errors.NeuronImportError` naming the module that defined it and the --import to
    pass: nothing that a checkpoint or summary names is imported (docs/training.md, Security)."""
    from ..definitions import require_neuron
    from ..models.registry import PRESETS

    sources = sources if isinstance(sources, dict) else {}
    spec = (config.get("model") or {}).get("neuron") if isinstance(config, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else spec
    names = [str(name).lower()] if isinstance(name, str) else []
    names = [PRESETS[n][0] if n in PRESETS else n for n in names]
    return [require_neuron(n, sources.get(n), what) for n in dict.fromkeys([*names, *sources])]


def _require_resumed_neurons(cfg: RunConfig) -> None:
    import_all(cfg.imports)
    path = os.path.join(cfg.output_dir, run_name(cfg), "checkpoints", "last.ckpt") if cfg.resume == "last" else cfg.resume
    if os.path.isfile(path):  # a missing file is _resume_path's error
        checkpoint = load_torch(path, "resume: checkpoint", mmap=True)
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("adalif"), dict):
            meta = checkpoint["adalif"]
            run_neurons(meta.get("config", {}), meta.get("neuron_sources"), f"resume: checkpoint {path!r}")


def load_checkpoint(checkpoint: str, overrides: Optional[Dict[str, Any]] = None, check_files: bool = True):
    """``(SpikingClassifier, RunConfig)`` of an adalif checkpoint, with the config it recorded
    (``check_files=False``: without requiring the dataset's files, for what needs the network only).
    Its neurons must be registered (adalif's own, ``--import``, installed packages): the modules it
    records are named in the error, never imported (:func:`run_neurons`)."""
    if not os.path.isfile(checkpoint):
        raise MissingFileError(f"checkpoint: {checkpoint!r} does not exist")
    ckpt = load_torch(checkpoint, "checkpoint:")  # weights_only: a checkpoint from elsewhere never runs code
    if not isinstance(ckpt, dict) or "adalif" not in ckpt:
        raise ConfigError(f"checkpoint: {checkpoint!r} was not written by `adalif train` (no 'adalif' metadata)")
    meta = ckpt["adalif"]
    run_neurons(meta["config"], meta.get("neuron_sources"), f"checkpoint {checkpoint!r}")
    config = {**meta["config"], "imports": []}  # what the checkpoint names is not imported
    cfg = validate(config_from_dict(config, overrides or {}), check_files=check_files)
    _, module = build(cfg)
    module.load_state_dict(ckpt["state_dict"])
    return module, cfg


def evaluate(checkpoint: str, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    """Test accuracy and firing rate of a checkpoint, with the config it recorded."""
    module, cfg = load_checkpoint(checkpoint, overrides)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    data = SpikingDataModule(cfg.data, seed=cfg.trainer.seed)
    with quiet_lightning(), _library_warnings_silenced(False):
        trainer = L.Trainer(
            accelerator=cfg.trainer.accelerator, devices=1, logger=False, enable_progress_bar=cfg.trainer.progress_bar,
            callbacks=[FiringRates()], enable_model_summary=False,
        )
        metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    return {"accuracy": metrics["val/acc"], "loss": metrics["val/loss"], "firing_rate": metrics.get("val/fr", float("nan"))}


IMPORT_SOURCES = ("arlif-official",)


def import_weights(state_dict_path: str, cfg: RunConfig, out: str, source: str = "arlif-official",
                   arch: Optional[str] = None) -> str:
    """Write an adalif checkpoint (``adalif eval`` and the analysis tools read it) holding the
    weights of ``state_dict_path``, saved by ``source``, on the model of ``cfg``."""

    if source not in IMPORT_SOURCES:
        raise ConfigError(f"from: got {source!r}, expected one of {list(IMPORT_SOURCES)}")
    info = registry.get(cfg.data.name)
    cfg = replace(cfg, data=replace(cfg.data, options=registry.explicit_options(cfg.data.name, cfg.data.options)))
    module = SpikingClassifier(
        asdict(cfg.model), asdict(cfg.loss), asdict(cfg.optim), asdict(cfg.schedule), T=cfg.data.T,
        num_classes=info.num_classes, in_channels=info.in_channels, input_size=registry.input_size(cfg.data.name, cfg.data.options)[0],
    )
    try:
        imported = convert_state_dict(load_official_state_dict(state_dict_path), module.model, arch)
    except FileNotFoundError as err:
        raise MissingFileError(str(err)) from err
    except ValueError as err:  # a key or shape that does not fit: the user's file or config
        raise ConfigError(str(err)) from err
    module.model.load_state_dict(imported.state_dict)
    metadata = RunMetadata(asdict(cfg)).metadata(module)
    metadata["imported_from"] = {"source": source, "path": os.path.abspath(state_dict_path), "arch": imported.arch}
    checkpoint = {"state_dict": module.state_dict(), "adalif": metadata, "epoch": 0, "global_step": 0,
                  "pytorch-lightning_version": L.__version__}
    AtomicCheckpointIO().save_checkpoint(checkpoint, out)
    return out


def export_nir(checkpoint: str, out: str, dt: float = 1e-4, portable: bool = False) -> str:
    """Write the network of an adalif checkpoint as a NIR graph (``adalif.export.to_nir``)."""
    import nir

    from ..export import to_nir

    module, cfg = load_checkpoint(checkpoint, check_files=False)
    sample = registry.example_input(cfg.data.name, cfg.data.T, cfg.data.options)
    try:
        graph = to_nir(module.model, sample, dt=dt, portable=portable)
    except ValueError as err:  # the network holds what NIR cannot express: say which layer and why
        raise ConfigError(f"export-nir: {err}") from err
    with replaced_atomically(out) as tmp:
        nir.write(tmp, graph)
    return out
