"""Training end to end on the embedded digits: loss goes down, resume is exact, DDP equals one
process, checkpoints carry the run's metadata, and bad configs fail early with the key named."""

import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from adalif.cli import main, parse_config
from adalif.train.run import build, train


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ADALIF_BACKEND", "reference")  # tiny tensors: skip compile warm-up


def config(tmp_path, *args):
    return parse_config([
        "--output_dir", str(tmp_path), "--trainer.progress_bar", "false", "--data.batch_size", "32",
        "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "3", "--model.options", '{"width": 8}',
        *args,
    ])


def test_a_few_training_steps_lower_the_loss(tmp_path):
    cfg = config(tmp_path, "--trainer.max_steps", "25", "--trainer.limit_train_batches", "25")
    data, module = build(cfg)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    with torch.no_grad():
        before = float(module.criterion(module(x), y))
    L.Trainer(max_steps=25, logger=False, enable_progress_bar=False, enable_checkpointing=False,
              enable_model_summary=False, limit_val_batches=0).fit(module, datamodule=data)
    module.eval()
    with torch.no_grad():
        after = float(module.criterion(module(x), y))
    assert after < 0.6 * before


class StopAfterFirstEpoch(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def final_weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("neuron, options", [("dalif", "{}"), ("arlif", "{augment: [random_crop_pad4, cutout16], mixup: 0.5}")])
def test_resume_from_last_checkpoint_equals_uninterrupted_run(tmp_path, neuron, options):
    # With augmentation: its random stream depends on (seed, step, rank) only, so it resumes too.
    args = ["--trainer.max_epochs", "2", "--model.neuron", neuron, "--data.options", options]
    full = train(config(tmp_path, "--name", "full", *args))
    train(config(tmp_path, "--name", "cut", *args), callbacks=[StopAfterFirstEpoch()])
    cut_first = final_weights(tmp_path / "cut")
    resumed = train(config(tmp_path, "--name", "cut", "--resume", "last", *args))
    a, b = final_weights(full.run_dir), final_weights(resumed.run_dir)
    # last.ckpt is the last epoch even when the accuracy stopped improving (Lightning's save_last does not do that)
    last = torch.load(os.path.join(full.run_dir, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 12
    assert any(not torch.equal(cut_first[k], b[k]) for k in b)  # the resumed run did train
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert sorted(summary["accuracy_by_epoch"]) == ["0", "1"]


def test_checkpoint_records_version_commit_config_and_neurons(tmp_path):
    s = train(config(tmp_path, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1.0",
                     "--model.neuron", '{"name": "arlif", "a_init": 0.2}'))
    ckpt = torch.load(os.path.join(s.run_dir, "checkpoints", "last.ckpt"), map_location="cpu", weights_only=True)
    meta = ckpt["adalif"]
    assert meta["version"] and meta["git_commit"]
    assert meta["config"]["model"]["neuron"] == {"name": "arlif", "a_init": 0.2}
    assert meta["config"]["trainer"]["max_epochs"] == 1
    assert len(meta["neurons"]) == 2 and all(v.startswith("ARLIF(decay=0.5") for v in meta["neurons"].values())
    assert not [f for f in os.listdir(os.path.join(s.run_dir, "checkpoints")) if ".tmp" in f]
    hparams = open(os.path.join(s.run_dir, "logs", "version_0", "hparams.yaml")).read()
    assert "git_commit" in hparams and "a_init: 0.2" in hparams and "ARLIF(decay=0.5" in hparams
    assert 0.0 <= s.firing_rate <= 1.0 and s.best_acc >= s.last_acc - 1e-9
    # `adalif eval` reproduces the last epoch's test accuracy from the checkpoint alone.
    from adalif.train.run import evaluate

    result = evaluate(os.path.join(s.run_dir, "checkpoints", "last.ckpt"), {"trainer.progress_bar": "false"})
    assert result["accuracy"] == pytest.approx(s.last_acc, abs=1e-6)


def test_an_existing_run_is_never_overwritten_unless_asked(tmp_path):
    train(config(tmp_path, "--trainer.max_epochs", "1", "--name", "r"))
    with pytest.raises(FileExistsError, match="run directory .* exists; pass --overwrite true"):
        train(config(tmp_path, "--trainer.max_epochs", "1", "--name", "r"))
    train(config(tmp_path, "--trainer.max_epochs", "1", "--name", "r", "--overwrite", "true"))


@pytest.mark.parametrize("args, message", [
    (["--model.options", "{depth: 3}"], "model.depth: not an option of digits_cnn"),
    (["--model.neuron", "{name: arlif, decay: nan}"], "decay"),
    (["--loss.kind", "hinge"], "loss.kind: unknown value 'hinge'"),
    (["--loss.mse_weight", "2.0"], "loss.mse_weight: expected a weight in [0, 1]"),
    (["--trainer.strategy", "ddpp"], "trainer.strategy: got 'ddpp', expected one of"),
    (["--trainer.accelerator", "npu"], "trainer.accelerator: got 'npu'"),
    (["--trainer.devices", "0"], "trainer.devices: got 0"),
])
def test_a_bad_config_never_deletes_the_previous_run(tmp_path, capsys, args, message):
    """--overwrite true removes the old run only once the whole config is known to be good."""
    train(config(tmp_path, "--trainer.max_epochs", "1", "--name", "r"))
    before = sorted(os.listdir(tmp_path / "r" / "checkpoints"))
    code = main(["train", "--output_dir", str(tmp_path), "--name", "r", "--overwrite", "true", *args])
    assert code == 2 and message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "r" / "checkpoints")) == before == ["best.ckpt", "last.ckpt"]


def test_a_bug_during_training_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """Only configuration and dataset errors become one-line messages; a ValueError raised by code
    during training is a bug and propagates."""
    from adalif.train.module import SpikingClassifier

    def broken(self, batch, batch_idx):
        raise ValueError("a bug deep inside the training step")

    monkeypatch.setattr(SpikingClassifier, "training_step", broken)
    with pytest.raises(ValueError, match="a bug deep inside the training step"):
        main(["train", "--output_dir", str(tmp_path), "--trainer.max_epochs", "1", "--trainer.progress_bar", "false"])
    assert "adalif: error" not in capsys.readouterr().err


def test_the_model_takes_time_major_sequences_as_they_are(tmp_path):
    """The data module makes event batches time-major once; the model never transposes."""
    cfg = config(tmp_path, "--data.name", "digits_events", "--data.T", "3")
    data, module = build(cfg)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape[:2] == (32, 3)  # the loader's batch: [B, T, C, H, W]
    x, y = data.on_after_batch_transfer((x, y), 0)
    assert x.shape[:2] == (3, 32)
    assert module(x).shape == (3, 32, 10)
    seq = torch.rand(5, 2, 2, 20, 20)  # [T=5, B=2, ...] must stay [T, B]: no guessing from the rank
    assert module(seq).shape == (5, 2, 10)


def test_model_sizes_come_from_the_data(tmp_path):
    from adalif.train.config import validate

    cfg = config(tmp_path, "--data.name", "digits_events", "--data.options", "{size: 10}", "--model.name", "vggsnn",
                 "--model.options", "{}")
    with pytest.raises(ValueError, match="input_size: VGGSNN's four 2x2 poolings need a multiple of 16, got 10"):
        validate(cfg)
    cfg = config(tmp_path, "--data.name", "digits_events", "--model.name", "vggsnn", "--model.options", "{input_size: 48}")
    with pytest.raises(ValueError, match="model.options.input_size: 48 differs from the data's input size 20"):
        validate(cfg)


def test_missing_and_corrupt_checkpoints_on_resume_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: checkpoint .*nope.ckpt' does not exist"):
        train(config(tmp_path, "--resume", str(tmp_path / "nope.ckpt")))
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="resume: checkpoint .*bad.ckpt' is corrupt or unreadable"):
        train(config(tmp_path, "--resume", str(bad)))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.nme", "x"], "model.nme"),
        (["--optim.lr", "fast"], "optim.lr"),
        (["--model.name", "resnet99"], "model.name: got 'resnet99'"),
        (["--model.neuron", "hodgkin"], "neuron: unknown neuron 'hodgkin'"),
        (["--data.name", "mnist"], "data.name: got 'mnist', expected one of"),
        (["--data.options", "{nope: 1}"], "data.options.nope: not an option of digits"),
        (["--data.T", "0"], "data.T: got 0, expected an integer >= 1"),
        (["--optim.lr", "-0.1"], "optim.lr: got -0.1, expected a positive learning rate"),
        (["--optim.name", "rmsprop"], "optim.name: got 'rmsprop'"),
    ],
)
def test_bad_configs_fail_before_training_and_name_the_key(tmp_path, capsys, args, message):
    try:
        code = main(["train", "--output_dir", str(tmp_path), *args])
    except SystemExit as exit_:  # jsonargparse rejects unknown keys and wrong types itself
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "digits_cnn_dalif_digits_T4" / "checkpoints")


