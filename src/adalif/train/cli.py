"""``adalif``: the command line.

    adalif train --config configs/digits_dalif.yaml [--model.neuron arlif --trainer.max_epochs 5 ...]
    adalif eval runs/NAME/checkpoints/best.ckpt
    adalif prepare cifar10_dvs --root data/CIFAR10-DVS --T 10 --size 48
    adalif import-weights --from arlif-official checkpoint_max.pth --config configs/RECIPE.yaml --out model.ckpt
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, Optional

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from ..errors import ConfigError, UserError
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


def prepare_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="adalif prepare",
        description="Decode an event dataset once, integrate every recording into T frames, resize them, and write "
        "the frame cache that training reads (CACHE_DIR/DATASET/T<T>_<split_by>_<size>-<hash of every parameter>/). "
        "Runs in parallel over files; a cache that exists is reused. Training does the same on first use. "
        "With --config, prepares what that config's data section needs.",
    )
    parser.add_argument("dataset", nargs="?", default=None, help="cifar10_dvs or dvs128_gesture")
    parser.add_argument("--config", default=None, help="a training YAML: take dataset, root, T and options from it (--root and --T override)")
    parser.add_argument("--root", default=None, help="folder of the official files (CIFAR10-DVS class folders, or DvsGesture/)")
    parser.add_argument("--T", type=int, default=None, help="frames per sample")
    parser.add_argument("--split_by", default="number", help="number (equal event counts) or time (equal durations)")
    parser.add_argument("--leftover", default="last", help="last (last frame takes the remainder, SpikingJelly) or drop (tonic)")
    parser.add_argument("--size", type=Optional[int], default=None, help="resize 128x128 frames to SIZE x SIZE (e.g. 48)")
    parser.add_argument("--resize", default="bilinear", help="bilinear (antialiased) or nearest")
    parser.add_argument("--convention", default="spikingjelly", help="CIFAR10-DVS coordinates: spikingjelly or jaer")
    parser.add_argument("--keep_invalid", type=bool, default=True,
                        help="DVS128 Gesture: keep AEDAT 3.1 events whose valid bit is 0, as SpikingJelly does (false drops them)")
    parser.add_argument("--cache_dtype", default="float32", help="float32 (exact) or float16 (half the size)")
    parser.add_argument("--cache_dir", default=None, help="where caches go (default: ROOT/adalif_frames)")
    parser.add_argument("--workers", type=Optional[int], default=None, help="processes (default: all cores)")
    parser.add_argument("--force", type=bool, default=False, help="rebuild the cache even if it exists")
    return parser


def import_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="adalif import-weights",
        description="Turn a state dict saved by the official AR-LIF code into an adalif checkpoint of a recipe's model, "
        "so that `adalif eval` and the analysis tools run on networks trained with the official code. Every key must "
        "map and every shape fit, or nothing is written and the error names the key. Example: adalif import-weights "
        "--from arlif-official logs/.../checkpoint_max.pth --config configs/arlif_cifar10_resnet18_T4.yaml --out r18.ckpt",
    )
    parser.add_argument("state_dict", help="a file saved by the official train.py (checkpoint['net']) or AR-LIF-PSN "
                        "train_vgg.py (checkpoint['model']), or a bare state dict")
    parser.add_argument("--from", dest="source", default="arlif-official", help="who saved it: arlif-official")
    parser.add_argument("--config", required=True, help="the adalif recipe config of the same model (configs/arlif_*.yaml)")
    parser.add_argument("--out", required=True, help="the adalif checkpoint to write (.ckpt)")
    parser.add_argument("--arch", default=None, help="official architecture (default: from the key names): spiking_resnet18, "
                        "spiking_vgg11_bn, spiking_vgg13_bn, vggsnn, psn_vggsnn")
    return parser


def _import_weights(rest: List[str]) -> int:
    from .run import import_weights

    args = import_parser().parse_args(rest)
    out = import_weights(args.state_dict, parse_config(["--config", args.config]), args.out, args.source, args.arch)
    print(f"{args.state_dict} -> {out}")
    return 0


def _prepare(rest: List[str]) -> int:
    from ..data.registry import EVENT_DATASETS, check_options, frame_spec, prepare

    args = prepare_parser().parse_args(rest)
    if args.config:
        data = parse_config(["--config", args.config]).data
        name, root, T, options = data.name, args.root or data.root, args.T or data.T, dict(data.options)
    else:
        name, root, T = args.dataset, args.root, args.T
        keys = ("split_by", "leftover", "size", "resize", "convention", "keep_invalid", "cache_dtype", "cache_dir", "workers")
        options = {k: getattr(args, k) for k in keys}
        if name == "dvs128_gesture":
            options.pop("convention")
        else:
            options.pop("keep_invalid")
    if name not in EVENT_DATASETS:
        raise ConfigError(f"dataset: got {name!r}, expected one of {list(EVENT_DATASETS)} (static datasets need no preparation)")
    if root is None or T is None:
        raise ConfigError("prepare: --root and --T are required (or --config)")
    try:
        check_options(name, options)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    start = time.perf_counter()
    target = prepare(name, root, frame_spec(name, T, options), options.get("cache_dir"), options.get("workers"),
                     force=args.force)
    print(f"{name}: frames in {target} ({time.perf_counter() - start:.1f} s)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    try:
        return _main(argv)
    except UserError as err:
        # A bad config, path, checkpoint or dataset file: one line naming the key or file. Any
        # other exception is a bug and keeps its traceback.
        print(f"adalif: error: {err}", file=sys.stderr)
        return 2


def _main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": "train a model from a YAML config", "eval": "evaluate a checkpoint",
                "prepare": "build the frame cache of an event dataset",
                "import-weights": "turn an official AR-LIF state dict into an adalif checkpoint"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: adalif {train,eval,prepare,import-weights} ...\n\n"
              "adalif: deep spiking neural networks with adaptive LIF neurons.\n")
        for name, text in commands.items():
            print(f"  {name:<14} {text} (adalif {name} --help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "prepare":
        return _prepare(rest)
    if command == "import-weights":
        return _import_weights(rest)
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
