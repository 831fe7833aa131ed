"""A neuron of your own from the command line: defined in a file, imported with --import (or a
config's imports: list, or an installed package's entry point), trained, evaluated, reported and
listed; a checkpoint names the module of its neurons but opening it never imports that module."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from adalif.cli import main

# The ALIF of docs/neurons.md ("Your own neuron"), with labels and equations; each import appends a
# line to imported.txt, so that a test sees whether (and how often) the file ran.
NEURONS = '''\
"""ALIF, the adaptive-threshold LIF of Bellec et al. (2018).

    H_t     = beta V_{t-1} + X_t            leak and charge
    theta_t = V_th + adaptation A_{t-1}     adaptive threshold
    S_t     = Theta(H_t - theta_t)
    V_t     = H_t - S_t theta_t             soft reset
    A_t     = rho A_{t-1} + S_t             grows with each spike, decays back
"""
import math
import os
from typing import NamedTuple

import torch

from adalif import definitions
from adalif.functional import StepOutput
from adalif.surrogate import Surrogate, Triangle

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imported.txt"), "a") as fh:
    fh.write("imported\\n")


class ALIFOptions(NamedTuple):
    v_threshold: float = 1.0
    adaptation: float = 1.8
    surrogate: Surrogate = Triangle(1.0)


class ALIFState(NamedTuple):
    v: torch.Tensor
    a: torch.Tensor


def alif_step(x, state, p):
    h = p.decay * state.v + x
    theta = p.v_threshold + p.adaptation * state.a
    s = p.surrogate(h - theta)
    return StepOutput(s, ALIFState(h - s * theta, p.rho * state.a + s), h)


def logit(p):
    return math.log(p / (1 - p))


definitions.register(definitions.NeuronDefinition(
    name="alif", class_name="ALIF", options=ALIFOptions, state=ALIFState, step=alif_step,
    parameters=(
        definitions.Parameter("decay", 0.9, per="channel", constrain=torch.sigmoid, inverse=logit,
                              label="beta (membrane decay)"),
        definitions.Parameter("rho", 0.95, constrain=torch.sigmoid, inverse=logit),
    ),
    ops={"mul": 4, "add": 4}, nir="ALIF's adaptive threshold has no NIR node",
))
'''

TINY = ["--output_dir", "runs", "--name", "mine", "--data.batch_size", "32", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "2", "--model.options", '{"width": 8}', "--trainer.progress_bar", "false",
        "--trainer.logger", "none"]


def adalif(cwd, *args, env=None):
    env = {**os.environ, "ADALIF_BACKEND": "reference", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "adalif", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def ok(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def one_line_error(result, *expected):
    err = result.stderr.strip()
    assert result.returncode == 2 and err.count("\n") == 0 and err.startswith("adalif: error:"), err
    for text in expected:
        assert text in err, err
    return err


def test_a_neuron_in_a_file_is_listed_trained_evaluated_reported_and_resumed_with_import(tmp_path, monkeypatch,
                                                                                          capsys):
    (tmp_path / "my_neurons.py").write_text(NEURONS)
    path = os.path.realpath(tmp_path / "my_neurons.py")
    imports = lambda: (tmp_path / "imported.txt").read_text().count("imported")  # noqa: E731

    listing = ok(adalif(tmp_path, "neurons", "--import", "my_neurons.py"))
    assert f"alif (ALIF), from {path}" in listing and "dalif (DALIF), built in" in listing
    assert "adaptation=1.8" in listing and "decay = beta (membrane decay) [per channel, init 0.9]" in listing
    described = ok(adalif(tmp_path, "neurons", "alif", "--import=my_neurons.py"))
    assert "A_t     = rho A_{t-1} + S_t" in described and "ALIF's adaptive threshold has no NIR node" in described

    ok(adalif(tmp_path, "train", "--import", "my_neurons.py", "--model.neuron", "alif", "--trainer.max_epochs", "1",
              *TINY))
    run = tmp_path / "runs" / "mine"
    checkpoint = str(run / "checkpoints" / "last.ckpt")
    meta = torch.load(checkpoint, map_location="cpu", weights_only=True)["adalif"]
    assert meta["neuron_sources"] == {"alif": {"kind": "file", "location": path}}
    assert meta["config"]["imports"] == ["my_neurons.py"] and all(v.startswith("ALIF(") for v in meta["neurons"].values())

    # Without --import: one line naming the file and the flag, and the file recorded in the
    # checkpoint is not run (it would have appended to imported.txt). In this process, where no
    # neuron named alif is registered.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADALIF_BACKEND", "reference")
    before = imports()
    for command in (["eval", checkpoint], ["report", str(run)], ["export-nir", checkpoint, "x.nir"],
                    ["figure", "raster", checkpoint, "--layer", "features.1", "--out", "figs"],
                    ["train", "--model.neuron", "alif", "--resume", "last", "--trainer.max_epochs", "2", *TINY]):
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "neuron 'alif' is not registered" in err and f"--import {path}" in err, err
    assert imports() == before and "alif" not in __import__("adalif").definitions.registered()

    assert "accuracy" in ok(adalif(tmp_path, "eval", checkpoint, "--import", "my_neurons.py"))
    # Another file's neuron of the same name is not the checkpoint's: refused, naming both.
    (tmp_path / "other.py").write_text(NEURONS.replace("0.9, per=", "0.5, per="))
    other = adalif(tmp_path, "eval", checkpoint, "--import", "other.py")
    assert other.returncode == 2 and f"neuron 'alif' was defined in {path}" in other.stderr
    # A built-in's name cannot be taken: a checkpoint of LIF would load another neuron.
    (tmp_path / "clash.py").write_text(NEURONS.replace('name="alif"', 'name="lif"'))
    clash = adalif(tmp_path, "neurons", "--import", "clash.py")
    assert clash.returncode == 2 and "'lif' is the name of adalif's built-in LIF" in clash.stderr
    assert clash.stderr.strip().count("\n") == 0
    ok(adalif(tmp_path, "report", str(run), "--import", "my_neurons.py"))
    assert (run / "report" / "parameters.png").stat().st_size > 0
    assert "param/features.1/rho" in (run / "report" / "parameters.csv").read_text()
    # Compared with LIF from the command line alone: a study over two seeds (two runs at a time, in
    # worker processes that import the file through the config's imports), and adalif compare.
    (tmp_path / "study.yaml").write_text(
        "imports: [my_neurons.py]\nmodel:\n  neuron: alif\n  options: {width: 8}\ndata:\n  batch_size: 32\n"
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 3\n  limit_val_batches: 2\n  progress_bar: false\n"
        "  logger: none\n")
    table = ok(adalif(tmp_path, "ablate", "neurons", "--config", "study.yaml", "--neurons", "lif,alif", "--seeds", "2",
                      "--jobs", "2", "--energy", "false", "--output_dir", "study"))
    text = (tmp_path / "study" / "neurons" / "ablation.md").read_text()
    assert "ablation table" in table and "| lif | " in text and "| baseline |" in text and "| alif | " in text
    runs = [f"study/neurons/{n}_s{s}" for n in ("lif", "alif") for s in (0, 1)]
    ok(adalif(tmp_path, "compare", *runs, "--out", "cmp", "--baseline", "lif"))
    assert "| alif | 2 | " in (tmp_path / "cmp" / "comparison.md").read_text()
    # Resumed with the config's imports: list instead of the flag.
    (tmp_path / "mine.yaml").write_text("imports: [my_neurons.py]\nmodel:\n  neuron: alif\n")
    ok(adalif(tmp_path, "train", "--config", "mine.yaml", "--resume", "last", "--trainer.max_epochs", "2", *TINY))
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"] == 1


def test_an_installed_package_adds_its_neurons_through_the_entry_point_group(tmp_path):
    info = tmp_path / "someones_neurons-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: someones-neurons\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[adalif.neurons]\nalif = someones_neurons\n")
    (tmp_path / "someones_neurons.py").write_text(NEURONS)
    env = {"PYTHONPATH": str(tmp_path)}
    code = textwrap.dedent("""
        import sys
        from adalif import definitions
        assert "someones_neurons" not in sys.modules  # loaded lazily, when a name is not found
        d = definitions.get("alif")
        print(d.class_name, tuple(definitions.source_of("alif")), "someones_neurons" in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ALIF ('entry point', 'someones_neurons (someones-neurons)') True"
    listing = ok(adalif(tmp_path, "neurons", env=env))
    assert "alif (ALIF), from the installed package entry point someones_neurons (someones-neurons)" in listing
    # A broken package is one line naming its entry point and package.
    (tmp_path / "someones_neurons.py").write_text("raise RuntimeError('broken on purpose')\n")
    one_line_error(adalif(tmp_path, "neurons", env=env), "entry point alif = someones_neurons of someones-neurons",
                   "RuntimeError: broken on purpose")


@pytest.mark.parametrize("name, text, expected", [
    ("empty.py", "x = 1\n", "import: empty.py registers no neuron"),
    ("syntax.py", "import torch\n\ndef f(:\n", "import: syntax.py, line 3, failed: SyntaxError"),
    ("raises.py", "import torch\nraise RuntimeError('boom')\n", "import: raises.py, line 2, failed: RuntimeError: boom"),
    (None, "missing.py", "import: missing.py: no such file"),
    (None, "no_such_module_here", "import: no module named 'no_such_module_here'"),
    (None, "json", "import: json registers no neuron"),
], ids=["defines nothing", "syntax error", "raises", "missing file", "missing module", "module defines nothing"])
def test_a_module_that_fails_or_defines_nothing_is_one_line_naming_it(tmp_path, monkeypatch, capsys, name, text,
                                                                      expected):
    monkeypatch.chdir(tmp_path)
    if name is not None:
        (tmp_path / name).write_text(text)
    source = name or text
    assert main(["neurons", "--import", source]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adalif: error:") and expected in err, err
    assert main(["train", "--import", source, "--output_dir", str(tmp_path / "runs")]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert not [m for m in sys.modules if m.startswith("adalif_import_")]  # a failed import leaves no module


def test_import_flags_join_the_configs_list_and_help_explains_them(tmp_path, capsys):
    from adalif.train.config import parse_config

    (tmp_path / "c.yaml").write_text("imports: [a.py]\n")
    cfg = parse_config(["--import", "b.py", "--config", str(tmp_path / "c.yaml"), "--import=mylab.neurons",
                        "--import", "a.py"])
    assert cfg.imports == ["a.py", "b.py", "mylab.neurons"]
    for command in ("train", "eval", "report", "export-nir", "figure", "neurons", "ablate", "heatmap"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--import" in capsys.readouterr().out, command
