# Two entry points that set everything up on a fresh machine (Python 3.11+ and pip only):
#   make demo   installs into .venv and runs the demo job end to end
#   make test   installs into .venv and runs the test suite
# and the docs site: make docs (builds site/ with mkdocs --strict), make docs-test (slow doc examples)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: install demo test test-system test-all bench lint clean docs docs-install docs-test

$(BIN)/batchseg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,torch]'
	$(BIN)/python -m pip install --quiet 'segment-anything>=1.0' opencv-python-headless fastremap fill-voids roifile natsort tqdm 'numba>=0.60'
	$(BIN)/python -m pip install --quiet --no-deps 'cellpose>=3.1.1,<4'  # its numpy<2.1 cap: not needed
	touch $@

install: $(BIN)/batchseg

demo: install
	rm -rf $(DEMO)/images $(DEMO)/overlays
	$(BIN)/batchseg demo-data $(DEMO)/images --count 36
	$(BIN)/batchseg run jobs/demo.toml --overwrite
	$(BIN)/batchseg run jobs/demo_regions.toml --overwrite
	$(BIN)/batchseg status $(DEMO)/regions.zarr
	$(BIN)/batchseg query $(DEMO)/out.zarr --where "fraction_foreground > 0.6" --columns fraction_foreground,height,width --limit 10
	$(BIN)/batchseg query $(DEMO)/regions.zarr --where "width >= 800" --columns n_regions,area_mean,height,width
	$(BIN)/batchseg stats $(DEMO)/regions.zarr
	$(BIN)/batchseg mask $(DEMO)/out.zarr camera/camera_0002.png --output $(DEMO)/overlays/otsu_camera.png --overlay
	$(BIN)/batchseg mask $(DEMO)/out.zarr coins/coins_0004.png --output $(DEMO)/overlays/otsu_coins.png --overlay
	$(BIN)/batchseg mask $(DEMO)/regions.zarr astronaut/astronaut_0000.jpg --output $(DEMO)/overlays/slic_astronaut.png --overlay
	$(BIN)/batchseg mask $(DEMO)/regions.zarr coffee/coffee_0001.png --output $(DEMO)/overlays/slic_coffee.png --overlay
	@echo
	@echo "Look at $(DEMO)/overlays/: Otsu foreground (otsu_*.png) and SLIC superpixels (slic_*.png) at full size."
	@echo "Explore further (first: source $(BIN)/activate):"
	@echo "  batchseg status $(DEMO)/out.zarr"
	@echo "  batchseg query $(DEMO)/regions.zarr --where 'n_regions < 180' --columns n_regions,area_mean,height,width"
	@echo "  batchseg mask $(DEMO)/regions.zarr retina/retina_0011.png -o $(DEMO)/overlays/slic_retina.png --overlay"
	@echo "  batchseg stats $(DEMO)/out.zarr"
	@echo "  batchseg export $(DEMO)/regions.zarr hubble/hubble_0005.png -o $(DEMO)/hubble.ome.zarr"
	@echo "  batchseg report $(DEMO)/regions.zarr -o $(DEMO)/report.html   # one file: plots, gallery"
	@echo "  batchseg serve $(DEMO)/regions.zarr     # browse and query at http://127.0.0.1:8765"
	@echo "  batchseg methods    # then e.g. batchseg run $(DEMO)/images -m skimage.watershed -o $(DEMO)/ws.zarr"
	@echo "Semantic methods (torchvision.*) are not in the demo: their weights are not bundled and download on first use."

# Two test processes (pytest-xdist), each test file kept in one of them (its module fixtures
# are built once), files handed out in collection order: the slowest first, the torch files as
# one unit (tests/helpers/suite_order.py, used by tests/conftest.py); TEST_WORKERS=0 runs the
# suite in this process alone.
TEST_WORKERS ?= 2
# Bytecode is written even where the environment sets PYTHONDONTWRITEBYTECODE: every cluster
# worker and CLI process of the suite would otherwise compile batchseg again (0.25 s each), and
# pytest would rewrite the test modules' asserts in every run (16 s of CPU per test process).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(TEST_WORKERS) \
	--dist loadfile --no-loadscope-reorder
COMPILE := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m compileall -q batchseg > /dev/null

test: install
	$(COMPILE)
	$(PYTEST) -m "not slow and not gpu and not docs_slow and not system" --durations=25

# The whole-system tests (a real SLURM, killed launchers and workers, an S3 server, Ctrl-C):
# minutes of process start-up and waiting, run by CI after make test.
test-system: install
	$(COMPILE)
	$(PYTEST) -m "system and not slow and not gpu" --durations=10

test-all: install
	$(COMPILE)
	$(PYTEST)

lint: install
	$(BIN)/ruff check batchseg tests
	$(BIN)/mypy batchseg

clean:
	rm -rf $(DEMO) .pytest_cache site

# The docs site needs only the package and the `docs` extra (no torch): `make docs` works in a
# fresh clone and builds strictly (a broken link, anchor or reference fails it). Nothing is
# downloaded at build time (theme fonts are off).
$(VENV)/.docs-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

docs-install: $(VENV)/.docs-installed

docs: docs-install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The doc examples too slow for `make test` (marker docs_slow): the quick start and guides'
# shell blocks run verbatim in bash on an embedded cluster, and the strict site build.
docs-test: install docs-install
	$(BIN)/python -m pytest -q -n 0 -m docs_slow tests/docs

# Benchmark suite (tests/benchmarks/README.md): side-by-side throughput vs plain loop,
# multiprocessing, Dask and Ray Data (when installed), per-image overhead, label storage.
bench: install
	$(BIN)/python -m tests.benchmarks.run --data ../shared/data --out bench-results
