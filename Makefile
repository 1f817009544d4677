# The verbs a user needs. Every target creates or refreshes the environment in .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch, installed before seqrec so that its `torch>=2.3` never pulls a multi-GB CUDA build.
# On a GPU machine: make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126" ...
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,notebook,launchers
DEMO_DIR ?= multirun/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: env demo test lint bench clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

demo: env  ## the quick experiment on the embedded data, then its comparison table
	$(PY) run.py -m experiment=quick hydra.sweep.dir=$(DEMO_DIR)
	$(PY) -m seqrec.compare $(DEMO_DIR)

test: env  ## the whole suite, slow end-to-end tests included (what CI runs); `pytest` alone skips the slow ones
	$(PY) -m pytest -m ""

lint: env
	$(VENV)/bin/ruff check src tests benchmarks run.py notebooks
	$(VENV)/bin/ruff format --check src tests benchmarks run.py notebooks

bench: env  ## training/evaluation throughput and memory per objective and device
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
