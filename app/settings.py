"""The app's settings, read from the environment once per process (``create_app``, gunicorn.conf.py, the Celery
worker): one place for every knob a deployment turns. Importing it loads nothing but ``os``.

The embedded default needs none of them. ``REDIS_URL`` switches runs to the Redis backend (docs/scaling.md): their
state in Redis, real runs on Celery workers (``make worker``), several web processes (``WEB_WORKERS``).
"""

from __future__ import annotations

import os


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def redis_url() -> str:
    """``REDIS_URL`` (``redis://host:6379/0``), or "" for the embedded backend."""
    return os.environ.get("REDIS_URL", "").strip()


def web_workers() -> int:
    """gunicorn worker processes: ``WEB_WORKERS``; 2 with ``REDIS_URL`` (any of them answers any poll), else 1 (runs
    live in that one process's memory, so a second would not see them)."""
    default = 2 if redis_url() else 1
    workers = env_int("WEB_WORKERS", default)
    return workers if redis_url() else 1


def from_environment() -> dict:
    """The Flask config ``create_app`` starts from (``test_config`` overrides it)."""
    return dict(
        MAX_CONTENT_LENGTH=16 * 1024,  # every API body is a handful of knobs
        REAL_WORKERS=env_int("REAL_WORKERS", 1),  # one real run at a time on a 2-core machine (embedded backend)
        MAX_QUEUE=env_int("MAX_QUEUE", 16),
        RUN_TTL_SECONDS=env_int("RUN_TTL_SECONDS", 3600),
        MAX_FINISHED_RUNS=env_int("MAX_FINISHED_RUNS", 200),
        SIM_PACING_SECONDS=env_float("SIM_PACING_SECONDS", 2.5),
        WARM_UP=os.environ.get("WARM_UP", "") not in ("", "0"),  # build the simulator and load TensorFlow in the background
        # Fairness per client address (app/web/limits.py): how many real runs one may have queued or running, and
        # how fast one may start runs (Flask-Limiter's notation; simulated runs are cheap, real ones are not).
        REAL_RUNS_PER_CLIENT=env_int("REAL_RUNS_PER_CLIENT", 2),
        RATE_LIMIT_REAL=os.environ.get("RATE_LIMIT_REAL", "6 per minute;30 per hour"),
        RATE_LIMIT_SIMULATE=os.environ.get("RATE_LIMIT_SIMULATE", "120 per minute"),
        # Proxies in front of the app whose X-Forwarded-For to believe (1 behind a Hugging Face Space's proxy);
        # 0 when clients reach the server directly, or any client could pick its own address.
        TRUSTED_PROXY_HOPS=env_int("TRUSTED_PROXY_HOPS", 0),
        # The Redis backend (app/jobs/redis_store.py): empty keeps every run in this process (the default).
        REDIS_URL=redis_url(),
        # A Celery worker beats every HEARTBEAT_SECONDS while it trains; a running run silent for
        # HEARTBEAT_TIMEOUT_SECONDS (its worker killed, its machine gone) is marked failed with the reason.
        HEARTBEAT_SECONDS=env_float("HEARTBEAT_SECONDS", 2.0),
        HEARTBEAT_TIMEOUT_SECONDS=env_float("HEARTBEAT_TIMEOUT_SECONDS", 30.0),
        WORKER_CONCURRENCY=env_int("WORKER_CONCURRENCY", 1),  # real runs one Celery worker trains at once
        JSON_SORT_KEYS=False,
    )
