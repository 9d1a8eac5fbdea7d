# DP-SGD Playground image, for a Hugging Face Space (sdk: docker, app_port 7860) or any Docker host.

# Stage 1: front-end packages (Chart.js) from the npm registry, exactly as package-lock.json pins them.
FROM node:20-slim AS frontend
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# Stage 2: the app, set up by the same Makefile target as `make run` and `make test` use.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
# Spaces run the container as uid 1000.
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PYTHONUNBUFFERED=1 \
    PORT=7860 \
    WARM_UP=1
WORKDIR /home/user/app

# Python packages first, so code changes do not reinstall TensorFlow.
COPY --chown=user Makefile requirements.txt ./
RUN make PYTHON=python3.11 .venv/.stamp-runtime
COPY --chown=user --from=frontend /build/node_modules ./node_modules
COPY --chown=user . .
# MNIST is fetched now, with the loader's own code, into the Keras cache: the running Space needs no download.
RUN touch node_modules/.stamp && .venv/bin/python -c "from app import data; data.raw()"

EXPOSE 7860
# The command of `make serve`: gunicorn, one worker, several threads. Runs (their queue, records, cancel flags) live
# in this one process's memory, so a second worker process would not see the runs the first one started.
CMD [".venv/bin/gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
