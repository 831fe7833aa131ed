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
from typing import Dict, List, Optional, Tuple

from ..errors import UnsafeFileError

__all__ = ["write_report", "write_comparison", "read_metrics"]


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


def _figure(out: str, name: str, title: str, draw, panels: int = 1) -> None:
    """A matplotlib figure drawn by ``draw(ax)`` (``draw(axes)`` with ``panels`` side by side),
    written to ``out/name``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, panels, figsize=(6 if panels == 1 else 10, 3.5), squeeze=False)
    axes = list(axes[0])
    draw(axes[0] if panels == 1 else axes)
    for ax in axes:
        if ax.get_xlabel() in ("epoch", "time step"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panels == 1:
        axes[0].set_title(title)
    else:
        fig.suptitle(title)
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


def write_report(run_dir: str, out_dir: Optional[str] = None, operations: bool = True) -> str:
    """Write the report of ``run_dir`` (default folder: ``RUN_DIR/report``); returns its path."""
    summary = _summary(run_dir)
    out = out_dir or os.path.join(run_dir, "report")
    os.makedirs(out, exist_ok=True)
    epochs = read_metrics(run_dir)
    blocks: List[Tuple[str, object]] = [("h1", f"Report: {os.path.basename(os.path.normpath(run_dir))}")]
    blocks.append(("table", (["", "value"], [["best test accuracy", f"{summary['best_acc']:.4f} (epoch {summary['best_epoch']})"],
                                            ["last test accuracy", f"{summary['last_acc']:.4f}"],
                                            ["mean firing rate (last epoch)", f"{summary['firing_rate']:.4f}"],
                                            ["wall time", f"{summary['wall_time_s']:.1f} s"]])))

    def figure(name: str, title: str, draw) -> None:
        _figure(out, name, title, draw)
        blocks.append(("image", name))

    # Learning curves.
    keys = ["train/loss_epoch", "train/acc_epoch", "val/loss", "val/acc"]
    rows = [[e, *(epochs[e].get(k, "") for k in keys)] for e in sorted(epochs)]
    _write_csv(os.path.join(out, "learning_curves.csv"), ["epoch", *keys], rows)
    blocks.append(("h2", "Learning curves"))

    def curves(axes):
        # Loss and accuracy have different scales: one panel each, with readable names.
        for ax, (what, unit, scale) in zip(axes, (("loss", "loss", 1.0), ("acc", "accuracy (%)", 100.0))):
            for key, label in ((f"train/{what}_epoch", "train"), (f"val/{what}", "test")):
                xs, ys = _series(epochs, key)
                if xs:
                    ax.plot(xs, [scale * y for y in ys], marker="o", label=label)
            ax.set_xlabel("epoch")
            ax.set_ylabel(unit)
            ax.set_title(unit.split(" ")[0])
            if ax.get_lines():
                ax.legend()

    _figure(out, "learning_curves.png", "learning curves", curves, panels=2)
    blocks.append(("image", "learning_curves.png"))
    blocks.append(("text", "Data: `learning_curves.csv`."))

    # Firing rates per layer, last epoch.
    last = max(epochs) if epochs else None
    rates = {k[3:]: v for k, v in (epochs[last].items() if last is not None else []) if k.startswith("fr/")}
    _write_csv(os.path.join(out, "firing_rates.csv"), ["layer", "firing_rate"], [[k, v] for k, v in rates.items()])
    blocks.append(("h2", "Firing rates"))
    if rates:
        figure("firing_rates.png", f"firing rate per layer (epoch {last}, test set)",
               lambda ax: (ax.bar(range(len(rates)), list(rates.values())), ax.set_xticks(range(len(rates)), list(rates),
                                                                                         rotation=45, ha="right"),
                           ax.set_ylabel("spikes per neuron per step")))
    blocks.append(("text", "Spike count over neuron-steps of every layer over the whole test set (docs/analysis.md). "
                           "Data: `firing_rates.csv`."))

    # Parameter tracking.
    params = sorted({k for e in epochs.values() for k in e if k.startswith("param/")})
    _write_csv(os.path.join(out, "parameters.csv"), ["epoch", *params],
               [[e, *(epochs[e].get(k, "") for k in params)] for e in sorted(epochs) if any(k in epochs[e] for k in params)])
    blocks.append(("h2", "Learned neuron parameters"))
    if params:
        def tracking(ax):
            for key in params:
                xs, ys = _series(epochs, key)
                ax.plot(xs, ys, marker=".", label=key[len("param/"):])
            ax.set_xlabel("epoch")
            ax.legend(fontsize=6)
        figure("parameters.png", "neuron parameters per layer and epoch", tracking)
    blocks.append(("text", "DA-LIF alpha and beta (mean over channels), AR-LIF tanh(a) and c, PLIF tau, at the end of "
                           "each epoch. Data: `parameters.csv`." if params else "This run's neurons learn no parameter."))

    if operations:
        blocks += _operations(run_dir, out)
    _write_outputs(out, blocks)
    return out


def write_comparison(run_dirs: List[str], out: str) -> str:
    """Runs side by side in ``out``: one table (accuracy best and last, mean firing rate, wall
    time) and a grouped bar chart of every layer's firing rate per run (AR-LIF's Figure 2 is this
    over its adaptive, hard and soft reset runs), with their data; returns ``out``."""
    if not run_dirs:
        raise ValueError("compare: expected at least one run directory")
    os.makedirs(out, exist_ok=True)
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    summaries = [_summary(d, "compare") for d in run_dirs]
    rates = []
    for d in run_dirs:
        epochs = read_metrics(d)
        last = epochs[max(epochs)] if epochs else {}
        rates.append({k[3:]: v for k, v in last.items() if k.startswith("fr/")})
    layers = list(dict.fromkeys(layer for r in rates for layer in r))
    table = [[n, f"{s['best_acc']:.4f}", f"{s['last_acc']:.4f}", f"{s['firing_rate']:.4f}", f"{s['wall_time_s']:.1f}"]
             for n, s in zip(names, summaries)]
    header = ["run", "best acc", "last acc", "mean firing rate", "wall s"]
    _write_csv(os.path.join(out, "comparison.csv"), header, table)
    _write_csv(os.path.join(out, "firing_rates.csv"), ["layer", *names],
               [[layer, *(r.get(layer, "") for r in rates)] for layer in layers])

    def bars(ax):
        width = 0.8 / len(names)
        for i, (name, r) in enumerate(zip(names, rates)):
            ax.bar([x + i * width for x in range(len(layers))], [r.get(layer, 0.0) for layer in layers], width, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(layers))], layers, rotation=45, ha="right")
        ax.set_ylabel("spikes per neuron per step")
        ax.legend(fontsize=7)
    blocks: List[Tuple[str, object]] = [("h1", "Comparison of " + ", ".join(names)), ("table", (header, table))]
    if layers:
        _figure(out, "firing_rates.png", "firing rate per layer (last epoch, test set)", bars)
        blocks.append(("image", "firing_rates.png"))
    blocks.append(("text", "Data: `comparison.csv`, `firing_rates.csv` (layers by name; empty where a run has no such "
                           "layer)."))
    _write_outputs(out, blocks, "comparison")
    return out


def checkpoint_operations(run_dir: str, samples: int = 64):
    """``(counts, model, samples used)`` of the best checkpoint of ``run_dir`` on its first test
    samples (as the model sees them: normalised, time-major)."""
    import torch

    from ..data import registry
    from ..train.run import load_checkpoint
    from .operations import count_operations

    module, cfg = load_checkpoint(os.path.join(run_dir, "checkpoints", "best.ckpt"))
    sets = registry.build(cfg.data.name, cfg.data.root, cfg.data.T, cfg.data.options)
    batch = [sets.test[i] for i in range(min(samples, len(sets.test)))]
    x = torch.stack([b[0] for b in batch]).float()
    augment = registry.batch_augment(sets.info, cfg.data.options, sets.size)
    if augment is not None:
        x, _ = augment(x, torch.tensor([b[1] for b in batch]), train=False)
    if x.dim() == 5:
        x = x.transpose(0, 1)
    return count_operations(module.model, x), module.model, len(batch)


def _operations(run_dir: str, out: str) -> List[Tuple[str, object]]:
    """Operation counts and energy of the best checkpoint on one test batch."""
    from .operations import parameter_overhead

    blocks: List[Tuple[str, object]] = [("h2", "Operations and energy")]
    try:
        counts, model, n = checkpoint_operations(run_dir)
    except UnsafeFileError:  # a crafted checkpoint is no missing input: the report stops, naming it
        raise
    except (OSError, ValueError) as err:  # no checkpoint, or the dataset's files are not here
        return blocks + [("text", f"Not computed: {err}")]
    batch = range(n)
    energy = {"energy_pj_per_sample": counts.energy(), "energy_exact_pj_per_sample": counts.energy(sops="exact"),
              "ann_energy_pj_per_sample": counts.ann_energy(), "T": counts.T, "samples": len(batch),
              **counts.totals(), **parameter_overhead(model), "conventions": counts.conventions}
    with open(os.path.join(out, "operations.json"), "w") as fh:
        json.dump({"totals": energy, "layers": [vars(c) for c in counts.layers]}, fh, indent=2)
    rows = [[c.name, c.kind, "spikes" if c.binary_input else "real", f"{c.input_rate:.4f}", f"{c.flops:,}",
             f"{c.macs:,.0f}", f"{c.sops_rate:,.0f}", f"{c.sops_exact:,.0f}"] for c in counts.layers]
    blocks.append(("table", (["layer", "kind", "input", "input rate", "FLOPs/step", "MACs", "SOPs (fr x T x FLOPs)",
                              "SOPs (exact)"], rows)))
    blocks.append(("text", f"Per sample over T = {counts.T}, on {len(batch)} test samples of the best checkpoint. "
                           f"Energy (E_MAC 4.6 pJ, E_AC 0.9 pJ): {energy['energy_pj_per_sample'] / 1e6:.4f} uJ "
                           f"(exact fan-out: {energy['energy_exact_pj_per_sample'] / 1e6:.4f} uJ; the same network as "
                           f"an ANN: {energy['ann_energy_pj_per_sample'] / 1e6:.4f} uJ). Neuron parameters: "
                           f"{energy['neuron_parameters']} of {energy['model_parameters']:,}. Conventions: "
                           + "; ".join(f"{k}: {v}" for k, v in counts.conventions.items()) + ". Data: `operations.json`."))
    return blocks


def _write_outputs(out: str, blocks, stem: str = "report") -> None:
    md, body = [], []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            md.append(("# " if kind == "h1" else "## ") + content)
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "text":
            md.append(content)
            body.append(f"<p>{html.escape(content)}</p>")
        elif kind == "image":
            md.append(f"![{content}]({content})")
            with open(os.path.join(out, content), "rb") as fh:
                data = base64.b64encode(fh.read()).decode()
            body.append(f'<p><img alt="{content}" src="data:image/png;base64,{data}"></p>')
        else:
            header, rows = content
            md.append("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
                      + "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in rows))
            cells = lambda r, tag: "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in r)  # noqa: E731
            body.append("<table><tr>" + cells(header, "th") + "</tr>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
                        + "</table>")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:0.2em 0.5em;text-align:right}img{max-width:100%}"
    for name, text in ((f"{stem}.md", "\n\n".join(md) + "\n"),
                       (f"{stem}.html", f"<!doctype html><meta charset=utf-8><title>adalif report</title>"
                                       f"<style>{style}</style>\n" + "\n".join(body) + "\n")):
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, os.path.join(out, name))
