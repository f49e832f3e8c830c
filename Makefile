# Every target sets up .venv itself when it is missing or older than pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The torch pair the project is tested with; e.g. TORCH="torch torchvision" for other builds.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DATA ?= synth
ARGS ?=

DEMO_PORT ?= 8866
SERVE_PORT ?= 8000
RUN ?=

.PHONY: run test test-fast lab demo serve bench lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)  ## run the notebooks on DATA (default: built-in synthetic data) -> reports/<run>/
	$(PY) -m charlib run --data '$(DATA)' $(ARGS)

test: $(STAMP)  ## lint + the whole test suite (CI runs exactly this)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

test-fast: $(STAMP)  ## lint + the quick unit tests (no notebooks, browsers, shared data or slow)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -m "not notebook and not browser and not realdata and not slow"

lab: $(STAMP)  ## JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks

demo: $(STAMP)  ## the drawing pad (notebook 05 in Voila) on http://127.0.0.1:$(DEMO_PORT)
	$(VENV)/bin/voila notebooks/05_interactive_demo.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(DEMO_PORT)

serve: $(STAMP)  ## the REST API and the web pad on http://127.0.0.1:$(SERVE_PORT) (RUN=<run>, default latest, else the reference model)
	$(PY) -m charlib serve --port $(SERVE_PORT) $(if $(RUN),--run '$(RUN)') $(ARGS)

bench: $(STAMP)  ## benchmarks against the seed recipe (results in benchmarks/results/)
	$(PY) benchmarks/load_speed.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/infer_latency.py
	$(PY) benchmarks/transfer.py
	$(PY) benchmarks/augmentation.py
	$(PY) benchmarks/robustness.py
	$(PY) benchmarks/ensemble.py
	$(PY) benchmarks/architectures.py
	$(PY) benchmarks/serve_load.py

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:  ## remove the decoded cache and the generated built-in data (keeps runs/, reports/, .venv)
	rm -rf data/cache data/synth data/synth-small
