# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch is installed first as the pinned CPU wheel unless the venv already imports one
TORCH   ?= torch==2.13.0
DEMO_ARGS ?=

.PHONY: test demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# reinstall whenever the project's dependencies change
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests

demo: $(VENV)/.installed
	$(BIN)/kflow demo $(DEMO_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/path_sample.py

clean:
	rm -rf $(VENV) outputs
