"""The page itself, its icon, and the vendored front-end packages (from node_modules, installed by npm)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory

bp = Blueprint("pages", __name__)

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
# The only files the page loads from npm packages: name in URL -> path inside node_modules.
VENDOR_FILES = {"chart.umd.js": "chart.js/dist/chart.umd.js"}

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
