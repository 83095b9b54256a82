# Every set-up step lives here so that a fresh clone needs nothing but Python.
PYTHON ?= python3
VENV ?= .venv
# The pinned CPU wheel is on local disk on the project's machines; override with
# `make demo TORCH=torch` (or a CUDA build) elsewhere.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output
DEMO_ZH_DIR ?= demo-zh-output

.PHONY: demo demo-zh test test-cluster install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)" || $(BIN)/pip install --quiet "torch>=2.4"
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/gristmill demo -o $(DEMO_DIR)

# The same on classical Chinese poetry and prose (gristmill/data/zh/).
demo-zh: install
	$(BIN)/gristmill demo --corpus zh -o $(DEMO_ZH_DIR)

test: install-test
	$(BIN)/python -m pytest -q -m "not cluster"

# A real single-node Slurm (installed through apt when missing, as root), the tests marked
# `cluster` against it, and every daemon stopped afterwards: see ci/slurm-up.sh.
# --basetemp: the jobs outlive pytest's default numbered temp folders, which other runs prune.
test-cluster: install-test
	ci/slurm-up.sh sh -c '$(BIN)/python -m pytest -q -m cluster --basetemp="$$GRISTMILL_SLURM_DIR/pytest" tests/cluster'

bench: install-test
	@echo "see BENCHMARKS.md for each benchmark's command"

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
