"""The run configuration: one YAML file, overridable by dotted command-line options.

jsonargparse checks keys and types against these dataclasses (an unknown key or a wrong type is
an error that names the key); :func:`validate` checks values that a type cannot express.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Union

OPTIMIZERS = ("sgd", "adamw", "lamb")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "64-true")
EMBEDDED = ("digits", "digits_events")
PLANNED = ("cifar10", "cifar100", "tiny_imagenet", "imagenet", "cifar10_dvs", "dvs128_gesture")


@dataclass
class ModelConfig:
    """``name``: a registered model; ``neuron``: a neuron spec (name or dict); ``options``:
    model keyword arguments (``stem``, ``dropout``, ``input_size``...)."""

    name: str = "digits_cnn"
    neuron: Union[str, Dict[str, Any]] = "dalif"
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """``name``: ``digits``, ``digits_events`` (embedded) or a real dataset; ``root``: its folder;
    ``T``: time steps (frames for event data, repeats for static images)."""

    name: str = "digits"
    root: Optional[str] = None
    T: int = 4
    batch_size: int = 64
    eval_batch_size: Optional[int] = None
    num_workers: int = 0
    shuffle: bool = True
    drop_last: bool = False
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """``neuron_weight_decay=False`` excludes neuron parameters (decays, ``a``, ``c``, ``w``) from
    weight decay; the AR-LIF code decays every parameter."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    neuron_weight_decay: bool = True
    betas: tuple = (0.9, 0.999)


@dataclass
class ScheduleConfig:
    """Cosine annealing over the run (per epoch, to ``min_lr``) after ``warmup_epochs`` of linear warm-up."""

    name: str = "cosine"
    warmup_epochs: int = 0
    warmup_start_lr: float = 0.0
    min_lr: float = 0.0


@dataclass
class LossConfig:
    """``kind``: ``ce`` (cross-entropy of the mean over T) or ``tet``."""

    kind: str = "ce"
    lamb: float = 0.05
    phi: float = 1.0
    target: str = "constant"
    label_smoothing: float = 0.0


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Union[int, str] = 1
    num_nodes: int = 1
    strategy: str = "auto"
    sync_batchnorm: bool = False
    precision: str = "32-true"
    compile: bool = False
    deterministic: bool = False
    seed: int = 0
    gradient_clip_val: Optional[float] = None
    log_every_n_steps: int = 10
    limit_train_batches: Optional[Union[int, float]] = None
    limit_val_batches: Optional[Union[int, float]] = None
    max_steps: int = -1
    progress_bar: bool = True


@dataclass
class RunConfig:
    """Everything a run needs. ``source`` and ``expected_accuracy`` document where a recipe
    comes from and what it should reach."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = "runs"
    name: Optional[str] = None
    overwrite: bool = False
    resume: Optional[str] = None
    source: str = ""
    expected_accuracy: Optional[float] = None


def _check(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"{key}: got {value!r}, expected {expected}")


def validate(cfg: RunConfig) -> RunConfig:
    """Reject impossible values before anything is built, naming the key."""
    from ..models import NEURONS, list_models  # noqa: F401  (imports register the models)

    _check(cfg.model.name in list_models(), "model.name", cfg.model.name, f"one of {list_models()}")
    if cfg.data.name not in EMBEDDED:
        raise ValueError(
            f"data.name: dataset {cfg.data.name!r} is not available in this version of adalif; the "
            f"embedded datasets are {list(EMBEDDED)} (the loaders for {', '.join(PLANNED)} from their "
            f"official files are not implemented yet)"
        )
    _check(cfg.data.T >= 1, "data.T", cfg.data.T, "an integer >= 1")
    _check(cfg.data.batch_size >= 1, "data.batch_size", cfg.data.batch_size, "an integer >= 1")
    _check(cfg.data.num_workers >= 0, "data.num_workers", cfg.data.num_workers, "an integer >= 0")
    _check(cfg.optim.name in OPTIMIZERS, "optim.name", cfg.optim.name, f"one of {list(OPTIMIZERS)}")
    _check(cfg.optim.lr > 0, "optim.lr", cfg.optim.lr, "a positive learning rate")
    _check(cfg.optim.weight_decay >= 0, "optim.weight_decay", cfg.optim.weight_decay, "a value >= 0")
    _check(0 <= cfg.optim.momentum < 1, "optim.momentum", cfg.optim.momentum, "a value in [0, 1)")
    _check(cfg.schedule.name in SCHEDULES, "schedule.name", cfg.schedule.name, f"one of {list(SCHEDULES)}")
    _check(cfg.schedule.warmup_epochs >= 0, "schedule.warmup_epochs", cfg.schedule.warmup_epochs, "an integer >= 0")
    _check(cfg.trainer.max_epochs >= 1, "trainer.max_epochs", cfg.trainer.max_epochs, "an integer >= 1")
    _check(cfg.trainer.precision in PRECISIONS, "trainer.precision", cfg.trainer.precision, f"one of {list(PRECISIONS)}")
    return cfg


def to_dict(cfg: RunConfig) -> Dict[str, Any]:
    return asdict(cfg)
