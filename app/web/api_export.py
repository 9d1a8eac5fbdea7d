"""``POST /api/export/script``: a run's knobs in, a standalone TF Privacy script out (``app.export``)."""

from __future__ import annotations

from flask import Blueprint, Response

from app import export
from app import params as P
from app.web.errors import json_body

bp = Blueprint("api_export", __name__, url_prefix="/api")


@bp.post("/export/script")
def export_script():
    clean = P.validate(json_body(), export.FIELDS)
    return Response(export.script(clean), mimetype="text/x-python",
                    headers={"Content-Disposition": f'attachment; filename="{export.FILENAME}"'})
