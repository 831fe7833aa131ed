"""``adalif``: the command line, one table of commands (:data:`COMMANDS`).

    adalif train --config configs/digits_dalif.yaml [--model.neuron arlif --trainer.max_epochs 5 ...]
    adalif eval runs/NAME/checkpoints/best.ckpt
    adalif prepare cifar10_dvs --root data/CIFAR10-DVS --T 10 --size 48
    adalif import-weights --from arlif-official checkpoint_max.pth --config configs/RECIPE.yaml --out model.ckpt
    adalif train --config configs/digits_dalif.yaml --import my_neurons.py --model.neuron alif
    adalif neurons [NAME] [--import my_neurons.py]
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from jsonargparse import ArgumentParser

from .errors import ConfigError, UserError
from .train.config import config_from_dict, explain_parse_error, import_all, parse_config, train_parser


def _import_argument(parser: ArgumentParser, what: str) -> None:
    """``--import FILE_OR_MODULE`` (repeatable): the neurons of your own that ``what`` needs."""
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE",
                        help=f"a .py file or a module that defines a neuron {what} uses (repeatable). A checkpoint "
                        "names the modules of its neurons, but adalif never imports them from it (docs/training.md, "
                        "Security): without --import, the error names the module to pass")


def eval_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False, prog="adalif eval", description="Test accuracy and firing rate of a "
                            "checkpoint written by `adalif train`. A checkpoint of a neuron of your own needs its "
                            "file: adalif eval best.ckpt --import my_neurons.py")
    parser.add_argument("checkpoint", help="path of a .ckpt file (for example runs/NAME/checkpoints/best.ckpt)")
    parser.add_argument("--data.root", dest="data_root", default=None, help="dataset folder, if it moved since training")
    parser.add_argument("--trainer.accelerator", dest="accelerator", default=None, help="cpu, gpu or auto")
    _import_argument(parser, "the checkpoint")
    return parser


def neurons_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif neurons",
        description="List every registered neuron (adalif's, those of --import, those of installed packages' "
        "entry points, group adalif.neurons) with where it comes from, its options (the constructor's arguments "
        "and defaults, what a config's model.neuron dict takes) and its parameters (shape, initial value, "
        "label), all read from the neurons' definitions. With NAME: its documentation and equations. "
        "Examples: adalif neurons; adalif neurons arlif; adalif neurons alif --import my_neurons.py",
    )
    parser.add_argument("name", nargs="?", default=None, help="a neuron: print its documentation and equations")
    _import_argument(parser, "you want listed")
    return parser


_PREPARE_HELP = {
    "split_by": "number (equal event counts) or time (equal durations)",
    "leftover": "last (the last frame takes the remainder, SpikingJelly) or drop (tonic)",
    "size": "resize the 128x128 frames to SIZE x SIZE (e.g. 48)",
    "interpolation": "of the resize to --size: bilinear (antialiased) or nearest",
    "convention": "CIFAR10-DVS coordinates: spikingjelly or jaer",
    "keep_invalid": "DVS128 Gesture: keep AEDAT 3.1 events whose valid bit is 0, as SpikingJelly does",
    "cache_dtype": "float32 (exact) or float16 (half the size)",
    "cache_dir": "where caches go (default: ROOT/adalif_frames)",
    "workers": "processes (default: all cores)",
}


def prepare_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
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
    # The frame options and their defaults are FrameSpec's (one place); a flag left out keeps the
    # dataset's default, and a flag the dataset does not take is an error that names it.
    from .data.cache import FrameSpec

    for key, default in FrameSpec.options().items():
        kind = bool if isinstance(default, bool) else Optional[int] if key in ("size", "workers") else Optional[str]
        note = "" if default is None else f"; the dataset's default, {default}, when left out"
        parser.add_argument(f"--{key}", type=kind, default=None, help=_PREPARE_HELP[key] + note)
    parser.add_argument("--force", type=bool, default=False, help="rebuild the cache even if it exists")
    return parser


def import_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
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


def export_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif export-nir",
        description="Write the network of a checkpoint as a NIR graph (HDF5), for neuromorphic tools that read NIR. "
        "LIF, PLIF and DA-LIF neurons with hard reset to 0, convolutions, linear layers, average and sum pooling and "
        "flatten are exported, batch norm folded, residual blocks as merging edges; anything NIR cannot express "
        "(AR-LIF, soft reset, max pooling, pooling options NIR computes differently) is refused with the layer's name. Example: adalif export-nir "
        "runs/digits_dalif/checkpoints/best.ckpt digits.nir",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by adalif train (or adalif import-weights)")
    parser.add_argument("out", help="the .nir file to write")
    parser.add_argument("--dt", type=float, default=1e-4, help="the time step that discretises NIR's LIF (tau = dt / (1 - beta))")
    parser.add_argument("--portable", type=bool, default=False,
                        help="write the form that importers with narrower conventions reproduce: the neurons' input "
                        "resistance folded into the weights (r = 1), average pooling as sum pooling with 1/k^2 folded "
                        "into the next weights (for Norse and Sinabs; docs/analysis.md)")
    _import_argument(parser, "the checkpoint")
    return parser


def import_nir_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif import-nir",
        description="Turn a NIR graph written by another tool (or by adalif export-nir) into an adalif module: "
        "Affine, Linear, Conv1d/2d, Flatten, average and sum pooling, Scale nodes as PyTorch layers, LIF and IF "
        "nodes as adalif DA-LIF neurons (fused kernels, trainable decays), branches and merges summed. Writes a "
        ".pt that adalif.export.load_imported reads (safely, weights only). Example: adalif import-nir net.nir "
        "--out net.pt",
    )
    parser.add_argument("graph", help="the .nir file")
    parser.add_argument("--out", required=True, help="the .pt to write")
    parser.add_argument("--dt", type=float, default=1e-4, help="the time step that discretises the neurons (the exporter's)")
    return parser


def report_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif report",
        description="Write the report of a finished run: report.md, the same as one self-contained report.html, PNG "
        "figures and the data behind each (CSV, JSON): accuracy, learning curves, per-layer firing rates, operation "
        "counts and energy of the best checkpoint on a test batch, learned neuron parameters per epoch. "
        "Example: adalif report runs/digits_dalif",
    )
    parser.add_argument("run_dir", help="a run directory written by adalif train (it holds summary.json), or one of its "
                        "checkpoints (RUN_DIR/checkpoints/*.ckpt)")
    parser.add_argument("--out", default=None, help="the report folder (default: RUN_DIR/report)")
    parser.add_argument("--operations", type=bool, default=True, help="count operations and energy (needs the dataset)")
    _import_argument(parser, "the run")
    return parser


def compare_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif compare",
        description="Put finished runs side by side: one table (accuracy best and last, mean firing rate, wall time) and "
        "a grouped bar chart of every layer's firing rate per run, as comparison.md, comparison.html, PNG and CSV. "
        "Example: adalif compare runs/adaptive runs/hard runs/soft --out runs/reset_modes",
    )
    parser.add_argument("runs", nargs="+", help="run directories written by adalif train")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--baseline", type=Optional[str], default=None,
                        help="runs named VARIANT_sSEED (as adalif ablate writes them) are grouped by variant: mean, "
                        "95-percent confidence interval and a paired t-test against this variant (default: the first)")
    return parser


def ablate_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif ablate",
        description="Train every variant of an ablation study on a base config (same recipe and seeds, only the neuron "
        "changes) and write OUTPUT_DIR/STUDY/ablation.md: accuracy best and last (mean ± std over seeds), mean firing "
        "rate, energy, neuron parameters, seconds per epoch, learned parameters. Finished variants are skipped, so an "
        "interrupted study resumes. Studies: arlif-reset (full AR-LIF, adaptive reset only, adaptive threshold only, "
        "soft reset, hard reset), dalif-decays (both decays, spatial only, temporal only, one shared decay, fixed LIF, "
        "sigmoid decays), neurons (the same recipe with each neuron of --neurons, plus the comparison chart). Example: "
        "adalif ablate arlif-reset --config configs/digits_arlif.yaml --epochs 2 --seeds 3",
    )
    parser.add_argument("study", help="arlif-reset, dalif-decays or neurons")
    _base_config_arguments(parser, "variant")
    parser.add_argument("--neurons", type=Optional[str], default=None,
                        help="neurons study: comma-separated neuron names (default lif,plif,dalif,arlif,clif,glif)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per variant: the config's seed, seed + 1, ...; with "
                        "2 or more the table gives each variant's 95-percent confidence interval and a paired t-test against "
                        "the baseline over the same seeds")
    parser.add_argument("--baseline", type=Optional[str], default=None,
                        help="the variant the others are tested against (default: lif for neurons, hard_reset for "
                        "arlif-reset, fixed_lif for dalif-decays)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in a process of its own on one thread (2 on 2 cores)")
    parser.add_argument("--energy", type=bool, default=True, help="count operations and energy of each variant")
    return parser


def heatmap_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif heatmap",
        description="DA-LIF's Figure 1(a): train the base config with DA-LIF neurons whose decays are fixed at every "
        "(alpha, beta) of a grid, and write OUTPUT_DIR/heatmap/heatmap.png and heatmap.csv (best test accuracy). "
        "Finished cells are skipped. Example: adalif heatmap --config configs/digits_dalif.yaml --alpha 0.5 1.0 "
        "--beta 0.25 0.5 0.75 --epochs 2",
    )
    _base_config_arguments(parser, "cell")
    parser.add_argument("--alpha", type=float, nargs="+", required=True, help="fixed spatial decays (the grid's columns)")
    parser.add_argument("--beta", type=float, nargs="+", required=True, help="fixed temporal decays (the grid's rows)")
    return parser


def _base_config_arguments(parser: ArgumentParser, unit: str) -> None:
    """The options of the commands that train many runs from one base config (ablate, heatmap)."""
    parser.add_argument("--config", required=True, help="the base training config")
    parser.add_argument("--epochs", type=Optional[int], default=None, help=f"epochs per {unit} (default: the config's)")
    parser.add_argument("--output_dir", default=None, help="where the runs go (default: the config's output_dir)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="a .py file or a module that defines neurons of your own (repeatable), added to the "
                        "config's imports: list")


def _base_config(args):
    cfg = parse_config(["--config", args.config] + (["--output_dir", args.output_dir] if args.output_dir else [])
                       + [f"--import={source}" for source in args.imports])
    import_all(cfg.imports)  # before the study checks its neuron names
    return cfg


def figure_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False,
        prog="adalif figure",
        description="AR-LIF's Figure 1: 'raster' plots the spikes of one layer of trained networks for the same test "
        "sample (1(b); one checkpoint per reset mode, say); 'potentials' plots the membrane-potential distributions "
        "of LIF, soft-reset and AR-LIF neurons under perturbed normal inputs (1(c)). Each writes a PNG and its data "
        "(CSV). Examples: adalif figure raster runs/a/checkpoints/best.ckpt runs/b/checkpoints/best.ckpt --layer "
        "features.1 --out figs; adalif figure potentials --out figs --std 0.8",
    )
    parser.add_argument("kind", help="raster or potentials")
    parser.add_argument("checkpoints", nargs="*", default=[], help="raster: the checkpoints to compare")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--layer", default=None, help="raster: the neuron layer (its name in named_modules())")
    parser.add_argument("--sample", type=int, default=0, help="raster: the test sample")
    parser.add_argument("--neurons", type=Optional[int], default=None,
                        help="raster: neurons shown per network (default 64); potentials: neurons simulated (default 10000)")
    parser.add_argument("--T", type=int, default=16, help="potentials: time steps")
    parser.add_argument("--mean", type=float, default=0.5, help="potentials: mean of the normal inputs")
    parser.add_argument("--std", type=float, default=0.5, help="potentials: standard deviation of the inputs")
    parser.add_argument("--perturbation", type=float, default=0.1, help="potentials: standard deviation of the perturbation")
    parser.add_argument("--seed", type=int, default=0, help="potentials: random seed")
    _import_argument(parser, "a checkpoint")
    return parser


def _figure(args) -> str:
    from .experiments.figures import potential_distributions, spike_rasters

    for name in ("neurons", "T"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(args, name)}")
    for name in ("std", "perturbation"):
        if getattr(args, name) < 0:
            raise ConfigError(f"{name}: expected a number >= 0, got {getattr(args, name)}")
    import_all(args.imports)
    if args.kind == "raster":
        if not args.checkpoints or args.layer is None:
            raise ConfigError("figure raster: give one or more checkpoints and --layer")
        path = spike_rasters(args.checkpoints, args.layer, args.out, args.sample, args.neurons or 64)
    elif args.kind == "potentials":
        path = potential_distributions(args.out, args.T, args.neurons or 10000, args.mean, args.std, args.perturbation,
                                       args.seed)
    else:
        raise ConfigError(f"figure: got {args.kind!r}, expected raster or potentials")
    return f"figure: {path}"


def _import_weights(args) -> str:
    from .train.run import import_weights

    cfg = parse_config(["--config", args.config])
    import_all(cfg.imports)
    out = import_weights(args.state_dict, cfg, args.out, args.source, args.arch)
    return f"{args.state_dict} -> {out}"


def _prepare(args) -> str:
    from .data.cache import FrameSpec
    from .data.registry import EVENT_DATASETS, check_options, prepare_options

    given = {k: getattr(args, k) for k in FrameSpec.options() if getattr(args, k) is not None}
    if args.config:
        data = parse_config(["--config", args.config]).data
        name, root, T, options = data.name, args.root or data.root, args.T or data.T, {**data.options, **given}
    else:
        name, root, T, options = args.dataset, args.root, args.T, given
    if name not in EVENT_DATASETS:
        raise ConfigError(f"dataset: got {name!r}, expected one of {list(EVENT_DATASETS)} (static datasets need no preparation)")
    if root is None or T is None:
        raise ConfigError("prepare: --root and --T are required (or --config)")
    try:
        check_options(name, options)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    start = time.perf_counter()
    target = prepare_options(name, root, T, options, force=args.force)
    return f"{name}: frames in {target} ({time.perf_counter() - start:.1f} s)"


def _train(cfg) -> str:
    from .train.run import train

    s = train(cfg)
    return (f"\n{s.run_dir}: best test accuracy {s.best_acc:.4f} (epoch {s.best_epoch}), last {s.last_acc:.4f}, "
            f"mean firing rate {s.firing_rate:.4f}, wall time {s.wall_time_s:.1f} s")


def _eval(args) -> str:
    from .train.run import evaluate

    overrides = {k: v for k, v in (("data.root", args.data_root), ("trainer.accelerator", args.accelerator)) if v}
    import_all(args.imports)
    return " ".join(f"{k} {v:.4f}" for k, v in evaluate(args.checkpoint, overrides).items())


def _export_nir(args) -> str:
    from .train.run import export_nir

    import_all(args.imports)
    return f"{args.checkpoint} -> {export_nir(args.checkpoint, args.out, args.dt, args.portable)}"


def _import_nir(args) -> str:
    from .export.nir_import import NIRImportError, save_imported

    try:
        module = save_imported(args.graph, args.out, args.dt)
    except NIRImportError as err:
        raise ConfigError(str(err)) from err
    return f"{args.graph} -> {args.out} ({len(module.names)} nodes)"


def _report(args) -> str:
    from .experiments.report import write_report

    import_all(args.imports)
    run_dir = args.run_dir
    if os.path.isfile(run_dir) and run_dir.endswith(".ckpt"):  # RUN_DIR/checkpoints/NAME.ckpt
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
    out = write_report(run_dir, args.out, args.operations)
    return f"{args.run_dir}: report in {out}/report.md and {out}/report.html"


def _compare(args) -> str:
    from .experiments.report import write_comparison

    out = write_comparison(args.runs, args.out, args.baseline)
    return f"comparison of {len(args.runs)} runs in {out}/comparison.md and {out}/comparison.html"


def _ablate(args) -> str:
    from .experiments.ablation import run_ablation

    neurons = [n.strip() for n in args.neurons.split(",") if n.strip()] if args.neurons is not None else None
    path = run_ablation(args.study, _base_config(args), args.epochs, args.seeds, args.energy, neurons, args.baseline,
                        args.jobs)
    return f"ablation table: {path}"


def _heatmap(args) -> str:
    from .experiments.ablation import run_heatmap

    return f"heatmap: {run_heatmap(_base_config(args), args.alpha, args.beta, args.epochs)}"


def warmup_parser() -> ArgumentParser:
    parser = ArgumentParser(
        exit_on_error=False, prog="adalif warmup",
        description="Pay the fast paths' one-time costs now, for every later process on this machine: build the C "
        "kernels of LIF, PLIF, DA-LIF and AR-LIF (about 2 s; kept in $ADALIF_CACHE_DIR, else ~/.cache/adalif), and "
        "prepare each NAME without hand-written kernels (CLIF, GLIF, yours) on the generic path for every --T and "
        "--rank: its step translated to C and built into the same folder, or, for a step that does not translate, "
        "compiled into torch.compile's on-disk cache. Examples: adalif warmup; adalif warmup clif glif --T 4 6; "
        "adalif warmup alif --import my_neurons.py",
    )
    parser.add_argument("names", nargs="*", default=[], help="neurons to compile (adalif neurons lists them)")
    parser.add_argument("--T", dest="Ts", type=int, nargs="+", default=[4], help="sequence lengths (default 4)")
    parser.add_argument("--rank", dest="ranks", type=int, nargs="+", default=[3, 5],
                        help="input ranks: 3 for [T, B, N], 5 for [T, B, C, H, W] (default 3 5)")
    _import_argument(parser, "you want compiled")
    return parser


def _warmup(args) -> str:
    from .kernels.warmup import warmup

    import_all(args.imports)
    try:
        warmup(args.names, args.Ts, args.ranks)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return "warm: later processes load these instead of building or compiling them"


def _neurons(args) -> str:
    from . import definitions

    import_all(args.imports)
    if args.name is not None:
        try:
            return _describe(definitions.get(args.name))
        except ValueError as err:  # an unknown name: the list of names, and how to add one
            raise ConfigError(str(err)) from err
    lines = [f"{len(definitions.registered())} neurons (adalif neurons NAME: documentation and equations; "
             "docs/neurons.md)"]
    for name in definitions.registered():
        d = definitions.get(name)
        lines += ["", f"{name} ({d.class_name}), {_source(name)}", *_fields(d)]
    return "\n".join(lines)


def _source(name: str) -> str:
    from .definitions import source_of

    kind, location = source_of(name)
    return {"adalif": "built in", "file": f"from {location}", "module": f"from module {location}",
            "entry point": f"from the installed package entry point {location}",
            "python": f"registered by {location}"}[kind]


def _fields(d) -> List[str]:
    """A definition's options and parameters, as ``adalif neurons`` shows them."""
    import inspect

    inits = {f"{p.name}_init" for p in d.parameters if not callable(p.init)}  # shown with their parameters
    options = [f"{k}={v.default!r}" for k, v in inspect.signature(d.module_class()).parameters.items()
               if k not in ("backend", "num_channels", "T", *inits)]
    lines = [f"  options: {', '.join(options) or '(none)'}"]
    if d.parameters:
        def one(p) -> str:
            init = "random" if callable(p.init) else f"{p.init:g}"
            learnable = "" if p.learnable is True else ", fixed" if p.learnable is False else ", learnable by options"
            return p.name + (f" = {p.label}" if p.label != p.name else "") + f" [per {p.per}, init {init}{learnable}]"
        lines.append("  parameters: " + "; ".join(one(p) for p in d.parameters))
    elif d.labels:
        lines.append("  parameters (as tracked): " + "; ".join(f"{k} = {v}" for k, v in d.labels.items()))
    else:
        lines.append("  parameters: (none learned)")
    return lines


