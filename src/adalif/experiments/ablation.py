"""``adalif ablate STUDY --config BASE.yaml``: the papers' ablations as one command (docs/analysis.md).

Each variant changes only the neuron of the base config; every variant is trained with the same
recipe and the same seeds, written as a run of its own (``OUTPUT_DIR/<study>/<variant>_s<seed>``),
and summarised in ``OUTPUT_DIR/<study>/ablation.md`` (and ``.csv``, ``accuracy.png``): accuracy
best and last (mean, std and 95 % confidence interval over seeds, and a paired t-test against the
baseline variant over the same seeds), mean firing rate, energy of the best checkpoint, and the
learned neuron parameters at the end. A variant whose run finished already (its ``summary.json`` exists) is not
trained again, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import replace
from typing import Dict, List, Optional, Tuple

__all__ = ["NEURONS", "STUDIES", "BASELINES", "run_ablation"]


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


STUDIES = {
    "arlif-reset": ("AR-LIF: full, adaptive reset only, adaptive threshold only, soft and hard reset", _arlif),
    "dalif-decays": ("DA-LIF: both decays, spatial only, temporal only, one shared decay (PLIF), fixed LIF, "
                     "tanh against sigmoid", _dalif),
    "neurons": ("The same model and recipe with each neuron (registered definitions, default arguments)", _neurons),
}
"""The ablation studies of ``adalif ablate``: study -> (description, base neuron spec -> {variant: neuron spec})."""


def _train_variant(cfg, folder: str, name: str, neuron: Dict, trainer) -> Tuple[str, dict]:
    """``(run_dir, summary)`` of ``cfg`` with ``neuron`` as run ``folder/name``, trained unless a
    finished run (its ``summary.json``) of the same recipe is there already: an interrupted study
    resumes; a finished run of another recipe (other epochs, learning rate, neuron) is refused."""

    from ..train.run import train

    run_dir = os.path.join(folder, name)
    variant = replace(cfg, output_dir=folder, name=name, overwrite=True, resume=None,
                      model=replace(cfg.model, neuron=neuron), trainer=trainer)
    if not os.path.isfile(os.path.join(run_dir, "summary.json")):
        train(variant)
    with open(os.path.join(run_dir, "summary.json")) as fh:
        summary = json.load(fh)
    differs = _recipe_difference(summary.get("config", {}), variant)
    if differs is not None:
        from ..errors import ConfigError

        raise ConfigError(f"ablate: {run_dir} is a finished run of another recipe ({differs}); give the study another "
                          f"--output_dir, or delete that run to train it again")
    return run_dir, summary


#: What makes two runs the same recipe; the rest (where they write, progress bars, loggers, and
#: threads, which ``jobs`` sets) may differ between a study and its resumption.
_RECIPE = {"model": None, "data": ("name", "T", "batch_size", "options"), "optim": None, "schedule": None,
           "loss": None, "trainer": ("max_epochs", "seed", "precision", "max_steps", "limit_train_batches",
                                     "gradient_clip_val", "deterministic")}


def _recipe_difference(stored: Dict, cfg) -> Optional[str]:
    """The first setting in which the finished run's config ``stored`` differs from ``cfg``, as
    ``key: stored -> now``, or None."""
    from ..train.config import to_dict

    now = json.loads(json.dumps(to_dict(cfg), default=str))  # the form summary.json keeps
    for section, keys in _RECIPE.items():
        old, new = stored.get(section, {}), now.get(section, {})
        for key in keys or sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}"
    return None


def _neuron_parameters(run_dir: str) -> int:
    """Parameters that the neurons add to the model of a finished run (its last checkpoint)."""
    from ..train.run import load_checkpoint
    from ..analysis.operations import parameter_overhead

    path = os.path.join(run_dir, "checkpoints", "last.ckpt")
    if not os.path.isfile(path):
        return 0
    module, _ = load_checkpoint(path, check_files=False)
    return parameter_overhead(module.model)["neuron_parameters"]


def _train_all(cfg, folder: str, runs: List[Tuple[str, Dict, object]], jobs: int) -> Dict[str, Tuple[str, dict]]:
    """``{name: (run_dir, summary)}`` of every run ``(name, neuron, trainer)``; ``jobs`` > 1 trains
    that many at once, each in a process of its own on one thread (a run's numbers then match a
    one-thread run of it alone, not necessarily a run on more threads), without progress bars."""
    if jobs <= 1:
        return {name: _train_variant(cfg, folder, name, neuron, trainer) for name, neuron, trainer in runs}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    done = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        # One line per finished run instead of progress bars that the processes would interleave.
        futures = {name: pool.submit(_train_variant, cfg, folder, name, neuron,
                                     replace(trainer, threads=1, progress_bar=False))
                   for name, neuron, trainer in runs}
        for name, future in futures.items():
            done[name] = future.result()
            print(f"ablate: {name} done ({done[name][1]['best_acc']:.4f})", flush=True)
    return done


def _check_importable(variants: Dict[str, Dict]) -> None:
    """The worker processes of ``jobs`` start afresh and import the config's ``imports`` only: a
    neuron that this process's own code registered (a script, a notebook) would be missing there."""
    from .. import definitions
    from ..errors import ConfigError
    from ..models.registry import PRESETS

    for variant, neuron in variants.items():
        name = PRESETS.get(neuron["name"], (neuron["name"],))[0]
        source = definitions.source_of(name)
        if source.kind == "python":
            raise ConfigError(f"jobs: neuron {name!r} (variant {variant}) was registered by {source.location}, which "
                              f"the worker processes cannot import; put its definition in a file and pass it with "
                              f"--import FILE.py (imports: in a config), or use jobs=1")


