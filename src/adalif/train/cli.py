"""``adalif``: the command line.

    adalif train --config configs/digits_dalif.yaml [--model.neuron arlif --trainer.max_epochs 5 ...]
    adalif eval runs/NAME/checkpoints/best.ckpt
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from .config import RunConfig


def train_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="adalif train",
        description="Train a spiking network from one YAML config; every key can be overridden with a "
        "dotted option (--optim.lr 0.05). Logs, checkpoints (best.ckpt, last.ckpt) and summary.json "
        "go to OUTPUT_DIR/NAME.",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with the run configuration")
    parser.add_class_arguments(RunConfig, fail_untyped=True)
    return parser


def _to_run_config(ns: Namespace) -> RunConfig:
    """The dataclasses from a parsed namespace (the ``--config`` path itself is dropped)."""
    from .config import DataConfig, LossConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainerConfig

    d = ns.as_dict()
    d.pop("config", None)
    parts = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
             "loss": LossConfig, "trainer": TrainerConfig}
    return RunConfig(**{k: (parts[k](**v) if k in parts else v) for k, v in d.items()})


def parse_config(args: List[str]) -> RunConfig:
    """A RunConfig from command-line style arguments (``["--config", "x.yaml", "--optim.lr", "0.1"]``)."""
    parser = train_parser()
    return _to_run_config(parser.parse_args(args))


def config_from_dict(config: Dict[str, Any], overrides: Dict[str, Any]) -> RunConfig:
    """A RunConfig from a recorded dict, with dotted overrides (``{"data.root": ...}``)."""
    parser = train_parser()
    args: List[str] = []
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    ns = parser.parse_object(config, defaults=True)
    ns = parser.parse_args(args, namespace=ns) if args else ns
    return _to_run_config(ns)


def eval_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="adalif eval", description="Test accuracy and firing rate of a checkpoint written by `adalif train`.")
    parser.add_argument("checkpoint", help="path of a .ckpt file (for example runs/NAME/checkpoints/best.ckpt)")
    parser.add_argument("--data.root", dest="data_root", default=None, help="dataset folder, if it moved since training")
    parser.add_argument("--trainer.accelerator", dest="accelerator", default=None, help="cpu, gpu or auto")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    try:
        return _main(argv)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        # A bad config, path or checkpoint: one line naming the key or file, not a traceback.
        print(f"adalif: error: {err}", file=sys.stderr)
        return 2


def _main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": "train a model from a YAML config", "eval": "evaluate a checkpoint"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: adalif {train,eval} ...\n\nadalif: deep spiking neural networks with adaptive LIF neurons.\n")
        for name, text in commands.items():
            print(f"  {name:<6} {text} (adalif {name} --help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        from .run import train

        s = train(parse_config(rest))
        print(
            f"\n{s.run_dir}: best test accuracy {s.best_acc:.4f} (epoch {s.best_epoch}), last {s.last_acc:.4f}, "
            f"mean firing rate {s.firing_rate:.4f}, wall time {s.wall_time_s:.1f} s"
        )
        return 0
    from .run import evaluate

    args = eval_parser().parse_args(rest)
    overrides = {k: v for k, v in (("data.root", args.data_root), ("trainer.accelerator", args.accelerator)) if v}
    result = evaluate(args.checkpoint, overrides)
    print(" ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return 0


__all__ = ["main", "train_parser", "parse_config", "config_from_dict"]


if __name__ == "__main__":
    sys.exit(main())