def _describe(d) -> str:
    """``adalif neurons NAME``: the definition's documentation, its options and parameters, and the
    equations (the docstrings of the step function and of its module)."""
    import inspect

    step_module = sys.modules.get(d.step.__module__)
    parts = [f"{d.name} ({d.class_name}), {_source(d.name)}", "", d.doc or inspect.getdoc(d.module_class()) or "", "",
             *_fields(d), f"  operations per neuron per step: "
             + (", ".join(f"{k} {v}" for k, v in d.ops.items()) or "(not declared)"),
             f"  NIR: {d.nir if isinstance(d.nir, str) else 'exported as a NIR LIF node'}"]
    for title, doc in ((f"step: {d.step.__module__}.{getattr(d.step, '__qualname__', d.step)}", inspect.getdoc(d.step)),
                       (f"equations: module {d.step.__module__}", step_module and inspect.getdoc(step_module))):
        if doc:
            parts += ["", title, doc]
    return "\n".join(parts).strip()


class Command(NamedTuple):
    """One ``adalif`` command: ``parse(argv)`` gives what ``handler`` takes; the handler returns
    the line to print."""

    help: str
    parse: Callable[[List[str]], Any]
    handler: Callable[[Any], str]


def _parsed_by(parser: Callable[[], ArgumentParser]) -> Callable[[List[str]], Any]:
    return lambda argv: parser().parse_args(argv)


