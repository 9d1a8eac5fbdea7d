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


def create_app(test_config: dict | None = None):
    """Build the Flask app. ``test_config`` overrides the settings read from the environment (``app.settings``)."""
    from flask import Flask

    from app import settings, web
    from app.jobs import service

    app = Flask(__name__, static_folder="../static", template_folder="../templates")
    app.config.from_mapping(settings.from_environment())
    if test_config:
        app.config.update(test_config)

    web.register(app)
    if app.config["REDIS_URL"]:  # real runs go to Celery workers through Redis (docs/scaling.md)
        from app.jobs import celery_app

        celery_app.celery_init_app(app)
    app.extensions["jobs"] = service.build_manager(app.config, celery=app.extensions.get("celery"))
    if app.config["WARM_UP"]:  # on the Redis backend TensorFlow warms up on the workers, not here
        service.warm_up_in_background(app.config, modes=("simulate",) if app.config["REDIS_URL"] else None)
    return app
