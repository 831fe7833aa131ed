"""What an installed (non-editable) adalif ships and declares."""

import os
import re
import subprocess
import sys
import zipfile

import torch

ROOT = os.path.join(os.path.dirname(__file__), "..")

# The torch release that introduced each torch API adalif uses whose name changed or appeared
# late (torch release notes); the declared floor must cover all of them.
INTRODUCED = {"custom_op": (2, 4), "register_fake": (2, 4), "recompile_limit": (2, 6),
              "accumulated_recompile_limit": (2, 6), "use_duck_shape": (2, 6), "specialize_float": (2, 5)}


def _declared_torch_floor():
    with open(os.path.join(ROOT, "pyproject.toml")) as fh:
        match = re.search(r'"torch>=(\d+)\.(\d+)', fh.read())
    return int(match.group(1)), int(match.group(2))


def test_declared_torch_floor_covers_the_apis_the_kernels_use():
    source = ""
    for folder in ("kernels",):
        for name in os.listdir(os.path.join(ROOT, "src", "adalif", folder)):
            if name.endswith(".py"):
                with open(os.path.join(ROOT, "src", "adalif", folder, name)) as fh:
                    source += fh.read()
    # Every config name the kernels patch must be known here, so that a new one is checked too.
    patched = set(re.findall(r"(\w+)=", " ".join(re.findall(r"config\.patch\(([^)]*)\)", source, re.S))))
    assert patched <= set(INTRODUCED), f"add the torch release that introduced {patched - set(INTRODUCED)}"
    used = {name for name in INTRODUCED if name in source}
    floor = _declared_torch_floor()
    assert all(INTRODUCED[name] <= floor for name in used), (floor, {n: INTRODUCED[n] for n in used})
    assert tuple(int(v) for v in torch.__version__.split(".")[:2]) >= floor


def test_the_wheel_ships_the_configs_the_demo_reads(tmp_path):
    """`make demo` reads the digits configs as package data, so it works from a plain install."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                    ROOT], check=True, capture_output=True, timeout=300)
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    for config in ("digits_dalif", "digits_arlif", "digits_events_dalif", "digits_events_arlif",
                   "arlif_cifar10_resnet18_T4"):
        assert f"adalif/configs/{config}.yaml" in names
    assert "adalif/data/digits_split.json" in names
    from adalif.demo import CONFIGS, _config_dir

    import adalif

    assert os.path.dirname(_config_dir()) == os.path.dirname(adalif.__file__)
    assert all(os.path.isfile(os.path.join(_config_dir(), f"{c}.yaml")) for c in CONFIGS)
