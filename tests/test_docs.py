"""Every Python code block of README.md and docs/*.md runs as written, as a script in a folder of
its own (a user's copy-paste), so the documentation cannot rot; some blocks' output is checked too."""

import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
FILES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def blocks():
    found = []
    for name in FILES:
        text = open(os.path.join(ROOT, name)).read()
        for i, match in enumerate(re.finditer(r"```python\n(.*?)```", text, re.S)):
            found.append(pytest.param(name, match.group(1), id=f"{name}#{i}"))
    return found


# What some blocks must print: docs/neurons.md's "Your own neuron" claims each of these.
EXPECTED = {"class ALIFOptions": ["firing rates: {'features", "neuron operations per sample: {'mul'", "node spikes:",
                                  "NIR: ", "ALIF's adaptive threshold has no NIR node"]}


@pytest.mark.parametrize("name, code", blocks())
def test_code_block_runs_as_written(name, code, tmp_path):
    if "spikingjelly" in code and importlib.util.find_spec("spikingjelly") is None:
        pytest.skip("the block uses SpikingJelly, which is not installed")
    os.symlink(os.path.abspath(os.path.join(ROOT, "configs")), tmp_path / "configs")  # relative config paths
    (tmp_path / "block.py").write_text(code)
    env = {**os.environ, "ADALIF_BACKEND": os.environ.get("ADALIF_BACKEND", "")}
    out = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=env)
    assert out.returncode == 0, f"{name}:\n{code}\n{out.stderr[-3000:]}"
    for marker, expected in EXPECTED.items():
        if marker in code:
            for text in expected:
                assert text in out.stdout, (text, out.stdout[-2000:])


def test_every_doc_has_been_looked_at():
    assert len(blocks()) >= 10 and "README.md" in FILES and "docs/neurons.md" in FILES
