"""``POST /api/suggest``: better settings for the person's privacy budget, searched with the fitted simulator
(``app.suggest``).

A search costs up to its time budget (``SUGGEST_SECONDS``, 3 s by default) of CPU, so it runs in a small pool of its
own, off the request thread, and at most ``SUGGEST_IN_FLIGHT`` searches are admitted at once; the next answers at
once 429 (naming ``target_epsilon``, with ``Retry-After``), as PLD queries are refused when the accountant is busy.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, current_app

from app import suggest
from app.web.errors import BadRequest, answer, json_body

bp = Blueprint("api_suggest", __name__, url_prefix="/api/suggest")

SUGGEST_IN_FLIGHT = 2  # of the two cores: one search each, and polls and previews still served between them
_admission = threading.BoundedSemaphore(SUGGEST_IN_FLIGHT)
_pool = ThreadPoolExecutor(max_workers=SUGGEST_IN_FLIGHT, thread_name_prefix="suggest")


@bp.post("")
def suggest_settings():
    clean, max_seconds = suggest.validate(json_body())
    if not _admission.acquire(blocking=False):
        raise BadRequest(429, {"target_epsilon": "the server is already searching settings for other people; "
                                                 "ask again in a few seconds"}, retry_after=3)
    try:
        budget = current_app.config.get("SUGGEST_SECONDS", suggest.BUDGET_SECONDS)
        found = _pool.submit(suggest.suggest, clean, max_seconds=max_seconds, budget_seconds=budget)
        return answer(found.result())
    finally:
        _admission.release()
