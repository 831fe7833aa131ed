"""docs/neurons.md, "Your own neuron": the example runs as written, as a script outside the package
(a user's own file), and each thing it claims holds."""

import os
import re
import subprocess
import sys

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "neurons.md")


def example() -> str:
    text = open(DOC).read()
    section = text[text.index("### Your own neuron"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_own_neuron_example_runs_from_outside_the_package(tmp_path):
    script = tmp_path / "my_alif.py"
    script.write_text(example())
    env = {**os.environ, "ADALIF_BACKEND": ""}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    rates = next(line for line in lines if line.startswith("firing rates:"))
    assert rates.count("features") >= 2  # a rate per ALIF layer of the model
    ops = next(line for line in lines if line.startswith("neuron operations per sample:"))
    assert "'mul'" in ops and "'add'" in ops
    assert any(line.startswith("node spikes:") for line in lines)
    assert "NIR: " in out.stdout and "ALIF's adaptive threshold has no NIR node" in out.stdout
