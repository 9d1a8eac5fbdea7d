"""The Docker image. Default suite: its file tree built without an engine (the Dockerfile's steps through the same
make targets, ``make image-tree``, as the image's user uid 1000), served by gunicorn from that tree on ``$PORT``: the
page loads and a simulated run finishes. Slow lane, where a Docker engine runs: the real image, built and run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.serving.gunicorn_process import Gunicorn, free_port, get, post

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
MNIST = Path(os.environ.get("MNIST_PATH") or ROOT.parent / "shared" / "data" / "mnist.npz")
# Persistent per machine, so the venv layer is reused while requirements.txt and the Makefile stay the same.
TREE = Path(os.environ.get("IMAGE_TREE_DIR", "/var/tmp/dp-sgd-playground-image-tree")) / "app"
IMAGE_USER = 1000
# Debian's Python 3.11 when root must act as uid 1000 (pyenv's lives under /root, which that user cannot read).
SYSTEM_PYTHON = "/usr/bin/python3.11"


def as_image_user() -> dict:
    """Popen arguments that run a command as the image's user (when the tests run as root, as CI does here)."""
    return {"user": IMAGE_USER, "group": IMAGE_USER, "extra_groups": []} if os.geteuid() == 0 else {}


def image_env(home: Path) -> dict:
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "MNIST_PATH": str(TREE / "data" / "mnist.npz"), "TRUSTED_PROXY_HOPS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def tree():
    """``make image-tree`` into TREE as the image's user; its log and build time go to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    home = TREE.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for path in (TREE.parent, home):
            shutil.chown(path, IMAGE_USER, IMAGE_USER)
    python = SYSTEM_PYTHON if os.geteuid() == 0 else shutil.which("python3.11") or "python3"
    started = time.monotonic()
    with open(ARTIFACTS / "image-tree.log", "w") as log:
        done = subprocess.run(["make", "-C", str(ROOT), "image-tree", f"DIR={TREE}", f"PYTHON={python}",
                               f"IMAGE_MNIST={MNIST if MNIST.is_file() else ''}"],
                              env=image_env(home), stdout=log, stderr=subprocess.STDOUT, **as_image_user())
    seconds = time.monotonic() - started
    (ARTIFACTS / "image-tree.seconds").write_text(f"{seconds:.0f}\n")
    assert done.returncode == 0, (ARTIFACTS / "image-tree.log").read_text()[-3000:]
    return {"home": home, "seconds": seconds, "log": (ARTIFACTS / "image-tree.log").read_text()}


def test_the_tree_is_owned_by_the_image_user_and_says_real_mode_is_available(tree):
    assert (TREE / ".venv" / "bin" / "gunicorn").is_file() and (TREE / "node_modules" / "chart.js").is_dir()
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in (TREE, TREE / ".venv", TREE / "app", TREE / "data")} == {IMAGE_USER}
    assert not (TREE / ".git").exists() and not (TREE / "test-artifacts").exists()  # .dockerignore held
    if MNIST.is_file():
        assert "image-data: real mode available" in tree["log"]


def test_without_mnist_the_build_still_succeeds_and_says_why_real_mode_is_unavailable(tree):
    missing = TREE / "data" / "absent.npz"
    done = subprocess.run(["make", "-C", str(TREE), "image-data", f"MNIST_PATH={missing}", "MNIST_DOWNLOAD=0"],
                          env=image_env(tree["home"]), capture_output=True, text=True, **as_image_user())
    assert done.returncode == 0
    assert f"image-data: real mode unavailable: MNIST_PATH is set to '{missing}', but no such file exists" in done.stdout


def test_gunicorn_from_the_tree_serves_the_page_and_a_simulated_run(tree):
    server = Gunicorn(TREE, ARTIFACTS / "image-tree-gunicorn.log", env=image_env(tree["home"]),
                      user=IMAGE_USER if os.geteuid() == 0 else None)
    try:
        status, headers, page = get(server.base + "/")
        assert status == 200 and b"/static/js/main.js" in page and "frame-ancestors" in headers["Content-Security-Policy"]
        for asset in ("/static/js/main.js", "/vendor/chart.umd.js", "/static/css/app.css"):
            assert get(server.base + asset)[0] == 200, asset
        modes = json.loads(get(server.base + "/api/params")[2])["modes"]
        assert modes["simulate"]["available"] and modes["real"]["available"] == MNIST.is_file()
        code, _, run = post(server.base + "/api/runs", {"mode": "simulate", "epochs": 3}, timeout=120)
        assert code == 202, run
        deadline = time.monotonic() + 60
        while (snap := json.loads(get(f"{server.base}/api/runs/{run['id']}")[2]))["status"] != "succeeded":
            assert snap["status"] == "running" and time.monotonic() < deadline, snap
            time.sleep(0.5)
        assert len(snap["epochs"]) == 3 and snap["summary"]["simulated"] is True
    finally:
        assert server.stop() == 0


def _engine() -> bool:
    return shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _engine(), reason="no Docker engine answers here (make image needs one)")
def test_the_real_image_with_an_engine_runs_as_uid_1000_and_serves_a_run():
    """``make image`` built ``dp-sgd-playground``; run it, and smoke-test what a Space would serve."""
    port = free_port()
    started = time.monotonic()
    container = subprocess.run(["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:7860", "-e",
                                "TRUSTED_PROXY_HOPS=0", "dp-sgd-playground"],
                               capture_output=True, text=True, check=True).stdout.strip()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(base + "/api/health", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the container did not become healthy"
            time.sleep(0.2)
        (ARTIFACTS / "image-start.seconds").write_text(f"{time.monotonic() - started:.1f}\n")
        uid = subprocess.run(["docker", "exec", container, "id", "-u"], capture_output=True, text=True).stdout
        assert uid.strip() == str(IMAGE_USER)
        status, headers, page = get(base + "/")
        assert status == 200 and "frame-ancestors" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff" and "gunicorn" not in headers.get("Server", "")
        code, _, run = post(base + "/api/runs", {"mode": "simulate", "epochs": 3}, timeout=120)
        assert code == 202, run
        deadline = time.monotonic() + 60
        while json.loads(get(f"{base}/api/runs/{run['id']}")[2])["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        memory = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
                                capture_output=True, text=True).stdout
        (ARTIFACTS / "image-memory.txt").write_text(memory)
    finally:
        subprocess.run(["docker", "stop", "-t", "10", container], capture_output=True)
