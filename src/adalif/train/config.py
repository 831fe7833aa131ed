"""The run configuration: one YAML file, overridable by dotted command-line options.

jsonargparse checks keys and types against these dataclasses (an unknown key or a wrong type is
an error that names the key); :func:`validate` checks values that a type cannot express.
"""

from __future__ import annotations

import argparse
import difflib
import re
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional, Union

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adamw", "lamb")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "64-true")


@dataclass
class MemoryConfig:
    """What a training step keeps for backward (docs/training.md, "Training memory"); packed
    spikes, neurons and blocks give bit-identical gradients, time chunks equal ones up to float
    rounding.

    Args:
        spikes: packed (the spikes that layers keep for backward stored as bits: about a quarter less
            memory, up to 5 % more time on the CPU) or plain.
        checkpoint: none; neurons (keep each convolution's output, recompute the batch norms,
            neurons and pooling in backward); blocks (keep only each block's input, recompute the
            block); time (run `chunk` time steps at a time, keep the neurons' states between
            chunks; needs bn per_step and no dropout).
        chunk: time steps per chunk for checkpoint time.
    """

    spikes: str = "plain"
    checkpoint: str = "none"
    chunk: int = 2


@dataclass
class ModelConfig:
    """The network.

    Args:
        name: a registered model (docs/models.md): resnet19, resnet20_mpbn, resnet18, resnet34,
            preact_resnet18, vgg11_bn, vgg13_bn, vggsnn, digits_cnn.
        neuron: neuron spec: a registered neuron (adalif neurons lists them: lif, plif, dalif, arlif,
            clif, glif, those of imports and of installed packages), or a dict of constructor
            arguments with 'name', e.g. {"name": "arlif", "decay": 0.2}.
        options: model arguments, e.g. {"stem": 64}, {"dropout": 0.4}, {"input_size": 64}.
        memory: training memory: spikes packed|plain, checkpoint none|neurons|blocks|time, chunk.
    """

    name: str = "digits_cnn"
    neuron: Union[str, Dict[str, Any]] = "dalif"
    options: Dict[str, Any] = field(default_factory=dict)
    memory: MemoryConfig = field(default_factory=MemoryConfig)

    def __post_init__(self) -> None:
        if isinstance(self.memory, dict):  # from a checkpoint's or a dict's config
            unknown = sorted(set(self.memory) - {"spikes", "checkpoint", "chunk"})
            if unknown:
                raise ConfigError(f"model.memory.{unknown[0]}: not an option; expected spikes, checkpoint or chunk")
            self.memory = MemoryConfig(**self.memory)


