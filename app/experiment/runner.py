"""Runs an experiment's runs one after another through the web's own machinery, writing each as it finishes.

Each run goes the way ``POST /api/runs`` takes it: the mode's availability is checked, ``app.jobs.service.plan`` (done
when the config was validated) gives the runner's params, and a :class:`~app.jobs.manager.JobManager` runs the mode's
runner from ``app.jobs.runners.MODES`` in a worker thread, summarizes with ``service.summarize`` and advises with
``app.advice``. The only difference from the server: every mode gets a worker lane (a simulated run is not paced over
seconds for a page to watch), and runs go one at a time.

Ctrl-C asks the run in progress to stop through the manager's cancel (the runner's ``should_stop``, polled between
steps); that run is written with status ``cancelled`` and the epochs it completed, the runs already finished stay as
they are, and the rest do not start. A second Ctrl-C raises KeyboardInterrupt: the run in progress is not written.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app import advice
from app.experiment import files
from app.experiment.config import Experiment, RunSpec
from app.jobs import service
from app.jobs.manager import TERMINAL, JobManager, Lane, NotCancellable
from app.jobs.runners import MODES
from app.params import KNOB_BY_NAME

POLL_SECONDS = 0.2
SNAPSHOT_ONLY = ("id", "epochs", "steps", "cursor", "progress", "queue_position")  # not part of summary.json


@dataclass(frozen=True)
class Outcome:
    """What happened to each run: ``(name, status, directory)``, and whether Ctrl-C cut the experiment short."""

    runs: tuple[tuple[str, str, str], ...]
    interrupted: bool

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return 130
        return 0 if all(status == "succeeded" for _, status, _ in self.runs) else 1


def unavailable(experiment: Experiment) -> dict[str, str]:
    """The modes the experiment uses that cannot run here, each with the reason (as ``GET /api/params`` says)."""
    reasons = {}
    for name in dict.fromkeys(spec.knobs["mode"] for spec in experiment.runs):
        reason = MODES[name].unavailable_reason()
        if reason is not None:
            reasons[name] = reason
    return reasons


def build_manager(runs: int) -> JobManager:
    """A job manager with every mode's runner in one worker thread, the web's summary and advice, and room to keep
    every run of the experiment."""
    lanes = {name: Lane(mode.run, workers=1, max_queue=max(1, runs)) for name, mode in MODES.items()}
    return JobManager(lanes, summarize=service.summarize, advise=advice.recommend, ttl_seconds=math.inf,
                      max_finished=runs + 1)


class _Interrupt:
    """Ctrl-C as a flag while runs go on (the first), an immediate KeyboardInterrupt (the second)."""

    def __init__(self, say):
        self.event = threading.Event()
        self.say = say
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        self.say("interrupted: stopping the current run at its next step and keeping the finished ones "
                 "(Ctrl-C again to quit at once)")


def run_experiment(experiment: Experiment, out: Path, *, progress, poll_seconds: float = POLL_SECONDS) -> Outcome:
    """Run every run of ``experiment`` in order, writing ``out/<run name>/`` as each ends.

    Args:
        experiment: a validated config (:func:`app.experiment.config.load`).
        out: the output directory (created); a run directory already there is overwritten.
        progress: a :mod:`app.experiment.progress` reporter.

    Returns:
        The :class:`Outcome`. A failed run (the runner raised) is written with its error and the next one starts.
    """
    out.mkdir(parents=True, exist_ok=True)
    manager = build_manager(len(experiment.runs))
    done: list[tuple[str, str, str]] = []
    try:
        with _Interrupt(progress.say) as interrupt:
            for index, spec in enumerate(experiment.runs, 1):
                if interrupt.event.is_set():
                    break
                status, directory = _one(manager, spec, index, len(experiment.runs), out, progress, interrupt.event,
                                         poll_seconds)
                done.append((spec.name, status, str(directory)))
            interrupted = interrupt.event.is_set()
    finally:
        manager.close()
    return Outcome(tuple(done), interrupted)


def _one(manager: JobManager, spec: RunSpec, index: int, total: int, out: Path, progress, stop: threading.Event,
         poll_seconds: float) -> tuple[str, Path]:
    params, extra = spec.plan
    started = time.monotonic()
    handle = manager.submit(params, extra=extra)
    progress.start(spec.name, index, total, params)
    cursor, cancelled = None, False
    while True:
        if stop.is_set() and not cancelled:
            cancelled = True
            try:
                manager.cancel(handle["id"], handle["token"])
            except NotCancellable:  # it ended in the meantime
                pass
        snap = manager.snapshot(handle["id"], cursor)
        cursor = snap["cursor"]
        progress.update(spec.name, snap["progress"], snap["epochs"])
        if snap["status"] in TERMINAL:
            break
        time.sleep(poll_seconds)
    snap = manager.snapshot(handle["id"])
    result = {"name": spec.name, "description": spec.description, "status": snap["status"], "error": snap["error"],
              "knobs": spec.knobs, "given": spec.given, "solved": spec.solved,
              **{k: v for k, v in snap.items() if k not in SNAPSHOT_ONLY and k not in ("status", "error")},
              "wall_seconds": round(time.monotonic() - started, 2)}
    directory = out / spec.name
    files.write_run(directory, result, snap["epochs"], snap["steps"], spec.as_config())
    progress.end(spec.name, f"{snap['status']}: {outcome_line(result)} -> {directory}")
    return snap["status"], directory


def outcome_line(result: dict) -> str:
    """One line on a finished run: accuracy, epsilon with its assumptions, time, or why it failed."""
    if result["status"] == "failed":
        return result.get("error") or "failed"
    summary = result.get("summary") or {}
    accuracy = summary.get("final_test_accuracy")
    epochs = summary.get("epochs_completed", 0)
    parts = [f"{epochs} epoch{'s' * (epochs != 1)}"]
    if accuracy is not None:
        parts.append(f"test accuracy {accuracy:.4f}" + (" (predicted)" if summary.get("simulated") else ""))
    parts.append(epsilon_text(summary))
    if summary.get("seconds") is not None:
        parts.append(f"{summary['seconds']:.1f} s of training")
    return ", ".join(parts)


def epsilon_text(summary: dict) -> str:
    """Epsilon with its accountant, delta and sampling ("epsilon 1.2 (RDP, delta 1e-05, Poisson sampling)")."""
    if not summary.get("private", True):
        return "epsilon infinite (non-private)"
    if summary.get("epsilon_infinite"):
        return "epsilon infinite (no noise)"
    if summary.get("final_epsilon") is None:
        return "epsilon unknown"
    return (f"epsilon {summary['final_epsilon']:.4g} ({str(summary.get('accountant')).upper()}, "
            f"delta {summary.get('delta'):g}, {sampling_phrase(summary.get('sampling'))})")


def sampling_phrase(sampling: str | None) -> str:
    """How a sentence names a sampling assumption ("Poisson sampling"), from the parameter table."""
    phrases = KNOB_BY_NAME["sampling"].choice_phrases or {}
    return phrases.get(sampling, f"{sampling} sampling")
