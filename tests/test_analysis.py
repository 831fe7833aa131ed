"""Firing rates: exact counts over unequal batches, per step and per channel, no growth, hooks removed."""

import pytest
import torch
from torch import nn

from adalif.analysis import FiringRateMonitor
from adalif.layers import SeqToANN
from adalif.neurons import LIF
from adalif.surrogate import Rectangle


def _net():
    # A threshold far below any input fires every neuron at every step; inputs of 0 never fire.
    return nn.Sequential(LIF(v_threshold=1e-3, decay_input=False, surrogate=Rectangle(1.0), backend="reference"),
                         SeqToANN(nn.Identity()),
                         LIF(v_threshold=1e-3, decay_input=False, backend="reference"))


def test_rates_are_exact_over_unequal_batches_and_per_step_and_channel():
    net = _net()
    # [T=2, B, C=3]: batch 1 fires everywhere (4 samples), batch 2 nowhere (4), batch 3 (2 samples)
    # only at step 1 and channel 0.
    batches = [torch.ones(2, 4, 3), torch.zeros(2, 4, 3), torch.zeros(2, 2, 3)]
    batches[2][1, :, 0] = 1.0
    with FiringRateMonitor(net, per_step=True, per_channel=True) as monitor:
        for x in batches:
            net(x)
    spikes = 2 * 4 * 3 + 2  # all of batch 1, then step 1 x 2 samples x channel 0
    elements = 2 * 10 * 3
    assert monitor.rates() == {"0": pytest.approx(spikes / elements), "2": pytest.approx(spikes / elements)}
    # The average of per-batch means would be (1 + 0 + 1/6) / 3: not the rate.
    assert abs(monitor.rates()["0"] - (1 + 0 + 1 / 6) / 3) > 1e-2
    torch.testing.assert_close(monitor.step_rates()["0"], torch.tensor([12 / 30, 14 / 30], dtype=torch.float64))
    torch.testing.assert_close(monitor.channel_rates()["0"], torch.tensor([10 / 20, 8 / 20, 8 / 20], dtype=torch.float64))
    assert monitor.official_arlif_rates()["0"] == pytest.approx(spikes / elements / 2)  # "FR / T" of inference.py
    assert monitor.mean_rate() == pytest.approx(spikes / elements)


def test_hooks_are_removed_on_exit_and_counts_do_not_grow():
    net = _net()
    with FiringRateMonitor(net) as monitor:
        x = torch.rand(3, 5, 7, requires_grad=True)
        for _ in range(50):
            net(x).sum().backward()
        # One reduced count per layer, detached: no spike tensor and no graph is kept.
        assert all(t.numel() == 1 and not t.requires_grad for t in monitor.spikes.values())
        assert monitor.elements["0"] == 50 * 3 * 5 * 7
    assert all(not m._forward_hooks for m in net.modules())
    before = dict(monitor.elements)
    net(x)
    assert monitor.elements == before  # detached: nothing more is counted


# -- operation counts and energy ------------------------------------------------------------------
from adalif.analysis import count_operations, parameter_overhead  # noqa: E402
from adalif.layers import DirectEncoder, TimeBatchNorm  # noqa: E402


class Small(nn.Module):
    """images -> conv 1->2 (3x3, pad 1) -> [BN] -> LIF -> conv 2->3 (3x3, pad 1) -> LIF -> linear 48->5."""

    def __init__(self, T=3, bn=False):
        super().__init__()
        self.encoder = DirectEncoder(T)
        self.conv1 = SeqToANN(nn.Conv2d(1, 2, 3, padding=1))
        self.bn = TimeBatchNorm(2) if bn else nn.Identity()
        self.lif1 = LIF(tau=2.0, v_threshold=0.3, backend="reference")
        self.conv2 = SeqToANN(nn.Conv2d(2, 3, 3, padding=1))
        self.lif2 = LIF(tau=2.0, v_threshold=0.3, backend="reference")
        self.fc = SeqToANN(nn.Flatten(), nn.Linear(48, 5))
        with torch.no_grad():  # weights that make both layers fire sometimes
            self.conv1[0].weight.uniform_(-0.1, 0.3)
            self.conv2[0].weight.uniform_(-0.1, 0.3)

    def forward(self, x):
        seq = x if x.dim() == 5 else self.encoder(x)
        s1 = self.lif1(self.bn(self.conv1(seq)))
        s2 = self.lif2(self.conv2(s1))
        self.spikes = (s1, s2)
        return self.fc(s2)


