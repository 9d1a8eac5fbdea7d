"""The page itself, the vendored front-end packages (from node_modules, installed by npm), and security headers."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory

bp = Blueprint("pages", __name__)

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
# The only files the page loads from npm packages: name in URL -> path inside node_modules.
VENDOR_FILES = {"chart.umd.js": "chart.js/dist/chart.umd.js"}

# A strict policy: no inline script or style, nothing from another origin. Framing is allowed for Hugging Face Spaces,
# which show the app in an iframe.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'self' https://huggingface.co https://*.huggingface.co https://*.hf.space")


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the page links; answer with the page's SVG icon instead of a 404."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


@bp.get("/vendor/<name>")
def vendor(name: str):
    path = VENDOR_FILES.get(name)
    if path is None or not (NODE_MODULES / path).is_file():
        abort(404)
    return send_from_directory(NODE_MODULES, path, max_age=3600)


def security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    return response
