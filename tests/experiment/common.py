"""Helpers for the experiment tests: write a config, run the CLI in a subprocess or in this process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "experiment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def env() -> dict:
    variables = {**os.environ, "PYTHONUNBUFFERED": "1"}
    variables.setdefault("MNIST_PATH", str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    return variables


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m app.experiment ARGS`` in a subprocess, as a user runs it (stdin closed, not a terminal)."""
    return subprocess.run([sys.executable, "-m", "app.experiment", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def main(*args: str) -> tuple[int, str, str]:
    """The CLI's main() in this process: (exit status, stdout, stderr)."""
    from app.experiment.__main__ import main as entry

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = entry([str(a) for a in args])
        except SystemExit as exc:  # argparse's own usage errors
            status = exc.code
    return status, out.getvalue(), err.getvalue()
