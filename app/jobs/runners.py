"""The run modes, one registry: each mode says whether it can run here, how it warms up, how it runs and in which
kind of lane the job manager holds it. Nothing else in the app branches on a mode's name.

Runners share one contract, ``run(params, report, should_stop)`` (``app.jobs.manager``). TensorFlow and the
simulator's files load inside the mode's functions, on first use, never at import.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable, Mapping

from app.jobs.manager import Lane, Runner


@dataclass(frozen=True)
class Mode:
    """One way to run: ``unavailable_reason()`` is None when it can run here; ``lane(config, runner)`` is how the job
    manager runs it; ``details(config)`` adds facts to its entry in ``GET /api/params``;
    ``summary_extras(params, summary, epochs_completed)`` what the mode changes in a finished run's summary."""

    name: str
    label: str
    unavailable_reason: Callable[[], str | None]
    warm_up: Callable[[], None]
    run: Runner
    lane: Callable[[Mapping, Runner], Lane]
    details: Callable[[Mapping], dict] = field(default=lambda config: {})
    summary_extras: Callable[[dict, dict, int], dict] = field(default=lambda params, summary, epochs: {})


def _simulation_unavailable() -> str | None:
    try:
        from app import simulation
    except ImportError as exc:
        return f"the simulator is not installed ({exc})"
    return simulation.unavailable_reason()


def _simulation_warm_up() -> None:
    from app import simulation

    simulation.load()


def _simulation_run(params, report, should_stop) -> None:
    from app import simulation

    simulation.run(params, report, should_stop)


SIMULATED_PREFIX = ("Simulated run: its accuracy, losses, clipping statistics and times are predicted by a model "
                    "fitted to real runs of this trainer, not measured; its epsilon is not predicted but computed by the "
                    "accountant for these settings, the guarantee a real run with them would have. ")


def _simulation_summary(params: dict, summary: dict, epochs: int) -> dict:
    """A simulated run says so, where a real run of its settings would end (test accuracy, 8 runs in 10) and how
    likely such a run is to collapse by then (the divergence model's chance of death)."""
    from app import simulation

    sim = simulation.load()
    return {"simulated": True, "real_run_range": sim.real_run_range(params, epochs) if epochs else None,
            "collapse_chance": sim.collapse_chance(params, epochs) if epochs else None,
            "statement": SIMULATED_PREFIX + summary["statement"]}


def _training_unavailable() -> str | None:
    from app.training import data

    path, why = data.source()
    if importlib.util.find_spec("tensorflow") is None:
        return "TensorFlow is not installed on this server"
    if path is None and "MNIST_PATH" in why:
        return why
    return data.file_problem(path) if path is not None else None


def _training_warm_up() -> None:
    from app.training import runner

    runner.warm_up()


def _training_run(params, report, should_stop) -> None:
    from app.training import runner  # TensorFlow loads here, on the first real run, never at start

    runner.run(params, report, should_stop)


def _training_details(config: Mapping) -> dict:
    from app.training import data

    # On the Redis backend real runs train on Celery workers the server does not count: workers is the embedded one's.
    return {"data": data.source()[1], "backend": "redis" if config.get("REDIS_URL") else "embedded",
            "workers": config["REAL_WORKERS"], "max_queue": config["MAX_QUEUE"],
            "runs_per_client": config.get("REAL_RUNS_PER_CLIENT", 0)}


SIMULATE = Mode("simulate", "Simulated (fitted to real runs)", _simulation_unavailable, _simulation_warm_up,
                _simulation_run,
                lane=lambda config, runner: Lane(runner, pacing_seconds=config["SIM_PACING_SECONDS"]),
                summary_extras=_simulation_summary)
REAL = Mode("real", "Real (Keras CNN on MNIST)", _training_unavailable, _training_warm_up, _training_run,
            lane=lambda config, runner: Lane(runner, workers=config["REAL_WORKERS"], max_queue=config["MAX_QUEUE"],
                                             max_per_owner=config.get("REAL_RUNS_PER_CLIENT", 0)),
            details=_training_details, summary_extras=lambda params, summary, epochs: {"simulated": False})

MODES: dict[str, Mode] = {mode.name: mode for mode in (SIMULATE, REAL)}  # in the order warm-up visits them
