"""Runs as the app offers them: which modes are available here, the plan a run carries, its summary at the end.

The job manager (``app.jobs.manager``) knows nothing of DP-SGD; this module gives it the modes' runners
(``app.jobs.runners``), adds to each run's params the plan the accountant derives (sample rate, steps, the epsilon
curve, budget stop), and builds the summary; ``app.advice`` gives the recommendations.
"""

from __future__ import annotations

import math
import threading
import traceback
from typing import Mapping

from app import advice, privacy, records
from app.jobs.manager import JobBackend, JobManager
from app.jobs.runners import MODES
from app.params import ParamError


def warm_up_in_background(config: Mapping, modes: tuple[str, ...] | None = None) -> threading.Thread:
    """Warm every available mode up (build the simulator, then import TensorFlow and trace the real step) in a daemon
    thread, so the first run of either mode starts at once.

    The page never waits for it: requests are served while it runs, and a run that comes first simply does the same
    work itself (both are built once per process, under a lock). ``modes``: only these (a Celery worker warms the
    real trainer alone).
    """
    available = mode_availability(config)

    def work():
        for name, mode in MODES.items():
            if not available[name]["available"] or (modes is not None and name not in modes):
                continue
            try:  # each on its own: one failing must not leave the other cold
                mode.warm_up()
            except Exception:  # noqa: BLE001 - a failed warm-up only means the first run pays the cost
                traceback.print_exc()

    thread = threading.Thread(target=work, name="warm-up", daemon=True)
    thread.start()
    return thread


def mode_availability(config: Mapping) -> dict:
    """For each mode: ``{available, reason, label, ...}``; reason says why a mode cannot run here."""
    if "MODES" in config:
        return config["MODES"]
    availability = {}
    for name, mode in MODES.items():
        reason = mode.unavailable_reason()
        availability[name] = {"available": reason is None, "reason": reason, "label": mode.label,
                              **mode.details(config)}
    return availability


SHUTDOWN_REASON = "the server was shutting down (runs live in its memory), so this run was cancelled; start it again"


def shut_down(manager: JobBackend, log=print, *, reason: str = SHUTDOWN_REASON,
              wait_seconds: float = 3.0) -> list[dict]:
    """Cancel every unfinished run this process holds, marked with ``reason``, say which in the log, and give a
    running trainer ``wait_seconds`` to stop at its next step (gunicorn's ``worker_exit``; a Celery worker's
    shutdown). On the Redis backend a web process holds none: its runs live in Redis and carry on. Returns what
    the backend's ``shutdown`` returns."""
    cancelled = manager.shutdown(reason)
    if not cancelled and not isinstance(manager, JobManager):
        log("shutdown: this process trains no run; the runs live in Redis and carry on")
    for run in cancelled:
        log(f"shutdown: cancelled {run['mode']} run {run['id']} (was {run['status']})")
    if not manager.join(wait_seconds):
        log(f"shutdown: a worker was still busy after {wait_seconds:g} s; exiting without it")
    return cancelled


