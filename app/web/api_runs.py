"""Runs over HTTP: start one, poll its snapshot (incrementally with ``since``), cancel it with its token; health."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from app import params as P
from app.jobs import service
from app.web.errors import BadRequest, answer, json_body
from app.web.limits import client_key

bp = Blueprint("api_runs", __name__, url_prefix="/api")


def _jobs():
    return current_app.extensions["jobs"]


@bp.get("/health")
def health():
    return answer({"status": "ok", "jobs": _jobs().stats()})


@bp.post("/runs")
def runs_create():
    clean = P.validate(json_body(), P.RUN_FIELDS)
    return answer(service.submit(_jobs(), clean, current_app.config, owner=client_key()), 202)


@bp.get("/runs/<run_id>")
def runs_show(run_id: str):
    since = request.args.get("since")
    if since is not None:
        if not (since.isascii() and since.isdigit()) or len(since) > 12:  # '²'.isdigit() is True
            raise BadRequest(400, {"since": f"must be a cursor (a whole number >= 0), got {since[:40]!r}"})
        since = int(since)
    return answer(_jobs().snapshot(run_id, since))


@bp.post("/runs/<run_id>/cancel")
def runs_cancel(run_id: str):
    return answer(_jobs().cancel(run_id, request.headers.get("X-Run-Token")))
