"""``GET /api/openapi.json`` (the OpenAPI 3.1 document of every route) and ``GET /docs`` (the same document as a page,
rendered on the server: no third-party script, so the strict CSP holds; outside ``/api/``, where every answer is
JSON).

The document is generated: the paths from the app's URL map, each described by its entry in ``ROUTES`` (keyed by
Flask endpoint); the request bodies from the knob table and the answers from the record shapes (``app.schemas``). A
new knob appears by itself; a new route needs one entry in ``ROUTES``, and tests/web/test_openapi.py fails until it
has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Blueprint, Flask, current_app, render_template

from app import schemas
from app.web.errors import answer

bp = Blueprint("api_docs", __name__)


@dataclass(frozen=True)
class Route:
    """One operation's documentation: what it does, what it takes and what it answers (status -> component name, or
    a media type for pages and files)."""

    summary: str
    responses: dict
    body: str | None = None  # component name of the JSON body it takes
    parameters: tuple = ()  # OpenAPI parameter objects besides the path's own
    description: str = ""
    tag: str = "api"
    links: dict = field(default_factory=dict)  # status -> OpenAPI links (where an answer's fields lead)


RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200},
          "description": "the `id` that `POST /api/runs` answered"}
SINCE = {"name": "since", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
         "description": "a `cursor` from an earlier answer: only the records after it"}
TOKEN = {"name": "X-Run-Token", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 200},
         "description": "the run's `token` from `POST /api/runs`"}
RUN_LINKS = {"202": {
    "GetRun": {"operationId": "runs_show", "parameters": {"run_id": "$response.body#/id"}},
    "CancelRun": {"operationId": "runs_cancel",
                  "parameters": {"run_id": "$response.body#/id", "header.X-Run-Token": "$response.body#/token"}}}}
HTML, JS, SVG = "text/html", "text/javascript", "image/svg+xml"

UNAVAILABLE = ("503 (naming `backend`, with Retry-After) only on the Redis backend (`REDIS_URL`), while Redis cannot "
               "be reached; the runs are kept there.")

# Flask endpoint -> its documentation. Status codes list what the route can answer; every 4xx is an Errors body.
ROUTES: dict[str, Route] = {
    "api_params.params_table": Route(
        "The parameter table, the modes available here and how runs sample", {"200": "ParamsAnswer"}),
    "api_privacy.privacy_report": Route(
        "Epsilon of a setting, per epoch, with its statement", {"200": "PrivacyReport", "400": "Errors",
                                                                "413": "Errors", "415": "Errors", "429": "Errors"},
        body="PrivacyRequest",
        description="400 also when the PLD accountant refuses (RDP's epsilon above 50); 429 (naming `accountant`) "
                    "when PLD is busy with other queries."),
    "api_privacy.privacy_calibrate": Route(
        "The smallest noise multiplier whose epsilon meets a target", {"200": "PrivacyReport", "400": "Errors",
                                                                       "413": "Errors", "415": "Errors",
                                                                       "429": "Errors"},
        body="CalibrateRequest", description="400 when the target is out of reach within the noise range; 429 "
                                             "when PLD is busy."),
    "api_runs.runs_create": Route(
        "Start a run (simulated or real)", {"202": "RunStarted", "400": "Errors", "413": "Errors", "415": "Errors",
                                            "429": "Errors", "503": "Errors"},
        body="RunRequest", links=RUN_LINKS,
        description="429 with Retry-After: the real queue is full, this client already has its share of real runs "
                    "queued or running, or it started runs faster than the per-client rate limit. " + UNAVAILABLE),
    "api_runs.runs_show": Route(
        "A run's progress and records (only the new ones with `since`)", {"200": "Run", "400": "Errors",
                                                                          "404": "Errors", "503": "Errors"},
        parameters=(SINCE,),
        description="404 names why: unknown id, finished and evicted, or started before the server restarted. "
                    + UNAVAILABLE),
    "api_runs.runs_cancel": Route(
        "Cancel a queued or running run", {"200": "Run", "403": "Errors", "404": "Errors", "409": "Errors",
                                           "503": "Errors"},
        parameters=(TOKEN,), description=UNAVAILABLE),
    "api_suggest.suggest_settings": Route(
        "Better settings for a privacy budget, searched with the simulator", {"200": "Suggestions", "400": "Errors",
                                                                             "413": "Errors", "415": "Errors",
                                                                             "429": "Errors"},
        body="SuggestRequest",
        description="The run's knobs plus `target_epsilon` and an optional `max_seconds`; answers the candidates of "
                    "highest predicted accuracy whose epsilon (by the request's accountant) is within the target, "
                    "best first, each inside the simulator's calibrated range. 429 when other searches are running."),
    "api_export.export_script": Route(
        "A standalone TF Privacy script that trains these knobs", {"200": "text/x-python", "400": "Errors",
                                                                  "413": "Errors", "415": "Errors"},
        body="ExportRequest",
        description="The script's header says which knobs it maps and how it differs from the playground's trainer."),
    "api_runs.health": Route("Liveness and run counts", {"200": "Health", "503": "Errors"}, description=UNAVAILABLE),
    "api_docs.openapi_document": Route("This document", {"200": "application/json"}),
    "api_docs.docs_page": Route("This document as a page", {"200": HTML}, tag="page"),
    "pages.index": Route("The playground", {"200": HTML}, tag="page"),
    "pages.favicon": Route("The page's icon", {"200": SVG}, tag="page"),
    "pages.vendor": Route("A vendored front-end package (Chart.js)", {"200": JS, "404": HTML},
                          parameters=({"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},),
                          tag="page"),
    "static": Route("The page's modules, styles and images", {"200": "application/octet-stream", "404": HTML},
                    parameters=({"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}},),
                    tag="page"),
}

_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/api/runs/<run_id>`` -> ``/api/runs/{run_id}``."""
    return _CONVERTER.sub(r"{\1}", rule)


