"""The production server for real: gunicorn with the repository's gunicorn.conf.py in a subprocess. Headers on every
kind of response, no banner, and a SIGTERM that cancels and marks the run in flight and exits in time."""

import time
from pathlib import Path

import pytest

from tests.serving.gunicorn_process import Gunicorn, get, post

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
HF_ANCESTORS = "frame-ancestors 'self' https://huggingface.co https://*.huggingface.co https://*.hf.space"


@pytest.fixture(scope="module")
def server():
    ARTIFACTS.mkdir(exist_ok=True)
    # A simulated run plays its records over 120 s, so one is surely in flight when the test stops the server.
    server = Gunicorn(ROOT, ARTIFACTS / "gunicorn.log", env={"SIM_PACING_SECONDS": "120"})
    yield server
    server.stop()


@pytest.mark.parametrize("path, status", [("/", 200), ("/api/params", 200), ("/static/js/main.js", 200),
                                          ("/vendor/chart.umd.js", 200), ("/docs", 200), ("/api/nothing", 404),
                                          ("/nothing", 404), ("/api/runs/x", 404)])
def test_every_response_has_the_security_headers_and_no_banner(server, path, status):
    code, headers, _ = get(server.base + path)
    assert code == status
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and csp.endswith(HF_ANCESTORS)
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert "gunicorn" not in headers.get("Server", "").lower() and not any(c.isdigit() for c in headers["Server"])
    if path.startswith("/api/"):
        assert headers["Content-Type"].startswith("application/json")


def test_sigterm_cancels_and_marks_the_run_in_flight_and_exits_in_time(server):
    code, _, run = post(server.base + "/api/runs", {"mode": "simulate", "epochs": 3}, timeout=90)  # builds the simulator
    assert code == 202
    assert get(f"{server.base}/api/runs/{run['id']}")[0] == 200
    started = time.monotonic()
    status = server.stop()
    seconds = time.monotonic() - started
    log = server.log()
    assert status == 0 and seconds < 10, (status, seconds, log[-1500:])  # inside Docker's 10 s before SIGKILL
    # Marked with service.SHUTDOWN_REASON as it is cancelled (tests/serving/test_faults.py reads the mark back).
    assert f"shutdown: cancelled simulate run {run['id']} (was running)" in log
