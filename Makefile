# One setup path for people, CI (.ci/run) and the Docker image: every target installs what it needs, once.
#   make run    serve the playground at http://127.0.0.1:5000 (development server)
#   make test   run the default suite (installs test packages, npm packages and Debian's chromium when missing)
#   make test-slow  the slow lanes (thousands of fuzz cases, the Docker image where an engine runs)
#   make serve  the production command (gunicorn, as in the Docker image) on $(PORT)
#   make bench  the benchmarks (bench/*.py), tables printed and JSON written under bench/results/

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 7860
# Development and CI read MNIST from ../shared when it is there (this machine has no internet); elsewhere Keras downloads.
export MNIST_PATH ?= $(wildcard $(abspath $(CURDIR)/../shared/data/mnist.npz))

.PHONY: setup setup-test run serve test test-fast test-slow bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.stamp-runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/python -c "import tensorflow_privacy, dp_accounting, flask"  # the pinned set must import together
	touch $@

$(VENV)/.stamp-test: requirements-test.txt $(VENV)/.stamp-runtime
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.stamp-runtime node_modules/.stamp

setup-test: setup $(VENV)/.stamp-test
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

run: setup
	$(BIN)/python run.py

serve: setup
	PORT=$(PORT) $(BIN)/gunicorn --config gunicorn.conf.py "app:create_app()"

test: setup-test
	node --test tests/js/
	$(BIN)/python -m pytest -q tests -m "not slow"

test-fast: setup-test
	$(BIN)/python -m pytest -q tests -m "not browser and not training and not slow"

test-slow: setup-test
	$(BIN)/python -m pytest -q tests -m slow

bench: setup-test
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) node_modules test-artifacts .pytest_cache
