"""How a headless experiment ends a run it cannot finish: a failing runner, and Ctrl-C, with a scripted runner in the
simulate lane (no TensorFlow; the real trainer's Ctrl-C is tests/experiment/test_training.py)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import time

import pytest

from app.experiment import config as C
from app.experiment import files, progress
from app.experiment.runner import run_experiment
from app.jobs import runners
from tests.scripted_runner import ScriptedRunner, scripted_epoch

CONFIG = "defaults: {mode: simulate, epochs: 3}\nruns: [{name: run, sweep: {seed: [0, 1, 2]}}]"


def _use(monkeypatch, runner) -> None:
    monkeypatch.setitem(runners.MODES, "simulate", dataclasses.replace(runners.SIMULATE, run=runner))


def _result(out, name) -> dict:
    return json.loads((out / name / files.SUMMARY).read_text())


def test_a_failed_run_is_written_with_its_error_and_the_next_runs(monkeypatch, tmp_path):
    scripted = ScriptedRunner()

    def runner(params, report, should_stop):
        scripted({**params, "fail_at_epoch": 2 if params["seed"] == 1 else None}, report, should_stop)

    _use(monkeypatch, runner)
    outcome = run_experiment(C.parse(CONFIG), tmp_path, progress=progress.Lines(io.StringIO()), poll_seconds=0.01)
    assert [status for _, status, _ in outcome.runs] == ["succeeded", "failed", "succeeded"]
    assert outcome.exit_status == 1 and not outcome.interrupted
    failed = _result(tmp_path, "run-seed-1")
    assert failed["error"] == "RuntimeError: fake failure at epoch 2" and failed["summary"] is None
    assert len(json.loads((tmp_path / "run-seed-1" / files.RECORDS).read_text())["epochs"]) == 1


def test_ctrl_c_cancels_through_should_stop_and_keeps_the_finished_runs(monkeypatch, tmp_path):
    stopped = []

    def runner(params, report, should_stop):
        for epoch in range(1, params["epochs"] + 1):
            report({"type": "step", "step": epoch, "epoch": epoch, "loss": 1.0, "clip_fraction": 0.5})
            report(scripted_epoch(epoch))
            if params["seed"] == 1 and epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C during the second run
                deadline = time.monotonic() + 10
                while not should_stop():
                    assert time.monotonic() < deadline, "should_stop never turned true"
                    time.sleep(0.01)
                stopped.append(params["seed"])
                return

    _use(monkeypatch, runner)
    lines = io.StringIO()
    outcome = run_experiment(C.parse(CONFIG), tmp_path, progress=progress.Lines(lines), poll_seconds=0.01)
    assert stopped == [1]
    assert outcome.interrupted and outcome.exit_status == 130
    assert [(name, status) for name, status, _ in outcome.runs] == [("run-seed-0", "succeeded"),
                                                                    ("run-seed-1", "cancelled")]
    assert _result(tmp_path, "run-seed-0")["summary"]["epochs_completed"] == 3
    cancelled = _result(tmp_path, "run-seed-1")
    assert cancelled["status"] == "cancelled" and cancelled["summary"]["epochs_completed"] == 1
    assert not (tmp_path / "run-seed-2").exists()
    assert "interrupted: stopping the current run at its next step" in lines.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


@pytest.fixture(autouse=True)
def _default_sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