def _fan_out_by_hand(spikes):
    """Outputs each input spike of a 3x3, padding-1 conv feeds, summed: a spike at (i, j) of a 4x4
    map reaches the output positions p with |p - i| <= 1 inside the map (4, 6 or 9 of them)."""
    total = 0.0
    for (i, j) in ((i, j) for i in range(4) for j in range(4)):
        reach = sum(1 for p in range(4) for q in range(4) if abs(p - i) <= 1 and abs(q - j) <= 1)
        total += float(spikes[..., i, j].sum()) * reach
    return total


def test_operation_counts_of_a_small_network_by_hand():
    torch.manual_seed(0)
    net = Small(T=3).eval()
    x = torch.rand(2, 1, 4, 4) * 3
    counts = count_operations(net, x)
    s1, s2 = net.spikes
    assert 0 < s1.mean() < 1 and 0 < s2.mean() < 1
    conv1, conv2, fc = counts.layers
    # First layer: real-valued images under direct encoding, the same at every step: MACs once.
    assert (conv1.binary_input, conv1.flops, conv1.macs, conv1.sops_rate) == (False, 9 * 1 * 2 * 16, 9 * 1 * 2 * 16, 0)
    # conv2 sees spikes: the papers' fr * T * FLOPs, and the exact fan-out (fewer at the borders).
    assert conv2.binary_input and conv2.flops == 9 * 2 * 3 * 16
    assert conv2.sops_rate == pytest.approx(float(s1.mean()) * 3 * conv2.flops)
    assert conv2.sops_exact == pytest.approx(3 * _fan_out_by_hand(s1) / 2)  # 3 output channels, per sample
    assert conv2.sops_exact < conv2.sops_rate  # border spikes feed fewer than 9 positions
    assert fc.sops_exact == pytest.approx(float(s2.sum()) * 5 / 2) == pytest.approx(fc.sops_rate)
    # Energy: E_MAC * MACs + E_AC * SOPs, per sample.
    sops = conv2.sops_rate + fc.sops_rate
    assert counts.energy() == pytest.approx(4.6 * 288 + 0.9 * sops)
    assert counts.energy("int8", sops="exact") == pytest.approx(0.23 * 288 + 0.03 * (conv2.sops_exact + fc.sops_exact))
    assert counts.ann_energy() == pytest.approx(4.6 * (288 + 864 + 240))
    # The first-layer options: x T, or ACs at the input's rate.
    assert count_operations(net, x, first_layer="times_T").layers[0].macs == 3 * 288
    as_ac = count_operations(net, x, first_layer="ac").layers[0]
    assert as_ac.macs == 0 and as_ac.sops_rate == pytest.approx(float(x.mean()) * 3 * 288)
    # A sequence input (event frames) really runs the first layer T times.
    assert count_operations(net, x.unsqueeze(0).expand(3, *x.shape)).layers[0].macs == 3 * 288
    assert "MACs once for static images" in counts.table() and "| **total** |" in counts.table()


def test_batch_norm_options_and_neuron_operations():
    torch.manual_seed(0)
    net = Small(T=3, bn=True).eval()
    x = torch.rand(2, 1, 4, 4) * 3
    folded = count_operations(net, x)
    counted = count_operations(net, x, bn="counted", neuron_ops=True)
    assert counted.layers[0].macs - folded.layers[0].macs == 3 * 2 * 16  # one MAC per element per step
    # LIF: 1 multiply and 2 adds per neuron per step, over 2*16 + 3*16 neurons and 3 steps.
    assert counted.neuron_ops == {"mul": 3 * 80, "add": 2 * 3 * 80}
    with pytest.raises(ValueError, match=r"first_layer: got 'twice'"):
        count_operations(net, x, first_layer="twice")


