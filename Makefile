# dealflow: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

export LANGGRAPH_STRICT_MSGPACK := true

.PHONY: install demo test test-scale lint typecheck unit integration crash-matrix notebooks jupyter lab serve lock clean diagram screenshots bench soak

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# schemathesis fuzzes the HTTP API from outside, in a venv of its own: it needs a newer
# jsonschema-rs than langgraph-api (make serve) allows in the same environment.
FUZZ_VENV  := .venv-fuzz
FUZZ_STAMP := $(FUZZ_VENV)/.installed-stamp

$(FUZZ_STAMP): constraints-fuzz.txt
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install --quiet -r constraints-fuzz.txt
	touch $(FUZZ_STAMP)

install: $(STAMP) $(FUZZ_STAMP)  ## create .venv (and .venv-fuzz) with pinned dependencies

demo: $(STAMP)  ## run the showcase deals (embedded Postgres unless DATABASE_URL is set)
	$(BIN)/dealflow demo

test: lint typecheck $(FUZZ_STAMP)  ## ruff, mypy and the test suite (all but the scale tests)
	$(BIN)/pytest -m "not scale"

test-scale: $(STAMP)  ## the scale tests: shared rate limits across worker processes, two hosts cut apart
	$(BIN)/pytest -m scale

lint: $(STAMP)  ## ruff, and the import layers and cycles (import-linter, [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

notebooks: $(STAMP)  ## rebuild notebooks/ from make_notebooks.py and run each; only new or changed ones are saved (REFRESH=1: all)
	$(BIN)/python notebooks/make_notebooks.py
	cd notebooks && ../$(BIN)/python run_notebooks.py $(if $(REFRESH),--refresh)

JUPYTER_STAMP := $(VENV)/.jupyter-stamp
$(JUPYTER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[notebooks]"
	touch $(JUPYTER_STAMP)

jupyter: $(JUPYTER_STAMP)  ## open notebooks/ in JupyterLab (installs the optional [notebooks] extra once; JUPYTER_ARGS="--no-browser --port 8899")
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(JUPYTER_ARGS)

lab: jupyter  ## the same as make jupyter

serve: $(STAMP)  ## the graph on LangGraph Server (in-memory, offline) on port 2024
	$(BIN)/langgraph dev --no-reload --no-browser --port 2024

bench: $(STAMP)  ## benchmarks as ratios to floors (bench/out/latest.json), then the load run
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[bench]"
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.load 8 50
	$(BIN)/python -m bench.service --deals 20 --clients 50

SOAK_SECONDS ?= 300
soak: $(STAMP)  ## deals under random Postgres restarts and worker kills for SOAK_SECONDS; prints lost/duplicated
	$(BIN)/python -m tests.integration.soak --seconds $(SOAK_SECONDS)

crash-matrix: $(STAMP)  ## SIGKILL at every kill point of every step; print duplicates and losses
	$(BIN)/python -m tests.integration.crash_matrix

screenshots: $(STAMP)  ## the README's pictures (docs/*.png): inbox, review, console, and on a 390 px phone
	$(BIN)/python -m docs.make_screenshots docs

diagram: $(STAMP)  ## print the graph as Mermaid (for the README)
	$(BIN)/python -m graph.diagram

lock: $(STAMP)  ## re-pin constraints.txt from the current environment
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^dealflow' > constraints.txt

clean:
	rm -rf $(VENV) .dealflow .pytest_cache .mypy_cache .ruff_cache
