"""``GET /api/params``: the knob table, the modes available here and which fields each request takes."""

from __future__ import annotations

from flask import Blueprint, current_app

from app import params as P
from app import privacy, records
from app.jobs import service
from app.web.errors import answer

bp = Blueprint("api_params", __name__, url_prefix="/api")


@bp.get("/params")
def params_table():
    return answer({"params": P.table(), "modes": service.mode_availability(current_app.config),
                   "run_sampling": records.RUN_SAMPLING,
                   "pld_max_rdp_epsilon": privacy.PLD_MAX_RDP_EPSILON,  # the page skips PLD above it, unasked
                   "fields": {"privacy": P.PRIVACY_FIELDS, "calibrate": P.CALIBRATE_FIELDS, "runs": P.RUN_FIELDS,
                              "export": P.EXPORT_FIELDS}})
