"""The only Flask code: one blueprint per concern (the page, the knob table, privacy, runs, suggestions), the error handlers and
the security headers. The core packages it calls know nothing of HTTP."""

from __future__ import annotations

from flask import Flask

from app.web import (api_export, api_params, api_privacy, api_runs, api_suggest, errors, limits, openapi, pages,
                     security)


def register(app: Flask) -> None:
    """Attach every blueprint, error handler and the security headers to ``app``."""
    app.url_map.merge_slashes = False  # '/api/runs//x' is an unknown endpoint (JSON 404), not an HTML redirect
    for blueprint in (api_export.bp, api_params.bp, api_privacy.bp, api_runs.bp, api_suggest.bp, openapi.bp,
                      pages.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    limits.register(app)
    app.after_request(security.security_headers)
