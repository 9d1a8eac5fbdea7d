"""A Celery worker for real runs (``make worker``; ``python -m app.jobs.worker``): reads ``REDIS_URL`` and
``WORKER_CONCURRENCY`` (real runs trained at once, default 1), warms TensorFlow once, then trains run after run.

Workers may run on other machines: each needs this repository's environment (``make setup``, or the image), MNIST
(``MNIST_PATH``) and a ``REDIS_URL`` that reaches the web server's Redis. Threads, not forked children, train the
runs, so TensorFlow loads (and traces its step) once per worker, and a shutdown (SIGTERM) cancels the runs in flight
within a step, each marked with the reason, before the worker exits.
"""

from __future__ import annotations

import sys

from celery import signals

from app import create_app, settings
from app.jobs import service

SHUTDOWN_REASON = ("the worker training this run was shutting down, so the run was cancelled; start it again (another "
                   "worker will take it)")


def main(argv: list[str] | None = None, app=None) -> None:
    """Run a worker until SIGTERM or SIGINT (``argv``: more ``celery worker`` options; ``app``: the Flask app whose
    config and job manager it uses, by default ``create_app()`` from the environment)."""
    if app is None:
        if not settings.redis_url():
            sys.exit("app.jobs.worker: set REDIS_URL (redis://host:6379/0) to the Redis the web server uses")
        app = create_app()
    celery = app.extensions["celery"]
    jobs = app.extensions["jobs"]

    @signals.worker_ready.connect(weak=False)
    def warm_up(**_):
        service.warm_up_in_background(app.config, modes=("real",))

    @signals.worker_shutting_down.connect(weak=False)
    def cancel_runs_in_flight(**_):
        service.shut_down(jobs, log=print, reason=SHUTDOWN_REASON, wait_seconds=0)

    celery.worker_main(["worker", "--pool=threads", f"--concurrency={app.config['WORKER_CONCURRENCY']}",
                        "--prefetch-multiplier=1", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                        *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    main()
