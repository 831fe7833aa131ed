"""Training on PyTorch Lightning: configs, the LightningModule, data and callbacks (the command line
is :mod:`adalif.cli`).

The Python API, for notebooks and scripts (docs/training.md, "From Python")::

    from adalif import train

    summary = train.fit("configs/digits_dalif.yaml", **{"trainer.max_epochs": 2, "output_dir": "runs/py"})
    print(summary.best_acc, summary.run_dir)
    metrics = train.evaluate(f"{summary.run_dir}/checkpoints/best.ckpt")
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Dict, Sequence, Union

if TYPE_CHECKING:  # imported lazily at run time: `import adalif.train` stays light
    from .config import RunConfig

__all__ = ["fit", "evaluate", "load_config"]


def load_config(config: Union[str, os.PathLike, Dict[str, Any], "RunConfig"], **overrides: Any) -> "RunConfig":
    """A validated-by-parsing :class:`~adalif.train.config.RunConfig` from a YAML path, a dict or a
    RunConfig, with dotted overrides (``**{"optim.lr": 0.05}``; ``optim__lr=0.05`` works too)."""
    from .config import RunConfig, config_from_dict, parse_config

    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    if isinstance(config, (str, os.PathLike)):
        base = asdict(parse_config(["--config", os.fspath(config)]))
    elif isinstance(config, RunConfig):
        base = asdict(config)
    elif isinstance(config, dict):
        base = config
    else:
        raise TypeError(f"config: expected a YAML path, a dict or a RunConfig, got {type(config).__name__}")
    flat = {k: v for k, v in dotted.items() if not isinstance(v, (dict, list))}
    nested = {k: v for k, v in dotted.items() if isinstance(v, (dict, list))}
    for key, value in nested.items():  # dicts and lists (data.options, ...) go into the base as they are
        target = base = {**base}
        *parents, last = key.split(".")
        for part in parents:
            target[part] = {**target.get(part, {})}
            target = target[part]
        target[last] = value
    return config_from_dict(base, flat)


def fit(config: Union[str, os.PathLike, Dict[str, Any], "RunConfig"], callbacks: Sequence = (), **overrides: Any):
    """Train as ``adalif train`` does and return its :class:`~adalif.train.run.Summary` (run directory,
    best and last test accuracy, best epoch, firing rate, wall time). ``callbacks``: extra Lightning
    callbacks."""
    from .run import train

    return train(load_config(config, **overrides), callbacks=callbacks)


def evaluate(checkpoint: Union[str, os.PathLike], **overrides: Any) -> Dict[str, float]:
    """Test accuracy, loss and firing rate of a checkpoint, as ``adalif eval`` (dotted overrides such
    as ``**{"data.root": "..."}``)."""
    from .run import evaluate as run_evaluate

    return run_evaluate(os.fspath(checkpoint), {k.replace("__", "."): v for k, v in overrides.items()})
