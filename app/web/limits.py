"""Per-client fairness for starting runs: rate limits (Flask-Limiter, in-memory storage) keyed by the client's address.

One tab must not fill the real-run queue the class shares, nor burn the CPU with simulated runs. Two rules:

- rate limits on ``POST /api/runs`` per client address, a stricter one for real runs (``RATE_LIMIT_REAL``) than for
  simulated ones (``RATE_LIMIT_SIMULATE``), counted separately so simulations never wait for a real-run quota, and
  counted only for runs actually started (a 400 costs nothing);
- a cap on the real runs one client has queued or running at once (``REAL_RUNS_PER_CLIENT``), enforced by the job
  manager under its lock (``app.jobs.manager``), with the client key from :func:`client_key`.

Both answer 429 ``{"errors": {"mode": ...}}`` with ``Retry-After``. The address is the socket's peer, or, behind
``TRUSTED_PROXY_HOPS`` proxies (a Hugging Face Space has one), the one those proxies put in ``X-Forwarded-For``
(werkzeug's ProxyFix). The counts live in this process's memory, like the runs; with ``REDIS_URL`` they live in
Redis, so every web process counts the same (and a limiter that cannot reach it lets the request through to the job
manager, whose answer is the 503).
"""

from __future__ import annotations

import json
import math
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from app.web.errors import answer

LIMITED_VIEW = "api_runs.runs_create"
MODE_LIMITS = {"real": "RATE_LIMIT_REAL", "simulate": "RATE_LIMIT_SIMULATE"}


def client_key() -> str:
    """Who is asking: the client's address (after ProxyFix, when proxies are trusted)."""
    return request.remote_addr or "unknown"


def requested_mode() -> str | None:
    """The ``mode`` a run request asks for (the table's default when absent), read without failing on a bad body:
    validation answers bad bodies later, and a request that is refused costs no quota."""
    try:
        body = json.loads(request.get_data(cache=True) or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    return body.get("mode", "simulate")


def _limit(limiter: Limiter, mode: str, view):
    """``view`` wrapped in the rate limit of ``mode``'s runs (exempt for requests of the other mode)."""

    def message() -> str:
        text = current_app.config[MODE_LIMITS[mode]].replace(";", " and ")
        return f"too many {mode} runs started from your address (at most {text}); wait a little before the next"

    return limiter.limit(lambda: current_app.config[MODE_LIMITS[mode]], scope=f"runs-{mode}",
                         exempt_when=lambda: requested_mode() != mode, error_message=message,
                         deduct_when=lambda response: response.status_code == 202)(view)


def on_rate_limited(exc: RateLimitExceeded):
    """A breached limit as the API's error shape, with ``Retry-After`` (seconds until the limit lets one through)."""
    limiter: Limiter = current_app.extensions["run_limiter"]
    reset_at = limiter.current_limit.reset_at if limiter.current_limit else time.time() + 60
    response, status = answer({"errors": {"mode": exc.description}}, 429)
    response.headers["Retry-After"] = str(max(1, math.ceil(reset_at - time.time())))
    return response, status


def register(app: Flask) -> None:
    """Trust the configured proxies, and limit run creation per client on ``app`` (its own limiter and counts)."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    shared = app.config.get("REDIS_URL")
    limiter = Limiter(key_func=client_key, app=app, storage_uri=shared or "memory://", strategy="moving-window",
                      headers_enabled=False, swallow_errors=bool(shared),
                      storage_options={"socket_connect_timeout": 1, "socket_timeout": 2} if shared else {})
    app.extensions["run_limiter"] = limiter
    view = app.view_functions[LIMITED_VIEW]
    for mode in MODE_LIMITS:
        view = _limit(limiter, mode, view)
    app.view_functions[LIMITED_VIEW] = view
    app.register_error_handler(RateLimitExceeded, on_rate_limited)
