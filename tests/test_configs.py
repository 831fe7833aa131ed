"""Every shipped config parses, names its source, builds its model, fails on a missing dataset
with a clear message before creating anything, and runs unchanged on its dataset's files (small
trees in the official formats)."""

import glob
import os

import pytest
import torch

from adalif.models import create_model
from adalif.cli import main, parse_config
from adalif.data import cifar10_dvs, registry
from adalif.train.config import validate

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))


def load(path):
    return parse_config(["--config", path])


def test_there_is_a_config_for_every_recipe_row():
    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    for ds, Ts in [("cifar10", (4, 6, 8)), ("cifar100", (4, 6, 8))]:
        assert {f"arlif_{ds}_resnet18_T{T}" for T in Ts} <= names
    assert {"arlif_tiny_imagenet_vggsnn_T4", "arlif_tiny_imagenet_vgg13_bn_T6", "arlif_dvs128_gesture_vgg11_T20"} <= names
    assert {f"arlif_cifar10_dvs_vggsnn_T{T}" for T in (4, 8, 16)} <= names
    assert {"dalif_cifar10_resnet20_T2", "dalif_cifar100_resnet19_T2", "dalif_imagenet_resnet18_T4",
            "dalif_cifar10_dvs_resnet20_T10", "dalif_dvs128_gesture_resnet20_T16"} <= names
    assert {"digits_dalif", "digits_arlif", "digits_events_dalif", "digits_events_arlif"} <= names


@pytest.mark.parametrize("path", [p for p in CONFIGS if os.path.basename(p).startswith(("arlif_", "dalif_"))],
                         ids=os.path.basename)
def test_paper_configs_state_their_batch_norm_and_dropout_semantics(path):
    """recipes.md 1: the official AR-LIF single-step networks normalise per step; the PSN fork's
    CIFAR10-DVS VGGSNN and the DA-LIF framework over T·B, the former with per-step dropout."""
    cfg = load(path)
    name = os.path.basename(path)
    psn = name.startswith("arlif_cifar10_dvs")
    expected = "time_batch" if psn or name.startswith("dalif_") else "per_step"
    assert cfg.model.options["bn"] == expected
    assert cfg.model.options.get("dropout_mode", "shared") == ("per_step" if psn else "shared")


OFFICIAL_CIFAR_PIPELINES = {
    # neurons.md section 8: data_builder.py:51-56 / 132-137, crop and flip only; blocks.py:237-238.
    "glif_": dict(augment=["random_crop_pad4", "hflip"], model={"head": "glif", "bn_threshold": 0.5, "shortcut_bn": True}),
    # neurons.md section 7: train.py:153-159, crop -> torchtoolbox Cutout() -> flip; default conv bias init.
    "clif_": dict(augment=["random_crop_pad4", "cutout_torchtoolbox", "hflip"],
                  model={"bn": "per_step", "zero_conv_bias": False}),
}


@pytest.mark.parametrize("path", [p for p in CONFIGS if os.path.basename(p).startswith(tuple(OFFICIAL_CIFAR_PIPELINES))],
                         ids=os.path.basename)
def test_clif_and_glif_recipes_use_their_official_augmentation_and_model_options(path):
    cfg = load(path)
    expected = OFFICIAL_CIFAR_PIPELINES[os.path.basename(path)[:5]]
    assert list(cfg.data.options["augment"]) == expected["augment"]
    assert {k: cfg.model.options.get(k) for k in expected["model"]} == expected["model"]
    assert cfg.data.options["normalize"] == {"glif_cifar10": "cifar10", "clif_cifar10": "cifar10_tet"}.get(
        os.path.basename(path).split("_resnet")[0], "cifar100")


