# spatialopt — `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install spatialopt with its dev extras

run: install  ## the default experiment end to end: scene, joint optimisation, export, evaluation, report
	$(BIN)/spatialopt-optimize

test: install  ## the whole test suite
	$(BIN)/python -m pytest -q

bench: install  ## benchmarks (ratios against peers measured in the same run)
	$(BIN)/spatialopt-bench all

clean-venv:
	rm -rf $(VENV)
