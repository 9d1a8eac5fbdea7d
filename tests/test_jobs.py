"""The job manager and the run API with a fake runner: queueing, snapshots, cursors, cancel, failure, eviction."""

import threading
import time

import pytest

from app.jobs import JobManager, Lane, NotCancellable, QueueFull, UnknownRun, WrongToken
from tests.fakes import FakeRunner

PARAMS = {"mode": "real", "epochs": 3, "steps_per_epoch": 2, "steps": 6}


def wait_for(predicate, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def manager(runner, **kwargs):
    lanes = {"real": Lane(runner, workers=1, max_queue=kwargs.pop("max_queue", 2)),
             "simulate": Lane(runner, pacing_seconds=kwargs.pop("pacing", 0.0))}
    return JobManager(lanes, **kwargs)


def test_run_completes_with_records_and_cursor():
    jobs = manager(FakeRunner())
    started = jobs.submit(PARAMS)
    assert set(started) == {"id", "token", "status", "queue_position"}
    wait_for(lambda: jobs.snapshot(started["id"])["status"] == "succeeded")
    snap = jobs.snapshot(started["id"])
    assert [e["epoch"] for e in snap["epochs"]] == [1, 2, 3] and len(snap["steps"]) == 6
    assert "type" not in snap["epochs"][0]
    assert snap["progress"]["fraction"] == 1.0 and snap["cursor"] == 9
    assert jobs.snapshot(started["id"], since=snap["cursor"])["epochs"] == []
    later = jobs.snapshot(started["id"], since=4)
    assert [s["step"] for s in later["steps"]] == [4, 5, 6] and [e["epoch"] for e in later["epochs"]] == [2, 3]
    jobs.close()


def test_queue_bound_positions_and_429():
    gate = threading.Event()
    runner = FakeRunner(gate=gate)
    jobs = manager(runner, max_queue=2)
    first = jobs.submit(PARAMS)
    wait_for(runner.started.is_set)
    second, third = jobs.submit(PARAMS), jobs.submit(PARAMS)
    assert (second["queue_position"], third["queue_position"]) == (1, 2)
    with pytest.raises(QueueFull) as caught:
        jobs.submit(PARAMS)
    assert caught.value.retry_after > 0
    gate.set()
    wait_for(lambda: jobs.snapshot(third["id"])["status"] == "succeeded")
    assert jobs.snapshot(first["id"])["status"] == "succeeded"
    jobs.close()


def test_cancel_running_within_a_step_and_queued():
    gate = threading.Event()
    runner = FakeRunner(gate=gate)
    jobs = manager(runner)
    running = jobs.submit({**PARAMS, "epochs": 50})
    wait_for(runner.started.is_set)
    queued = jobs.submit(PARAMS)
    with pytest.raises(WrongToken):
        jobs.cancel(running["id"], "wrong")
    assert jobs.cancel(queued["id"], queued["token"])["status"] == "cancelled"
    jobs.cancel(running["id"], running["token"])
    gate.set()
    wait_for(lambda: jobs.snapshot(running["id"])["status"] == "cancelled")
    assert len(jobs.snapshot(running["id"])["steps"]) <= 2  # stopped within one step of the cancel
    with pytest.raises(NotCancellable):
        jobs.cancel(running["id"], running["token"])
    with pytest.raises(UnknownRun):
        jobs.snapshot("nope")
    jobs.close()


def test_failure_is_recorded_and_the_next_run_goes_on():
    jobs = manager(FakeRunner())
    failed = jobs.submit({**PARAMS, "fail_at_epoch": 2})
    wait_for(lambda: jobs.snapshot(failed["id"])["status"] == "failed")
    snap = jobs.snapshot(failed["id"])
    assert "fake failure at epoch 2" in snap["error"] and [e["epoch"] for e in snap["epochs"]] == [1]
    ok = jobs.submit(PARAMS)
    wait_for(lambda: jobs.snapshot(ok["id"])["status"] == "succeeded")
    jobs.close()


def test_paced_runs_release_over_time_hold_no_worker_and_cancel_freezes():
    clock = Clock()
    jobs = manager(FakeRunner(), pacing=3.0, clock=clock)
    sim = jobs.submit({**PARAMS, "mode": "simulate"})
    assert jobs.snapshot(sim["id"])["status"] == "running" and jobs.snapshot(sim["id"])["epochs"] == []
    clock.now += 1.5
    half = jobs.snapshot(sim["id"])
    assert half["status"] == "running" and 0 < len(half["epochs"]) + len(half["steps"]) < 9
    assert jobs.stats()["queued"]["real"] == 0
    clock.now += 2.0
    assert jobs.snapshot(sim["id"])["status"] == "succeeded"
    other = jobs.submit({**PARAMS, "mode": "simulate"})
    clock.now += 1.0
    cancelled = jobs.cancel(other["id"], other["token"])
    clock.now += 10
    assert jobs.snapshot(other["id"])["epochs"] == cancelled["epochs"]
    assert jobs.snapshot(other["id"])["status"] == "cancelled"
    jobs.close()


def test_thirty_simulations_at_once_do_not_queue():
    clock = Clock()
    jobs = manager(FakeRunner(), pacing=2.0, clock=clock)
    ids = [jobs.submit({**PARAMS, "mode": "simulate"})["id"] for _ in range(30)]
    assert all(jobs.snapshot(i)["queue_position"] == 0 for i in ids)
    clock.now += 2.5
    assert all(jobs.snapshot(i)["status"] == "succeeded" for i in ids)
    jobs.close()


def test_eviction_keeps_memory_flat():
    clock = Clock()
    jobs = manager(FakeRunner(), clock=clock, max_finished=5, ttl_seconds=60)
    ids = [jobs.submit({**PARAMS, "mode": "simulate"})["id"] for _ in range(20)]
    assert len(jobs._runs) <= 6
    with pytest.raises(UnknownRun):
        jobs.snapshot(ids[0])
    clock.now += 120
    jobs.submit({**PARAMS, "mode": "simulate"})
    assert len(jobs._runs) == 1
    jobs.close()


def test_step_records_are_capped():
    from app import jobs as jobs_module
    jobs = manager(FakeRunner())
    run = jobs.submit({**PARAMS, "epochs": 2, "steps_per_epoch": jobs_module.MAX_STEP_RECORDS})
    wait_for(lambda: jobs.snapshot(run["id"])["status"] == "succeeded")
    assert len(jobs.snapshot(run["id"])["steps"]) == jobs_module.MAX_STEP_RECORDS
    jobs.close()


# --- the same through HTTP -----------------------------------------------------------------------------------------

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


def test_queue_full_is_429_with_retry_after(app, client, runner):
    gate = threading.Event()
    runner.gate = gate
    body = {"mode": "real", "epochs": 1, "dataset_size": 1000, "batch_size": 500}
    assert client.post("/api/runs", json=body).status_code == 202
    wait_for(runner.started.is_set)
    assert [client.post("/api/runs", json=body).status_code for _ in range(3)] == [202, 202, 429]
    response = client.post("/api/runs", json={"mode": "real", "epochs": 1})
    assert response.headers["Retry-After"] and "queue is full" in response.json["errors"]["mode"]
    gate.set()


def test_unavailable_mode_is_a_clear_400():
    from app import create_app
    modes = {"simulate": {"available": True, "reason": None},
             "real": {"available": False, "reason": "MNIST_PATH is set to '/x', but no such file exists"}}
    app = create_app({"TESTING": True, "MODES": modes, "RUNNERS": {"real": FakeRunner(), "simulate": FakeRunner()}})
    response = app.test_client().post("/api/runs", json={"mode": "real"})
    assert response.status_code == 400 and "no such file" in response.json["errors"]["mode"]
    app.extensions["jobs"].close()


def test_budget_stop_plans_the_last_epoch_within_budget(client):
    run = client.post("/api/runs", json={"mode": "simulate", "epochs": 30, "budget_stop": True,
                                         "target_epsilon": 1.5}).json
    snap = client.get(f"/api/runs/{run['id']}").json
    assert snap["budget"]["stops_early"] and snap["params"]["epochs"] == snap["budget"]["epochs_within_budget"]
    assert snap["summary"]["final_epsilon"] <= 1.5
    too_tight = client.post("/api/runs", json={"mode": "simulate", "budget_stop": True, "target_epsilon": 0.01})
    assert too_tight.status_code == 400 and "even one epoch" in too_tight.json["errors"]["target_epsilon"]


def test_recommendations_are_live_and_computed_once_per_new_epoch():
    clock, calls = Clock(), []

    def advise(params, epochs):
        calls.append(len(epochs))
        return [{"id": "seen", "detail": f"{len(epochs)} epochs"}] if epochs else []

    lanes = {"simulate": Lane(FakeRunner(), pacing_seconds=3.0)}
    jobs = JobManager(lanes, advise=advise, clock=clock)
    run = jobs.submit({**PARAMS, "mode": "simulate"})
    assert jobs.snapshot(run["id"])["recommendations"] == []
    clock.now += 2.1  # about two thirds of the records released: epochs 1 and 2 of 3
    partial = jobs.snapshot(run["id"])
    visible = len(partial["epochs"])
    assert 0 < visible < 3 and partial["recommendations"][0]["detail"] == f"{visible} epochs"
    jobs.snapshot(run["id"], since=partial["cursor"])  # no new epoch: the adviser is not asked again
    assert calls.count(visible) == 1
    clock.now += 5
    assert jobs.snapshot(run["id"])["recommendations"][0]["detail"] == "3 epochs"
    jobs.close()