def test_arlif_cifar_recipes_use_the_cutupmix_auto_pipeline_without_torchtoolbox_cutout():
    """recipes.md 4.2: the AR-LIF CIFAR runs pass -cutupmix_auto; the Cutout branch is the other one."""
    paths = [p for p in CONFIGS if os.path.basename(p).startswith(("arlif_cifar10_resnet18", "arlif_cifar100_resnet18"))]
    assert len(paths) == 6
    for path in paths:
        assert list(load(path).data.options["augment"]) == ["hflip", "randaugment"]
    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    assert {f"glif_cifar{c}_resnet19_T{T}" for c in (10, 100) for T in (2, 4, 6)} <= names
    assert {"clif_cifar10_resnet18_T6", "clif_cifar100_resnet18_T6"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_names_its_source_and_builds_its_model(path, monkeypatch):
    cfg = load(path)
    assert cfg.source
    if os.path.basename(path).startswith("arlif"):
        assert 0.6 < cfg.expected_accuracy < 1.0
    channels = 2 if "dvs" in cfg.data.name else (1 if cfg.data.name == "digits" else 3)
    if cfg.data.name == "digits_events":
        channels = 2
    classes = {"cifar100": 100, "tiny_imagenet": 200, "imagenet": 1000, "dvs128_gesture": 11}.get(cfg.data.name, 10)
    model = create_model(cfg.model.name, neuron=cfg.model.neuron, num_classes=classes, in_channels=channels,
                         T=cfg.data.T, **cfg.model.options)
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.data.name.startswith("digits"):
        validate(cfg)
    else:
        with pytest.raises(FileNotFoundError, match=f"{cfg.data.name}: .*adalif never downloads"):
            validate(cfg)


def test_missing_dataset_fails_before_anything_is_written(tmp_path, capsys):
    path = [p for p in CONFIGS if "cifar10_dvs_vggsnn_T8" in p][0]
    assert main(["train", "--config", path, "--output_dir", str(tmp_path / "runs")]) == 2
    assert "cifar10_dvs: folder 'data/CIFAR10-DVS' does not exist" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "runs")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    from tests.data.fixtures import cifar10_dvs_tree, cifar_tree, gesture_tree, imagenet_tree, tiny_imagenet_tree

    base = tmp_path_factory.mktemp("datasets")
    roots = {name: base / name for name in ("cifar10", "cifar100", "tiny_imagenet", "imagenet", "cifar10_dvs", "dvs128_gesture")}
    cifar_tree(roots["cifar10"], "cifar10", n=4)
    cifar_tree(roots["cifar100"], "cifar100", n=4)
    tiny_imagenet_tree(roots["tiny_imagenet"], per_class=2)
    imagenet_tree(roots["imagenet"])
    cifar10_dvs_tree(roots["cifar10_dvs"], 10, events=100)
    gesture_tree(roots["dvs128_gesture"])
    return roots


@pytest.mark.parametrize("path", [p for p in CONFIGS if not os.path.basename(p).startswith("digits")], ids=os.path.basename)
def test_paper_config_runs_unchanged_on_its_dataset_files(path, trees, monkeypatch):
    """The config's data section, augmentation included, feeds its model (one step, one sample)."""
    monkeypatch.setattr(cifar10_dvs, "FILES_PER_CLASS", 10)
    cfg = load(path)
    cfg.data.root = str(trees[cfg.data.name])
    cfg.data.options = {**cfg.data.options, "workers": 1} if cfg.data.name.endswith(("dvs", "gesture")) else cfg.data.options
    validate(cfg)
    sets = registry.build(cfg.data.name, cfg.data.root, cfg.data.T, cfg.data.options)
    augment = registry.batch_augment(sets.info, cfg.data.options, sets.size)
    batch = [sets.train[i] for i in range(2)]
    x = torch.stack([b[0] for b in batch])
    y = torch.tensor([b[1] for b in batch])
    torch.manual_seed(0)
    x, y = augment(x, y, train=True) if augment is not None else (x.float(), y)
    assert x.dtype == torch.float32 and x.shape[-2:] == sets.size
    assert y.shape[0] == 2 and (y.dim() == 1 or torch.allclose(y.sum(1), torch.ones(2)))
    model = create_model(cfg.model.name, neuron=cfg.model.neuron, num_classes=sets.info.num_classes,
                         in_channels=sets.info.in_channels, T=1, input_size=sets.size[0], **cfg.model.options).eval()
    with torch.no_grad():
        # images are repeated over time by the model (direct encoding); frames are time-major
        inp = x[:1, :1].transpose(0, 1) if x.dim() == 5 else x[:1]
        logits = model(inp)
    assert logits.shape == (1, 1, sets.info.num_classes) and torch.isfinite(logits).all()
