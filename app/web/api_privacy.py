"""``POST /api/privacy`` (epsilon of a setting) and ``POST /api/privacy/calibrate`` (noise for a target epsilon).

PLD is the one costly query (up to seconds; the accountant computes one at a time), and every slider move on the page
asks it. Requests waiting for it would hold the server's threads while polls queue behind them, so at most
``PLD_IN_FLIGHT`` PLD requests are admitted at once; the next answers at once 429 naming ``accountant`` (the page then
shows RDP alone and asks again on the next move).
"""

from __future__ import annotations

import contextlib
import threading

from flask import Blueprint

from app import params as P
from app import privacy
from app.web.errors import BadRequest, answer, json_body

bp = Blueprint("api_privacy", __name__, url_prefix="/api/privacy")

# One computing, three in line: a single learner dragging a slider has its own superseded queries still computing
# (the page drops them, the server cannot know), so fewer would refuse one user; 4 of the 16 threads at most.
PLD_IN_FLIGHT = 4
_pld_admission = threading.BoundedSemaphore(PLD_IN_FLIGHT)


@contextlib.contextmanager
def _admitted(clean: dict):
    if clean["accountant"] != "pld":
        yield
        return
    if not _pld_admission.acquire(blocking=False):
        raise BadRequest(429, {"accountant": "the PLD accountant is busy with other queries; RDP answers at once, "
                                             "or ask PLD again in a moment"}, retry_after=1)
    try:
        yield
    finally:
        _pld_admission.release()


@bp.post("")
def privacy_report():
    clean = P.validate(json_body(), P.PRIVACY_FIELDS)
    with _admitted(clean):
        return answer(privacy.compute_privacy(**clean).to_dict())


@bp.post("/calibrate")
def privacy_calibrate():
    clean = P.validate(json_body(), P.CALIBRATE_FIELDS)
    with _admitted(clean):
        report = privacy.calibrate_noise(**clean, noise_range=P.noise_search_range())
    return answer({**report.to_dict(), "target_epsilon": clean["target_epsilon"]})
