"""The command line as a new user meets it: every mistake is one line naming what is wrong (with the
closest valid key or command), a failed run leaves nothing behind, Ctrl-C says how to go on, a
resumed run says where it resumes, and no library warning is printed on an ordinary run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from adalif.cli import main

CONFIG = "configs/digits_dalif.yaml"


def one_line(capsys, *expected):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adalif: error:"), err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("yaml_text, args, expected", [
    ("trainer:\n  max_epoch: 3\n", [], ["trainer.max_epoch: not an option", "did you mean trainer.max_epochs?"]),
    ("trainer:\n  max_epochs: eight\n", [], ["trainer.max_epochs: expected an integer, got 'eight'"]),
    ("trainer: [\n  max_epochs: 3\n", [], ["is not valid YAML", "line 3, column 1"]),
    (None, ["--config", "missing.yaml"], ["config: file", "missing.yaml' does not exist"]),
    (None, ["--trainer.max_epochs", "two"], ["trainer.max_epochs: expected an integer, got 'two'"]),
    (None, ["--trainr.max_epochs", "2"], ["trainr.max_epochs: not an option", "did you mean trainer.max_epochs?"]),
], ids=["misspelt key", "wrong type in yaml", "yaml syntax", "missing config", "wrong type on the command line",
        "misspelt group"])
def test_parse_mistakes_are_one_line_with_the_closest_key(tmp_path, capsys, yaml_text, args, expected):
    if yaml_text is not None:
        (tmp_path / "bad.yaml").write_text(yaml_text)
        args = ["--config", str(tmp_path / "bad.yaml")]
    assert main(["train", *args, "--output_dir", str(tmp_path / "runs")]) == 2
    one_line(capsys, *expected)
    assert not (tmp_path / "runs").exists()


def test_commands_version_and_subcommand_options(capsys, tmp_path):
    assert main(["foo"]) == 2
    one_line(capsys, "unknown command 'foo'")
    assert main(["tran"]) == 2
    one_line(capsys, "did you mean train?")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adalif {__import__('adalif').__version__}"
    assert main(["eval", "--bogus", "1", "x.ckpt"]) == 2
    one_line(capsys, "eval:", "bogus", "see adalif eval --help")
    assert main(["figure", "potentials", "--T", "-3", "--out", str(tmp_path)]) == 2
    one_line(capsys, "T: expected an integer >= 1, got -3")
    assert main(["figure", "potentials", "--std", "-1", "--out", str(tmp_path)]) == 2
    one_line(capsys, "std: expected a number >= 0")
    assert main(["heatmap", "--config", CONFIG, "--alpha", "2.0", "--beta", "0.5", "--output_dir", str(tmp_path)]) == 2
    one_line(capsys, "alpha: got 2.0, expected a decay in (0, 1]")
    assert main(["heatmap", "--config", CONFIG, "--alpha", "0.5", "--beta", "-1", "--output_dir", str(tmp_path)]) == 2
    one_line(capsys, "beta: got -1.0, expected a decay in [0, 1]")
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    one_line(capsys, "compare: ", "is", "a finished adalif run?")


def test_every_command_of_the_table_is_listed_and_has_help(capsys):
    from adalif.cli import COMMANDS

    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f"  {name:<14} {command.help}" in listing
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and f"adalif {name}" in capsys.readouterr().out


def test_threads_are_checked_and_a_busy_machine_gets_one_line_of_advice(tmp_path, capsys, monkeypatch):
    import torch

    from adalif.cli import parse_config
    from adalif.train import run

    assert main(["train", "--config", CONFIG, "--trainer.threads", "0", "--output_dir", str(tmp_path)]) == 2
    one_line(capsys, "trainer.threads: got 0, expected an integer >= 1")
    cfg = parse_config(["--config", CONFIG, "--trainer.accelerator", "cpu"])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (4.2, 3.0, 2.0))
    assert "busy (load 4.2 on 2 cores)" in run.busy_machine_hint(cfg) and "--trainer.threads 1" in run.busy_machine_hint(cfg)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 3.0, 2.0))
    assert run.busy_machine_hint(cfg) is None
    monkeypatch.setattr(os, "getloadavg", lambda: (4.2, 3.0, 2.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert run.busy_machine_hint(cfg) is None


def test_figure_potentials_simulates_the_neurons_asked_for(tmp_path):
    import csv

    assert main(["figure", "potentials", "--neurons", "64", "--T", "4", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "potentials.csv") as fh:
        rows = list(csv.reader(fh))[1:]
    assert sum(int(r[2]) for r in rows) == 64 * 4  # every potential of 64 neurons over 4 steps, not 1000


def test_a_corrupt_dataset_leaves_no_run_directory(tmp_path, capsys):
    from tests.data.fixtures import cifar_tree

    cifar_tree(tmp_path / "cifar", "cifar10", n=4)
    (tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02random bytes")
    args = ["train", "--config", CONFIG, "--data.name", "cifar10", "--data.root", str(tmp_path / "cifar"),
            "--output_dir", str(tmp_path / "runs"), "--trainer.progress_bar", "false", "--name", "r"]
    assert main(args) == 2
    one_line(capsys, "data_batch_3: not a readable CIFAR pickle")
    assert not (tmp_path / "runs" / "r").exists()
    assert main(args) == 2  # the retry meets the same error, not "run directory exists"
    one_line(capsys, "data_batch_3")


def test_ctrl_c_says_how_to_resume_and_the_resumed_run_says_where(tmp_path):
    env = {**os.environ, "ADALIF_BACKEND": "reference", "PYTHONWARNINGS": "default"}
    args = [sys.executable, "-m", "adalif.cli", "train", "--config", CONFIG, "--output_dir", str(tmp_path),
            "--name", "run", "--trainer.progress_bar", "false", "--trainer.max_epochs", "30",
            "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2"]
    # The child must see Ctrl-C as a user's shell delivers it: a process started with SIGINT ignored
    # (Lightning ignores it in a process it shut down after an interrupt, such as this test worker
    # after an earlier test) would ignore it too, and run to the end.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "interrupted; continue with --resume last" in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    resumed = subprocess.run([*args, "--resume", "last", "--trainer.max_epochs", "1"], capture_output=True, text=True,
                             env=env, timeout=240)
    assert "resuming run after epoch" in resumed.stdout, resumed.stdout
    for noise in ("LeafSpec", "exists and is not empty", "smaller than the logging interval"):
        assert noise not in resumed.stderr, resumed.stderr[-2000:]


def test_the_sequential_digits_refuse_too_few_steps_in_one_line(tmp_path, capsys):
    from adalif.cli import main

    assert main(["train", "--config", "configs/digits_rows_lif.yaml", "--data.T", "4", "--output_dir", str(tmp_path)]) == 2
    assert "data.T: digits_rows shows one of the 8 rows per step, so T must be at least 8, got 4" in capsys.readouterr().err
    assert main(["train", "--config", "configs/digits_delayed_lif.yaml", "--data.T", "2", "--output_dir", str(tmp_path)]) == 2
    assert "data.options.show: the digit must leave at least one blank step" in capsys.readouterr().err
