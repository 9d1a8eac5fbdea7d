"""Fuzzing the JSON API: whatever a client sends, the answer is JSON with a 2xx or a 4xx naming the problem, never a
500 (hypothesis generates the bodies; the app runs with fake runners, so no training starts)."""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.params import KNOBS

NAMES = [k.name for k in KNOBS] + ["junk", ""]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10 ** 30, max_value=10 ** 30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["rdp", "pld", "poisson", "shuffle", "simulate", "real"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
BODIES = st.one_of(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=8), VALUES)
ENDPOINTS = ("/api/privacy", "/api/privacy/calibrate", "/api/runs")
ALLOWED = {200, 202, 400, 413, 415, 429}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, endpoint=st.sampled_from(ENDPOINTS))
def test_any_json_body_gets_json_and_no_server_error(client, body, endpoint):
    response = client.post(endpoint, data=json.dumps(body), content_type="application/json")
    assert response.status_code in ALLOWED, (response.status_code, body, response.data[:300])
    assert response.is_json
    if response.status_code >= 400:
        errors = response.json["errors"]
        assert errors and all(isinstance(message, str) and message for message in errors.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", "", "x/y"]))
def test_any_bytes_get_a_clear_4xx(client, raw, content_type):
    response = client.post("/api/privacy", data=raw, content_type=content_type)
    assert response.status_code in ALLOWED and response.is_json


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_id=st.text(min_size=1, max_size=40), since=st.text(max_size=15))
def test_any_run_id_and_cursor_get_a_clear_answer(client, run_id, since):
    response = client.get(f"/api/runs/{quote(run_id, safe='')}", query_string={"since": since})
    assert response.status_code in {400, 404} and response.is_json


@pytest.mark.parametrize("since", ["²", "١٢", "-1", "1.5", "9" * 13])
def test_cursors_that_are_not_ascii_whole_numbers_are_a_400(client, since):
    run = client.post("/api/runs", json={"mode": "simulate", "epochs": 1}).json
    response = client.get(f"/api/runs/{run['id']}", query_string={"since": since})
    assert response.status_code == 400 and "cursor" in response.json["errors"]["since"]


def test_doubled_slashes_are_a_json_404_not_a_redirect(client):
    response = client.get("/api/runs//0")
    assert response.status_code == 404 and response.is_json