def build_manager(config: Mapping, *, celery=None) -> JobBackend:
    """The app's job manager: each mode in its lane (real runs in ``REAL_WORKERS`` threads behind ``MAX_QUEUE``,
    simulations paced); ``RUNNERS`` in the config replaces a mode's runner (tests).

    With ``REDIS_URL`` the Redis backend (``app.jobs.redis_store``): the same lanes and limits, runs kept in Redis,
    real runs handed to Celery workers through ``celery`` (``app.jobs.celery_app``); otherwise the embedded
    :class:`JobManager`, every run in this process."""
    runners = config.get("RUNNERS") or {}
    lanes = {name: mode.lane(config, runners.get(name, mode.run)) for name, mode in MODES.items()}
    common = dict(summarize=summarize, advise=advice.recommend, ttl_seconds=config["RUN_TTL_SECONDS"],
                  max_finished=config["MAX_FINISHED_RUNS"])
    if not config.get("REDIS_URL"):
        return JobManager(lanes, **common)
    from app.jobs import celery_app
    from app.jobs.redis_store import RedisJobManager

    return RedisJobManager(lanes, url=config["REDIS_URL"], dispatch=celery_app.dispatcher(celery) if celery else None,
                           heartbeat_seconds=config["HEARTBEAT_SECONDS"],
                           heartbeat_timeout=config["HEARTBEAT_TIMEOUT_SECONDS"], **common)


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
        allowed = privacy.epochs_within_budget(target_epsilon=params["target_epsilon"],
                                               **privacy.accounting_args(params))
        if allowed == 0:
            first = privacy.epsilon_curve(**privacy.accounting_args(params, epochs=1))[0]
            raise ParamError({"target_epsilon": (
                f"even one epoch spends epsilon {first:.3g}, above the target {params['target_epsilon']:g}; "
                "raise the target or the noise multiplier, or turn off the budget stop")})
        extra["budget"] = {"target_epsilon": params["target_epsilon"], "requested_epochs": params["epochs"],
                           "epochs_within_budget": allowed, "stops_early": allowed < params["epochs"]}
        params["epochs"] = min(params["epochs"], allowed)
    params.update(sample_rate=params["batch_size"] / params["dataset_size"], steps_per_epoch=per_epoch,
                  steps=per_epoch * params["epochs"])
    params["epsilon_curve"] = epsilons(params)  # once, here: an accountant refusal is a 400, not a failed run
    return params, extra


def epsilons(params: dict) -> tuple | None:
    """Epsilon after each epoch for the run's q, steps, delta and sampling; None for a non-private run, and None
    entries where epsilon is infinite (no noise)."""
    if not params["private"]:
        return None
    return tuple(records.finite_or_none(e) for e in privacy.epsilon_curve(**privacy.accounting_args(params)))


def submit(manager: JobBackend, clean: dict, config: Mapping, *, owner: str | None = None) -> dict:
    """Check the mode is available here, plan the run and hand it to the manager (``owner``: who starts it, for the
    per-client cap on real runs)."""
    mode = mode_availability(config)[clean["mode"]]
    if not mode["available"]:
        raise ParamError({"mode": f"{clean['mode']!r} is unavailable on this server: {mode['reason']}"})
    params, extra = plan(clean)
    return manager.submit(params, extra=extra, owner=owner)


def momentum_note(params: dict) -> str:
    """A private run with momentum says why its epsilon ignores it; empty otherwise."""
    momentum = params.get("momentum") or 0.0
    if not momentum:
        return ""
    return (f" SGD momentum {momentum:g} only post-processes the noisy gradients the mechanism released, so it leaves "
            "epsilon unchanged.")


def summarize(params: dict, epochs: list, steps: list) -> dict:
    """Summary of a finished (or cancelled) run, from the epochs it completed."""
    last = epochs[-1] if epochs else None
    summary = {
        "final_test_accuracy": last["test_accuracy"] if last else None,
        "epochs_completed": len(epochs),
        "seconds": round(sum(e["epoch_seconds"] for e in epochs), 2),
        "private": params["private"],
        "model": params.get("model"),
        "momentum": params.get("momentum"),
        "accountant": params["accountant"] if params["private"] else None,
        "delta": params["delta"] if params["private"] else None,
        "sampling": params["sampling"] if params["private"] else None,
    }
    if not params["private"]:
        summary.update(final_epsilon=None, epsilon_infinite=True, statement=(
            "Non-private baseline: trained without clipping or noise, so it has no differential privacy guarantee "
            "(epsilon is infinite)."))
    elif epochs:
        report = privacy.compute_privacy(**privacy.accounting_args(params, epochs=len(epochs)))
        summary.update(final_epsilon=None if math.isinf(report.epsilon) else report.epsilon,
                       epsilon_infinite=math.isinf(report.epsilon),
                       statement=report.statement + privacy.RUN_CAVEAT + momentum_note(params))
    else:
        summary.update(final_epsilon=0.0, epsilon_infinite=False,
                       statement="No epoch completed, so no model was released.")
    profile = next((e["profile"] for e in reversed(epochs) if "profile" in e), None)
    if profile is not None:  # a real run that finished measures the cost of privacy after its last epoch
        summary["profile"] = profile
    summary.update(MODES[params["mode"]].summary_extras(params, summary, len(epochs)))
    return summary
