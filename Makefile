# Every target creates the environment first. torch is kept at the CPU build by constraints.txt:
# an unpinned torch (ours or a dependency's) would pull several GB of CUDA packages.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --constraint constraints.txt

.PHONY: venv test demo bench docs clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[train,triton,dev,docs]"
	# Optional test and benchmark oracles: SpikingJelly and snnTorch neurons, and snnTorch's and Norse's NIR importers (with nirtorch),
	# import without torchvision when installed without deps. torchtoolbox (CLIF's Cutout) is never imported (its
	# transform package needs torchvision and cv2): tests/data/test_augment.py compiles its Cutout class from the source.
	$(PIP) --no-deps spikingjelly==0.0.0.0.14 snntorch==1.0.0 nirtorch==2.6 norse==1.1.0 torchtoolbox==0.1.8.2 && $(PIP) loguru
	touch $@

test: venv
	$(PY) -m pytest -n 2 -q

demo: venv
	$(PY) -m adalif.demo

bench: venv
	$(PY) benchmarks/neurons.py
	$(PY) benchmarks/data.py

# The documentation site into site/ (mkdocs.yml); strict: a broken link or anchor, or a docstring
# the API reference cannot read, fails the build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV)
