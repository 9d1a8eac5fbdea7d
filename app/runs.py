"""Wiring runs to runners: which modes exist, the plan a run carries, and the summary it ends with.

The job manager (``app.jobs``) knows nothing of DP-SGD; this module gives it the runners, adds to each run's params
the plan the accountant derives (sample rate, steps, budget stop), and builds the summary and recommendations.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import traceback
from typing import Mapping

from app import advice, data, privacy, records
from app.jobs import JobManager, Lane
from app.params import ParamError


def _real_runner(params, report, should_stop):
    from app import train  # TensorFlow loads here, on the first real run, never at start

    train.run(params, report, should_stop)


def _simulate_runner(params, report, should_stop):
    from app import simulation

    simulation.run(params, report, should_stop)


def warm_up_in_background(config: Mapping) -> threading.Thread:
    """Build the simulator, then import TensorFlow and trace the real step, in a daemon thread, so the first run of
    either mode starts at once.

    The page never waits for it: requests are served while it runs, and a run that comes first simply does the same
    work itself (both are built once per process, under a lock).
    """
    modes = mode_availability(config)

    def simulator():
        from app import simulation

        simulation.load()

    def trainer():
        from app import train

        train.warm_up()

    def work():
        for mode, warm in (("simulate", simulator), ("real", trainer)):
            if not modes[mode]["available"]:
                continue
            try:  # each on its own: one failing must not leave the other cold
                warm()
            except Exception:  # noqa: BLE001 - a failed warm-up only means the first run pays the cost
                traceback.print_exc()

    thread = threading.Thread(target=work, name="warm-up", daemon=True)
    thread.start()
    return thread


def mode_availability(config: Mapping) -> dict:
    """For each mode: ``{available, reason, ...}``; reason says why a mode cannot run here."""
    if "MODES" in config:
        return config["MODES"]
    modes = {}
    sim_missing = simulate_unavailable_reason()
    modes["simulate"] = {"available": sim_missing is None, "reason": sim_missing,
                         "label": "Simulated (fitted to real runs)"}
    real_missing = None
    path, why = data.source()
    if importlib.util.find_spec("tensorflow") is None:
        real_missing = "TensorFlow is not installed on this server"
    elif path is None and "MNIST_PATH" in why:
        real_missing = why
    elif path is not None:
        real_missing = data.file_problem(path)
    modes["real"] = {"available": real_missing is None, "reason": real_missing,
                     "label": "Real (Keras CNN on MNIST)", "data": why,
                     "workers": config["REAL_WORKERS"], "max_queue": config["MAX_QUEUE"]}
    return modes


def simulate_unavailable_reason() -> str | None:
    try:
        from app import simulation
    except ImportError as exc:
        return f"the simulator is not installed ({exc})"
    return simulation.unavailable_reason()


def build_manager(config: Mapping) -> JobManager:
    """The app's job manager: real runs in ``REAL_WORKERS`` threads behind ``MAX_QUEUE``, simulations paced."""
    runners = config.get("RUNNERS") or {"real": _real_runner, "simulate": _simulate_runner}
    lanes = {
        "real": Lane(runners["real"], workers=config["REAL_WORKERS"], max_queue=config["MAX_QUEUE"]),
        "simulate": Lane(runners["simulate"], pacing_seconds=config["SIM_PACING_SECONDS"]),
    }
    return JobManager(lanes, summarize=summarize, advise=advice.recommend, ttl_seconds=config["RUN_TTL_SECONDS"],
                      max_finished=config["MAX_FINISHED_RUNS"])


def plan(clean: dict) -> tuple[dict, dict]:
    """The params a runner receives (the knobs plus what the accountant derives) and the run's extra fields.

    With ``budget_stop`` the run is planned to stop after the last epoch whose epsilon stays within
    ``target_epsilon``; the accountant is deterministic, so that epoch is known before the run starts.
    """
    params = dict(clean)
    params["sampling"] = records.RUN_SAMPLING
    per_epoch = privacy.steps_per_epoch(dataset_size=params["dataset_size"], batch_size=params["batch_size"])
    extra = {}
    if params["private"] and params["budget_stop"]:
        allowed = privacy.epochs_within_budget(target_epsilon=params["target_epsilon"], **records.privacy_args(params))
        if allowed == 0:
            first = privacy.epsilon_curve(**records.privacy_args(params, epochs=1))[0]
            raise ParamError({"target_epsilon": (
                f"even one epoch spends epsilon {first:.3g}, above the target {params['target_epsilon']:g}; "
                "raise the target or the noise multiplier, or turn off the budget stop")})
        extra["budget"] = {"target_epsilon": params["target_epsilon"], "requested_epochs": params["epochs"],
                           "epochs_within_budget": allowed, "stops_early": allowed < params["epochs"]}
        params["epochs"] = min(params["epochs"], allowed)
    params.update(sample_rate=params["batch_size"] / params["dataset_size"], steps_per_epoch=per_epoch,
                  steps=per_epoch * params["epochs"])
    params["epsilon_curve"] = records.epsilons(params)  # once, here: an accountant refusal is a 400, not a failed run
    return params, extra


def submit(manager: JobManager, clean: dict, config: Mapping) -> dict:
    """Check the mode is available here, plan the run and hand it to the manager."""
    mode = mode_availability(config)[clean["mode"]]
    if not mode["available"]:
        raise ParamError({"mode": f"{clean['mode']!r} is unavailable on this server: {mode['reason']}"})
    params, extra = plan(clean)
    return manager.submit(params, extra=extra)


def summarize(params: dict, epochs: list, steps: list) -> dict:
    """Summary of a finished (or cancelled) run, from the epochs it completed."""
    last = epochs[-1] if epochs else None
    summary = {
        "final_test_accuracy": last["test_accuracy"] if last else None,
        "epochs_completed": len(epochs),
        "seconds": round(sum(e["epoch_seconds"] for e in epochs), 2),
        "private": params["private"],
        "accountant": params["accountant"] if params["private"] else None,
        "delta": params["delta"] if params["private"] else None,
        "sampling": params["sampling"] if params["private"] else None,
    }
    if not params["private"]:
        summary.update(final_epsilon=None, epsilon_infinite=True, statement=(
            "Non-private baseline: trained without clipping or noise, so it has no differential privacy guarantee "
            "(epsilon is infinite)."))
    elif epochs:
        report = privacy.compute_privacy(**records.privacy_args(params, epochs=len(epochs)))
        summary.update(final_epsilon=None if math.isinf(report.epsilon) else report.epsilon,
                       epsilon_infinite=math.isinf(report.epsilon),
                       statement=report.statement + privacy.RUN_CAVEAT)
    else:
        summary.update(final_epsilon=0.0, epsilon_infinite=False,
                       statement="No epoch completed, so no model was released.")
    summary["simulated"] = params["mode"] == "simulate"
    if summary["simulated"]:
        summary["real_run_range"] = _real_run_range(params, len(epochs)) if epochs else None
        summary["statement"] = SIMULATED_PREFIX + summary["statement"]
    return summary


def _real_run_range(params: dict, epochs: int) -> list[float]:
    """Where a real run of these settings would end after ``epochs`` epochs (test accuracy, 8 runs in 10)."""
    from app import simulation

    return simulation.load().real_run_range(params, epochs)


SIMULATED_PREFIX = ("Simulated run: its accuracy, losses, clipping statistics and times are predicted by a model "
                    "fitted to real runs of this trainer, not measured; its epsilon is not predicted but computed by the "
                    "accountant for these settings, the guarantee a real run with them would have. ")
