# %% [markdown]
# # Comparing neurons: a short ablation with seeds
#
# This page is a Python script in jupytext's percent format
# (`docs/tutorials/comparing_neurons.py`): the site runs it when it is built, and every output and
# figure below is what it produced.
#
# Is DA-LIF better than LIF? One run of each cannot say: two runs of the same recipe with two
# seeds (other initial weights, another data order) can differ by more than two neurons do.
# `adalif ablate neurons` trains the same model and recipe once per neuron and seed, and writes a
# table with each neuron's mean over the seeds, its 95 % confidence interval and a paired test
# against a baseline neuron.
#
# ## The ablation
#
# The task is `digits_rows` ([Comparing neurons](../analysis.md#comparing-neurons-tasks-where-they-differ)): the 8x8 digit arrives one row
# per time step and the answer is read at the last step only, so a neuron must remember what it
# saw. Two neurons, two seeds and three epochs each keep this page quick to build; `--jobs 2` trains
# two runs at a time, each in its own process on one thread, and `--energy false` skips counting
# operations.

# %%
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "digits_rows_lif.yaml")
ENV = {**os.environ, "ADALIF_BACKEND": "reference"}   # the plain loops: the runs this page's text discusses

done = subprocess.run([sys.executable, "-m", "adalif", "ablate", "neurons", "--config", CONFIG,
                       "--neurons", "lif,dalif", "--seeds", "2", "--epochs", "3", "--jobs", "2",
                       "--energy", "false", "--output_dir", "runs"],
                      env=ENV, capture_output=True, text=True)
if done.returncode:
    raise RuntimeError(done.stderr[-3000:])
print("\n".join(line for line in done.stdout.splitlines() if line.startswith("ablat")))

# %% [markdown]
# Every run is a folder of its own, `runs/neurons/NEURON_sSEED`, as `adalif train` writes it; a
# run that has finished is not trained again when the command is repeated (add a seed or a neuron
# and only the new runs train). The study's results are `ablation.md`, `ablation.csv` (with every
# seed's accuracy) and `accuracy.png`.

# %%
STUDY = os.path.join("runs", "neurons")
print(sorted(os.listdir(STUDY)))
table = open(os.path.join(STUDY, "ablation.md"), encoding="utf-8").read()
rows = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
for row in rows[1:]:   # one block per neuron, so that it fits a page (the file has more columns)
    cells = [c.strip() for c in row]
    print(f"{cells[0]}\n  best acc (%): {cells[1]}\n  vs lif:       {cells[2]}\n  firing rate:  {cells[4]}"
          f"\n  learned:      {cells[8]}")
shutil.copy(os.path.join(STUDY, "accuracy.png"), "accuracy.png")

# %% [markdown]
# ## How to read the table
#
# - **best acc: mean ± std [95 % CI]**: each run's best test accuracy, averaged over the seeds,
#   their standard deviation, and the interval in which the neuron's mean accuracy lies with 95 %
#   confidence (Student's t). With two seeds the interval is wide (t has one degree of freedom):
#   it can even leave the range 0-100 %, which says only that two seeds are too few to place the
#   mean.
# - **vs lif (paired t-test)**: the difference to the baseline in points and the p-value of a
#   t-test that pairs each seed with the baseline's run of the same seed (the same initialisation
#   draws and data order), which removes the part of the spread that both share. A p-value of
#   0.05 or more is marked *not significant*: the seeds cannot tell the difference from chance,
#   whatever the means say.
# - **mean firing rate**, **neuron parameters** and **learned**: how much the neurons spike, how
#   many parameters they learn and where the learned ones ended (DA-LIF's decays α and β).
#
# Three epochs are a short run: DA-LIF is ahead on both seeds, but its two seeds are far apart,
# so two seeds cannot call the difference significant; docs/analysis.md's five seeds of eight
# epochs can. The figure above shows every seed's
# accuracy, so that a mean never hides it.
#
# The Analysis guide's [Comparing neurons](../analysis.md#comparing-neurons-tasks-where-they-differ)
# has the same study with six neurons, five seeds and 8
# epochs on `digits_rows` and `digits_delayed`, and what it shows. To run it yourself:
#
# ```bash
# adalif ablate neurons --config configs/digits_rows_lif.yaml --seeds 5 --jobs 2
# ```
#
# `--neurons` takes any registered neuron, your own too (`--import my_neuron.py`; see
# [Neurons](../neurons.md)), and `--baseline` chooses the one the others are tested against.
