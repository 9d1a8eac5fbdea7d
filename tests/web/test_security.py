"""Security properties a deployment relies on: no debug server in production, no secret in the repository,
unguessable run ids and tokens, cancel only with the token, capped bodies."""

import re
import subprocess
from pathlib import Path

from app import create_app

ROOT = Path(__file__).resolve().parents[2]
SECRET_PATTERNS = re.compile(r"BEGIN [A-Z ]*PRIVATE KEY|\bhf_[A-Za-z0-9]{30,}|\bghp_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|"
                             r"SECRET_KEY\s*=\s*['\"][^'\"]+['\"]|password\s*=\s*['\"][^'\"]+['\"]", re.IGNORECASE)


def test_production_never_runs_flasks_debug_server():
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = [line for line in dockerfile.splitlines() if line.startswith("CMD")]
    assert command and "gunicorn" in command[-1] and "run.py" not in command[-1]
    assert "debug" not in (ROOT / "run.py").read_text().lower().replace("no debug", "")
    assert "debug" not in (ROOT / "gunicorn.conf.py").read_text().lower()
    app = create_app({"WARM_UP": False})
    try:
        assert app.debug is False and app.config["SECRET_KEY"] is None  # the app keeps no sessions: no key needed
    finally:
        app.extensions["jobs"].close()


def test_no_secret_is_committed():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".json", ".npz", ".png", ".svg") or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{name}: {m.group(0)[:20]}" for m in SECRET_PATTERNS.finditer(text)
                      if name != "tests/web/test_security.py"]
    assert offenders == []


def test_run_ids_and_tokens_are_long_random_and_distinct(client):
    runs = [client.post("/api/runs", json={"mode": "simulate", "epochs": 1}).json for _ in range(20)]
    ids, tokens = [r["id"] for r in runs], [r["token"] for r in runs]
    assert len(set(ids)) == len(set(tokens)) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)  # 8 hex of boot id + 96 random bits
    assert len({i[8:] for i in ids}) == 20 and all(len(t) >= 22 for t in tokens)  # tokens: 128 random bits
    assert all(t not in i for t, i in zip(tokens, ids))


def test_cancel_needs_the_runs_own_token(client):
    first, second = (client.post("/api/runs", json={"mode": "real", "epochs": 1}).json for _ in range(2))
    wrong = ("", second["token"], first["token"][:-1], "é" + first["token"][1:])  # the last: a non-ASCII header
    for headers in ({}, *({"X-Run-Token": token} for token in wrong)):
        response = client.post(f"/api/runs/{first['id']}/cancel", headers=headers)
        assert response.status_code == 403 and "token" in response.json["errors"]
    assert client.post(f"/api/runs/{first['id']}/cancel", headers={"X-Run-Token": first["token"]}).status_code in (
        200, 409)


def test_bodies_are_capped_on_every_post_that_reads_one(client):
    for path in ("/api/privacy", "/api/privacy/calibrate", "/api/runs"):
        response = client.post(path, data=b"{" + b" " * 20000 + b"}", content_type="application/json")
        assert response.status_code == 413 and response.is_json, path
