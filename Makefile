# One setup path for people, CI (.ci/run) and the Docker image: every target installs what it needs, once.
#   make run    serve the playground at http://127.0.0.1:5000 (development server)
#   make test   run the default suite (installs test packages, npm packages and Debian's chromium when missing)
#   make test-slow  the slow lanes (thousands of fuzz cases, the Docker image where an engine runs)
#   make serve  the production command (gunicorn, as in the Docker image) on $(PORT); with REDIS_URL, WEB_WORKERS
#               processes (default 2) and runs in Redis (docs/scaling.md)
#   make worker a Celery worker for real runs (needs REDIS_URL; WORKER_CONCURRENCY real runs at once, default 1)
#   make bench  the benchmarks (bench/*.py), tables printed and JSON written under bench/results/

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 7860
# Development and CI read MNIST from ../shared when it is there (this machine has no internet); elsewhere Keras downloads.
export MNIST_PATH ?= $(wildcard $(abspath $(CURDIR)/../shared/data/mnist.npz))

.PHONY: setup setup-test run serve worker test test-fast test-slow bench clean image image-tree image-data

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
	@command -v redis-server >/dev/null || { echo "installing Debian's redis-server for the Redis backend's tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }

run: setup
	$(BIN)/python run.py

# Two malloc arenas, as in the image: the server's memory stays flat under a class (docs/benchmarks.md).
serve: setup
	PORT=$(PORT) MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2} $(BIN)/gunicorn --config gunicorn.conf.py "app:create_app()"

worker: setup
	$(BIN)/python -m app.jobs.worker

test: setup-test
	node --test tests/js/
	$(BIN)/python -m pytest -q tests -m "not slow" --durations=12

test-fast: setup-test
	$(BIN)/python -m pytest -q tests -m "not browser and not training and not slow"

test-slow: setup-test
	$(BIN)/python -m pytest -q tests -m slow

bench: setup-test
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# --- The Docker image -------------------------------------------------------------------------------------------
# image-data is the image's last step: the MNIST it serves is data/mnist.npz if the build context has it, else (with
# MNIST_DOWNLOAD=1, the Dockerfile's default) a download tried once; it never fails, it says what real mode will be.
MNIST_DOWNLOAD ?= 0
image-data:
	@if [ -n "$(MNIST_PATH)" ] && [ ! -f "$(MNIST_PATH)" ] && [ "$(MNIST_DOWNLOAD)" = 1 ]; then \
	  echo "image-data: no $(MNIST_PATH) in the build context; trying the download"; \
	  mkdir -p "$(dir $(MNIST_PATH))" && env -u MNIST_PATH timeout 180 $(BIN)/python -c \
	    "import shutil; from app.training import data; data.raw(); shutil.copy(data.KERAS_CACHE, '$(MNIST_PATH)')" \
	    >/dev/null 2>&1 || echo "image-data: the download failed; the image is built without MNIST"; fi
	@$(BIN)/python -c "from app.jobs.runners import MODES; why = MODES['real'].unavailable_reason(); \
	  print('image-data: real mode', 'available' if why is None else 'unavailable: ' + why)"

# image-tree: the Dockerfile's steps through the same targets, without an engine, into DIR (what the image's
# /home/user/app holds); IMAGE_MNIST stands for a data/mnist.npz in the build context. tests/serving/test_image.py
# runs it as the image's user and serves the result with gunicorn. Like Docker's layer cache, the venv layer is
# kept while Makefile and requirements.txt (what that layer copies) are unchanged; everything else is rebuilt.
DIR ?= build/image-tree
image-tree:
	@layer="$$(cat Makefile requirements.txt | sha256sum | cut -c1-16)"; \
	if [ -f "$(DIR)/.venv-layer" ] && [ "$$(cat "$(DIR)/.venv-layer")" = "$$layer" ]; then \
	  echo "image-tree: the venv layer $$layer is unchanged: kept, as Docker's layer cache would"; \
	  find "$(DIR)" -mindepth 1 -maxdepth 1 ! -name .venv ! -name .venv-layer -exec rm -rf {} +; \
	else rm -rf "$(DIR)" && mkdir -p "$(DIR)"; fi
	cp -p Makefile requirements.txt "$(DIR)/"
	$(MAKE) -C "$(DIR)" PYTHON=$(PYTHON) $(VENV)/.stamp-runtime
	cat Makefile requirements.txt | sha256sum | cut -c1-16 > "$(DIR)/.venv-layer"
	cp package.json package-lock.json "$(DIR)/" && cd "$(DIR)" && npm ci --no-audit --no-fund --loglevel=error
	sed 's|^\*\*/||' .dockerignore > "$(DIR)/.context-excludes" && echo build >> "$(DIR)/.context-excludes"
	tar -cf - -X "$(DIR)/.context-excludes" . | tar -xf - -C "$(DIR)" && rm "$(DIR)/.context-excludes"
	if [ -n "$(IMAGE_MNIST)" ]; then mkdir -p "$(DIR)/data" && cp -f "$(IMAGE_MNIST)" "$(DIR)/data/mnist.npz"; fi
	touch "$(DIR)/node_modules/.stamp" && $(MAKE) -C "$(DIR)" image-data MNIST_PATH="$(abspath $(DIR))/data/mnist.npz"

# image: build the real image with a Docker engine and smoke-test it (tests/serving/test_image.py, slow lane).
image:
	docker build -t dp-sgd-playground .
	$(BIN)/python -m pytest -q tests/serving/test_image.py -m slow -k engine

clean:
	rm -rf $(VENV) node_modules test-artifacts .pytest_cache build
