# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch is installed first as the pinned CPU wheel unless the venv already imports one
TORCH   ?= torch==2.13.0
DEMO_ARGS ?=

.PHONY: test demo studio bench clean format

$(BIN)/python:
	$(PY) -m venv $(VENV)

# reinstall whenever the project's dependencies change
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps "pyxtal==1.1.5"  # crystal files for `kflow data molecules`
	@touch $@

LINTED := kflow tests benchmarks

# Debian packages, installed when we are root and apt-get is there (callers say what happens otherwise)
CAN_APT = [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null
APT_INSTALL = { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) >/dev/null 2>&1 || \
  { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) >/dev/null 2>&1; }; }

# lint and format first: CI fails on either before the tests run. The studio's browser test needs
# Debian's chromium + chromium-driver (installed here when we can; else that test is skipped).
test: $(VENV)/.installed
	@if ! command -v chromedriver >/dev/null && $(CAN_APT); then \
	  echo "installing chromium + chromium-driver (Debian) for the studio's browser test"; \
	  $(call APT_INSTALL,chromium chromium-driver) || echo "could not install chromium; the browser test is skipped"; fi
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m pytest -q --durations=15 tests

# Fashion-MNIST comes from Debian's dataset-fashion-mnist (installed here when we are root),
# a KFLOW_DATA folder, or the official download (kflow tries it when neither is present).
FMNIST := /usr/share/datasets/fashion-mnist
demo: $(VENV)/.installed
	@if [ ! -d $(FMNIST) ] && [ -z "$$KFLOW_DATA" ] && $(CAN_APT); then \
	  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  $(call APT_INSTALL,dataset-fashion-mnist) || echo "could not install dataset-fashion-mnist; kflow will try the official download"; fi
	$(BIN)/kflow demo $(DEMO_ARGS)

# the band studio on the demo run (trained first by `make demo` when it is not there yet)
STUDIO_ARGS ?=
studio: $(VENV)/.installed
	@if [ ! -d outputs/demo/run/checkpoints ]; then $(MAKE) --no-print-directory demo; fi
	$(BIN)/kflow studio outputs/demo/run $(STUDIO_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/path_sample.py

clean:
	rm -rf $(VENV) outputs

format: $(VENV)/.installed
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)
