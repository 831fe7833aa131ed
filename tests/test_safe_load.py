"""Opening a file never runs code from it: every loader of adalif refuses a crafted pickle with one
line naming the file, before anything of it runs (the marker file it would create never appears);
what adalif writes, and the official files, still read exactly."""

import io
import json
import os
import pickle
import shutil
from dataclasses import asdict, replace

import lightning as L
import numpy as np
import pytest
import torch

from adalif.errors import UnsafeFileError
from adalif.safe_load import load_pickle, load_torch
from adalif.cli import main, parse_config

OLD_CHECKPOINT = os.path.join(os.path.dirname(__file__), "data", "checkpoints", "adalif-0.1.0-digits-arlif.ckpt")


@pytest.fixture(autouse=True)
def _reference_backend(monkeypatch):
    monkeypatch.setenv("ADALIF_BACKEND", "reference")


class MakesMarker:
    """Unpickling this calls ``os.mkdir(marker)``: the stand-in for a payload that runs a command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def crafted_checkpoint(path, marker, source=OLD_CHECKPOINT):
    """A real adalif checkpoint whose metadata is replaced by a payload."""
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    ckpt["adalif"] = {**ckpt["adalif"], "config": MakesMarker(marker)}
    torch.save(ckpt, path)
    return str(path)


def one_line_error(capsys, naming):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("adalif: error:"), err
    assert naming in err and "refused" in err and "nothing from it was run" in err, err
    return err


def test_the_payload_is_real(tmp_path):
    """The crafted checkpoint does create the marker when opened the unsafe way: the tests below mean something."""
    path = crafted_checkpoint(tmp_path / "evil.ckpt", tmp_path / "marker")
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker").is_dir()


@pytest.mark.parametrize("command", ["eval", "export-nir", "figure raster"])
def test_commands_that_open_a_checkpoint_refuse_a_crafted_one(tmp_path, capsys, command):
    path = crafted_checkpoint(tmp_path / "evil.ckpt", tmp_path / "marker")
    argv = {"eval": ["eval", path], "export-nir": ["export-nir", path, str(tmp_path / "out.nir")],
            "figure raster": ["figure", "raster", path, "--layer", "features.1", "--out", str(tmp_path / "figs")]}[command]
    assert main(argv) == 2
    one_line_error(capsys, "evil.ckpt")
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path / "out.nir").exists()


def test_report_refuses_a_run_whose_checkpoint_is_crafted(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    crafted_checkpoint(run / "checkpoints" / "best.ckpt", tmp_path / "marker")
    config = torch.load(OLD_CHECKPOINT, weights_only=True)["adalif"]["config"]
    (run / "summary.json").write_text(json.dumps({"run_dir": str(run), "best_acc": 0.5, "last_acc": 0.5, "best_epoch": 0,
                                                  "firing_rate": 0.1, "wall_time_s": 1.0, "config": config,
                                                  "accuracy_by_epoch": {"0": 0.5}}))
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "best.ckpt")
    assert not (tmp_path / "marker").exists()


def test_resume_refuses_a_crafted_last_checkpoint(tmp_path, capsys):
    args = ["--config", "configs/digits_arlif.yaml", "--output_dir", str(tmp_path), "--name", "run",
            "--trainer.progress_bar", "false", "--model.options", "{width: 4}", "--trainer.max_epochs", "1"]
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    crafted_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", tmp_path / "marker")
    assert main(["train", *args, "--resume", "last"]) == 2
    one_line_error(capsys, "last.ckpt")
    assert not (tmp_path / "marker").exists()


def test_lightning_reads_checkpoints_through_the_safe_loader(tmp_path):
    """Lightning's own loading on resume goes through the run's CheckpointIO plugin: it is safe too,
    whatever weights_only Lightning passes."""
    from adalif.train.callbacks import AtomicCheckpointIO

    path = crafted_checkpoint(tmp_path / "evil.ckpt", tmp_path / "marker")
    with pytest.raises(UnsafeFileError, match=r"evil.ckpt' refused: it asks to run posix.mkdir|evil.ckpt' refused: it asks to run nt.mkdir"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not (tmp_path / "marker").exists()
    good = AtomicCheckpointIO().load_checkpoint(OLD_CHECKPOINT, weights_only=False)
    assert set(good["state_dict"]) == set(torch.load(OLD_CHECKPOINT, weights_only=True)["state_dict"])


def test_import_weights_refuses_a_crafted_state_dict(tmp_path, capsys):
    torch.save({"net": {"conv1.weight": MakesMarker(tmp_path / "marker")}}, tmp_path / "evil.pth")
    out = tmp_path / "model.ckpt"
    assert main(["import-weights", str(tmp_path / "evil.pth"), "--config", "configs/arlif_cifar10_resnet18_T4.yaml",
                 "--out", str(out)]) == 2
    one_line_error(capsys, "evil.pth")
    assert not (tmp_path / "marker").exists() and not out.exists()


def test_cifar_reader_refuses_a_crafted_batch(tmp_path, capsys):
    from adalif.data.cifar import read_batch
    from tests.data.fixtures import cifar_tree

    cifar_tree(tmp_path / "cifar", "cifar10", n=4)
    batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "wb") as fh:
        pickle.dump({"data": MakesMarker(tmp_path / "marker"), "labels": [0]}, fh, protocol=2)
    with pytest.raises(UnsafeFileError, match=r"data_batch_1: refused: it asks to run (posix|nt).mkdir, but a CIFAR batch"):
        read_batch(batch)
    assert main(["train", "--config", "configs/digits_arlif.yaml", "--data.name", "cifar10", "--data.root",
                 str(tmp_path / "cifar"), "--output_dir", str(tmp_path / "runs"), "--trainer.progress_bar", "false",
                 "--trainer.max_epochs", "1"]) == 2
    one_line_error(capsys, "data_batch_1")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("payload", [
    (shutil.rmtree, ("/nonexistent-adalif",)),  # any callable outside numpy's builders
    (np.load, ("/nonexistent-adalif",)),  # numpy, but not an array builder
])
def test_restricted_unpickler_refuses_every_other_global(tmp_path, payload):
    class Payload:
        def __reduce__(self):
            return payload

    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        with open(tmp_path / "f", "wb") as fh:
            pickle.dump({"data": Payload()}, fh, protocol=protocol)
        with pytest.raises(UnsafeFileError, match=f"refused: it asks to run {payload[0].__module__}"):
            load_pickle(tmp_path / "f", "it holds arrays")


def test_restricted_unpickler_refuses_object_arrays_and_other_codecs(tmp_path):
    with open(tmp_path / "objects", "wb") as fh:
        pickle.dump(np.array([1, "a"], dtype=object), fh, protocol=2)
    with pytest.raises(UnsafeFileError, match=r"numpy.dtype of objects"):
        load_pickle(tmp_path / "objects", "it holds arrays")
    # _codecs.encode is allowed for the latin1 byte strings of protocols 0-2 only.
    (tmp_path / "codec").write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(UnsafeFileError, match=r"_codecs.encode with encoding 'rot13'"):
        load_pickle(tmp_path / "codec", "it holds arrays")


@pytest.mark.parametrize("protocol", list(range(0, pickle.HIGHEST_PROTOCOL + 1)) + ["python2"])
def test_official_cifar_batches_read_exactly_as_with_pickle(tmp_path, protocol):
    """Python 2's cPickle layout of the official files (numpy.core names, byte strings) and every
    protocol Python 3 writes: the arrays and lists equal plain pickle's, bit for bit."""
    from adalif.data.cifar import read_batch
    from tests.data.fixtures import python2_pickle

    rng = np.random.default_rng(1)
    batch = {"batch_label": "training batch 1 of 5", "labels": [int(v) for v in rng.integers(0, 10, 7)],
             "data": rng.integers(0, 256, (7, 3072), dtype=np.uint8), "filenames": [f"f{i}.png" for i in range(7)]}
    raw = python2_pickle(batch) if protocol == "python2" else pickle.dumps(batch, protocol=protocol)
    (tmp_path / "data_batch_1").write_bytes(raw)
    expected = pickle.loads(raw, encoding="latin1")
    safe = load_pickle(tmp_path / "data_batch_1", "it holds arrays", encoding="latin1")
    assert safe.keys() == expected.keys() and safe["labels"] == expected["labels"] == batch["labels"]
    assert safe["data"].dtype == np.uint8 and np.array_equal(safe["data"], batch["data"])
    out = read_batch(tmp_path / "data_batch_1")
    assert np.array_equal(out.images.reshape(7, -1), batch["data"]) and out.labels.tolist() == batch["labels"]