COMMANDS: Dict[str, Command] = {
    "train": Command("train a model from a YAML config", parse_config, _train),
    "eval": Command("evaluate a checkpoint", _parsed_by(eval_parser), _eval),
    "prepare": Command("build the frame cache of an event dataset", _parsed_by(prepare_parser), _prepare),
    "import-weights": Command("turn an official AR-LIF state dict into an adalif checkpoint", _parsed_by(import_parser),
                              _import_weights),
    "export-nir": Command("write a checkpoint's network as a NIR graph", _parsed_by(export_parser), _export_nir),
    "import-nir": Command("turn a NIR graph into an adalif module (.pt)", _parsed_by(import_nir_parser), _import_nir),
    "report": Command("write the report of a run (markdown, HTML, figures, data)", _parsed_by(report_parser), _report),
    "compare": Command("put runs side by side (table, learning curves, firing-rate chart)", _parsed_by(compare_parser),
                       _compare),
    "ablate": Command("run an ablation study (arlif-reset, dalif-decays, neurons) and tabulate it",
                      _parsed_by(ablate_parser), _ablate),
    "heatmap": Command("accuracy over a grid of fixed DA-LIF decays (DA-LIF's Figure 1(a))", _parsed_by(heatmap_parser),
                       _heatmap),
    "figure": Command("AR-LIF's Figure 1(b) spike rasters or 1(c) potential distributions", _parsed_by(figure_parser),
                      _figure),
    "neurons": Command("list every neuron (built in, --import, installed) or document one", _parsed_by(neurons_parser),
                       _neurons),
    "warmup": Command("build the C kernels and compile neurons now, for every later process", _parsed_by(warmup_parser),
                      _warmup),
}


