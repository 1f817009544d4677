# The verbs a user needs. Every target creates or refreshes the environment in .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch, installed before seqrec so that its `torch>=2.3` never pulls a multi-GB CUDA build.
# On a GPU machine: make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126" ...
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,notebook,launchers,ann
DEMO_DIR ?= multirun/demo-$(shell date +%Y%m%d-%H%M%S)
# Sweep folder(s) of `make notebook`, separated by spaces; default: the newest sweep under multirun/.
SWEEP ?= $(shell $(PY) -c "from seqrec.compare import newest_sweep_dir as n; print(n() or '')" 2>/dev/null)
empty :=
space := $(empty) $(empty)

.PHONY: env demo notebook test lint bench clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

demo: env  ## the quick experiment on the embedded data (4 objectives x 3 seeds), then the comparison
	OMP_NUM_THREADS=1 $(PY) run.py -m experiment=quick hydra.sweep.dir=$(DEMO_DIR)  # tiny model: one thread per run avoids thread thrashing
	$(PY) -m seqrec.compare $(DEMO_DIR)

notebook: env  ## the comparison notebook without JupyterLab, on SWEEP -> FIRST_SWEEP/compare.ipynb with figures
	@test -n "$(SWEEP)" || { echo "error: no sweep found under multirun/; pass SWEEP=multirun/DATE/TIME"; exit 1; }
	$(VENV)/bin/jupytext --quiet --to ipynb --output $(firstword $(SWEEP))/compare.ipynb notebooks/compare.py
	SEQREC_SWEEP_DIR=$(subst $(space),:,$(abspath $(SWEEP))) $(VENV)/bin/jupyter execute --inplace \
		$(firstword $(SWEEP))/compare.ipynb
	@echo "executed notebook: $(firstword $(SWEEP))/compare.ipynb"

test: env  ## the whole suite, slow end-to-end tests included (what CI runs); `pytest` alone skips the slow ones
	$(PY) -m pytest -m ""

lint: env
	$(VENV)/bin/ruff check src tests benchmarks run.py notebooks
	$(VENV)/bin/ruff format --check src tests benchmarks run.py notebooks

bench: env  ## seqrec next to a plain implementation: throughput ratios per objective, dataset and device
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
