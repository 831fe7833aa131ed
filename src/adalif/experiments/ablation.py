"""``adalif ablate STUDY --config BASE.yaml``: the papers' ablations as one command (docs/analysis.md).

Each variant changes only the neuron of the base config; every variant is trained with the same
recipe and the same seeds, written as a run of its own (``OUTPUT_DIR/<study>/<variant>_s<seed>``),
and summarised in ``OUTPUT_DIR/<study>/ablation.md`` (and ``.csv``): accuracy best and last (mean
± std over seeds), mean firing rate, energy of the best checkpoint, and the learned neuron
parameters at the end. A variant whose run finished already (its ``summary.json`` exists) is not
trained again, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import replace
from typing import Dict, List, Optional, Tuple

__all__ = ["NEURONS", "STUDIES", "run_ablation"]


def _arlif(base: Dict) -> Dict[str, Dict]:
    # AR-LIF variants keep the base neuron's other arguments (e.g. the CIFAR10-DVS decay 0.2); the
    # baselines are the official code's, with its Rectangle(1) surrogate (docs/neurons.md).
    kwargs = {k: v for k, v in base.items() if k != "name"} if base.get("name") == "arlif" else {}
    return {
        "ar_lif": {"name": "arlif", **kwargs},
        "adaptive_reset_only": {"name": "arlif", **kwargs, "adaptive_threshold": False},
        "adaptive_threshold_only": {"name": "arlif", **kwargs, "adaptive_reset": False},
        "soft_reset": {"name": "soft_lif"},
        "hard_reset": {"name": "hard_lif"},
    }


def _dalif(base: Dict) -> Dict[str, Dict]:
    return {
        "both_decays": {"name": "dalif"},
        "spatial_only": {"name": "dalif", "learn_beta": False},
        "temporal_only": {"name": "dalif", "alpha_init": 1.0, "learn_alpha": False},
        "one_shared_decay": {"name": "plif", "init_tau": 2.0, "v_reset": 0.0},
        "fixed_lif": {"name": "dalif", "alpha_init": 1.0, "beta_init": 0.25, "learn_alpha": False, "learn_beta": False},
        "sigmoid_decays": {"name": "dalif", "decay_fn": "sigmoid"},
    }


#: The neurons ``adalif ablate neurons`` compares by default.
NEURONS = ("lif", "plif", "dalif", "arlif", "clif", "glif")


def _neurons(base: Dict, names=NEURONS) -> Dict[str, Dict]:
    return {name: {"name": name} for name in names}


#: study -> (description, base neuron spec -> {variant: neuron spec})
STUDIES = {
    "arlif-reset": ("AR-LIF: full, adaptive reset only, adaptive threshold only, soft and hard reset", _arlif),
    "dalif-decays": ("DA-LIF: both decays, spatial only, temporal only, one shared decay (PLIF), fixed LIF, "
                     "tanh against sigmoid", _dalif),
    "neurons": ("The same model and recipe with each neuron (registered definitions, default arguments)", _neurons),
}


def _train_variant(cfg, folder: str, name: str, neuron: Dict, trainer) -> Tuple[str, dict]:
    """``(run_dir, summary)`` of ``cfg`` with ``neuron`` as run ``folder/name``, trained unless a
    finished run (its ``summary.json``) is there already: an interrupted study resumes."""
    import json

    from ..train.run import train

    run_dir = os.path.join(folder, name)
    if not os.path.isfile(os.path.join(run_dir, "summary.json")):
        train(replace(cfg, output_dir=folder, name=name, overwrite=True, resume=None,
                      model=replace(cfg.model, neuron=neuron), trainer=trainer))
    with open(os.path.join(run_dir, "summary.json")) as fh:
        return run_dir, json.load(fh)


def _neuron_parameters(run_dir: str) -> int:
    """Parameters that the neurons add to the model of a finished run (its last checkpoint)."""
    from ..train.run import load_checkpoint
    from ..analysis.operations import parameter_overhead

    path = os.path.join(run_dir, "checkpoints", "last.ckpt")
    if not os.path.isfile(path):
        return 0
    module, _ = load_checkpoint(path, check_files=False)
    return parameter_overhead(module.model)["neuron_parameters"]


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def run_ablation(study: str, cfg, epochs: Optional[int] = None, seeds: int = 1, energy: bool = True,
                 neurons: Optional[List[str]] = None) -> str:
    """Train every variant of ``study`` on the base ``cfg`` and write the table; returns its path.
    ``neurons``: the neurons of the ``neurons`` study (default :data:`NEURONS`)."""
    import json

    from .. import definitions
    from ..errors import ConfigError
    from .report import checkpoint_operations, read_metrics, write_comparison

    if study not in STUDIES:
        raise ConfigError(f"study: got {study!r}, expected one of {list(STUDIES)}")
    if seeds < 1:
        raise ConfigError(f"seeds: expected an integer >= 1, got {seeds!r}")
    if neurons is not None and study != "neurons":
        raise ConfigError("neurons: only the 'neurons' study takes a list of neurons")
    base_neuron = cfg.model.neuron if isinstance(cfg.model.neuron, dict) else {"name": cfg.model.neuron}
    if study == "neurons":
        unknown = [n for n in (neurons or NEURONS) if n not in definitions.registered()]
        if unknown or not (neurons is None or neurons):
            raise ConfigError(f"neurons: unknown neuron {unknown[0]!r}; expected names from {definitions.registered()}"
                              if unknown else "neurons: give at least one neuron")
        variants = _neurons(base_neuron, tuple(neurons or NEURONS))
    else:
        variants = STUDIES[study][1](base_neuron)
    folder = os.path.join(cfg.output_dir, study)
    trainer = replace(cfg.trainer, max_epochs=epochs) if epochs else cfg.trainer
    rows, csv_rows, first_runs = [], [], []
    for variant, neuron in variants.items():
        results = [_train_variant(cfg, folder, f"{variant}_s{seed}", neuron, replace(trainer, seed=seed))
                   for seed in range(cfg.trainer.seed, cfg.trainer.seed + seeds)]
        best = [s["best_acc"] for _, s in results]
        last = [s["last_acc"] for _, s in results]
        rate = statistics.mean(s["firing_rate"] for _, s in results)
        joules = ""
        if energy:
            try:
                joules = f"{checkpoint_operations(results[0][0])[0].energy() / 1e6:.4f}"
            except (OSError, ValueError):
                joules = "n/a"
        epochs_seen = read_metrics(results[0][0])
        final = epochs_seen[max(epochs_seen)] if epochs_seen else {}
        learned: Dict[str, List[float]] = {}
        for key, value in final.items():
            if key.startswith("param/"):
                learned.setdefault(key.rsplit("/", 1)[1], []).append(value)
        params = ", ".join(f"{k} {statistics.mean(v):.3f}" for k, v in sorted(learned.items())) or "none"
        per_epoch = statistics.mean(s["wall_time_s"] / max(1, len(s.get("accuracy_by_epoch", {})) or 1) for _, s in results)
        overhead = _neuron_parameters(results[0][0])
        rows.append([variant, _mean_std(best), _mean_std(last), f"{rate:.4f}", joules, str(overhead),
                     f"{per_epoch:.1f}", params])
        csv_rows.append([variant, json.dumps(neuron), statistics.mean(best), statistics.mean(last), rate, joules, overhead,
                         per_epoch, params])
        first_runs.append(results[0][0])
    header = ["variant", "best acc", "last acc", "mean firing rate", "energy (uJ/sample)", "neuron parameters",
              "s per epoch", "learned (mean over layers)"]
    table = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "\n".join(
        "| " + " | ".join(r) + " |" for r in rows)
    text = (f"# Ablation {study}\n\n{STUDIES[study][0]}; base config {cfg.name or cfg.model.name}, "
            f"{trainer.max_epochs} epoch{'s' if trainer.max_epochs != 1 else ''}, seeds {cfg.trainer.seed}..{cfg.trainer.seed + seeds - 1} "
            f"(mean ± std over {seeds} seed{'s' if seeds > 1 else ''}). Energy: the best checkpoint of the first seed "
            f"on up to 64 test samples, E_MAC 4.6 pJ, E_AC 0.9 pJ (docs/analysis.md).\n\n{table}\n")
    import csv

    with open(os.path.join(folder, "ablation.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "neuron", "best acc", "last acc", "mean firing rate", "energy uJ",
                         "neuron parameters", "s per epoch", "learned"])
        writer.writerows(csv_rows)
    if study == "neurons":  # the comparison chart: per-layer firing rates of the first seed's runs
        write_comparison(first_runs, os.path.join(folder, "comparison"))
    path = os.path.join(folder, "ablation.md")
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)
    return path


def run_heatmap(cfg, alphas: List[float], betas: List[float], epochs: Optional[int] = None) -> str:
    """DA-LIF's Figure 1(a): test accuracy (best over epochs) of the base ``cfg`` with every fixed
    pair (alpha, beta) of DA-LIF decays, as ``heatmap.png`` and ``heatmap.csv`` in
    ``OUTPUT_DIR/heatmap``; finished cells are not trained again. Returns the PNG's path."""
    import csv

    from ..errors import ConfigError
    from .report import _figure

    if not alphas or not betas:
        raise ConfigError("heatmap: give at least one --alpha and one --beta")
    for name, values, low_open in (("alpha", alphas, True), ("beta", betas, False)):
        for value in values:  # DA-LIF's decays: alpha in (0, 1], beta in [0, 1]
            if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
                raise ConfigError(f"{name}: got {value!r}, expected a decay in {'(0, 1]' if low_open else '[0, 1]'}")
    folder = os.path.join(cfg.output_dir, "heatmap")
    trainer = replace(cfg.trainer, max_epochs=epochs) if epochs else cfg.trainer
    grid = []
    for beta in betas:
        fixed = lambda alpha: {"name": "dalif", "decay_fn": "none", "alpha_init": float(alpha),  # noqa: E731
                               "beta_init": float(beta), "learn_alpha": False, "learn_beta": False}
        grid.append([_train_variant(cfg, folder, f"alpha{alpha:g}_beta{beta:g}", fixed(alpha), trainer)[1]["best_acc"]
                     for alpha in alphas])
    with open(os.path.join(folder, "heatmap.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["beta \\ alpha", *alphas])
        writer.writerows([[beta, *row] for beta, row in zip(betas, grid)])

    def draw(ax):
        image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
        ax.set_xlabel("spatial decay alpha (fixed)")
        ax.set_ylabel("temporal decay beta (fixed)")
        middle = (min(map(min, grid)) + max(map(max, grid))) / 2
        for i, row in enumerate(grid):
            for j, acc in enumerate(row):
                ax.text(j, i, f"{acc:.3f}", ha="center", va="center", color="k" if acc > middle else "w", fontsize=7)
        ax.figure.colorbar(image, ax=ax, label="best test accuracy")
    epochs_text = f"{trainer.max_epochs} epoch{'s' if trainer.max_epochs != 1 else ''}"
    _figure(folder, "heatmap.png", f"accuracy over fixed decays ({epochs_text})", draw)
    return os.path.join(folder, "heatmap.png")
