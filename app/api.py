"""The only module that knows HTTP: parse the request, call the core, return a dict.

Every error under ``/api/`` is JSON ``{"errors": {field: message}}``: 400 bad input, 404 unknown run, 403 wrong
token, 409 not cancellable, 413 body too large, 415 not JSON, 429 queue full (with ``Retry-After``).
"""

from __future__ import annotations

import json
import math

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app import params as P
from app import privacy, records, runs
from app.jobs import JobError, QueueFull

bp = Blueprint("api", __name__, url_prefix="/api")


class BadRequest(ValueError):
    def __init__(self, status: int, errors: dict):
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def json_body() -> dict:
    """The request's JSON object; 415 if not JSON, 400 if malformed or non-finite (NaN, Infinity)."""
    if not request.is_json:
        raise BadRequest(415, {"body": f"send JSON with Content-Type: application/json, "
                                       f"got {request.content_type or 'no Content-Type'!r}"})
    data = request.get_data(cache=False)
    if not data.strip():
        raise BadRequest(400, {"body": "is empty; send a JSON object"})
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(400, {"body": f"is not valid JSON: {str(exc)[:120]}"}) from None
    return body


def _json_safe(value):
    """Replace non-finite floats by None so every answer is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def answer(payload: dict, status: int = 200):
    return jsonify(_json_safe(payload)), status


@bp.get("/health")
def health():
    return answer({"status": "ok", "jobs": current_app.extensions["jobs"].stats()})


@bp.get("/params")
def params_table():
    return answer({"params": P.table(), "modes": runs.mode_availability(current_app.config),
                   "run_sampling": records.RUN_SAMPLING,
                   "fields": {"privacy": P.PRIVACY_FIELDS, "calibrate": P.CALIBRATE_FIELDS, "runs": P.RUN_FIELDS}})


@bp.post("/privacy")
def privacy_report():
    clean = P.validate(json_body(), P.PRIVACY_FIELDS)
    return answer(privacy.compute_privacy(**clean).to_dict())


@bp.post("/privacy/calibrate")
def privacy_calibrate():
    clean = P.validate(json_body(), P.CALIBRATE_FIELDS)
    report = privacy.calibrate_noise(**clean)
    return answer({**report.to_dict(), "target_epsilon": clean["target_epsilon"]})


@bp.post("/runs")
def runs_create():
    clean = P.validate(json_body(), P.RUN_FIELDS)
    started = runs.submit(current_app.extensions["jobs"], clean, current_app.config)
    return answer(started, 202)


@bp.get("/runs/<run_id>")
def runs_show(run_id: str):
    since = request.args.get("since")
    if since is not None:
        if not (since.isascii() and since.isdigit()) or len(since) > 12:  # '²'.isdigit() is True
            raise BadRequest(400, {"since": f"must be a cursor (a whole number >= 0), got {since[:40]!r}"})
        since = int(since)
    return answer(current_app.extensions["jobs"].snapshot(run_id, since))


@bp.post("/runs/<run_id>/cancel")
def runs_cancel(run_id: str):
    return answer(current_app.extensions["jobs"].cancel(run_id, request.headers.get("X-Run-Token")))


@bp.errorhandler(P.ParamError)
def on_param_error(exc: P.ParamError):
    return answer({"errors": exc.errors}, 400)


@bp.errorhandler(BadRequest)
def on_bad_request(exc: BadRequest):
    return answer({"errors": exc.errors}, exc.status)


@bp.errorhandler(JobError)
def on_job_error(exc: JobError):
    response, status = answer({"errors": {exc.field: exc.message}}, exc.status)
    if isinstance(exc, QueueFull):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response, status


def on_http_error(exc: HTTPException):
    """HTTP errors (404, 405, 413, ...) under /api/ as JSON instead of HTML pages."""
    if not request.path.startswith("/api/"):
        return exc
    messages = {413: f"the request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes",
                404: f"no API endpoint at {request.path[:80]}",
                405: f"{request.method} is not allowed on {request.path[:80]}"}
    return answer({"errors": {"request": messages.get(exc.code, exc.description)}}, exc.code)


def on_unexpected_error(exc: Exception):
    """The last net: a bug answers JSON with a message, never an HTML 500 page."""
    if isinstance(exc, HTTPException):
        return on_http_error(exc)
    current_app.logger.exception("unhandled error on %s", request.path)
    return answer({"errors": {"server": f"internal error ({type(exc).__name__}); the server carries on"}}, 500)
