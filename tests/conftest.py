"""Shared fixtures: the real Flask app (a scripted runner in both modes unless a test asks for the real ones) and its
test client."""

import pytest

from app import create_app
from tests.scripted_runner import ScriptedRunner

AVAILABLE = {"simulate": {"available": True, "reason": None}, "real": {"available": True, "reason": None}}


@pytest.fixture
def scripted_runner():
    return ScriptedRunner()


@pytest.fixture
def app(scripted_runner):
    app = create_app({"TESTING": True, "RUNNERS": {"real": scripted_runner, "simulate": scripted_runner}, "MODES": AVAILABLE,
                      "SIM_PACING_SECONDS": 0.0, "MAX_QUEUE": 2,
                      "REAL_RUNS_PER_CLIENT": 0})  # the per-client cap has its own tests (tests/web/test_limits.py)
    yield app
    app.extensions["jobs"].close()


@pytest.fixture
def client(app):
    return app.test_client()
