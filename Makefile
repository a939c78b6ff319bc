# Two entry points for a fresh machine: `make run` and `make test` (both set everything up).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian libraries Qt needs to run offscreen on a bare system.
QT_DEBS := libglib2.0-0 libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libxkbcommon0
DEMO_DIR := demo
export WSIDESK_DATA_DIR ?= $(CURDIR)/$(DEMO_DIR)/data

.PHONY: setup system-deps run test bench clean

setup: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for p in $(QT_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Qt system libraries:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "please install:$$missing (Qt needs them)"; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(DEMO_DIR)/demo_a.svs: | $(VENV)/.installed
	mkdir -p $(DEMO_DIR)
	$(BIN)/wsidesk demo-slide $@ --width 8192 --height 6144 --seed 1
$(DEMO_DIR)/demo_b.svs: | $(VENV)/.installed
	mkdir -p $(DEMO_DIR)
	$(BIN)/wsidesk demo-slide $@ --width 6144 --height 4096 --seed 2

run: setup $(DEMO_DIR)/demo_a.svs $(DEMO_DIR)/demo_b.svs
	$(BIN)/wsidesk run resources/examples/tissue_two_branches.yaml

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_planner.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench_executors.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis
