"""The HTTP API through Flask's test client: good answers, and every kind of bad input as a clear 4xx."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.params import KNOBS

ROOT = Path(__file__).resolve().parents[2]


def test_health_and_params(client):
    assert client.get("/api/health").json["status"] == "ok"
    body = client.get("/api/params").json
    names = {row["name"] for row in body["params"]}
    assert {"noise_multiplier", "max_grad_norm", "batch_size", "learning_rate", "epochs", "dataset_size",
            "delta", "seed"} <= names
    for row in body["params"]:
        assert {"name", "type", "default", "label", "help"} <= set(row)
        if row["type"] in ("int", "float"):
            assert row["min"] <= row["default"] <= row["max"]
    assert set(body["modes"]) == {"simulate", "real"}


def test_defaults_are_the_tf_privacy_tutorial(client):
    rows = {row["name"]: row["default"] for row in client.get("/api/params").json["params"]}
    assert (rows["noise_multiplier"], rows["max_grad_norm"], rows["batch_size"], rows["learning_rate"],
            rows["delta"], rows["dataset_size"]) == (1.1, 1.0, 256, 0.15, 1e-5, 60000)


def test_privacy_answer_has_everything_the_contract_names(client):
    body = client.post("/api/privacy", json={"noise_multiplier": 1.1, "epochs": 60}).json
    for key in ("epsilon", "accountant", "sampling", "delta", "sample_rate", "steps", "epsilon_per_epoch",
                "statement"):
        assert key in body
    assert body["accountant"] == "rdp" and body["sampling"] == "poisson" and body["steps"] == 14040
    assert len(body["epsilon_per_epoch"]) == 60 and body["epsilon_per_epoch"][-1] == body["epsilon"]


def test_privacy_pld_and_infinite(client):
    pld = client.post("/api/privacy", json={"accountant": "pld", "epochs": 3}).json
    assert pld["accountant"] == "pld" and 0 < pld["epsilon"] < 10
    none = client.post("/api/privacy", json={"noise_multiplier": 0}).json
    assert none["epsilon"] is None and none["epsilon_infinite"] is True


def test_calibrate(client):
    body = client.post("/api/privacy/calibrate", json={"target_epsilon": 3, "epochs": 60}).json
    assert body["epsilon"] <= 3 and body["target_epsilon"] == 3
    assert body["noise_multiplier"] == pytest.approx(1.01, abs=0.01)


@pytest.mark.parametrize("body, field, fragment", [
    ({"noise_multiplier": "1.1"}, "noise_multiplier", "must be a number, got '1.1'"),
    ({"noise_multiplier": -1}, "noise_multiplier", "got -1"),
    ({"noise_multiplier": True}, "noise_multiplier", "got True"),
    ({"noise_multiplier": 10 ** 400}, "noise_multiplier", "must be"),
    ({"epochs": 2.5}, "epochs", "whole number, got 2.5"),
    ({"epochs": 1000}, "epochs", "between 1 and 100, got 1000"),
    ({"batch_size": 512, "dataset_size": 100}, "batch_size", "must not exceed dataset_size (100), got 512"),
    ({"delta": 0}, "delta", "got 0"),
    ({"delta": 1}, "delta", "got 1"),
    ({"accountant": "moments"}, "accountant", "got 'moments'"),
    ({"sampling": None}, "sampling", "got None"),
    ({"max_grad_norm": 1.0}, "max_grad_norm", "not a known field"),
    ({"noise_multiplier": [1]}, "noise_multiplier", "got [1]"),
])
def test_privacy_bad_fields(client, body, field, fragment):
    response = client.post("/api/privacy", json=body)
    assert response.status_code == 400
    assert fragment in response.json["errors"][field]


def test_every_bad_field_at_once(client):
    response = client.post("/api/privacy", json={"noise_multiplier": "x", "epochs": 0, "delta": 5, "oops": 1})
    assert set(response.json["errors"]) == {"noise_multiplier", "epochs", "delta", "oops"}


@pytest.mark.parametrize("data, content_type, status, fragment", [
    ("not json", "text/plain", 415, "Content-Type"),
    ("", "application/json", 400, "empty"),
    ("{", "application/json", 400, "not valid JSON"),
    ('{"noise_multiplier": NaN}', "application/json", 400, "NaN"),
    ('{"noise_multiplier": Infinity}', "application/json", 400, "Infinity"),
    ("[1, 2]", "application/json", 400, "JSON object"),
    ("\"text\"", "application/json", 400, "JSON object"),
    (b"\xff\xfe", "application/json", 400, "not valid JSON"),
    ("[" * 100000, "application/json", 413, "larger than"),
    ('{"a": "' + "x" * 17000 + '"}', "application/json", 413, "larger than"),
])
def test_malformed_bodies(client, data, content_type, status, fragment):
    response = client.post("/api/privacy", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.is_json
    assert fragment in str(response.json["errors"])


def test_deep_nesting_within_size_is_a_400_not_a_500(client):
    response = client.post("/api/privacy", data="[" * 8000, content_type="application/json")
    assert response.status_code == 400 and response.is_json


def test_unknown_endpoint_and_method_are_json(client):
    assert client.get("/api/nothing").json["errors"]
    response = client.get("/api/privacy")
    assert response.status_code == 405 and response.is_json


def test_out_of_reach_target(client):
    response = client.post("/api/privacy/calibrate", json={"target_epsilon": 0.01, "batch_size": 4096, "epochs": 100})
    assert response.status_code == 400 and "out of reach" in response.json["errors"]["target_epsilon"]


def test_pld_refusal_is_a_400_naming_the_accountant(client):
    response = client.post("/api/privacy", json={"accountant": "pld", "noise_multiplier": 0.2, "epochs": 100,
                                                 "batch_size": 4096})
    assert response.status_code == 400 and "rdp" in response.json["errors"]["accountant"]


def test_a_run_pld_cannot_account_is_refused_before_it_starts(client):
    response = client.post("/api/runs", json={"mode": "simulate", "accountant": "pld", "noise_multiplier": 0.1})
    assert response.status_code == 400 and "rdp" in response.json["errors"]["accountant"]


def test_security_headers(client):
    response = client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_app_start_imports_no_tensorflow():
    code = ("import sys; from app import create_app; c = create_app().test_client(); "
            "assert c.post('/api/privacy', json={}).status_code == 200; c.get('/api/params'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_knob_default_validates(client):
    from app.params import validate
    for knob in KNOBS:
        assert validate({knob.name: knob.default}, [knob.name])[knob.name] == knob.default
