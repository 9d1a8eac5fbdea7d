"""A real Celery worker process (``app.jobs.worker.main``, as ``make worker`` runs it) whose real-mode runner is a
slow scripted one, for the fault tests that kill or stop a worker mid-run: ``python -m tests.celery_worker_process
REDIS_URL``."""

import sys
import time

from app import create_app
from app.jobs import worker
from tests.conftest import AVAILABLE
from tests.scripted_runner import scripted_epoch


def slow_runner(params, report, should_stop):
    """A step every 0.1 s for as long as the run's params say (``steps``), an epoch record every 10 steps."""
    for step in range(1, params["steps"] + 1):
        if should_stop():
            return
        time.sleep(0.1)
        report({"type": "step", "step": step, "epoch": 1 + (step - 1) // 10, "loss": 1.0, "clip_fraction": 0.5})
        if step % 10 == 0:
            report(scripted_epoch(step // 10))


if __name__ == "__main__":
    app = create_app({"TESTING": True, "REDIS_URL": sys.argv[1], "MODES": AVAILABLE,
                      "RUNNERS": {"real": slow_runner}, "HEARTBEAT_SECONDS": 0.5})
    worker.main(["--loglevel=WARNING"], app=app)
