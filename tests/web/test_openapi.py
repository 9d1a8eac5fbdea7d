"""The OpenAPI document: generated from the knob table and the record shapes, complete (every route, every knob),
valid JSON Schema, true to what runs really report, and rendered as a page under the strict CSP."""

import pytest
from jsonschema import Draft202012Validator

from app import create_app
from app import params as P
from app import schemas
from app.web import openapi
from tests.conftest import AVAILABLE
from tests.scripted_runner import wait_for
from tests.web.test_page import _Inline


@pytest.fixture
def doc(client):
    return client.get("/api/openapi.json").json


def validator(doc, name):
    """A validator for component ``name`` that resolves the document's ``#/components/...`` references."""
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def test_every_route_of_the_app_is_documented(app, doc):
    assert openapi.undocumented(app) == [], "add an entry to app/web/openapi.py ROUTES for each"
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (openapi.openapi_path(rule.rule), method.lower()) in documented, rule.rule


def test_every_knob_each_request_takes_is_in_its_schema_with_the_tables_range(doc):
    components = doc["components"]["schemas"]
    for component, fields in (("PrivacyRequest", P.PRIVACY_FIELDS), ("CalibrateRequest", P.CALIBRATE_FIELDS),
                              ("RunRequest", P.RUN_FIELDS)):
        properties = components[component]["properties"]
        assert set(properties) == set(fields), component
        for name in fields:
            knob, schema = P.KNOB_BY_NAME[name], properties[name]
            assert schema["default"] == knob.default and schema["title"] == knob.label
            if knob.type in ("int", "float"):
                assert (schema["minimum"], schema["maximum"]) == (knob.min, knob.max), name
            if knob.choices:
                assert schema["enum"] == list(knob.choices), name


def test_a_new_knob_appears_without_an_edit_to_the_schemas():
    knob = P.Knob("momentum", "float", 0.0, "Momentum", "help", min=0.0, max=0.99)
    schema = schemas.knob_schema(knob)
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("number", 0.0, 0.99)
    real_only = schemas.knob_schema(P.Knob("model", "choice", "tutorial_cnn", "Model", "help",
                                           choices=("tutorial_cnn", "tanh_cnn"), simulated_as="tutorial_cnn"))
    assert real_only["enum"] == ["tutorial_cnn", "tanh_cnn"] and "Real runs only" in real_only["description"]


def test_the_document_is_valid_openapi_3_1_json_schema(doc):
    assert doc["openapi"].startswith("3.1")
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    refs = {ref for ref in _walk(doc, "$ref")}
    assert refs and all(ref.rsplit("/", 1)[-1] in doc["components"]["schemas"] for ref in refs)


def _walk(node, key):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def test_a_simulated_runs_answers_match_the_document():
    """The real simulator through the real app: every answer of a run's life validates against its schema."""
    app = create_app({"TESTING": True, "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0})
    try:
        client = app.test_client()
        doc = client.get("/api/openapi.json").json
        started = client.post("/api/runs", json={"mode": "simulate", "epochs": 3, "dataset_size": 2000})
        validator(doc, "RunStarted").validate(started.json)
        wait_for(lambda: client.get(f"/api/runs/{started.json['id']}").json["status"] == "succeeded", timeout=60)
        snap = client.get(f"/api/runs/{started.json['id']}").json
        validator(doc, "Run").validate(snap)
        assert len(snap["epochs"]) == 3 and snap["summary"]["simulated"] is True
        validator(doc, "ParamsAnswer").validate(client.get("/api/params").json)
        validator(doc, "Health").validate(client.get("/api/health").json)
        validator(doc, "PrivacyReport").validate(client.post("/api/privacy", json={}).json)
        validator(doc, "Errors").validate(client.post("/api/privacy", json={"epochs": 0}).json)
    finally:
        app.extensions["jobs"].close()


@pytest.mark.training
def test_a_real_runs_records_match_the_document(monkeypatch):
    """A real (tiny) training run's snapshot validates too: the schema describes what the trainer reports."""
    import os

    if not os.environ.get("MNIST_PATH"):
        monkeypatch.setenv("MNIST_PATH", "/work/shared/data/mnist.npz")
    app = create_app({"TESTING": True})
    try:
        client = app.test_client()
        doc = client.get("/api/openapi.json").json
        run = client.post("/api/runs", json={"mode": "real", "epochs": 1, "dataset_size": 200, "batch_size": 50,
                                             "audit": "canaries", "canaries": 50})
        assert run.status_code == 202, run.json
        wait_for(lambda: client.get(f"/api/runs/{run.json['id']}").json["status"] in ("succeeded", "failed"),
                 timeout=180)
        snap = client.get(f"/api/runs/{run.json['id']}").json
        assert snap["status"] == "succeeded", snap["error"]
        validator(doc, "Run").validate(snap)
        assert snap["epochs"] and snap["steps"] and snap["summary"]["simulated"] is False
        assert {"membership", "canaries"} <= set(snap["summary"]["audit"])  # and validated above
    finally:
        app.extensions["jobs"].close()


def test_the_docs_page_renders_every_operation_and_knob_under_the_csp(client, doc):
    response = client.get("/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "script-src 'self'" in response.headers["Content-Security-Policy"]
    for path, operations in doc["paths"].items():
        for method in operations:
            assert f"{method.upper()} {path}" in html
    for name in P.RUN_FIELDS:
        assert f"<code>{name}</code>" in html
    parsed = _Inline()
    parsed.feed(html)
    assert parsed.inline_scripts == 0 and parsed.styles == 0 and parsed.scripts == []
    for url in parsed.links:
        assert client.get(url).status_code == 200, url


def test_the_run_routes_document_the_redis_backends_503_with_retry_after(client):
    """A 503 (the Redis backend's run store unreachable) is part of the contract of every route that touches runs."""
    paths = client.get("/api/openapi.json").json["paths"]
    for path, method in (("/api/runs", "post"), ("/api/runs/{run_id}", "get"), ("/api/runs/{run_id}/cancel", "post"),
                         ("/api/health", "get")):
        response = paths[path][method]["responses"]["503"]
        assert response["headers"]["Retry-After"]["required"], path
        assert response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Errors", path
        assert "REDIS_URL" in paths[path][method]["description"], path