def test_resnet19_dense_counts_and_the_worked_energy_example():
    """evaluation.md 3.3: ResNet-19 (stem 128) has 2.285 G MACs per step, 3,538,944 in the first
    layer; at T = 4 and a mean input rate of 0.15 it costs 16.3 uJ (first layer, MAC, once) +
    1.23 mJ (ACs), about 1.25 mJ per image."""
    from adalif.models import create_model

    model = create_model("resnet19", neuron={"name": "lif", "backend": "reference"}, num_classes=10, T=4)
    counts = count_operations(model, torch.rand(1, 3, 32, 32))
    assert counts.layers[0].flops == 3_538_944 and counts.layers[0].macs == 3_538_944
    assert counts.totals()["flops_per_step"] == pytest.approx(2.285e9, rel=1e-3)
    at_015 = counts.with_rate(0.15)
    first = 4.6 * 3_538_944
    assert first == pytest.approx(16.3e6, rel=2e-3)
    assert at_015.energy() - first == pytest.approx(1.23e9, rel=2e-3)
    assert at_015.energy() == pytest.approx(1.25e9, rel=2e-3)
    overhead = parameter_overhead(create_model("resnet19", neuron="dalif"))
    assert overhead["neuron_parameters"] == 2 * overhead["neuron_layers"] == 36


