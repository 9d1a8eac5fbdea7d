"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis), in process through WSGI.

Every operation gets schema-valid and schema-violating requests; each answer must be no 5xx, conform to the document
(status, content type, body and headers), be JSON under /api/, and every 4xx must name the field it is about. A
stateful lane follows the document's links (start a run, poll it, cancel it with its token). The app runs with
scripted runners, so no training starts. ``FUZZ_CASES`` sets the cases per operation (default lane 50, about 230 in
all; the slow lane 600, thousands).
"""

from __future__ import annotations

import json
import os
import time

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)

from app import create_app
from tests.conftest import AVAILABLE
from tests.scripted_runner import ScriptedRunner

# Error keys that name the request itself rather than one of its fields.
REQUEST_KEYS = {"body", "request", "mode", "id", "token", "since", "status"}


def api_is_json(ctx, response, case):
    """Under /api/ every error is JSON, and every success too, but where the document declares another type (the
    take-home script is text/x-python): content_type_conformance holds those to their declared type."""
    if not case.path.startswith("/api/"):
        return
    declared = case.operation.definition.raw["responses"].get(str(response.status_code), {}).get("content", {})
    if response.status_code < 400 and declared and not any(t.startswith("application/json") for t in declared):
        return
    kind = response.headers.get("content-type", [""])[0]
    assert kind.startswith("application/json"), f"{case.method} {case.formatted_path} answered {kind!r}"


def errors_name_their_field(ctx, response, case):
    """A 4xx under /api/ is {"errors": {field: message}}, every field one the request sent (or the request itself)."""
    if not (case.path.startswith("/api/") and 400 <= response.status_code < 500):
        return
    errors = json.loads(response.content)["errors"]
    assert errors and all(isinstance(m, str) and m for m in errors.values()), errors
    sent = set(REQUEST_KEYS) | set(case.query or {}) | set(case.path_parameters or {})
    sent |= {name.lower() for name in case.headers or {}} and {"token"}
    if isinstance(case.body, dict):
        sent |= {str(key)[:60] for key in case.body}
        sent |= set(case.operation.definition.raw.get("requestBody", {}) and _body_fields(case))
    assert set(errors) <= sent, f"errors {sorted(errors)} name no field of {case.method} {case.formatted_path}"


def _body_fields(case) -> set:
    ref = case.operation.definition.raw["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return set(case.operation.schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"])


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]
# Not positive_data_acceptance: a body the schema allows can still be refused by a rule across fields that JSON
# Schema cannot say (batch_size above dataset_size, PLD refusing where RDP's epsilon exceeds 50) or by the queue.
CUSTOM = [api_is_json, errors_name_their_field]


@pytest.fixture(scope="module")
def fuzz_app():
    app = create_app({"TESTING": True, "MODES": AVAILABLE, "SIM_PACING_SECONDS": 0.0, "MAX_QUEUE": 4,
                      "RUNNERS": {"real": ScriptedRunner(), "simulate": ScriptedRunner()},
                      "RATELIMIT_ENABLED": False, "REAL_RUNS_PER_CLIENT": 0, "SUGGEST_SECONDS": 0.2})
    yield app
    app.extensions["jobs"].close()


# Valid requests here run the accountant's noise search, up to 10 s each for PLD on this machine, or the settings
# search (its time budget cut to 0.2 s above, plus the PLD epsilon of its candidates): a tenth as many.
SEARCHING = {"POST /api/privacy/calibrate", "POST /api/suggest"}


def fuzz(app, per_operation: int) -> dict:
    """Run about ``per_operation`` generated cases, half schema-valid and half not, against every operation; returns
    the cases run per operation and mode."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    counts = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:1 + _constrained(operation)]:
            budget = per_operation // 2
            if label in SEARCHING and mode is GenerationMode.POSITIVE:
                budget = max(2, per_operation // 20)
            key = f"{label} {mode.value}"
            counts[key] = 0
            started = time.monotonic()
            try:
                _run(operation.as_strategy(generation_mode=mode), budget, lambda: counts.__setitem__(key, counts[key] + 1))
            except Unsatisfiable:  # no schema-violating input exists (an operation that takes nothing)
                counts.pop(key)
            print(f"{key}: {time.monotonic() - started:.1f} s")
    return counts


def _constrained(operation) -> bool:
    """Whether the operation takes a JSON body, where schema-violating requests are worth generating. (A path
    segment cannot be a non-string, and hypothesis spends a minute proving it; bad cursors are in test_fuzz.py.)"""
    return "requestBody" in operation.definition.raw


def _run(strategy, budget: int, count) -> None:
    @settings(max_examples=budget, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def one(case):
        count()
        case.call_and_validate(checks=CHECKS, additional_checks=CUSTOM)

    one()


def test_fuzz_every_operation_from_the_openapi_document(fuzz_app):
    counts = fuzz(fuzz_app, int(os.environ.get("FUZZ_CASES", 50)))
    print("schemathesis cases:", sum(counts.values()), counts)
    assert sum(counts.values()) >= 200 and all(n > 0 for n in counts.values()), counts


@pytest.mark.slow
def test_fuzz_thousands_of_cases(fuzz_app):
    counts = fuzz(fuzz_app, int(os.environ.get("FUZZ_CASES", 600)))
    print("schemathesis cases:", sum(counts.values()), counts)
    assert sum(counts.values()) >= 2500, counts  # 2,736 at the default 600 per operation


def test_stateful_runs_follow_the_documents_links(fuzz_app):
    """Sequences the document's links allow (start a run, poll it by the id it returned, cancel it with its token):
    every answer passes the same checks as the single-operation lane, and the links are really followed (a run the
    machine started is polled or cancelled by its own id at least once)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)
    followed = []

    class RunWorkflow(schema.as_state_machine()):
        def after_call(self, response, case):
            if case.path_parameters and "run_id" in case.path_parameters and response.status_code < 400:
                followed.append(f"{case.method} {case.path}")

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, additional_checks=CUSTOM, transport_kwargs=kwargs)

    RunWorkflow.run(settings=settings(max_examples=int(os.environ.get("FUZZ_STATEFUL", 25)), deadline=None,
                                      database=None, stateful_step_count=6,
                                      suppress_health_check=list(HealthCheck)))
    assert followed, "no sequence followed a link from a started run to its own id"
    print("followed links:", {step: followed.count(step) for step in set(followed)})
