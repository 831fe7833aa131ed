# %% [markdown]
# # Train the digits from the command line and read the report
#
# This page is a Python script in jupytext's percent format
# (`docs/tutorials/train_digits_from_the_command_line.py`): the site runs it when it is built,
# and every output and figure below is what it produced. Each step is one `adalif` command; the
# script runs them with `subprocess` so that the page shows what the command prints, and you can
# type the same commands in a shell.
#
# ## Train
#
# `configs/digits_dalif.yaml` trains a small spiking CNN with DA-LIF neurons on scikit-learn's 8x8
# digits, which ship with adalif (no download), for 8 epochs at T = 4 steps. Any key of the config
# can be changed on the command line; here 2 epochs of 8 batches keep the page quick to build
# (`make demo` trains the full recipe). The neurons run on their fused C kernels, built on the first
# call on a machine (docs/kernels.md).

# %%
import json
import os
import shutil
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "digits_dalif.yaml")
ENV = dict(os.environ)


def adalif(*args: str) -> None:
    """Run `adalif ARGS...` and show the command as you would type it in a shell, then what it
    printed on stdout (the progress bars go to stderr)."""
    print("$ adalif " + " ".join(shlex.quote(os.path.relpath(a, ROOT) if os.path.isabs(a) and a.startswith(ROOT)
                                             else a) for a in args))
    done = subprocess.run([sys.executable, "-m", "adalif", *args], env=ENV,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"adalif {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    print(done.stdout.rstrip())


adalif("train", "--config", CONFIG, "--output_dir", "runs",
       "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "8",
       "--trainer.progress_bar", "false")

# %% [markdown]
# The run's folder is `OUTPUT_DIR/NAME` (the config's `name`): the best and the last checkpoint,
# the metrics of every epoch (`logs/`, also as TensorBoard events) and `summary.json`, the run's
# results with the config it ran.

# %%
RUN = os.path.join("runs", "digits_dalif")
for folder, _, names in sorted(os.walk(RUN)):
    if "tensorboard" not in folder:
        print(folder, sorted(names))
summary = json.load(open(os.path.join(RUN, "summary.json")))
print({key: value for key, value in summary.items() if key != "config"})
print("and the whole config of the run:", sorted(summary["config"]))

# %% [markdown]
# ## The report
#
# `adalif report RUN_DIR` reads the run's logs and its best checkpoint and writes
# `RUN_DIR/report/`: `report.md` (and the same as `report.html`), a figure and a CSV file per
# section. The operations and energy section runs the best checkpoint on 64 test samples.

# %%
adalif("report", RUN)
REPORT = os.path.join(RUN, "report")
print(sorted(os.listdir(REPORT)))

# %% [markdown]
# Its first table sums up the run:

# %%
report = open(os.path.join(REPORT, "report.md"), encoding="utf-8").read()
print(report.split("\n## ")[0])


def show(figure: str, table: str) -> None:
    """Print a CSV file of the report and copy its figure here, so that the page shows it."""
    print(open(os.path.join(REPORT, table), encoding="utf-8").read().rstrip())
    shutil.copy(os.path.join(REPORT, figure), figure)


# %% [markdown]
# ## Learning curves
#
# Training loss and accuracy are the means over each epoch's batches; the test values are over the
# whole test set at the end of the epoch. The best checkpoint is the epoch of the best test
# accuracy.

# %%
show("learning_curves.png", "learning_curves.csv")

# %% [markdown]
# ## Firing rates
#
# A layer's firing rate is its spikes divided by its neuron-steps over the whole test set: the
# fraction of neurons that spike at a step. Sparse spikes are what makes a spiking network cheap
# (below); a layer at 0 passes nothing on.

# %%
show("firing_rates.png", "firing_rates.csv")

# %% [markdown]
# The report also splits the rates by time step and by channel (the best checkpoint on 64 test
# samples): a layer whose rate grows over the steps is still charging up at the first ones.

# %%
show("step_channel_rates.png", "step_rates.csv")

# %% [markdown]
# ## Learned neuron parameters
#
# DA-LIF learns a spatial decay α and a temporal decay β per layer; the report follows every
# learned parameter of the neurons at the end of each epoch, named as the neuron's definition
# labels it.

# %%
show("parameters.png", "parameters.csv")

# %% [markdown]
# ## Operations and energy
#
# A layer whose input is spikes does an accumulate (AC) only where a spike arrives; a layer whose
# input is real-valued (the first conv, which sees the image) does multiply-accumulates (MACs).
# The report counts both per sample and prices them at 45 nm figures (E_MAC 4.6 pJ,
# E_AC 0.9 pJ), next to the same network as an ANN (docs/analysis.md gives the conventions).

# %%
print(report[report.index("## Operations and energy"):].strip())
totals = json.load(open(os.path.join(REPORT, "operations.json")))["totals"]
print(f"\nenergy per sample: {totals['energy_pj_per_sample'] / 1e6:.3f} uJ as an SNN, "
      f"{totals['ann_energy_pj_per_sample'] / 1e6:.3f} uJ as an ANN")

# %% [markdown]
# ## Next
#
# - Train the full recipe: `adalif train --config configs/digits_dalif.yaml` (8 epochs, about
#   97 % on the test set), or `make demo`.
# - Compare neurons over seeds: [Comparing neurons](comparing_neurons.md).
# - Every option of `train` and of the configs: [Training](../training.md); every section of the
#   report: [Analysis](../analysis.md).
