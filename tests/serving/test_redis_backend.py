"""The Redis backend's faults and promises through the real app on a real redis-server: Redis stopped (503 JSON with
Retry-After, fast, never a 500 or a hang) and restarted without its data (a 404 that says so), a web process
restarting (no finished run lost), a Celery worker process killed mid-run (failed after the heartbeat timeout, with
the reason) or stopped (its run cancelled and marked), evicted runs, boot ids, and gunicorn with two web processes
answering any poll."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from app.jobs import redis_store, worker
from tests.conftest import AVAILABLE
from tests.scripted_runner import ScriptedRunner, wait_for
from tests.serving.gunicorn_process import Gunicorn, get, post

ROOT = Path(__file__).resolve().parents[2]
REAL = {"mode": "real", "epochs": 2, "dataset_size": 1000, "batch_size": 500}
LONG_REAL = {"mode": "real", "epochs": 5, "dataset_size": 1000, "batch_size": 10}  # 500 steps of 0.1 s
SIM = {"mode": "simulate", "epochs": 2, "dataset_size": 1000, "batch_size": 500}



@pytest.fixture
def backend():
    """Every app of this module is on the Redis backend."""
    return "redis"


def config(**overrides):
    return {"TESTING": True, "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0, "RATELIMIT_ENABLED": False,
            "REAL_RUNS_PER_CLIENT": 0, "RUNNERS": {"real": ScriptedRunner(), "simulate": ScriptedRunner()},
            **overrides}


def status_of(client, run_id):
    return client.get(f"/api/runs/{run_id}").json["status"]


def test_redis_stopped_is_a_fast_503_naming_the_backend_and_a_restart_without_data_a_404_that_says_so(
        apps, redis_server):
    client = apps(config()).test_client()
    run = client.post("/api/runs", json=SIM).json
    assert run["id"].startswith(client.application.extensions["jobs"].boot_id)
    redis_server.stop()
    try:
        for method, url, body in (("GET", f"/api/runs/{run['id']}", None), ("POST", "/api/runs", SIM),
                                  ("POST", f"/api/runs/{run['id']}/cancel", None), ("GET", "/api/health", None)):
            started = time.monotonic()
            response = client.open(url, method=method, json=body, headers={"X-Run-Token": run["token"]})
            assert time.monotonic() - started < 5, url  # 1 s connect timeout: no hang
            assert response.status_code == 503 and response.is_json, (url, response.data[:200])
            assert "cannot be reached" in response.json["errors"]["backend"], url
            assert response.headers["Retry-After"] == "5"
    finally:
        redis_server.start()  # no persistence in the tests: Redis comes back empty, with a new boot id
    gone = client.get(f"/api/runs/{run['id']}")
    assert gone.status_code == 404
    assert "started before the run store (Redis) restarted without its data" in gone.json["errors"]["id"]
    again = client.post("/api/runs", json=SIM)
    assert again.status_code == 202 and status_of(client, again.json["id"]) == "succeeded"


def test_a_web_process_restarting_loses_no_run(apps):
    first = apps(config())
    client = first.test_client()
    real = client.post("/api/runs", json=REAL).json
    sim = client.post("/api/runs", json=SIM).json
    wait_for(lambda: status_of(client, real["id"]) == "succeeded")
    shown = {run["id"]: client.get(f"/api/runs/{run['id']}").json for run in (real, sim)}
    first.extensions["jobs"].close()  # the web process goes away
    later = apps(config(), worker=False).test_client()  # another one, on the same Redis
    for run_id, snap in shown.items():
        assert later.get(f"/api/runs/{run_id}").json == snap
    assert later.post(f"/api/runs/{sim['id']}/cancel", headers={"X-Run-Token": sim["token"]}).status_code == 409


def test_an_evicted_run_is_a_404_that_says_so_and_ids_start_with_the_stores_boot_id(apps):
    app = apps(config(MAX_FINISHED_RUNS=1))
    client = app.test_client()
    old = client.post("/api/runs", json=SIM).json
    boot = app.extensions["jobs"].boot_id
    assert old["id"].startswith(boot) and len(old["id"]) == len(boot) + 24
    client.post("/api/runs", json=SIM)
    client.post("/api/runs", json=SIM)
    gone = client.get(f"/api/runs/{old['id']}?since=3")
    assert gone.status_code == 404 and "finished and was removed" in gone.json["errors"]["id"]
    assert "at most 1" in gone.json["errors"]["id"]


class WorkerProcess:
    """``python -m tests.celery_worker_process REDIS_URL``: a real worker process with a slow scripted trainer."""

    def __init__(self, url: str, log: Path):
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-m", "tests.celery_worker_process", url], cwd=ROOT,
                                        stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                        env={**os.environ, "WARM_UP": "0"})

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def worker_process(redis_server, tmp_path):
    made = []
    yield lambda: made.append(WorkerProcess(redis_server.url, tmp_path / f"worker-{len(made)}.log")) or made[-1]
    for process in made:
        process.stop()


def running_with_steps(client, run_id, steps=3):
    snap = client.get(f"/api/runs/{run_id}").json
    return snap["status"] == "running" and len(snap["steps"]) >= steps


def test_a_worker_killed_mid_run_leaves_it_failed_with_the_reason_after_the_heartbeat_timeout(apps, worker_process):
    client = apps(config(HEARTBEAT_TIMEOUT_SECONDS=3.0, REAL_RUNS_PER_CLIENT=1), worker=False).test_client()
    run = client.post("/api/runs", json=LONG_REAL).json
    process = worker_process()
    wait_for(lambda: running_with_steps(client, run["id"]), timeout=90)
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(timeout=10)
    killed = time.monotonic()
    assert status_of(client, run["id"]) == "running"  # silent for less than the timeout so far
    wait_for(lambda: status_of(client, run["id"]) == "failed", timeout=30)
    assert 2.0 < time.monotonic() - killed < 15
    snap = client.get(f"/api/runs/{run['id']}").json
    assert "stopped sending heartbeats for 3 s" in snap["error"] and "not restarted" in snap["error"]
    assert snap["steps"] and snap["summary"] is None
    # The failed run no longer counts against its owner's cap of one real run.
    assert client.post("/api/runs", json=REAL).status_code == 202


def test_a_worker_stopped_mid_run_cancels_it_with_the_reason_and_exits(apps, worker_process):
    client = apps(config(), worker=False).test_client()
    run = client.post("/api/runs", json=LONG_REAL).json
    process = worker_process()
    wait_for(lambda: running_with_steps(client, run["id"]), timeout=90)
    stopped = time.monotonic()
    process.process.send_signal(signal.SIGTERM)  # docker stop
    assert process.process.wait(timeout=20) == 0, process.output()[-2000:]
    assert time.monotonic() - stopped < 10
    snap = client.get(f"/api/runs/{run['id']}").json
    assert snap["status"] == "cancelled" and snap["error"] == worker.SHUTDOWN_REASON
    assert snap["summary"]["epochs_completed"] == len(snap["epochs"])
    assert "shutdown: cancelled real run" in process.output()


def test_gunicorn_with_two_web_processes_answers_any_poll_and_a_restart_loses_nothing(redis_server, tmp_path):
    if redis_server.process is None:
        redis_server.start()
    redis_server.flush()
    env = {"REDIS_URL": redis_server.url, "WEB_WORKERS": "2", "SIM_PACING_SECONDS": "0"}
    server = Gunicorn(ROOT, tmp_path / "gunicorn.log", env=env)
    try:
        status, _, run = post(f"{server.base}/api/runs", SIM)
        assert status == 202
        for _ in range(40):  # a new connection each time: the kernel spreads them over both processes
            status, headers, body = get(f"{server.base}/api/runs/{run['id']}")
            assert status == 200 and json.loads(body)["status"] in ("running", "succeeded")
        finished = json.loads(get(f"{server.base}/api/runs/{run['id']}")[2])
        assert finished["status"] == "succeeded"
        assert server.log().count("Booting worker") == 2
        assert server.stop() == 0
        assert "runs live in Redis and carry on" in server.log()
        again = Gunicorn(ROOT, tmp_path / "gunicorn-2.log", env=env)
        try:
            assert json.loads(get(f"{again.base}/api/runs/{run['id']}")[2]) == finished
        finally:
            again.stop()
    finally:
        server.stop()


def test_a_worker_takes_the_next_queued_run_as_soon_as_it_finishes_one(apps):
    """A threads-pool worker acknowledged a finished run only when its event loop next woke, so each run queued
    behind another waited about 9 s (celery/celery#6941); with the wake-up five quick runs take well under that."""
    client = apps(config(MAX_QUEUE=8)).test_client()
    started = time.monotonic()
    ids = [client.post("/api/runs", json=REAL).json["id"] for _ in range(5)]
    wait_for(lambda: all(status_of(client, run_id) == "succeeded" for run_id in ids), timeout=60)
    assert time.monotonic() - started < 8
