"""``adalif report RUN_DIR``: a run's results as files a paper can use (docs/analysis.md).

The report folder holds ``report.md``, the same content as one self-contained ``report.html``
(figures embedded), the PNG figures (matplotlib) and the data behind each as CSV or JSON:
accuracy (best and last), learning curves, per-layer firing rates of the last epoch, operation
counts and energy of the best checkpoint on a test batch, and the tracking of every learned
neuron parameter per epoch. Markdown and HTML are written from one list of blocks, so they say
the same thing.
"""

from __future__ import annotations

import base64
import csv
import glob
import html
import json
import os
import re
from typing import Callable, Dict, List, Optional, Tuple, Union

from ..errors import UnsafeFileError

__all__ = ["write_report", "write_comparison", "read_metrics", "checkpoint_analysis"]


def read_metrics(run_dir: str) -> Dict[int, Dict[str, float]]:
    """Every logged value per epoch (the last value of each key in each epoch), over all log
    versions of the run (a resumed run writes the next version)."""
    epochs: Dict[int, Dict[str, float]] = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "logs", "version_*", "metrics.csv")),
                       key=lambda p: int(p.split("version_")[-1].split(os.sep)[0])):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                epoch = int(float(row["epoch"]))
                values = epochs.setdefault(epoch, {})
                values.update({k: float(v) for k, v in row.items() if v not in ("", None) and k not in ("epoch", "step")})
    return epochs


def _summary(run_dir: str, command: str = "report") -> dict:
    from ..errors import MissingFileError

    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        raise MissingFileError(f"{command}: {path!r} does not exist; is {run_dir!r} a finished adalif run?")
    with open(path) as fh:
        return json.load(fh)


# Lines of one panel are told apart by colour, line style and marker together, and drawn with
# markers that shrink line by line, so a line that lies exactly on another stays visible.
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _style(i: int, n: int) -> dict:
    return dict(linestyle=_STYLES[i % len(_STYLES)], marker=_MARKERS[i % len(_MARKERS)],
                markersize=max(3.0, 8.0 - 5.0 * i / max(n - 1, 1)), linewidth=1.5)


