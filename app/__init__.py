"""DP-SGD Playground: the Flask application factory.

Importing the package loads neither Flask nor TensorFlow: the factory imports the web layer (``app.web``), and the real
trainer loads TensorFlow on the first real run.
"""

from __future__ import annotations

import os

# numpy's OpenBLAS threads only spin on this app's small matrices (the simulator's GP products, the accountant's
# series): with two on this 2-core machine a simulated run took twice the CPU (bench/sim_fidelity.py), and they would
# take the core the real trainer's thread needs. Set before numpy loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def create_app(test_config: dict | None = None):
    """Build the Flask app. ``test_config`` overrides the defaults below (and the environment)."""
    from flask import Flask

    from app import web
    from app.jobs import service

    app = Flask(__name__, static_folder="../static", template_folder="../templates")
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=16 * 1024,  # every API body is a handful of knobs
        REAL_WORKERS=_env_int("REAL_WORKERS", 1),  # one real run at a time on a 2-core machine
        MAX_QUEUE=_env_int("MAX_QUEUE", 16),
        RUN_TTL_SECONDS=_env_int("RUN_TTL_SECONDS", 3600),
        MAX_FINISHED_RUNS=_env_int("MAX_FINISHED_RUNS", 200),
        SIM_PACING_SECONDS=float(os.environ.get("SIM_PACING_SECONDS", "2.5")),
        WARM_UP=os.environ.get("WARM_UP", "") not in ("", "0"),  # build the simulator and load TensorFlow in the background
        # Fairness per client address (app/web/limits.py): how many real runs one may have queued or running, and
        # how fast one may start runs (Flask-Limiter's notation; simulated runs are cheap, real ones are not).
        REAL_RUNS_PER_CLIENT=_env_int("REAL_RUNS_PER_CLIENT", 2),
        RATE_LIMIT_REAL=os.environ.get("RATE_LIMIT_REAL", "6 per minute;30 per hour"),
        RATE_LIMIT_SIMULATE=os.environ.get("RATE_LIMIT_SIMULATE", "120 per minute"),
        # Proxies in front of the app whose X-Forwarded-For to believe (1 behind a Hugging Face Space's proxy);
        # 0 when clients reach the server directly, or any client could pick its own address.
        TRUSTED_PROXY_HOPS=_env_int("TRUSTED_PROXY_HOPS", 0),
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)

    web.register(app)
    app.extensions["jobs"] = service.build_manager(app.config)
    if app.config["WARM_UP"]:
        service.warm_up_in_background(app.config)
    return app
