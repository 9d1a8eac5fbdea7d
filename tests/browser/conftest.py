"""Browser tests: headless Debian Chromium (Playwright for Python) against a real server process.

One server (``run.py`` in a subprocess, on a free loopback port) and one browser serve the whole session; each test
gets a fresh browser context (so an empty localStorage) whose console errors, page errors and CSP violations fail the
test unless the test declares them expected.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium floods a closed network with update and sync requests.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SIM_PACING_SECONDS = 3.0  # long enough to cancel a simulated run by keyboard, short enough for a quick suite
MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


class ServerProcess:
    """``python run.py`` in a subprocess on a loopback port (a free one unless given), with ``env`` overrides; its
    output goes to ``test-artifacts/<log>``. ``stop()`` ends it; ``start()`` starts it again on the same port."""

    def __init__(self, log: str = "browser-server.log", env: dict | None = None, port: int | None = None):
        self.port = port or _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port),
                    "SIM_PACING_SECONDS": str(SIM_PACING_SECONDS), **(env or {})}
        if "MNIST_PATH" not in self.env and MNIST.is_file():
            self.env["MNIST_PATH"] = str(MNIST)
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / log
        self.process = None

    def start(self):
        log = open(self.log_path, "a")
        self.process = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get_json(f"{self.base}/api/health", timeout=1)["status"] == "ok":
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not come up; see {self.log_path}")
            time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def server():
    """Base URL of a real server process (``python run.py``), killed at the end of the session."""
    (ARTIFACTS / "browser-server.log").unlink(missing_ok=True)
    process = ServerProcess().start()
    try:
        yield process.base
    finally:
        process.stop()


@pytest.fixture(scope="session")
def run_mode(server):
    """The mode run tests use: 'simulate' when the server offers it, else 'real' on a tiny sample; skipped (with
    the server's reasons) only when neither is available. BROWSER_RUN_MODE=real (or simulate) insists on one."""
    modes = _get_json(f"{server}/api/params")["modes"]
    for mode in [os.environ["BROWSER_RUN_MODE"]] if os.environ.get("BROWSER_RUN_MODE") else ("simulate", "real"):
        if modes.get(mode, {}).get("available"):
            return mode
    pytest.skip("no training mode is available on this server: "
                + "; ".join(f"{m}: {info.get('reason')}" for m, info in modes.items()))


# Settings that keep a run short in each mode (real: a 200-example sample, a few seconds plus the TF import; its
# epsilon, 4.3, stays within a target of 10).
RUN_SETTINGS = {"simulate": {"epochs": 5},
                "real": {"dataset_size": 200, "batch_size": 32, "epochs": 2, "target_epsilon": 10}}


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make setup-test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Session:
    """A page plus what went wrong on it. ``expect_errors(pattern)`` allows console errors a test provokes."""

    def __init__(self, context, base):
        self.context, self.base = context, base
        self.page = context.new_page()
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))

    def expect_errors(self, pattern: str):
        self.allowed.append(re.compile(pattern))

    def open(self, query: str = ""):
        self.page.goto(f"{self.base}/{query}")
        self.page.wait_for_selector("body.ready", state="attached")
        return self.page

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def session(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    s = Session(context, server)
    yield s
    context.close()
    assert s.unexpected_errors() == [], "console errors, page errors or CSP violations"