def _figure(out: str, name: str, title: str, draw, panels: int = 1, columns: Optional[int] = None,
            legend_below: Union[bool, str] = False) -> None:
    """A matplotlib figure drawn by ``draw(ax)`` (``draw(axes)`` with ``panels`` panels, ``columns``
    per row; default all in one row), written to ``out/name``. ``legend_below``: one legend for the
    whole figure (titled with the string, if one is given), under the panels, so that it covers no
    data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = columns or panels
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 if columns == 1 else 5 * columns, 3.5 * rows), squeeze=False)
    axes = [ax for row in axes for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    draw(axes[0] if panels == 1 else axes[:panels])
    for ax in axes[:panels]:
        if ax.get_xlabel() in ("epoch", "time step"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    extra = [axes[0].set_title(title) if panels == 1 else fig.suptitle(title)]
    if legend_below:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.tight_layout()
        extra.append(fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4),
                                fontsize=8, title=legend_below if isinstance(legend_below, str) else None))
        fig.savefig(os.path.join(out, name), dpi=120, bbox_extra_artists=extra, bbox_inches="tight")
    else:
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=120)
    plt.close(fig)


def _write_csv(path: str, header: List[str], rows: List[List]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _series(epochs, key) -> Tuple[List[int], List[float]]:
    xs = [e for e in sorted(epochs) if key in epochs[e]]
    return xs, [epochs[e][key] for e in xs]


def parameter_labels(summary: dict, run_dir: str) -> Callable[[str], str]:
    """``key -> readable name`` of the tracked parameters (``param/<layer>/<key>``), for the y axes:
    the labels of the run's neurons' definitions (:meth:`adalif.definitions.NeuronDefinition.label`),
    the key itself where none has one. A neuron that is not registered (one of your own, without
    ``--import``) is a one-line error naming its module."""
    from ..train.run import run_neurons

    definitions = run_neurons(summary.get("config", {}), summary.get("neuron_sources"), f"report: run {run_dir!r}")
    return lambda key: next((d.label(key) for d in definitions if d.label(key) != key), key)


def _run_label(run_dir: str) -> str:
    return os.path.basename(os.path.normpath(run_dir))


def write_report(run_dir: str, out_dir: Optional[str] = None, operations: bool = True) -> str:
    """Write the report of ``run_dir`` (default folder: ``RUN_DIR/report``); returns its path."""
    summary = _summary(run_dir)
    out = out_dir or os.path.join(run_dir, "report")
    os.makedirs(out, exist_ok=True)
    epochs = read_metrics(run_dir)
    data = summary.get("config", {}).get("data", {})
    model = summary.get("config", {}).get("model", {})
    neuron = model.get("neuron", "")
    neuron = neuron.get("name", "") if isinstance(neuron, dict) else neuron
    label = parameter_labels(summary, run_dir)
    blocks: List[Tuple[str, object]] = [("h1", f"Report: {_run_label(run_dir)}")]
    blocks.append(("table", (["", "value"], [
        ["dataset", f"{data.get('name', '?')} (T = {data.get('T', '?')})"],
        ["model", f"{model.get('name', '?')}, {neuron or '?'} neurons"],
        ["best test accuracy", f"{100 * summary['best_acc']:.2f} % (epoch {summary['best_epoch']})"],
        ["last test accuracy", f"{100 * summary['last_acc']:.2f} %"],
        ["mean firing rate (last epoch)", f"{summary['firing_rate']:.4f}"],
        ["wall time", f"{summary['wall_time_s']:.1f} s"]])))

    # Learning curves.
    keys = ["train/loss_epoch", "train/acc_epoch", "val/loss", "val/acc"]
    rows = [[e, *(epochs[e].get(k, "") for k in keys)] for e in sorted(epochs)]
    _write_csv(os.path.join(out, "learning_curves.csv"), ["epoch", *keys], rows)
    blocks.append(("h2", "Learning curves"))

    def curves(axes):
        # Loss and accuracy have different scales: one panel each, with readable names.
        for ax, (what, unit, scale) in zip(axes, (("loss", "loss", 1.0), ("acc", "accuracy (%)", 100.0))):
            for i, (key, label) in enumerate(((f"train/{what}_epoch", "train"), (f"val/{what}", "test"))):
                xs, ys = _series(epochs, key)
                if xs:
                    ax.plot(xs, [scale * y for y in ys], label=label, **_style(i, 2))
            ax.set_xlabel("epoch")
            ax.set_ylabel(unit)
            ax.set_title(unit.split(" ")[0])
            if ax.get_lines():
                ax.legend()

    _figure(out, "learning_curves.png", "learning curves", curves, panels=2)
    blocks.append(("image", "learning_curves.png"))
    blocks.append(("text", "Training loss and accuracy are averaged over each epoch's batches (with the "
                           "augmentation); test values are over the whole test set at the end of the epoch. "
                           "Data: `learning_curves.csv`."))

    # Firing rates per layer, last epoch.
    last = max(epochs) if epochs else None
    rates = {k[3:]: v for k, v in (epochs[last].items() if last is not None else []) if k.startswith("fr/")}
    _write_csv(os.path.join(out, "firing_rates.csv"), ["layer", "firing_rate"], [[k, v] for k, v in rates.items()])
    blocks.append(("h2", "Firing rates"))
    if rates:
        def layer_bars(ax):
            ax.bar(range(len(rates)), list(rates.values()))
            ax.set_xticks(range(len(rates)), list(rates), rotation=45, ha="right")
            ax.set_xlabel("neuron layer")
            ax.set_ylabel("spikes per neuron per step")
        _figure(out, "firing_rates.png", f"firing rate per layer (epoch {last}, test set)", layer_bars)
        blocks.append(("image", "firing_rates.png"))
    blocks.append(("text", "Spike count over neuron-steps of every layer over the whole test set (docs/analysis.md). "
                           "Data: `firing_rates.csv`."))

    # Parameter tracking: one panel per kind of parameter, a line per layer.
    params = sorted({k for e in epochs.values() for k in e if k.startswith("param/")})
    _write_csv(os.path.join(out, "parameters.csv"), ["epoch", *params],
               [[e, *(epochs[e].get(k, "") for k in params)] for e in sorted(epochs) if any(k in epochs[e] for k in params)])
    blocks.append(("h2", "Learned neuron parameters"))
    if params:
        kinds: Dict[str, List[str]] = {}
        for key in params:
            kinds.setdefault(key.rsplit("/", 1)[1], []).append(key)

        def tracking(axes):
            axes = axes if isinstance(axes, list) else [axes]
            for ax, (kind, keys_) in zip(axes, kinds.items()):
                for i, key in enumerate(keys_):
                    xs, ys = _series(epochs, key)
                    ax.plot(xs, ys, label=key[len("param/"):].rsplit("/", 1)[0], **_style(i, len(keys_)))
                ax.set_xlabel("epoch")
                ax.set_ylabel(label(kind))
                ax.set_title(label(kind).split(" (")[0])
            axes[0].legend(title="layer", fontsize=7) if len(kinds) == 1 else None

        _figure(out, "parameters.png", "learned neuron parameters per layer (end of each epoch)", tracking,
                panels=len(kinds), columns=min(len(kinds), 2), legend_below="layer" if len(kinds) > 1 else False)
        blocks.append(("image", "parameters.png"))
    blocks.append(("text", "One panel per learned parameter, named as the neuron's definition labels it (DA-LIF α and "
                           "β, AR-LIF tanh(a) and c, PLIF τ, ...), one line per layer (a parameter per channel: its "
                           "mean), at the end of each epoch. Data: `parameters.csv`." if params
                   else "This run's neurons learn no parameter."))

    if operations:
        blocks += _checkpoint_sections(run_dir, out)
    _write_outputs(out, blocks)
    return out


def write_comparison(run_dirs: List[str], out: str, baseline: Optional[str] = None) -> str:
    """Runs side by side in ``out``: one table (dataset, model and neuron, accuracy best and last,
    mean firing rate, wall time), the test loss and accuracy of every run over the epochs in one
    figure, and a grouped bar chart of every layer's firing rate per run (AR-LIF's Figure 2 is this
    over its adaptive, hard and soft reset runs), with their data; returns ``out``."""
    if not run_dirs:
        raise ValueError("compare: expected at least one run directory")
    summaries = [_summary(d, "compare") for d in run_dirs]
    os.makedirs(out, exist_ok=True)
    names = [_run_label(d) for d in run_dirs]
    if len(set(names)) < len(names):  # runs of the same name in different folders: say which is which
        names = [os.path.join(os.path.basename(os.path.dirname(os.path.normpath(d))), n) for d, n in zip(run_dirs, names)]
    datasets = [s.get("config", {}).get("data", {}).get("name", "?") for s in summaries]
    histories = [read_metrics(d) for d in run_dirs]
    rates = []
    for epochs in histories:
        last = epochs[max(epochs)] if epochs else {}
        rates.append({k[3:]: v for k, v in last.items() if k.startswith("fr/")})
    layers = list(dict.fromkeys(layer for r in rates for layer in r))
    table = [[n, dataset, f"{100 * s['best_acc']:.2f}", f"{100 * s['last_acc']:.2f}", f"{s['firing_rate']:.4f}",
              f"{s['wall_time_s']:.1f}"] for n, dataset, s in zip(names, datasets, summaries)]
    header = ["run", "dataset", "best acc (%)", "last acc (%)", "mean firing rate", "wall s"]
    _write_csv(os.path.join(out, "comparison.csv"), header, table)
    _write_csv(os.path.join(out, "firing_rates.csv"), ["layer", *names],
               [[layer, *(r.get(layer, "") for r in rates)] for layer in layers])
    epochs_all = sorted({e for h in histories for e in h})
    _write_csv(os.path.join(out, "learning_curves.csv"), ["epoch", *(f"{n}/{k}" for n in names for k in ("val/loss", "val/acc"))],
               [[e, *(h.get(e, {}).get(k, "") for h in histories for k in ("val/loss", "val/acc"))] for e in epochs_all])
    labels = [f"{n} ({d})" for n, d in zip(names, datasets)]
    blocks: List[Tuple[str, object]] = [("h1", "Comparison of " + ", ".join(names)), ("table", (header, table))]
    if len(set(datasets)) > 1:
        blocks.append(("text", "**These runs use different datasets** (" + ", ".join(dict.fromkeys(datasets))
                               + "): their accuracies are not comparable."))
    blocks += _seed_statistics(run_dirs, summaries, out, baseline)

    def curves(axes):
        for ax, (key, unit, scale) in zip(axes, (("val/loss", "test loss", 1.0), ("val/acc", "test accuracy (%)", 100.0))):
            for i, (label, h) in enumerate(zip(labels, histories)):
                xs, ys = _series(h, key)
                if xs:
                    ax.plot(xs, [scale * y for y in ys], label=label, **_style(i, len(labels)))
            ax.set_xlabel("epoch")
            ax.set_ylabel(unit)
            ax.set_title(unit)

    blocks.append(("h2", "Learning curves"))
    _figure(out, "learning_curves.png", "test loss and accuracy per epoch", curves, panels=2,
            legend_below="run (dataset)")
    blocks.append(("image", "learning_curves.png"))

    def bars(ax):
        width = 0.8 / len(names)
        for i, (label, r) in enumerate(zip(labels, rates)):
            ax.bar([x + i * width for x in range(len(layers))], [r.get(layer, 0.0) for layer in layers], width, label=label)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(layers))], layers, rotation=45, ha="right")
        ax.set_xlabel("neuron layer")
        ax.set_ylabel("spikes per neuron per step")

    if layers:
        blocks.append(("h2", "Firing rates"))
        _figure(out, "firing_rates.png", "firing rate per layer (last epoch, test set)", bars,
                legend_below="run (dataset)")
        blocks.append(("image", "firing_rates.png"))
    blocks.append(("text", "Data: `comparison.csv`, `learning_curves.csv`, `firing_rates.csv` (layers by name; empty "
                           "where a run has no such layer)."))
    _write_outputs(out, blocks, "comparison")
    return out


def accuracy_chart(folder: str, accuracy: Dict[str, Dict[int, float]], baseline: str) -> None:
    """``accuracy.png``: every seed's best accuracy per variant (points), with the mean and its 95 %
    confidence interval (a bar), so that the spread is seen, not only the mean."""
    from .statistics import summarise

    def draw(ax):
        for i, (variant, by_seed) in enumerate(accuracy.items()):
            values = [100 * v for v in by_seed.values()]
            ax.scatter([i] * len(values), values, s=14, alpha=0.6, color="C0" if variant != baseline else "C3",
                       label="one seed (baseline in red)" if i == 0 else None)
            summary = summarise(values)
            error = None if summary.std is None else [[summary.mean - summary.low], [summary.high - summary.mean]]
            ax.errorbar([i + 0.15], [summary.mean], yerr=error, fmt="_", color="k", capsize=4,
                        label="mean, 95 % CI" if i == 0 else None)
        ax.set_xticks(range(len(accuracy)), list(accuracy), rotation=30, ha="right")
        ax.set_ylabel("best test accuracy (%)")
        ax.legend(fontsize=8)
    _figure(folder, "accuracy.png", f"best test accuracy of every seed (baseline: {baseline})", draw)


def _seed_statistics(run_dirs: List[str], summaries: List[dict], out: str,
                     baseline: Optional[str]) -> List[Tuple[str, object]]:
    """Runs named ``<variant>_s<seed>`` (as ``adalif ablate`` writes them) grouped by variant: per
    variant the best accuracy's mean, std and 95 % confidence interval over its seeds, and a paired
    t-test against ``baseline`` (default: the first variant) over the seeds both ran, with
    ``accuracy_over_seeds.csv`` and ``accuracy.png`` (every seed). Nothing when no variant has two
    seeds."""
    from .statistics import describe, describe_paired, paired_test, seeds_of, summarise

    # Runs are told apart by their path below the folder all of them share (two studies' lif_s0
    # are two variants), and grouped by it without the seed.
    paths = [os.path.normpath(os.path.abspath(d)) for d in run_dirs]
    common = os.path.commonpath([os.path.dirname(p) for p in paths])
    labels = [os.path.relpath(p, common) for p in paths]
    best = dict(zip(labels, (s["best_acc"] for s in summaries)))
    groups = seeds_of(labels)
    if baseline is not None and baseline not in groups:
        from ..errors import ConfigError

        raise ConfigError(f"baseline: got {baseline!r}, expected one of the variants {list(groups)} (runs named "
                          f"VARIANT_sSEED)")
    if max(len(g) for g in groups.values()) < 2:
        return []
    baseline = baseline or next(iter(groups))
    accuracy = {variant: {seed: best[name] for seed, name in runs.items()} for variant, runs in groups.items()}
    rows = []
    for variant, by_seed in accuracy.items():
        paired = None if variant == baseline else paired_test(by_seed, accuracy[baseline])
        rows.append([variant, str(len(by_seed)), describe(summarise(list(by_seed.values()))), describe_paired(paired)])
    header = ["variant", "seeds", "best acc (%): mean ± std [95 % CI]", f"vs {baseline} (paired t-test)"]
    _write_csv(os.path.join(out, "accuracy_over_seeds.csv"), ["variant", "seed", "best acc"],
               [[v, seed, acc] for v, by_seed in accuracy.items() for seed, acc in sorted(by_seed.items())])
    accuracy_chart(out, accuracy, baseline)
    return [("h2", "Over seeds"), ("table", (header, rows)),
            ("text", f"Runs named VARIANT_sSEED are one variant's seeds. The difference to {baseline} is in points, "
                     "with the p-value of a paired t-test over the seeds both ran (p < 0.05: significant)."),
            ("image", "accuracy.png")]


def checkpoint_analysis(run_dir: str, samples: int = 64):
    """``(counts, monitor, model, samples used)`` of the best checkpoint of ``run_dir`` on its first
    test samples (as the model sees them: :func:`adalif.data.registry.test_inputs`): the operation
    counts, and a :class:`~adalif.analysis.FiringRateMonitor` with per-step and per-channel rates."""
    from ..analysis import FiringRateMonitor
    from ..analysis.operations import count_operations
    from ..data import registry
    from ..train.run import load_checkpoint

    module, cfg = load_checkpoint(os.path.join(run_dir, "checkpoints", "best.ckpt"))
    x, y = registry.test_inputs(cfg.data.name, cfg.data.root, cfg.data.T, cfg.data.options, slice(samples))
    with FiringRateMonitor(module.model, per_step=True, per_channel=True) as monitor:
        counts = count_operations(module.model, x)
    return counts, monitor, module.model, len(y)


def checkpoint_operations(run_dir: str, samples: int = 64):
    """``(counts, model, samples used)``: the operation counts of :func:`checkpoint_analysis`."""
    counts, _, model, n = checkpoint_analysis(run_dir, samples)
    return counts, model, n


def _checkpoint_sections(run_dir: str, out: str) -> List[Tuple[str, object]]:
    """Operation counts and energy, and firing rates per time step and per channel, of the best
    checkpoint on one test batch."""
    from ..analysis.operations import parameter_overhead

    blocks: List[Tuple[str, object]] = [("h2", "Firing rates per time step and per channel")]
    try:
        counts, monitor, model, n = checkpoint_analysis(run_dir)
    except UnsafeFileError:  # a crafted checkpoint is no missing input: the report stops, naming it
        raise
    except (OSError, ValueError) as err:  # no checkpoint, or the dataset's files are not here
        return blocks + [("text", f"Not computed: {err}")]
    steps = {name: r.tolist() for name, r in monitor.step_rates().items()}
    channels = {name: r.tolist() for name, r in monitor.channel_rates().items()}
    _write_csv(os.path.join(out, "step_rates.csv"), ["layer", "step", "firing_rate"],
               [[name, t, r] for name, rs in steps.items() for t, r in enumerate(rs)])
    _write_csv(os.path.join(out, "channel_rates.csv"), ["layer", "channel", "firing_rate"],
               [[name, c, r] for name, rs in channels.items() for c, r in enumerate(rs)])

    def per_step_and_channel(axes):
        for i, (name, rs) in enumerate(steps.items()):
            axes[0].plot(range(len(rs)), rs, label=name, **_style(i, len(steps)))
        axes[0].set_xlabel("time step")
        axes[0].set_ylabel("spikes per neuron")
        axes[0].set_title("per time step")
        names = list(channels)
        if names:
            axes[1].boxplot([channels[name] for name in names], showfliers=True)
            axes[1].set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
        axes[1].set_xlabel("neuron layer")
        axes[1].set_ylabel("firing rate of a channel")
        axes[1].set_title("spread over channels")

    _figure(out, "step_channel_rates.png", f"best checkpoint, {n} test samples", per_step_and_channel, panels=2,
            legend_below="layer")
    blocks.append(("image", "step_channel_rates.png"))
    blocks.append(("text", f"Left: each layer's rate at each time step. Right: the distribution of its channels' rates "
                           f"(box: quartiles; whiskers: 1.5 IQR; points: channels beyond). Best checkpoint on the first "
                           f"{n} test samples. Data: `step_rates.csv`, `channel_rates.csv`."))

    blocks.append(("h2", "Operations and energy"))
    energy = {"energy_pj_per_sample": counts.energy(), "energy_exact_pj_per_sample": counts.energy(sops="exact"),
              "ann_energy_pj_per_sample": counts.ann_energy(), "T": counts.T, "samples": n,
              **counts.totals(), **parameter_overhead(model), "conventions": counts.conventions}
    with open(os.path.join(out, "operations.json"), "w") as fh:
        json.dump({"totals": energy, "layers": [vars(c) for c in counts.layers]}, fh, indent=2)
    rows = [[c.name, c.kind, "spikes" if c.binary_input else "real", f"{c.input_rate:.4f}", f"{c.flops:,}",
             f"{c.macs:,.0f}", f"{c.sops_rate:,.0f}", f"{c.sops_exact:,.0f}"] for c in counts.layers]
    blocks.append(("table", (["layer", "kind", "input", "input rate", "FLOPs/step", "MACs", "SOPs (fr x T x FLOPs)",
                              "SOPs (exact)"], rows)))
    blocks.append(("text", f"Per sample over T = {counts.T}, on {n} test samples of the best checkpoint. "
                           f"Energy (E_MAC 4.6 pJ, E_AC 0.9 pJ): {energy['energy_pj_per_sample'] / 1e6:.4f} uJ "
                           f"(exact fan-out: {energy['energy_exact_pj_per_sample'] / 1e6:.4f} uJ; the same network as "
                           f"an ANN: {energy['ann_energy_pj_per_sample'] / 1e6:.4f} uJ). Neuron parameters: "
                           f"{energy['neuron_parameters']} of {energy['model_parameters']:,}. Conventions: "
                           + "; ".join(f"{k}: {v}" for k, v in counts.conventions.items()) + ". Data: `operations.json`."))
    return blocks


def _markdown(blocks) -> str:
    md = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            md.append(("# " if kind == "h1" else "## ") + content)
        elif kind == "text":
            md.append(content)
        elif kind == "image":
            md.append(f"![{content}]({content})")
        else:
            header, rows = content
            md.append("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
                      + "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in rows))
    return "\n\n".join(md) + "\n"


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:64em;margin:2em auto;padding:0 1em;line-height:1.45}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:0.2em 0.6em}"
          "td{text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
          "img{max-width:100%}code{background:#f3f3f3;padding:0 0.2em;border-radius:3px}")


def _write_outputs(out: str, blocks, stem: str = "report") -> None:
    """``STEM.md`` from the blocks, and ``STEM.html`` rendered from that markdown (Python-Markdown,
    tables extension) with the figures embedded, so the two say the same thing and the HTML shows
    no markdown syntax."""
    import markdown

    md = _markdown(blocks)
    body = markdown.markdown(md, extensions=["tables"], output_format="html")

    def embed(match) -> str:
        with open(os.path.join(out, html.unescape(match.group(1))), "rb") as fh:
            return f'src="data:image/png;base64,{base64.b64encode(fh.read()).decode()}"'

    body = re.sub(r'src="([^":]+\.png)"', embed, body)
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>adalif {stem}: "
            f"{html.escape(blocks[0][1])}</title><style>{_STYLE}</style>\n<body>\n{body}\n</body></html>\n")
    for name, text in ((f"{stem}.md", md), (f"{stem}.html", page)):
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, os.path.join(out, name))
