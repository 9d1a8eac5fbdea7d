"""The Redis backend under test: a real ``redis-server`` on a free loopback port (started and stopped by the tests),
an app on it with an in-process Celery worker, and a thread pool standing in for Celery where a test exercises the
store alone (tests/jobs)."""

from __future__ import annotations

import contextlib
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

from tests.serving.gunicorn_process import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port>, no persistence, its own directory; :meth:`stop` and :meth:`start`
    again on the same port (a Redis restart, its data lost)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalWorkers:
    """Stands in for Celery in the store's own tests: ``workers`` threads that call ``manager.execute`` on each
    dispatched run id, in dispatch order (``dispatch`` is what RedisJobManager is given)."""

    def __init__(self, workers: int = 1):
        self.manager = None
        self._queue: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def dispatch(self, run_id: str, mode: str) -> None:
        self._queue.put(run_id)

    def _work(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            with contextlib.suppress(Exception):
                self.manager.execute(run_id)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)


def _wake(sender=None, consumer=None, **_):
    from app.jobs.celery_app import wake_the_event_loop_for_acks

    wake_the_event_loop_for_acks(sender=consumer)


@contextlib.contextmanager
def celery_worker(app):
    """An in-process Celery worker (threads pool, one at a time, as ``make worker``) for ``app``'s Celery app, with
    the acknowledgement wake-up ``make worker`` gets from ``worker_ready`` (the test worker sends its own signal)."""
    from celery.contrib.testing.worker import start_worker, test_worker_started

    test_worker_started.connect(_wake, weak=False)

    with start_worker(app.extensions["celery"], pool="threads", concurrency=1, perform_ping_check=False,
                      shutdown_timeout=30, loglevel="WARNING"):
        yield