def main(argv: Optional[List[str]] = None) -> int:
    try:
        return _main(argv)
    except argparse.ArgumentError as err:
        # A mistake on a command's own options: one line, with the closest valid option.
        command = (argv if argv is not None else sys.argv[1:])[:1] or ["adalif"]
        print(f"adalif: error: {command[0]}: {explain_parse_error(str(err), [])}; see adalif {command[0]} --help",
              file=sys.stderr)
        return 2
    except UserError as err:
        # A bad config, path, checkpoint or dataset file: one line naming the key or file. Any
        # other exception is a bug and keeps its traceback.
        print(f"adalif: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside Lightning's own handling (which says how to resume)
        print("\nadalif: interrupted", file=sys.stderr)
        return 130


def _main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        from . import __version__

        print(f"adalif {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: adalif {{{','.join(COMMANDS)}}} ...\n       adalif --version\n\n"
              "adalif: deep spiking neural networks with adaptive LIF neurons.\n")
        for name, command in COMMANDS.items():
            print(f"  {name:<14} {command.help} (adalif {name} --help)")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"adalif: error: unknown command {argv[0]!r}{hint} (commands: {', '.join(COMMANDS)}; adalif --help)",
              file=sys.stderr)
        return 2
    command = COMMANDS[argv[0]]
    print(command.handler(command.parse(argv[1:])))
    return 0


__all__ = ["COMMANDS", "main", "train_parser", "parse_config", "config_from_dict"]


if __name__ == "__main__":
    sys.exit(main())
