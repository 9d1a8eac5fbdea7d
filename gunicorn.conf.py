"""gunicorn settings for the image and `make serve` (``gunicorn --config gunicorn.conf.py "app:create_app()"``).

- One worker process on the embedded backend: runs (their queue, records and cancel flags) and the per-client limits
  live in its memory, so a second worker would not see the runs the first one started. With ``REDIS_URL`` they live
  in Redis and real runs train on Celery workers (docs/scaling.md), so any process answers any poll:
  ``WEB_WORKERS`` processes, default 2 (``app.settings.web_workers``). Either way: no ``preload_app`` (the job manager's threads would not survive the fork) and no ``max_requests``
  (a worker recycled on a count would drop every run).
- Threads (``gthread``): requests are short (a poll is a copy under a lock, a privacy query milliseconds), and idle
  keep-alive connections wait in the worker's selector without holding a thread, so 16 threads serve thirty pollers
  and their slider queries with room for bursts; ``GUNICORN_THREADS`` overrides (docs/serving.md: what to change for
  more users).
- Timeouts: training runs in the job manager's threads, never in a request thread, and a gthread worker's heartbeat
  comes from its main loop, not from the requests; ``timeout`` only restarts a worker whose main loop hung.
- Shutdown (SIGTERM: ``docker stop``, a Space restarting): the worker stops accepting, finishes the requests in flight,
  then ``worker_exit`` cancels every unfinished run, marked "the server was shutting down", and logs each (on the
  Redis backend a web process holds none: its runs carry on in Redis and on the Celery workers). All of it
  fits in ``graceful_timeout``, under Docker's 10 s before SIGKILL.
"""

import os

import gunicorn.http.wsgi

from app import settings

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '7860')}"
workers = settings.web_workers()
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
worker_connections = 1000  # open connections (most of them idle keep-alive) the worker holds at once
keepalive = 5  # seconds an idle connection stays open: pollers (every second) and the Space's proxy reuse it
timeout = 120
graceful_timeout = 8
accesslog = "-"
# No software or version banner: gunicorn otherwise answers every request with "Server: gunicorn".
gunicorn.http.wsgi.SERVER = "dp-sgd-playground"


def worker_exit(server, worker):
    """Runs in the worker process as it exits: cancel and mark its unfinished runs (see the module docstring)."""
    app = getattr(worker, "wsgi", None)
    jobs = getattr(app, "extensions", {}).get("jobs")
    if jobs is None:
        return
    from app.jobs import service

    service.shut_down(jobs, log=server.log.info)