@dataclass
class DataConfig:
    """The data.

    Args:
        name: digits or digits_events (embedded, no download); cifar10, cifar100, tiny_imagenet,
            imagenet, cifar10_dvs or dvs128_gesture (official files under root; docs/data.md).
        root: folder holding the dataset's official files.
        T: time steps: frames for event data, repeats of each image for static data.
        batch_size: training batch size per process.
        eval_batch_size: test batch size (default: batch_size).
        num_workers: data-loading worker processes.
        shuffle: shuffle the training order (a permutation of seed and epoch).
        drop_last: drop the last incomplete training batch.
        options: dataset options (docs/data.md), e.g. {"augment": ["random_crop_pad4", "hflip"],
            "normalize": "cifar10_tet", "mixup": 0.2, "split": "tebn", "size": 48}.
    """

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
    """The optimiser.

    Args:
        name: sgd, adamw or lamb.
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: weight decay (L2 for SGD, decoupled for AdamW and LAMB).
        neuron_weight_decay: also decay neuron parameters (decays, a, c, w), as the AR-LIF code does.
        betas: Adam-style betas for adamw and lamb.
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    neuron_weight_decay: bool = True
    betas: tuple = (0.9, 0.999)


@dataclass
class ScheduleConfig:
    """The learning-rate schedule, stepped per epoch.

    Args:
        name: cosine (anneal to min_lr over the run) or constant.
        warmup_epochs: epochs of linear warm-up from warmup_start_lr.
        warmup_start_lr: learning rate at the start of the warm-up.
        min_lr: final learning rate of the cosine.
    """

    name: str = "cosine"
    warmup_epochs: int = 0
    warmup_start_lr: float = 0.0
    min_lr: float = 0.0


@dataclass
class LossConfig:
    """The loss on per-step logits.

    Args:
        kind: ce (cross-entropy of the mean over T), tet (per-step CE plus an MSE regulariser) or last
            (cross-entropy of the last step, which alone predicts: the sequential and delayed digits).
        mse_weight: TET's weight of the MSE term (the papers' lambda, --lamb in their code).
        lamb: deprecated name of mse_weight (kept so that older configs and checkpoints load).
        phi: TET's constant MSE target.
        target: TET's MSE target: constant (phi) or onehot.
        label_smoothing: label smoothing of the cross-entropy.
    """

    kind: str = "ce"
    mse_weight: float = 0.05
    phi: float = 1.0
    target: str = "constant"
    label_smoothing: float = 0.0
    lamb: Optional[float] = None


@dataclass
class TrainerConfig:
    """Lightning's trainer.

    Args:
        max_epochs: epochs to train.
        accelerator: cpu, gpu or auto.
        devices: devices per node (an integer, or "auto").
        num_nodes: nodes for multi-node DDP.
        strategy: auto, ddp, ddp_spawn...
        sync_batchnorm: synchronise batch-norm statistics across DDP processes (GPU only).
        precision: 32-true, bf16-mixed, 16-mixed or 64-true.
        compile: wrap the model in torch.compile.
        deterministic: Lightning's deterministic mode.
        seed: seed of everything (initialisation and training order).
        gradient_clip_val: clip gradients to this norm.
        log_every_n_steps: logging interval in steps.
        limit_train_batches: train on this many batches (int) or this fraction (float) per epoch.
        limit_val_batches: test on this many batches or this fraction.
        max_steps: stop after this many steps (-1: no limit).
        progress_bar: show the progress bar (loss, accuracy, firing rate).
        logger: where to watch training besides the CSV log the reports read: tensorboard (default;
            ``tensorboard --logdir OUTPUT_DIR``), none, or a Lightning logger whose package is
            installed: wandb, mlflow, comet, neptune.
        threads: PyTorch's CPU threads per process (``torch.set_num_threads``); default: PyTorch's own
            (one per core).
    """

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
    logger: str = "tensorboard"
    threads: Optional[int] = None


@dataclass
class RunConfig:
    """Everything a run needs.

    Args:
        model: the network.
        data: the data.
        optim: the optimiser.
        schedule: the learning-rate schedule.
        loss: the loss.
        trainer: Lightning's trainer.
        output_dir: folder of all runs; this run writes OUTPUT_DIR/NAME.
        name: run name (default: MODEL_NEURON_DATA_T<T>).
        overwrite: replace an existing run directory of the same name.
        resume: continue from a checkpoint: "last" (this run's last.ckpt) or a path.
        source: where the recipe comes from (documentation only).
        expected_accuracy: accuracy the recipe should reach (documentation only).
        imports: Python files (my_neurons.py, relative to the working directory) or modules
            (mylab.neurons) to import before the run, for neurons of your own (each calls
            adalif.definitions.register); on the command line --import FILE_OR_MODULE, repeatable,
            adds to the config's list.
    """

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
    imports: List[str] = field(default_factory=list)


def _check(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: got {value!r}, expected {expected}")


def validate(cfg: RunConfig, check_files: bool = True) -> RunConfig:
    """Check the whole run before anything touches the disk, naming the key of the first error
    (:class:`~adalif.errors.ConfigError`): every value, the model and the loss (built on the meta
    device, so that no memory is allocated), the trainer's arguments, and last the dataset's files
    (unless ``check_files=False``)."""
    try:
        _validate(cfg, check_files)
    except ConfigError:
        raise
    except ValueError as err:  # raised by a constructor at this boundary: the config is wrong
        raise ConfigError(str(err)) from err
    return cfg


def _validate(cfg: RunConfig, check_files: bool = True) -> None:
    # Imported here, not at the top: the command line parses configs (and prints --help) without
    # loading torch, the models and the datasets.
    import torch

    from ..data.registry import check_options, check_root, check_steps, input_size
    from ..data.registry import get as dataset_spec
    from ..losses import SpikingLoss
    from ..models import list_models, model_for_data

    import_all(cfg.imports)  # first: the model below may use their neurons
    _check(cfg.model.name in list_models(), "model.name", cfg.model.name, f"one of {list_models()}")
    from ..memory import MEMORY_CHECKPOINT, MEMORY_SPIKES

    _check(cfg.model.memory.spikes in MEMORY_SPIKES, "model.memory.spikes", cfg.model.memory.spikes,
           f"one of {list(MEMORY_SPIKES)}")
    _check(cfg.model.memory.checkpoint in MEMORY_CHECKPOINT, "model.memory.checkpoint", cfg.model.memory.checkpoint,
           f"one of {list(MEMORY_CHECKPOINT)}")
    check_options(cfg.data.name, cfg.data.options)
    _check(cfg.data.T >= 1, "data.T", cfg.data.T, "an integer >= 1")
    try:
        check_steps(cfg.data.name, cfg.data.T, cfg.data.options)
    except ValueError as err:
        raise ConfigError(str(err)) from None
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
    _check_trainer(cfg.trainer)
    info = dataset_spec(cfg.data.name)
    with torch.device("meta"):
        model = model_for_data(cfg.model.name, cfg.model.neuron, cfg.model.options, num_classes=info.num_classes,
                               in_channels=info.in_channels, T=cfg.data.T,
                               input_size=input_size(cfg.data.name, cfg.data.options)[0])
    _check(isinstance(cfg.model.memory.chunk, int) and cfg.model.memory.chunk >= 1, "model.memory.chunk",
           cfg.model.memory.chunk, "an integer >= 1")
    for key, plain in (("spikes", "plain"), ("checkpoint", "none")):
        value = getattr(cfg.model.memory, key)
        if cfg.trainer.compile and value != plain:
            raise ConfigError(f"model.memory.{key}: {value} does not run inside torch.compile (trainer.compile: true; "
                              f"the compiler decides what a compiled graph keeps); set {key}: {plain} or compile: false")
    if cfg.model.memory.checkpoint != "none":
        from ..memory import default_container, time_chunk_refusal

        try:
            container = default_container(model)
        except ValueError as err:
            raise ConfigError(f"model.memory.{err}") from None
        refusal = time_chunk_refusal(container) if cfg.model.memory.checkpoint == "time" else None
        if refusal is not None:
            raise ConfigError(f"model.memory.checkpoint: time: {refusal}")
    SpikingLoss(**asdict(cfg.loss))
    if check_files:  # last: the only check that reads the disk
        check_root(cfg.data.name, cfg.data.root, cfg.data.T, cfg.data.options)


def import_all(sources: List[str]) -> None:
    """Import every file or module of ``sources`` (their neurons: :func:`adalif.definitions.import_neurons`),
    once per process; a failure is a one-line :class:`~adalif.errors.NeuronImportError` naming the source."""
    from ..definitions import import_neurons

    if not isinstance(sources, (list, tuple)) or not all(isinstance(s, str) for s in sources):
        raise ConfigError(f"imports: expected a list of .py files or module names, got {sources!r}")
    for source in sources:
        import_neurons(source)


#: trainer.logger -> (Lightning's logger class in lightning.pytorch.loggers, the package it needs).
LOGGERS = {"tensorboard": ("TensorBoardLogger", "tensorboard"), "none": (None, None),
           "wandb": ("WandbLogger", "wandb"), "mlflow": ("MLFlowLogger", "mlflow"), "comet": ("CometLogger", "comet_ml"),
           "neptune": ("NeptuneLogger", "neptune")}


def _check_trainer(t: "TrainerConfig") -> None:
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    strategies = ["auto", *StrategyRegistry.available_strategies()]
    _check(t.strategy in strategies, "trainer.strategy", t.strategy, f"one of {strategies}")
    accelerators = ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
    _check(t.accelerator in accelerators, "trainer.accelerator", t.accelerator, f"one of {accelerators}")
    _check(t.logger in LOGGERS, "trainer.logger", t.logger, f"one of {list(LOGGERS)}")
    _check(t.threads is None or t.threads >= 1, "trainer.threads", t.threads, "an integer >= 1 (or null: PyTorch's default)")
    if t.logger not in ("tensorboard", "none"):
        import importlib.util

        package = LOGGERS[t.logger][1]
        _check(importlib.util.find_spec(package) is not None, "trainer.logger", t.logger,
               f"a logger whose package is installed (pip install {package})")
    devices_ok = t.devices == "auto" or (isinstance(t.devices, int) and (t.devices >= 1 or t.devices == -1))
    _check(devices_ok, "trainer.devices", t.devices, "a number of devices >= 1, -1 (all) or 'auto'")
    _check(t.num_nodes >= 1, "trainer.num_nodes", t.num_nodes, "an integer >= 1")


# -- parsing: one YAML file, overridden by dotted command-line options ----------------------------
def train_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,  # a mistake is one line naming the key (parse_config), not the usage text
        prog="adalif train",
        description="Train a spiking network from one YAML config; every key can be overridden with a "
        "dotted option (--optim.lr 0.05). Logs, checkpoints (best.ckpt, last.ckpt) and summary.json "
        "go to OUTPUT_DIR/NAME. --import FILE.py or --import MODULE (repeatable) imports neurons of your "
        "own before the run, added to the config's imports: list (example: adalif train --config "
        "configs/digits_dalif.yaml --import my_neurons.py --model.neuron alif; adalif neurons lists "
        "every neuron).",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with the run configuration")
    parser.add_class_arguments(RunConfig, fail_untyped=True)
    return parser


def _to_run_config(ns: Namespace) -> RunConfig:
    """The dataclasses from a parsed namespace (the ``--config`` path itself is dropped)."""
    d = ns.as_dict()
    d.pop("config", None)
    parts = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
             "loss": LossConfig, "trainer": TrainerConfig}
    return RunConfig(**{k: (parts[k](**v) if k in parts else v) for k, v in d.items()})


def parse_config(args: List[str]) -> RunConfig:
    """A RunConfig from command-line style arguments (``["--config", "x.yaml", "--optim.lr", "0.1"]``).
    A mistake (a misspelt key, a value of the wrong type, a YAML syntax error, a missing file) is a
    :class:`ConfigError` of one line that names the key, with the closest valid key where there is one."""
    parser = train_parser()
    args, imports = split_imports(args)
    try:
        cfg = _to_run_config(parser.parse_args(args))
    except argparse.ArgumentError as err:
        raise ConfigError(explain_parse_error(str(err), config_keys(), _config_path(args))) from None
    cfg.imports = list(dict.fromkeys([*cfg.imports, *imports]))
    return cfg


def split_imports(args: List[str]):
    """``(other arguments, the values of every --import)``: ``--import X`` and ``--import=X``,
    anywhere among ``args``, in their order."""
    rest: List[str] = []
    imports: List[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--import":
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigError("import: expected a .py file or a module name after --import")
            imports.append(args[i + 1])
            i += 2
            continue
        if args[i].startswith("--import="):
            imports.append(args[i].split("=", 1)[1])
        else:
            rest.append(args[i])
        i += 1
    return rest, imports


def config_keys() -> List[str]:
    """Every dotted key of a run config (``trainer.max_epochs``, ...)."""
    keys = []
    for f in fields(RunConfig):
        if is_dataclass(f.default_factory) if f.default_factory is not MISSING else False:
            keys += [f"{f.name}.{g.name}" for g in fields(f.default_factory)]
        else:
            keys.append(f.name)
    return keys


def _config_path(args: List[str]) -> Optional[str]:
    paths = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
    paths += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    return paths[-1] if paths else None


def explain_parse_error(message: str, keys: List[str], config: Optional[str] = None) -> str:
    """One line from a jsonargparse/argparse error: the key, what is wrong, and the closest valid key."""
    def suggest(key: str) -> str:
        if not keys:
            return ""
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else "; `adalif train --help` lists every key"

    where = f" (in {config})" if config else ""
    match = re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", message)
    if match:
        key = f"{match.group(1)}.{match.group(2)}"
        return f"{key}: not an option{where}{suggest(key)}"
    match = re.search(r'Parser key "config": File does not exist: (.*)', message)
    if match:
        return f"config: file {match.group(1).strip()} does not exist"
    match = re.search(r'Parser key "([\w.]+)":\s*Expected a <class \'(\w+)\'>\. Got value: (.*)', message, re.S)
    if match:
        kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(
            match.group(2), match.group(2))
        return f"{match.group(1)}: expected {kind}, got {match.group(3).strip()!r}{where}"
    if message.startswith("Problems parsing config"):
        detail = " ".join(line.strip() for line in message.splitlines()[1:] if line.strip())
        detail = detail.replace('in "<unicode string>", ', "")
        return f"config: {config or 'the config'} is not valid YAML ({detail})"
    match = re.search(r"unrecognized arguments: (\S+)", message)
    if match:
        key = match.group(1).lstrip("-").split("=")[0]
        return f"{key}: not an option{suggest(key)}"
    match = re.search(r'Parser key "([\w.]+)":\s*(.*)', message, re.S)
    if match:
        return f"{match.group(1)}: {' '.join(match.group(2).split())}"
    return " ".join(message.split())


def config_from_dict(config: Dict[str, Any], overrides: Dict[str, Any]) -> RunConfig:
    """A RunConfig from a recorded dict, with dotted overrides (``{"data.root": ...}``)."""
    parser = train_parser()
    args: List[str] = []
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    ns = parser.parse_object(config, defaults=True)
    ns = parser.parse_args(args, namespace=ns) if args else ns
    return _to_run_config(ns)



def to_dict(cfg: RunConfig) -> Dict[str, Any]:
    return asdict(cfg)
