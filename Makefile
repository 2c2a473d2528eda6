# Two entry points that set everything up on a fresh machine (Python 3.11+ and pip only):
#   make demo   installs into .venv and runs the demo job end to end
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: install demo test test-all bench lint clean

$(BIN)/batchseg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,torch]'
	touch $@

install: $(BIN)/batchseg

demo: install
	$(BIN)/batchseg demo-data $(DEMO)/images --count 240
	$(BIN)/batchseg run jobs/demo.toml --overwrite
	$(BIN)/batchseg status $(DEMO)/out.zarr
	$(BIN)/batchseg query $(DEMO)/out.zarr --where "fraction_foreground > 0.6" --columns fraction_foreground,height,width --limit 10
	$(BIN)/batchseg mask $(DEMO)/out.zarr astronaut/astronaut_0000.jpg --output $(DEMO)/astronaut_overlay.png --overlay
	$(BIN)/batchseg stats $(DEMO)/out.zarr

test: install
	$(BIN)/python -m pytest -q -m "not slow and not gpu" --durations=25

test-all: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check batchseg tests
	$(BIN)/mypy batchseg

clean:
	rm -rf $(DEMO) .pytest_cache

# Benchmark suite (tests/benchmarks/README.md): side-by-side throughput vs plain loop,
# multiprocessing, Dask and Ray Data (when installed), per-image overhead, label storage.
bench: install
	$(BIN)/python -m tests.benchmarks.run --data ../shared/data --out bench-results