def undocumented(app: Flask) -> list[str]:
    """Endpoints of ``app`` that ``ROUTES`` does not describe (tests fail while there are any)."""
    return sorted({rule.endpoint for rule in app.url_map.iter_rules()} - set(ROUTES))


def _response(status: str, what: str) -> dict:
    description = {"200": "OK", "202": "Accepted", "400": "Bad input, each field named", "403": "Wrong run token",
                   "404": "Not found", "409": "Not cancellable", "413": "Body too large", "415": "Not JSON",
                   "429": "Too many runs (see Retry-After)",
                   "503": "The run store is unreachable (see Retry-After)"}.get(status, status)
    if what in schemas.COMPONENTS:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{what}"}}}
    else:
        content = {what: {}}
    response = {"description": description, "content": content}
    if status in ("429", "503"):
        response["headers"] = {"Retry-After": {"description": "seconds to wait", "required": True,
                                               "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return response


def _operation(endpoint: str, route: Route, path_params: list[str]) -> dict:
    own = {p["name"] for p in route.parameters}
    parameters = [RUN_ID if name == "run_id" else {"name": name, "in": "path", "required": True,
                                                   "schema": {"type": "string"}}
                  for name in path_params if name not in own]
    operation = {"operationId": endpoint.split(".")[-1], "summary": route.summary, "tags": [route.tag],
                 "parameters": parameters + list(route.parameters),
                 "responses": {status: _response(status, what) for status, what in route.responses.items()}}
    if route.description:
        operation["description"] = route.description
    if route.body:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{route.body}"}}}}
    for status, links in route.links.items():
        operation["responses"][status]["links"] = links
    if not operation["parameters"]:
        del operation["parameters"]
    return operation


def document(app: Flask) -> dict:
    """The OpenAPI 3.1 document of ``app``: every documented route of its URL map, the shapes of ``app.schemas``."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        route = ROUTES.get(rule.endpoint)
        if route is None:
            continue
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = _operation(
                rule.endpoint, route, list(rule.arguments and _CONVERTER.findall(rule.rule)))
    return {
        "openapi": "3.1.0",
        "info": {"title": "DP-SGD Playground API", "version": "1",
                 "description": "Every error is JSON {\"errors\": {field: message}}; no request answers 500 or HTML "
                                "under /api/. The contract in prose: docs/api.md."},
        "paths": paths,
        "components": {"schemas": schemas.COMPONENTS},
    }


def type_text(schema: dict) -> str:
    """A schema in a few words for the docs page: ``number 0..50``, ``one of rdp, pld``, ``EpochRecord[]``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(type_text(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return type_text(schema.get("items", {})) + "[]"
    if "minimum" in schema and "maximum" in schema:
        return f"{kind} {schema['minimum']:g}..{schema['maximum']:g}"
    return kind


def rows(schema: dict) -> list[dict]:
    """The property table of an object schema: name, type, whether required, default, description."""
    required = set(schema.get("required", ()))
    return [{"name": name, "type": type_text(prop), "required": name in required,
             "default": prop.get("default"), "description": prop.get("title", "") + (
                 (": " if prop.get("title") else "") + prop["description"] if prop.get("description") else "")}
            for name, prop in schema.get("properties", {}).items()]


@bp.get("/api/openapi.json")
def openapi_document():
    return answer(document(current_app))


@bp.get("/docs")
def docs_page():
    return render_template("api_docs.html", doc=document(current_app), rows=rows, type_text=type_text)
