# Every target creates the virtual environment itself when it is missing, so a fresh clone needs
# only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A matched torch/torchvision pair. pip resolves it from the package registry; on this machine kind
# the local torch+cpu wheel does not match the registry's torchvision, so the pair is pinned here.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.ivos-rl-installed

.PHONY: venv demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -c "import torchvision, ivos_rl, ivos_rl.agents, ivos_rl.envs; torchvision.models.resnet50(weights=None)"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check ivos_rl agents envs scripts tests benchmarks

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) outputs multirun runs
