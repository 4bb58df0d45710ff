# spatialopt — `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install ffmpeg run test bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sweep]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install spatialopt with its dev and sweep extras

# Debian's ffmpeg is the test-time reference for the engine exports, the renderer and the upmix
# benchmark (apt-get when missing and possible; otherwise those tests skip, unless
# SPATIALOPT_REQUIRE_FFMPEG=1, which CI sets, makes them fail).
ffmpeg:
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
	  else echo "make: ffmpeg not found and cannot apt-get it: the tests that need it will skip"; fi; }

run: install  ## the default experiment end to end: scene, joint optimisation, export, evaluation, report
	$(BIN)/spatialopt-optimize

test: install ffmpeg  ## the whole test suite
	$(BIN)/python -m pytest -q

bench: install ffmpeg  ## benchmarks (ratios against peers measured in the same run)
	$(BIN)/spatialopt-bench all

tensorboard: install  ## TensorBoard on every run under runs/ (scalars, images, audio, text, HParams): http://127.0.0.1:6006
	$(BIN)/tensorboard --logdir runs --host 127.0.0.1

clean-venv:
	rm -rf $(VENV)
