"""Shared fixtures: the real Flask app (fake runners unless a test asks for the real ones) and its test client."""

import pytest

from app import create_app
from tests.fakes import FakeRunner

AVAILABLE = {"simulate": {"available": True, "reason": None}, "real": {"available": True, "reason": None}}


@pytest.fixture
def runner():
    return FakeRunner()


@pytest.fixture
def app(runner):
    app = create_app({"TESTING": True, "RUNNERS": {"real": runner, "simulate": runner}, "MODES": AVAILABLE,
                      "SIM_PACING_SECONDS": 0.0, "MAX_QUEUE": 2})
    yield app
    app.extensions["jobs"].close()


@pytest.fixture
def client(app):
    return app.test_client()
