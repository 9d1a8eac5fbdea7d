"""``POST /api/privacy`` (epsilon of a setting) and ``POST /api/privacy/calibrate`` (noise for a target epsilon)."""

from __future__ import annotations

from flask import Blueprint

from app import params as P
from app import privacy
from app.web.errors import answer, json_body

bp = Blueprint("api_privacy", __name__, url_prefix="/api/privacy")


@bp.post("")
def privacy_report():
    clean = P.validate(json_body(), P.PRIVACY_FIELDS)
    return answer(privacy.compute_privacy(**clean).to_dict())


@bp.post("/calibrate")
def privacy_calibrate():
    clean = P.validate(json_body(), P.CALIBRATE_FIELDS)
    report = privacy.calibrate_noise(**clean, noise_range=P.noise_search_range())
    return answer({**report.to_dict(), "target_epsilon": clean["target_epsilon"]})
