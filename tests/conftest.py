"""Shared fixtures: the real Flask app (a scripted runner in both modes unless a test asks for the real ones) and its
test client, on the embedded backend, or on the Redis backend where a test module parametrizes ``backend``
(``ON_BOTH_BACKENDS``): a real redis-server started for the session on a
free loopback port, emptied for each test, and an in-process Celery worker per app."""

import contextlib

import pytest

from app import create_app
from tests.scripted_runner import ScriptedRunner

AVAILABLE = {"simulate": {"available": True, "reason": None}, "real": {"available": True, "reason": None}}
BACKENDS = ["embedded", "redis"]
ON_BOTH_BACKENDS = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def redis_server():
    from tests.redis_backend import RedisServer

    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def backend(request):
    return getattr(request, "param", "embedded")


@pytest.fixture
def apps(backend, request):
    """``make(config)``: ``create_app(config)`` on this test's backend (on Redis with an in-process Celery worker
    unless ``worker=False``); every app made is closed after the test."""
    made, workers = [], contextlib.ExitStack()

    def make(config: dict, *, worker: bool = True):
        config = dict(config)
        if backend == "redis":
            from tests.redis_backend import celery_worker

            server = request.getfixturevalue("redis_server")
            if server.process is None:
                server.start()  # a test before this one stopped it
            if not made:
                server.flush()
            config["REDIS_URL"] = server.url
        app = create_app(config)
        made.append(app)
        if backend == "redis" and worker:
            workers.enter_context(celery_worker(app))
        return app

    yield make
    for app in made:
        app.extensions["jobs"].close()
    workers.close()


@pytest.fixture
def scripted_runner():
    return ScriptedRunner()


@pytest.fixture
def app(apps, scripted_runner):
    return apps({"TESTING": True, "RUNNERS": {"real": scripted_runner, "simulate": scripted_runner},
                 "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0, "MAX_QUEUE": 2,
                 "REAL_RUNS_PER_CLIENT": 0})  # the per-client cap has its own tests (tests/web/test_limits.py)


@pytest.fixture
def client(app):
    return app.test_client()