def test_checkpoint_of_an_earlier_adalif_still_loads_and_evaluates_the_same():
    """Written by adalif 0.1.0 (commit 7d841d6), when checkpoints were still read with weights_only=False."""
    from adalif.train.run import evaluate, load_checkpoint

    recorded = json.load(open(OLD_CHECKPOINT.replace(".ckpt", ".json")))
    module, cfg = load_checkpoint(OLD_CHECKPOINT)
    saved = torch.load(OLD_CHECKPOINT, weights_only=True)["state_dict"]
    assert all(torch.equal(module.state_dict()[k], v) for k, v in saved.items())
    result = evaluate(OLD_CHECKPOINT, {"trainer.progress_bar": False})
    assert result["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    assert result["loss"] == pytest.approx(recorded["loss"], rel=1e-5)


def test_corrupt_checkpoints_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "half.ckpt").write_bytes(open(OLD_CHECKPOINT, "rb").read()[:15000])
    for name in ("empty.ckpt", "half.ckpt"):
        assert main(["eval", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{name}' is corrupt or unreadable" in err, err


def test_every_shipped_config_writes_a_checkpoint_the_safe_loader_reads(tmp_path):
    """What adalif and Lightning put in a checkpoint, for every config: metadata, hyper-parameters,
    optimiser and scheduler states of its optimiser, all readable with weights_only=True."""
    import glob

    from adalif.train.callbacks import RunMetadata, plain
    from adalif.train.module import SpikingClassifier

    for path in sorted(glob.glob("configs/*.yaml")):
        cfg = replace(parse_config(["--config", path]), output_dir=tmp_path / "runs")  # a Path, as from Python code
        module = SpikingClassifier.__new__(SpikingClassifier)
        L.LightningModule.__init__(module)  # the optimiser of the config on a small model
        module.model = torch.nn.Linear(2, 2)
        module.optim_cfg, module.schedule_cfg = cfg.optim, cfg.schedule
        module._trainer = type("Trainer", (), {"max_epochs": 3})()
        configured = SpikingClassifier.configure_optimizers(module)
        opt, sched = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
        module.model(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched.step()
        ckpt = {"adalif": {**RunMetadata(asdict(cfg)).metadata(module)}, "hyper_parameters": plain(asdict(cfg.model)),
                "optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()]}
        buffer = io.BytesIO()
        torch.save(ckpt, buffer)
        (tmp_path / "c.ckpt").write_bytes(buffer.getvalue())
        loaded = load_torch(tmp_path / "c.ckpt")
        assert loaded["adalif"]["config"]["output_dir"] == str(tmp_path / "runs"), path
