# DP-SGD Playground image, for a Hugging Face Space (sdk: docker, app_port 7860) or any Docker host. Builds with the
# classic builder and with BuildKit, with or without network for MNIST (docs/deploy.md).

# Stage 1: front-end packages (Chart.js) from the npm registry, exactly as package-lock.json pins them.
FROM node:20-slim AS frontend
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# Stage 2: the app, set up by the same Makefile targets as `make run` and `make image-tree` use.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
# Spaces run the container as uid 1000. The app's directory is made and handed to the user before USER: the classic
# builder creates a missing WORKDIR as root even after USER, and the venv step then fails (BuildKit creates it as
# the user), so it must not be left to WORKDIR.
RUN useradd --create-home --uid 1000 user \
 && mkdir /home/user/app \
 && chown user:user /home/user/app
USER user
# TRUSTED_PROXY_HOPS=1: behind a Space's proxy the client's address is the one it adds to X-Forwarded-For (the
# per-client limits key on it); run with -e TRUSTED_PROXY_HOPS=0 where clients reach the container directly.
# MALLOC_ARENA_MAX=2: glibc gives every thread its own malloc arena and keeps what they free; with two the server's
# memory ends a classroom within 5% of where it started (docs/benchmarks.md#serving-a-class).
ENV HOME=/home/user \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    PORT=7860 \
    WARM_UP=1 \
    TRUSTED_PROXY_HOPS=1 \
    MNIST_PATH=/home/user/app/data/mnist.npz
WORKDIR /home/user/app

# Python packages first, so code changes do not reinstall TensorFlow.
COPY --chown=user Makefile requirements.txt ./
RUN make PYTHON=python3.11 .venv/.stamp-runtime
COPY --chown=user --from=frontend /build/node_modules ./node_modules
COPY --chown=user . .
# MNIST: data/mnist.npz from the build context when it is there, else one download tried (MNIST_DOWNLOAD=0 skips
# it); without either the build still succeeds and the page shows real mode unavailable, with the reason.
ARG MNIST_DOWNLOAD=1
RUN touch node_modules/.stamp && make image-data MNIST_DOWNLOAD=$MNIST_DOWNLOAD

EXPOSE 7860
# The command of `make serve`: gunicorn, one worker, several threads (gunicorn.conf.py says why).
CMD [".venv/bin/gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
