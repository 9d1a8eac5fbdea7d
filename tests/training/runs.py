"""A real run through the users' path, as the page does it: POST /api/runs, poll until it ends, expect success."""

import time


def finished_run(client, body: dict, *, timeout: float = 300) -> dict:
    """The final snapshot of the run ``body`` starts on the Flask test ``client`` (asserting it succeeded)."""
    started = client.post("/api/runs", json=body)
    assert started.status_code == 202, started.json
    deadline = time.monotonic() + timeout
    while (snap := client.get(f"/api/runs/{started.json['id']}").json)["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, snap
        time.sleep(0.2)
    assert snap["status"] == "succeeded", snap["error"]
    return snap
