"""Faults a classroom deployment meets, through the real Flask app: a trainer that raises, MNIST missing, cancel
storms, a full queue, a client that never polls, a run evicted while polled, a restart, a shutdown. Each must end in
a clear answer and a server that carries on."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import create_app
from app.jobs import service
from tests.conftest import AVAILABLE
from tests.scripted_runner import ScriptedRunner, wait_for

REAL = {"mode": "real", "epochs": 2, "dataset_size": 1000, "batch_size": 500}
SIM = {"mode": "simulate", "epochs": 2, "dataset_size": 1000, "batch_size": 500}


def make_app(**config):
    runners = config.pop("RUNNERS", {"real": ScriptedRunner(), "simulate": ScriptedRunner()})
    settings = {"TESTING": True, "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0, "RUNNERS": runners,
                "RATELIMIT_ENABLED": False, "REAL_RUNS_PER_CLIENT": 0, **config}
    return create_app({k: v for k, v in settings.items() if v is not None})


@pytest.fixture
def apps():
    made = []
    yield lambda **config: made.append(make_app(**config)) or made[-1]
    for app in made:
        app.extensions["jobs"].close()


def status_of(client, run_id):
    return client.get(f"/api/runs/{run_id}").json["status"]


def test_a_trainer_raising_mid_run_fails_that_run_with_its_message_and_the_next_one_works(apps):
    calls = []

    def trainer(params, report, should_stop):
        calls.append(1)
        ScriptedRunner()({**params, "epochs": 1}, report, should_stop)
        if len(calls) == 1:
            raise FloatingPointError("loss became NaN at step 3")
        ScriptedRunner()(params, report, should_stop)

    client = apps(RUNNERS={"real": trainer, "simulate": ScriptedRunner()}).test_client()
    broken = client.post("/api/runs", json=REAL).json
    wait_for(lambda: status_of(client, broken["id"]) == "failed")
    snap = client.get(f"/api/runs/{broken['id']}").json
    assert snap["error"] == "FloatingPointError: loss became NaN at step 3" and len(snap["epochs"]) == 1
    assert client.get("/api/health").json["status"] == "ok"
    fine = client.post("/api/runs", json=REAL).json
    wait_for(lambda: status_of(client, fine["id"]) == "succeeded")


def test_mnist_missing_makes_real_mode_unavailable_with_the_reason_and_simulation_fine(apps, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", "/nonexistent/mnist.npz")
    client = apps(MODES=None).test_client()  # availability computed for real, as the server does
    modes = client.get("/api/params").json["modes"]
    assert modes["real"]["available"] is False and "/nonexistent/mnist.npz" in modes["real"]["reason"]
    refused = client.post("/api/runs", json=REAL)
    assert refused.status_code == 400 and "/nonexistent/mnist.npz" in refused.json["errors"]["mode"]
    sim = client.post("/api/runs", json=SIM)
    assert sim.status_code == 202 and status_of(client, sim.json["id"]) == "succeeded"


def test_a_cancel_storm_cancels_each_run_once_and_nothing_breaks(apps):
    gate = threading.Event()
    runner = ScriptedRunner(gate=gate)
    client = apps(RUNNERS={"real": runner, "simulate": ScriptedRunner()}, MAX_QUEUE=8,
                  SIM_PACING_SECONDS=30.0).test_client()
    runs = [client.post("/api/runs", json={**REAL, "epochs": 50}).json for _ in range(5)]
    runs += [client.post("/api/runs", json=SIM).json for _ in range(5)]
    wait_for(runner.started.is_set)

    def cancel(run, token):
        return client.post(f"/api/runs/{run['id']}/cancel", headers={"X-Run-Token": token}).status_code

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: (job[0]["id"], cancel(*job)),
                                [(run, run["token"]) for run in runs for _ in range(8)]
                                + [(run, "wrong") for run in runs for _ in range(4)]))
    gate.set()
    for i, run in enumerate(runs):
        codes = sorted(code for run_id, code in answers if run_id == run["id"])
        if i == 0:  # the running one: every cancel is accepted until its trainer stops at the next step
            assert codes == [200] * 8 + [403] * 4, codes
        else:  # queued and playing ones end at the first cancel
            assert codes == [200] + [403] * 4 + [409] * 7, codes
        wait_for(lambda run=run: status_of(client, run["id"]) == "cancelled")
    assert client.post("/api/runs", json=REAL).status_code == 202  # the worker is free again


def test_a_full_real_queue_is_429_and_simulated_runs_never_wait_behind_it(apps):
    gate = threading.Event()
    runner = ScriptedRunner(gate=gate)
    client = apps(RUNNERS={"real": runner, "simulate": ScriptedRunner()}, MAX_QUEUE=2).test_client()
    assert client.post("/api/runs", json=REAL).status_code == 202
    wait_for(runner.started.is_set)
    assert [client.post("/api/runs", json=REAL).status_code for _ in range(3)] == [202, 202, 429]
    sim = client.post("/api/runs", json=SIM)
    assert sim.status_code == 202 and sim.json["queue_position"] == 0
    assert status_of(client, sim.json["id"]) == "succeeded"  # finished while every real run still waits
    gate.set()


def test_a_run_nobody_polls_finishes_and_stays_readable_until_eviction(apps):
    client = apps(MAX_FINISHED_RUNS=3).test_client()
    first = client.post("/api/runs", json=REAL).json
    wait_for(lambda: client.get("/api/health").json["jobs"]["runs"].get("succeeded") == 1)
    snap = client.get(f"/api/runs/{first['id']}").json
    assert snap["status"] == "succeeded" and len(snap["epochs"]) == 2 and snap["summary"]
    for _ in range(3):  # three more finished runs: the oldest is evicted, memory stays bounded
        client.post("/api/runs", json=SIM)
    client.post("/api/runs", json=SIM)
    assert sum(client.get("/api/health").json["jobs"]["runs"].values()) <= 4


def test_a_run_evicted_while_polled_is_a_404_that_says_so(apps):
    client = apps(MAX_FINISHED_RUNS=1).test_client()
    old = client.post("/api/runs", json=SIM).json
    assert status_of(client, old["id"]) == "succeeded"
    client.post("/api/runs", json=SIM)
    client.post("/api/runs", json=SIM)  # evicts the first
    gone = client.get(f"/api/runs/{old['id']}?since=3")
    assert gone.status_code == 404 and gone.is_json
    assert "finished and was removed" in gone.json["errors"]["id"]
    assert "at most 1" in gone.json["errors"]["id"]
    unknown = client.get("/api/runs/nothing")
    assert unknown.status_code == 404 and unknown.json["errors"]["id"] == "no run with id 'nothing'"


def test_a_run_from_before_a_restart_is_a_404_that_says_what_was_lost(apps):
    before = apps().test_client()
    run = before.post("/api/runs", json=SIM).json
    after = apps().test_client()  # a new server process: new boot id, empty memory
    gone = after.get(f"/api/runs/{run['id']}")
    assert gone.status_code == 404 and "started before the server restarted" in gone.json["errors"]["id"]
    assert "progress since your page's last update was lost" in gone.json["errors"]["id"]
    cancel = after.post(f"/api/runs/{run['id']}/cancel", headers={"X-Run-Token": run["token"]})
    assert cancel.status_code == 404


def test_shutdown_cancels_every_unfinished_run_and_marks_it(apps):
    gate = threading.Event()
    runner = ScriptedRunner(gate=gate)
    app = apps(RUNNERS={"real": runner, "simulate": ScriptedRunner()}, MAX_QUEUE=4, SIM_PACING_SECONDS=60.0)
    client = app.test_client()
    running = client.post("/api/runs", json={**REAL, "epochs": 50}).json
    wait_for(runner.started.is_set)
    queued = client.post("/api/runs", json=REAL).json
    playing = client.post("/api/runs", json=SIM).json
    logged = []
    gate.set()
    cancelled = service.shut_down(app.extensions["jobs"], log=logged.append)
    assert {(r["id"], r["status"]) for r in cancelled} == {(running["id"], "running"), (queued["id"], "queued"),
                                                           (playing["id"], "running")}
    for run in (running, queued, playing):
        snap = client.get(f"/api/runs/{run['id']}").json
        assert snap["status"] == "cancelled" and snap["error"] == service.SHUTDOWN_REASON
    assert len(logged) == 3 and all("shutdown: cancelled" in line for line in logged)
    late = client.post("/api/runs", json=SIM)
    assert late.status_code == 429 and "shutting down" in late.json["errors"]["mode"]