#: The variant each study's others are tested against (the first variant where it has none of these).
BASELINES = {"neurons": "lif", "arlif-reset": "hard_reset", "dalif-decays": "fixed_lif"}


def run_ablation(study: str, cfg, epochs: Optional[int] = None, seeds: int = 1, energy: bool = True,
                 neurons: Optional[List[str]] = None, baseline: Optional[str] = None, jobs: int = 1) -> str:
    """Train every variant of ``study`` on the base ``cfg`` and write the table; returns its path.
    ``neurons``: the neurons of the ``neurons`` study (default :data:`NEURONS`). ``baseline``: the
    variant the others are tested against (default :data:`BASELINES`). ``jobs``: runs trained at
    once (:func:`_train_all`).

    Per variant the table gives the best test accuracy's mean, standard deviation and 95 %
    confidence interval over the seeds, and a paired t-test against the baseline over the same
    seeds (:mod:`.statistics`); ``accuracy.png`` shows every seed's accuracy with the mean and
    its interval."""
    import json

    from .. import definitions
    from ..errors import ConfigError
    from .report import accuracy_chart, checkpoint_operations, read_metrics, write_comparison
    from .statistics import describe, describe_paired, paired_test, summarise

    if study not in STUDIES:
        raise ConfigError(f"study: got {study!r}, expected one of {list(STUDIES)}")
    if seeds < 1:
        raise ConfigError(f"seeds: expected an integer >= 1, got {seeds!r}")
    if jobs < 1:
        raise ConfigError(f"jobs: expected an integer >= 1, got {jobs!r}")
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
    if baseline is not None and baseline not in variants:
        raise ConfigError(f"baseline: got {baseline!r}, expected one of the variants {list(variants)}")
    baseline = baseline or (BASELINES[study] if BASELINES[study] in variants else next(iter(variants)))
    if jobs > 1:
        _check_importable(variants)
    folder = os.path.join(cfg.output_dir, study)
    trainer = replace(cfg.trainer, max_epochs=epochs) if epochs else cfg.trainer
    seed_range = range(cfg.trainer.seed, cfg.trainer.seed + seeds)
    runs = [(f"{variant}_s{seed}", neuron, replace(trainer, seed=seed)) for variant, neuron in variants.items()
            for seed in seed_range]
    trained = _train_all(cfg, folder, runs, jobs)
    accuracy = {variant: {seed: trained[f"{variant}_s{seed}"][1]["best_acc"] for seed in seed_range}
                for variant in variants}
    rows, csv_rows, first_runs = [], [], []
    for variant, neuron in variants.items():
        results = [trained[f"{variant}_s{seed}"] for seed in seed_range]
        best, last = summarise([s["best_acc"] for _, s in results]), summarise([s["last_acc"] for _, s in results])
        paired = None if variant == baseline else paired_test(accuracy[variant], accuracy[baseline])
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
        rows.append([variant, describe(best), describe_paired(paired), describe(last), f"{rate:.4f}", joules,
                     str(overhead), f"{per_epoch:.1f}", params])
        csv_rows.append([variant, json.dumps(neuron), best.mean, best.std, best.low, best.high,
                         "" if paired is None else paired.difference, "" if paired is None or paired.p is None else paired.p,
                         last.mean, rate, joules, overhead, per_epoch, params,
                         json.dumps({str(k): v for k, v in accuracy[variant].items()})])
        first_runs.append(results[0][0])
    header = ["variant", "best acc (%): mean ± std [95 % CI]", f"vs {baseline} (paired t-test)", "last acc (%)",
              "mean firing rate", "energy (uJ/sample)", "neuron parameters", "s per epoch", "learned (mean over layers)"]
    table = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "\n".join(
        "| " + " | ".join(r) + " |" for r in rows)
    seed_text = f"seeds {seed_range[0]}..{seed_range[-1]}" if seeds > 1 else f"seed {seed_range[0]}"
    text = (f"# Ablation {study}\n\n{STUDIES[study][0]}; base config {cfg.name or cfg.model.name}, "
            f"{trainer.max_epochs} epoch{'s' if trainer.max_epochs != 1 else ''}, {seed_text}. Accuracy: the best "
            f"test accuracy of each run, mean ± standard deviation over the seeds and the 95 % confidence interval of "
            f"the mean (Student's t); the difference to {baseline} in points, with the p-value of a paired t-test over "
            f"the same seeds (p < 0.05: significant; every seed's accuracy is in ablation.csv and accuracy.png). "
            f"Energy: the best checkpoint of the first seed on up to 64 test samples, E_MAC 4.6 pJ, E_AC 0.9 pJ "
            f"(docs/analysis.md).\n\n{table}\n\n![accuracy of every seed](accuracy.png)\n")
    import csv

    with open(os.path.join(folder, "ablation.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["variant", "neuron", "best acc mean", "best acc std", "ci low", "ci high",
                         f"difference to {baseline}", "p (paired t-test)", "last acc mean", "mean firing rate",
                         "energy uJ", "neuron parameters", "s per epoch", "learned", "best acc per seed"])
        writer.writerows(csv_rows)
    accuracy_chart(folder, accuracy, baseline)
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
