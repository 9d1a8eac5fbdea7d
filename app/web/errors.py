"""How the API reads a request body and answers: JSON in, strict JSON out, every error as JSON naming its field.

Every error under ``/api/`` is ``{"errors": {field: message}}``: 400 bad input, 404 unknown run, 403 wrong token,
409 not cancellable, 413 body too large, 415 not JSON, 429 queue full, a per-client limit or PLD busy (with
``Retry-After``), 503 the run store (Redis, when ``REDIS_URL`` is set) unreachable (with ``Retry-After``); a bug
answers 500 JSON,
never an HTML page. The core raises ``ParamError`` and ``JobError`` (plain ``ValueError`` / ``Exception`` subclasses
that know nothing of HTTP); the handlers here turn them into answers.
"""

from __future__ import annotations

import json

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app.jobs.manager import BackendUnavailable, JobError, QueueFull
from app.params import ParamError
from app.records import json_safe


class BadRequest(ValueError):
    """A request the API cannot read (not JSON, malformed, a bad query string): ``status`` and ``{field: message}``."""

    def __init__(self, status: int, errors: dict, retry_after: int | None = None):
        super().__init__(str(errors))
        self.status = status
        self.errors = errors
        self.retry_after = retry_after  # seconds, sent as Retry-After (with 429)


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


def answer(payload: dict, status: int = 200):
    """A strict-JSON response (non-finite floats become null)."""
    return jsonify(json_safe(payload)), status


def on_param_error(exc: ParamError):
    return answer({"errors": exc.errors}, 400)


def on_bad_request(exc: BadRequest):
    response, status = answer({"errors": exc.errors}, exc.status)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response, status


def on_job_error(exc: JobError):
    response, status = answer({"errors": {exc.field: exc.message}}, exc.status)
    if isinstance(exc, (QueueFull, BackendUnavailable)):
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


def register(app: Flask) -> None:
    """Install the handlers on the whole app (every blueprint answers errors the same way)."""
    app.register_error_handler(ParamError, on_param_error)
    app.register_error_handler(BadRequest, on_bad_request)
    app.register_error_handler(JobError, on_job_error)
    app.register_error_handler(Exception, on_unexpected_error)
