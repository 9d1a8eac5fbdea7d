"""A real gunicorn server (the repository's gunicorn.conf.py) in a subprocess on a free loopback port, for the serving
tests and the load benchmark."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0):
    """(status, headers, body bytes) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post(url: str, body: dict, timeout: float = 10.0, headers: dict | None = None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


class Gunicorn:
    """``gunicorn --config gunicorn.conf.py "app:create_app()"`` run from ``root`` with ``root/.venv``'s Python (or
    ``gunicorn``), on ``127.0.0.1:<free port>``, as ``user`` (a uid, group the same) if given; output to ``log``."""

    def __init__(self, root: Path, log: Path, *, env: dict | None = None, gunicorn: Path | None = None,
                 user: int | None = None, start_timeout: float = 60.0):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "WARM_UP": "0", **(env or {})}
        self._log = open(log, "w")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(gunicorn or root / ".venv" / "bin" / "gunicorn"), "--config", "gunicorn.conf.py", "app:create_app()"],
            cwd=root, env=environment, stdout=self._log, stderr=subprocess.STDOUT,
            **({"user": user, "group": user, "extra_groups": []} if user is not None else {}))
        while True:
            try:
                if get(f"{self.base}/api/health", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() - started > start_timeout:
                self.stop()
                raise RuntimeError(f"gunicorn did not come up; see {log}:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - started

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
