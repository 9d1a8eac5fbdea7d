"""Fairness per client: rate limits on starting runs (real stricter than simulated, counted apart), the cap on real
runs one client has queued or running, 429 with Retry-After in the API's error shape, and whose address counts."""

import threading

import pytest

from tests.conftest import AVAILABLE, ON_BOTH_BACKENDS
from tests.scripted_runner import ScriptedRunner, wait_for

REAL = {"mode": "real", "epochs": 1, "dataset_size": 1000, "batch_size": 500}
SIM = {"mode": "simulate", "epochs": 1}


@pytest.fixture
def limited(apps):
    """An app with small limits and a real runner held at a gate (so real runs stay queued or running)."""
    gate = threading.Event()
    runner = ScriptedRunner(gate=gate)
    app = apps({"TESTING": True, "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0, "MAX_QUEUE": 10,
                      "RUNNERS": {"real": runner, "simulate": ScriptedRunner()},
                      "RATE_LIMIT_REAL": "3 per minute", "RATE_LIMIT_SIMULATE": "4 per minute",
                      "REAL_RUNS_PER_CLIENT": 2})
    yield app, runner
    gate.set()


def post(client, body, address="192.0.2.1", **headers):
    return client.post("/api/runs", json=body, environ_base={"REMOTE_ADDR": address}, headers=headers)


def assert_429(response, fragment):
    assert response.status_code == 429 and response.is_json
    assert fragment in response.json["errors"]["mode"], response.json
    assert int(response.headers["Retry-After"]) >= 1


@ON_BOTH_BACKENDS  # on Redis the counts are shared by every web process
def test_simulated_runs_are_rate_limited_per_address_and_bad_requests_cost_nothing(limited):
    client = limited[0].test_client()
    for _ in range(3):
        assert post(client, {"mode": "simulate", "epochs": 0}).status_code == 400  # refused: not counted
    assert [post(client, SIM).status_code for _ in range(4)] == [202] * 4
    assert_429(post(client, SIM), "at most 4 per minute")
    assert post(client, SIM, address="192.0.2.2").status_code == 202  # another student is not affected


@ON_BOTH_BACKENDS
def test_real_runs_have_their_own_stricter_limit_and_simulations_never_wait_for_it(limited):
    client = limited[0].test_client()
    for _ in range(3):  # each cancelled at once, so the cap on live runs never bites: only the rate does
        run = post(client, REAL).json
        assert client.post(f"/api/runs/{run['id']}/cancel", headers={"X-Run-Token": run["token"]}).status_code == 200
    assert_429(post(client, REAL), "too many real runs started from your address (at most 3 per minute)")
    assert post(client, SIM).status_code == 202  # the simulate quota is separate


@ON_BOTH_BACKENDS
def test_one_client_cannot_fill_the_real_queue(limited):
    app, runner = limited
    client = app.test_client()
    assert post(client, REAL).status_code == 202
    wait_for(runner.started.is_set)
    assert post(client, REAL).status_code == 202
    assert_429(post(client, REAL), "you already have 2 real runs queued or running")
    assert post(client, REAL, address="192.0.2.7").status_code == 202  # the queue itself has room for others
    assert post(client, SIM).status_code == 202


@ON_BOTH_BACKENDS
def test_forwarded_for_counts_only_behind_a_trusted_proxy(apps, backend):
    def app_with(hops):
        return apps({"TESTING": True, "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0,
                           "RUNNERS": {"real": ScriptedRunner(), "simulate": ScriptedRunner()},
                           "RATE_LIMIT_SIMULATE": "1 per minute", "TRUSTED_PROXY_HOPS": hops})

    direct = app_with(0)
    c = direct.test_client()
    assert post(c, SIM, **{"X-Forwarded-For": "203.0.113.1"}).status_code == 202
    # Untrusted: a client picking another X-Forwarded-For is still the same address.
    assert post(c, SIM, **{"X-Forwarded-For": "203.0.113.2"}).status_code == 429
    proxied = app_with(1)  # on Redis the two apps share the counts, as two web processes do
    c = proxied.test_client()
    assert post(c, SIM, **{"X-Forwarded-For": "203.0.113.1"}).status_code == 202
    assert post(c, SIM, **{"X-Forwarded-For": "203.0.113.2"}).status_code == 202  # two students behind the proxy
    assert post(c, SIM, **{"X-Forwarded-For": "203.0.113.1"}).status_code == 429


def test_pld_queries_beyond_those_in_flight_are_refused_at_once_and_rdp_never(client):
    """PLD requests waiting for the accountant would hold every server thread; the third at once is a 429."""
    from app.web import api_privacy

    for _ in range(api_privacy.PLD_IN_FLIGHT):  # two PLD computations in flight
        assert api_privacy._pld_admission.acquire(blocking=False)
    try:
        busy = client.post("/api/privacy", json={"accountant": "pld", "epochs": 3})
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        assert "PLD accountant is busy" in busy.json["errors"]["accountant"]
        assert client.post("/api/privacy/calibrate", json={"accountant": "pld"}).status_code == 429
        assert client.post("/api/privacy", json={"accountant": "rdp", "epochs": 3}).status_code == 200
    finally:
        for _ in range(api_privacy.PLD_IN_FLIGHT):
            api_privacy._pld_admission.release()
    assert client.post("/api/privacy", json={"accountant": "pld", "epochs": 3}).status_code == 200