def test_ddp_two_processes_on_cpu_equal_one_process_on_the_global_batch(tmp_path):
    # SyncBatchNorm needs a GPU, so the model has no BN; the order is fixed (no shuffle) so that
    # the two processes' halves make up exactly the single process's global batch.
    common = [
        "train", "--output_dir", str(tmp_path), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
        "--trainer.limit_val_batches", "2", "--data.shuffle", "false", "--optim.weight_decay", "0",
        "--model.options", '{"width": 8, "batch_norm": false}', "--trainer.progress_bar", "false",
        "--trainer.accelerator", "cpu",
    ]
    env = dict(os.environ, ADALIF_BACKEND="reference", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "adalif"]
    subprocess.run(cmd + common + ["--name", "one", "--data.batch_size", "32"], check=True, env=env, capture_output=True, timeout=300)
    out = subprocess.run(
        cmd + common + ["--name", "two", "--data.batch_size", "16", "--trainer.devices", "2", "--trainer.strategy", "ddp"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    one, two = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    # Evaluation is sharded (each process its half) and reduced exactly: the same 64 test samples
    # (2 batches of 32, or 2 x 2 of 16), none counted twice, and the same loss and accuracy.
    metrics = {run: _last_eval_metrics(tmp_path / run) for run in ("one", "two")}
    assert metrics["one"]["val/samples"] == metrics["two"]["val/samples"] == 64
    assert metrics["two"]["val/acc"] == pytest.approx(metrics["one"]["val/acc"], abs=1e-6)
    assert metrics["two"]["val/loss"] == pytest.approx(metrics["one"]["val/loss"], rel=1e-5)


def _last_eval_metrics(run_dir):
    import csv

    with open(os.path.join(run_dir, "logs", "version_0", "metrics.csv")) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val/acc")]
    return {k: float(rows[-1][k]) for k in ("val/acc", "val/loss", "val/samples")}


def test_an_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    from adalif.train.callbacks import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_lamb_takes_trust_ratio_scaled_adam_steps():
    from adalif.train.lamb import Lamb

    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = Lamb([w], lr=0.1)
    w.grad = torch.tensor([1.0, -2.0])
    opt.step()
    # first Adam step is sign(g) (up to eps); trust ratio |w| / |update| = 5 / sqrt(2)
    expected = torch.tensor([3.0, 4.0]) - 0.1 * (5 / 2**0.5) * torch.tensor([1.0, -1.0])
    torch.testing.assert_close(w.detach(), expected, rtol=1e-5, atol=1e-5)


def test_bf16_mixed_precision_training_runs_and_learns(tmp_path):
    s = train(config(tmp_path, "--trainer.max_epochs", "2", "--trainer.precision", "bf16-mixed",
                     "--trainer.limit_train_batches", "20", "--trainer.limit_val_batches", "1.0", "--model.options", '{"width": 16}'))
    assert s.best_acc > 0.5


def test_training_on_an_event_dataset_prepares_its_cache_and_augments(tmp_path, monkeypatch):
    from adalif.data import cifar10_dvs
    from tests.data.fixtures import cifar10_dvs_tree

    monkeypatch.setattr(cifar10_dvs, "FILES_PER_CLASS", 10)
    cifar10_dvs_tree(tmp_path / "dvs", 10, events=300)
    cfg = config(tmp_path / "runs", "--data.name", "cifar10_dvs", "--data.root", str(tmp_path / "dvs"), "--data.T", "2",
                 "--data.batch_size", "16", "--data.options",
                 "{size: 8, split: tet, workers: 1, augment: [random_crop_pad4, hflip, nda], mixup: 0.5, cutmix: 1.0}",
                 "--trainer.max_epochs", "2", "--loss.kind", "tet")
    summary = train(cfg)
    assert 0.0 <= summary.best_acc <= 1.0 and summary.best_epoch in (0, 1)
    caches = os.listdir(tmp_path / "dvs" / "adalif_frames" / "cifar10_dvs")
    assert len(caches) == 1 and caches[0].startswith("T2_number_8-")
    summary_json = json.load(open(os.path.join(summary.run_dir, "summary.json")))
    assert summary_json["config"]["data"]["options"]["split"] == "tet"


def test_gesture_label_order_is_recorded_in_the_checkpoint_and_used_by_eval(tmp_path, monkeypatch):
    from adalif.data import registry
    from adalif.train.run import evaluate
    from tests.data.fixtures import gesture_tree

    gesture_tree(tmp_path / "dvs")
    cfg = config(tmp_path, "--data.name", "dvs128_gesture", "--data.root", str(tmp_path / "dvs"), "--data.T", "2",
                 "--data.options", '{"size": 16, "workers": 1, "label_order": "spikingjelly"}',
                 "--trainer.max_epochs", "1", "--name", "gesture")
    summary = train(cfg)
    ckpt = torch.load(os.path.join(summary.run_dir, "checkpoints", "last.ckpt"), weights_only=True)
    options = ckpt["adalif"]["config"]["data"]["options"]
    assert options["label_order"] == "spikingjelly" and options["keep_invalid"] is True  # explicit defaults too
    seen = []
    build = registry.build
    monkeypatch.setattr(registry, "build", lambda name, root, T, opts: seen.append(dict(opts)) or build(name, root, T, opts))
    result = evaluate(os.path.join(summary.run_dir, "checkpoints", "last.ckpt"), {"trainer.progress_bar": False})
    assert seen and all(o["label_order"] == "spikingjelly" for o in seen)
    assert result["accuracy"] == pytest.approx(summary.last_acc)


def test_python_api_fit_and_evaluate_with_overrides_and_loggers(tmp_path):
    from adalif import train as api
    from adalif.errors import ConfigError

    common = {"output_dir": str(tmp_path), "trainer.progress_bar": False, "trainer.limit_train_batches": 3,
              "trainer.max_epochs": 1}  # the whole test split, as evaluate uses
    summary = api.fit("configs/digits_dalif.yaml", **common, trainer__logger="none", data__options={"augment": []},
                      name="quiet")
    assert sorted(os.listdir(summary.run_dir)) == ["checkpoints", "logs", "summary.json"]  # CSV only: no tensorboard
    recorded = json.load(open(os.path.join(summary.run_dir, "summary.json")))["config"]
    assert recorded["trainer"]["logger"] == "none" and recorded["data"]["options"]["augment"] == []
    result = api.evaluate(os.path.join(summary.run_dir, "checkpoints", "best.ckpt"), trainer__progress_bar=False)
    assert result["accuracy"] == pytest.approx(summary.best_acc)
    watched = api.fit(api.load_config("configs/digits_dalif.yaml", **common), name="watched")
    assert os.path.isdir(os.path.join(watched.run_dir, "tensorboard", "version_0"))
    with pytest.raises(ConfigError, match=r"trainer.logger: got 'wandb', expected a logger whose package is installed"):
        api.fit("configs/digits_dalif.yaml", **common, **{"trainer.logger": "wandb"})
    with pytest.raises(ConfigError, match=r"trainer.logger: got 'tensorbord', expected one of"):
        api.fit("configs/digits_dalif.yaml", **common, **{"trainer.logger": "tensorbord"})


def test_demo_prints_a_line_per_epoch(tmp_path, capsys):
    from adalif.demo import EpochLines

    cfg = config(tmp_path, "--trainer.max_epochs", "2")
    train(cfg, callbacks=[EpochLines(2)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("epoch ")]
    assert [line.split(":")[0].strip() for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(" %, firing rate " in line and line.endswith(" s") for line in lines)
