"""Every shipped config parses, names its source, builds its model, and (until the real-dataset
loaders exist) fails on a missing dataset with a clear message before creating anything."""

import glob
import os

import pytest

from adalif.models import create_model
from adalif.train.cli import main, parse_config
from adalif.train.config import EMBEDDED, validate

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
    if cfg.data.name in EMBEDDED:
        validate(cfg)
    else:
        with pytest.raises(ValueError, match=f"data.name: dataset '{cfg.data.name}' is not available"):
            validate(cfg)


def test_missing_dataset_fails_before_anything_is_written(tmp_path, capsys):
    path = [p for p in CONFIGS if "cifar10_dvs_vggsnn_T8" in p][0]
    assert main(["train", "--config", path, "--output_dir", str(tmp_path)]) == 2
    assert "data.name: dataset 'cifar10_dvs' is not available" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
