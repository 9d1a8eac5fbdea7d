"""The run API through the real Flask app with a scripted runner: round trip, errors, queue limits, budget stop."""

import threading

import pytest

from tests.conftest import ON_BOTH_BACKENDS
from tests.scripted_runner import ScriptedRunner, wait_for

pytestmark = ON_BOTH_BACKENDS


def test_run_api_round_trip(client):
    started = client.post("/api/runs", json={"mode": "simulate", "epochs": 2, "dataset_size": 1000,
                                             "batch_size": 500})
    assert started.status_code == 202
    run = started.json
    snap = client.get(f"/api/runs/{run['id']}").json
    assert snap["status"] == "succeeded" and len(snap["epochs"]) == 2
    assert snap["params"]["steps_per_epoch"] == 2 and snap["params"]["sampling"] == "poisson"
    assert snap["summary"]["accountant"] == "rdp" and snap["summary"]["delta"] == 1e-5
    assert "Poisson" in snap["summary"]["statement"] and "not covered" in snap["summary"]["statement"]
    assert client.get(f"/api/runs/{run['id']}?since={snap['cursor']}").json["epochs"] == []


def test_run_api_errors(client):
    assert client.post("/api/runs", json={"mode": "fast"}).status_code == 400
    assert client.get("/api/runs/unknown").status_code == 404
    run = client.post("/api/runs", json={"mode": "simulate", "epochs": 1}).json
    assert client.get(f"/api/runs/{run['id']}?since=-1").status_code == 400
    assert client.post(f"/api/runs/{run['id']}/cancel", headers={"X-Run-Token": "bad"}).status_code == 403
    assert client.post(f"/api/runs/{run['id']}/cancel", headers={"X-Run-Token": run["token"]}).status_code == 409


def test_queue_full_is_429_with_retry_after(app, client, scripted_runner):
    gate = threading.Event()
    scripted_runner.gate = gate
    body = {"mode": "real", "epochs": 1, "dataset_size": 1000, "batch_size": 500}
    assert client.post("/api/runs", json=body).status_code == 202
    wait_for(scripted_runner.started.is_set)
    assert [client.post("/api/runs", json=body).status_code for _ in range(3)] == [202, 202, 429]
    response = client.post("/api/runs", json={"mode": "real", "epochs": 1})
    assert response.headers["Retry-After"] and "queue is full" in response.json["errors"]["mode"]
    gate.set()


def test_unavailable_mode_is_a_clear_400(apps):
    modes = {"simulate": {"available": True, "reason": None},
             "real": {"available": False, "reason": "MNIST_PATH is set to '/x', but no such file exists"}}
    app = apps({"TESTING": True, "MODES": modes, "RUNNERS": {"real": ScriptedRunner(), "simulate": ScriptedRunner()}})
    response = app.test_client().post("/api/runs", json={"mode": "real"})
    assert response.status_code == 400 and "no such file" in response.json["errors"]["mode"]


def test_budget_stop_plans_the_last_epoch_within_budget(client):
    run = client.post("/api/runs", json={"mode": "simulate", "epochs": 30, "budget_stop": True,
                                         "target_epsilon": 1.5}).json
    snap = client.get(f"/api/runs/{run['id']}").json
    assert snap["budget"]["stops_early"] and snap["params"]["epochs"] == snap["budget"]["epochs_within_budget"]
    assert snap["summary"]["final_epsilon"] <= 1.5
    too_tight = client.post("/api/runs", json={"mode": "simulate", "budget_stop": True, "target_epsilon": 0.01})
    assert too_tight.status_code == 400 and "even one epoch" in too_tight.json["errors"]["target_epsilon"]


def test_audits_are_for_real_runs_and_canaries_must_fit(client):
    simulated = client.post("/api/runs", json={"mode": "simulate", "audit": "membership"})
    assert simulated.status_code == 400 and "real runs only" in simulated.json["errors"]["audit"]
    assert "real runs only" in client.post("/api/runs", json={"mode": "simulate", "canaries": 500}).json["errors"][
        "canaries"]
    assert client.post("/api/runs", json={"mode": "simulate"}).status_code == 202  # takes audit none
    unknown = client.post("/api/runs", json={"mode": "real", "audit": "shadow"})
    assert unknown.status_code == 400 and "'shadow'" in unknown.json["errors"]["audit"]
    too_many = client.post("/api/runs", json={"mode": "real", "audit": "canaries", "canaries": 600,
                                              "dataset_size": 1000})
    assert too_many.status_code == 400 and "half of dataset_size" in too_many.json["errors"]["canaries"]
    no_room = client.post("/api/runs", json={"mode": "real", "audit": "canaries", "canaries": 1000,
                                             "dataset_size": 59500})
    assert no_room.status_code == 400 and "at most 500" in no_room.json["errors"]["canaries"]
    unused = client.post("/api/runs", json={"mode": "real", "audit": "membership", "canaries": 5000,
                                            "dataset_size": 1000})
    assert unused.status_code == 202  # canaries only matter to the canary audit