def test_report_of_a_two_epoch_run(tmp_path, monkeypatch):
    """Every figure is a non-empty PNG whose data file matches the run; the HTML embeds them."""
    import csv
    import json
    import os

    from adalif.cli import main, parse_config
    from adalif.train.run import train

    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    cfg = parse_config(["--config", "configs/digits_arlif.yaml", "--output_dir", str(tmp_path), "--trainer.max_epochs", "2",
                        "--trainer.limit_train_batches", "4", "--trainer.progress_bar", "false"])
    run = train(cfg).run_dir
    assert main(["report", os.path.join(run, "checkpoints", "best.ckpt")]) == 0  # a checkpoint names its run
    out = os.path.join(run, "report")
    for png in ("learning_curves.png", "firing_rates.png", "parameters.png", "step_channel_rates.png"):
        with open(os.path.join(out, png), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(os.path.join(out, png)) > 5000
    from PIL import Image

    with Image.open(os.path.join(out, "learning_curves.png")) as image:  # loss and accuracy side by side
        assert image.size == (1200, 420)
    with open(os.path.join(run, "summary.json")) as fh:
        summary = json.load(fh)
    with open(os.path.join(out, "learning_curves.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["val/acc"]) for r in rows] == pytest.approx([summary["accuracy_by_epoch"][str(e)] for e in (0, 1)])
    with open(os.path.join(out, "firing_rates.csv")) as fh:
        rates = {r["layer"]: float(r["firing_rate"]) for r in csv.DictReader(fh)}
    assert set(rates) == {"features.1", "features.3"} and all(0 < r < 1 for r in rates.values())
    assert sum(rates.values()) / 2 == pytest.approx(summary["firing_rate"])
    with open(os.path.join(out, "parameters.csv")) as fh:
        params = list(csv.DictReader(fh))
    assert len(params) == 2 and {"param/features.1/tanh_a", "param/features.1/c"} <= set(params[0])
    with open(os.path.join(out, "operations.json")) as fh:
        ops = json.load(fh)
    assert ops["totals"]["energy_pj_per_sample"] > 0 and len(ops["layers"]) == 3
    # Per-step and per-channel rates of the same pass: both average to the layer's rate (every step
    # and every channel of a conv layer has as many neuron-samples).
    steps, channels = {}, {}
    with open(os.path.join(out, "step_rates.csv")) as fh:
        for r in csv.DictReader(fh):
            steps.setdefault(r["layer"], []).append(float(r["firing_rate"]))
    with open(os.path.join(out, "channel_rates.csv")) as fh:
        for r in csv.DictReader(fh):
            channels.setdefault(r["layer"], []).append(float(r["firing_rate"]))
    assert set(steps) == {"features.1", "features.3"} and all(len(v) == cfg.data.T for v in steps.values())
    assert [len(v) for v in channels.values()] == [32, 64]
    for layer in steps:
        assert sum(steps[layer]) / len(steps[layer]) == pytest.approx(sum(channels[layer]) / len(channels[layer]))
    html = open(os.path.join(out, "report.html")).read()
    assert html.count("data:image/png;base64,") == 4 and "best test accuracy" in html
    # Rendered from the markdown: real tables and code, no markdown syntax left in the page.
    assert "`" not in html and "|---" not in html and "<code>learning_curves.csv</code>" in html
    assert html.count("<table>") == 2
    md = open(os.path.join(out, "report.md")).read()
    assert "![learning_curves.png](learning_curves.png)" in md and "Operations and energy" in md


def test_compare_puts_runs_side_by_side(tmp_path, monkeypatch):
    import csv
    import json
    import os

    from adalif.cli import main, parse_config
    from adalif.train.run import train

    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    runs = []
    for config in ("digits_dalif", "digits_arlif"):
        cfg = parse_config(["--config", f"configs/{config}.yaml", "--output_dir", str(tmp_path), "--trainer.max_epochs", "1",
                            "--trainer.limit_train_batches", "3", "--trainer.progress_bar", "false"])
        runs.append(train(cfg).run_dir)
    out = str(tmp_path / "cmp")
    assert main(["compare", *runs, "--out", out]) == 0
    with open(os.path.join(out, "comparison.csv")) as fh:
        rows = list(csv.DictReader(fh))
    for row, run in zip(rows, runs):
        with open(os.path.join(run, "summary.json")) as fh:
            summary = json.load(fh)
        assert row["run"] == os.path.basename(run) and row["dataset"] == "digits"
        assert float(row["best acc (%)"]) == pytest.approx(100 * summary["best_acc"], abs=1e-2)
    with open(os.path.join(out, "learning_curves.csv")) as fh:
        curves = list(csv.DictReader(fh))
    assert [float(r["digits_arlif/val/acc"]) for r in curves] == pytest.approx([summary["accuracy_by_epoch"]["0"]])
    with open(os.path.join(out, "firing_rates.csv")) as fh:
        rates = list(csv.DictReader(fh))
    assert [r["layer"] for r in rates] == ["features.1", "features.3"] and set(rates[0]) == {"layer", "digits_dalif", "digits_arlif"}
    assert os.path.getsize(os.path.join(out, "firing_rates.png")) > 5000
    html = open(os.path.join(out, "comparison.html")).read()
    assert html.count("data:image/png;base64,") == 2 and "different datasets" not in html and "`" not in html


@pytest.mark.parametrize("study, config, variants", [
    ("arlif-reset", "digits_arlif", ["ar_lif", "adaptive_reset_only", "adaptive_threshold_only", "soft_reset", "hard_reset"]),
    ("dalif-decays", "digits_dalif", ["both_decays", "spatial_only", "temporal_only", "one_shared_decay", "fixed_lif",
                                      "sigmoid_decays"]),
])
def test_ablation_study_trains_every_variant_and_resumes(study, config, variants, tmp_path, monkeypatch):
    import os

    from adalif.experiments.ablation import run_ablation
    from adalif.cli import parse_config

    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    cfg = parse_config(["--config", f"configs/{config}.yaml", "--output_dir", str(tmp_path), "--trainer.progress_bar", "false",
                        "--trainer.limit_train_batches", "2"])
    path = run_ablation(study, cfg, epochs=1, energy=False)
    table = open(path).read()
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines() if line.startswith("| ") and "variant" not in line]
    assert rows == variants
    summaries = {v: os.path.getmtime(tmp_path / study / f"{v}_s0" / "summary.json") for v in variants}
    run_ablation(study, cfg, epochs=1, energy=False)  # interrupted and re-run: nothing is trained again
    assert {v: os.path.getmtime(tmp_path / study / f"{v}_s0" / "summary.json") for v in variants} == summaries
    from adalif.errors import ConfigError

    with pytest.raises(ConfigError, match=r"_s0 is a finished run of another recipe \(trainer.max_epochs: 1 -> 2\)"):
        run_ablation(study, cfg, epochs=2, energy=False)  # a finished run of another recipe is never reused
    if study == "dalif-decays":
        # The fixed LIF's decays stay where they were set; the learned ones moved.
        assert table.split("| fixed_lif |")[1].split("\n")[0].rstrip().endswith("alpha 1.000, beta 0.250 |")


def test_heatmap_over_fixed_decays(tmp_path, monkeypatch):
    import csv
    import json
    import os

    from adalif.experiments.ablation import run_heatmap
    from adalif.cli import parse_config

    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    cfg = parse_config(["--config", "configs/digits_dalif.yaml", "--output_dir", str(tmp_path), "--trainer.progress_bar",
                        "false", "--trainer.limit_train_batches", "2"])
    png = run_heatmap(cfg, [0.5, 1.0], [0.25], epochs=1)
    assert os.path.getsize(png) > 5000
    with open(tmp_path / "heatmap" / "heatmap.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["beta \\ alpha", "0.5", "1.0"] and rows[1][0] == "0.25"
    for alpha, value in zip(("0.5", "1"), rows[1][1:]):
        with open(tmp_path / "heatmap" / f"alpha{alpha}_beta0.25" / "summary.json") as fh:
            summary = json.load(fh)
        assert float(value) == pytest.approx(summary["best_acc"])
        neuron = summary["config"]["model"]["neuron"]
        assert (neuron["learn_alpha"], neuron["learn_beta"], neuron["beta_init"]) == (False, False, 0.25)


def test_figure_potentials_and_rasters(tmp_path, monkeypatch):
    import csv
    import os

    from adalif.experiments.figures import potential_distributions, spike_rasters
    from adalif.cli import main, parse_config
    from adalif.train.run import train

    png = potential_distributions(str(tmp_path), T=8, neurons=2000, seed=1)
    assert os.path.getsize(png) > 5000
    with open(tmp_path / "potentials.csv") as fh:
        rows = list(csv.DictReader(fh))
    for label in ("LIF (hard reset)", "soft reset", "AR-LIF"):  # every potential lands in one bin
        assert sum(int(r[label]) for r in rows) == 8 * 2000
    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    cfg = parse_config(["--config", "configs/digits_arlif.yaml", "--output_dir", str(tmp_path), "--trainer.max_epochs", "1",
                        "--trainer.limit_train_batches", "3", "--trainer.progress_bar", "false"])
    ckpt = os.path.join(train(cfg).run_dir, "checkpoints", "best.ckpt")
    png = spike_rasters([ckpt], "features.1", str(tmp_path / "r"), sample=3, neurons=2048)
    assert os.path.getsize(png) > 5000
    with open(tmp_path / "r" / "spikes.csv") as fh:
        spikes = list(csv.DictReader(fh))
    assert spikes and all(0 <= int(s["neuron"]) < 2048 and 0 <= int(s["step"]) < 4 for s in spikes)
    assert main(["figure", "raster", ckpt, "--layer", "nope", "--out", str(tmp_path / "x")]) == 2


def test_spike_counts_stay_exact_past_float32_integers():
    from adalif.analysis.firing import _count

    rows = torch.ones(2, (1 << 24) + 3)  # float32 alone would round 16,777,219 to 16,777,220
    rows[1, :5] = 0
    assert _count(rows).tolist() == [(1 << 24) + 3, (1 << 24) - 2]


def test_neurons_study_compares_neurons_on_one_recipe(tmp_path, monkeypatch, capsys):
    import json
    import os

    from adalif.experiments.ablation import run_ablation
    from adalif.cli import main, parse_config

    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    cfg = parse_config(["--config", "configs/digits_dalif.yaml", "--output_dir", str(tmp_path), "--trainer.progress_bar",
                        "false", "--trainer.limit_train_batches", "2"])
    path = run_ablation("neurons", cfg, epochs=1, energy=False, neurons=["lif", "clif", "glif"], seeds=2, jobs=2)
    table = open(path).read()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()
            if line.startswith("| ") and "variant" not in line}
    assert list(rows) == ["lif", "clif", "glif"]
    header = next(line for line in table.splitlines() if line.startswith("| variant")).split(" | ")
    overhead = {name: int(cells[header.index("neuron parameters")]) for name, cells in rows.items()}
    # digits_cnn at width 32: GLIF adds 7 per-channel parameters + a [T, C] conductance per neuron layer.
    assert overhead["lif"] == 0 and overhead["clif"] == 0 and overhead["glif"] == (7 + 4) * (32 + 64)
    assert float(rows["glif"][header.index("s per epoch")]) > 0
    # Two seeds: mean ± std [95 % CI] per neuron, and a paired t-test against LIF over seeds 0 and 1.
    import csv

    from adalif.experiments.statistics import describe, paired_test, summarise

    with open(tmp_path / "neurons" / "ablation.csv") as fh:
        per_seed = {r["variant"]: {int(k): v for k, v in json.loads(r["best acc per seed"]).items()}
                    for r in csv.DictReader(fh)}
    assert all(sorted(v) == [0, 1] for v in per_seed.values())
    assert rows["lif"][1] == describe(summarise(list(per_seed["lif"].values())))
    assert rows["lif"][2] == "baseline" and rows["clif"][2].startswith(
        f"{100 * paired_test(per_seed['clif'], per_seed['lif']).difference:+.2f}")
    assert os.path.isfile(tmp_path / "neurons" / "accuracy.png")
    assert os.path.isfile(tmp_path / "neurons" / "comparison" / "comparison.md")
    # adalif compare of the same runs groups them by variant and tests against the baseline too.
    runs = [str(tmp_path / "neurons" / f"{n}_s{s}") for n in ("clif", "lif") for s in (0, 1)]
    assert main(["compare", *runs, "--out", str(tmp_path / "cmp"), "--baseline", "lif"]) == 0
    md = open(tmp_path / "cmp" / "comparison.md").read()
    assert "| lif | 2 | " + describe(summarise(list(per_seed["lif"].values()))) + " | baseline |" in md
    assert rows["clif"][2] in md and os.path.isfile(tmp_path / "cmp" / "accuracy.png")
    assert main(["compare", *runs, "--out", str(tmp_path / "cmp"), "--baseline", "nope"]) == 2
    assert "baseline: got 'nope'" in capsys.readouterr().err
    # Two studies' runs of the same names are two variants, never merged.
    import shutil

    shutil.copytree(tmp_path / "neurons", tmp_path / "again" / "neurons")
    both = [str(tmp_path / study / f"lif_s{s}") for study in ("neurons", "again/neurons") for s in (0, 1)]
    assert main(["compare", *both, "--out", str(tmp_path / "cmp2")]) == 0
    md = open(tmp_path / "cmp2" / "comparison.md").read()
    assert "| neurons/lif | 2 | " in md and "| again/neurons/lif | 2 | " in md
    assert main(["ablate", "neurons", "--config", "configs/digits_dalif.yaml", "--neurons", "lif,nope",
                 "--output_dir", str(tmp_path)]) == 2
    assert "neurons: unknown neuron 'nope'" in capsys.readouterr().err


def test_a_real_valued_input_never_has_a_negative_rate():
    """A normalised image (negative values) as the input of a layer counted by ACs: its rate is its
    mean magnitude, so no count or energy is negative (the report showed a negative input rate)."""
    import torch

    from adalif.analysis import count_operations
    from adalif.models import create_model

    model = create_model("digits_cnn", neuron="dalif", num_classes=10, in_channels=1, T=2, width=4)
    images = torch.rand(4, 1, 8, 8) - 0.8  # mean about -0.3
    counts = count_operations(model, images, first_layer="ac")
    first = counts.layers[0]
    assert not first.binary_input and first.input_rate == pytest.approx(float(images.abs().mean()))
    assert first.sops_rate > 0 and counts.energy() > 0
    assert "-0." not in counts.table().splitlines()[2]


def test_analysis_imports_without_lightning_or_the_run_level_tools():
    """adalif.analysis works on any module: importing it (and using it) pulls in neither Lightning
    nor the training package nor the run-level tools; a finder that refuses those proves it."""
    import subprocess
    import sys

    code = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('lightning', 'pytorch_lightning', 'jsonargparse', 'matplotlib', 'kornia', 'yaml'):
            raise ImportError('refused: ' + name)
sys.meta_path.insert(0, Refuse())
import torch
from adalif.analysis import FiringRateMonitor, count_operations
from adalif.models import create_model
model = create_model('digits_cnn', neuron='dalif', num_classes=10, T=2)
counts = count_operations(model, torch.rand(2, 3, 1, 8, 8))
assert counts.totals()['flops_per_step'] > 0
print(sorted(m for m in sys.modules if m.startswith('adalif.train') or m.startswith('adalif.experiments')))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _fake_run(folder, dataset: str, accuracies) -> str:
    """A run directory as adalif train leaves it, as far as compare reads it (summary and metrics)."""
    import json
    import os

    os.makedirs(os.path.join(folder, "logs", "version_0"))
    with open(os.path.join(folder, "summary.json"), "w") as fh:
        json.dump({"best_acc": max(accuracies), "last_acc": accuracies[-1], "best_epoch": 0, "firing_rate": 0.1,
                   "wall_time_s": 1.0, "config": {"data": {"name": dataset}}}, fh)
    with open(os.path.join(folder, "logs", "version_0", "metrics.csv"), "w") as fh:
        fh.write("epoch,step,val/acc,val/loss,fr/features.1\n")
        fh.writelines(f"{e},{e},{a},{1 - a},0.1\n" for e, a in enumerate(accuracies))
    return str(folder)


def test_comparison_names_the_dataset_of_each_run_and_warns_when_they_differ(tmp_path):
    import csv

    from adalif.experiments.report import write_comparison

    runs = [_fake_run(tmp_path / "a" / "run", "digits", [0.5, 0.75]), _fake_run(tmp_path / "b" / "run", "cifar10", [0.25])]
    out = write_comparison(runs, str(tmp_path / "cmp"))
    with open(f"{out}/comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["run"], r["dataset"], r["best acc (%)"]) for r in rows] == [("a/run", "digits", "75.00"),
                                                                           ("b/run", "cifar10", "25.00")]
    with open(f"{out}/learning_curves.csv") as fh:
        curves = list(csv.DictReader(fh))
    assert [r["a/run/val/acc"] for r in curves] == ["0.5", "0.75"] and [r["b/run/val/acc"] for r in curves] == ["0.25", ""]
    html = open(f"{out}/comparison.html").read()
    assert "<strong>These runs use different datasets</strong> (digits, cifar10)" in html


def test_parallel_studies_refuse_a_neuron_the_workers_cannot_import(monkeypatch):
    """A neuron registered by the running script (here: this test module) is missing in the fresh
    worker processes of jobs > 1: refused before anything is trained."""
    import dataclasses

    from adalif import definitions as D
    from adalif.cli import parse_config
    from adalif.errors import ConfigError
    from adalif.experiments.ablation import run_ablation

    local = dataclasses.replace(D.get("clif"), name="clif_here", step=lambda x, s, p: D.get("clif").step(x, s, p))
    monkeypatch.setitem(D.base._REGISTRY, "clif_here", local)
    cfg = parse_config(["--config", "configs/digits_dalif.yaml", "--output_dir", "/nonexistent"])
    with pytest.raises(ConfigError, match="jobs: neuron 'clif_here' .* was registered by test_analysis"):
        run_ablation("neurons", cfg, neurons=["lif", "clif_here"], jobs=2)
