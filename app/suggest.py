"""Find better settings for a privacy budget: search the knobs with the fitted simulator for the highest test accuracy
a real run is predicted to beat 9 times in 10 whose accountant epsilon stays within the target (and, optionally,
whose run time does).

Pure: no Flask, no threads (``app.web.api_suggest`` runs it off the request thread and bounds how many run at once).
The search is a grid over the slider stops of the batch size, epochs, clipping norm and learning rate, around and
beyond the person's own values; for each (batch, epochs) pair the noise multiplier is the smallest slider stop whose
RDP epsilon meets the target (RDP: a valid upper bound in milliseconds per curve, the curves cached), so every
candidate spends the budget and no more. Each candidate is scored by the simulator's mean prediction of its final test
accuracy (the GP's accuracy, mixed with the dead runs' by the divergence model's chance of death, as
``Simulator.simulate(seeded=False)`` mixes them), vectorised over the pair's grid, and ranked by the lower end of
the range a real run of it ends in (``Simulator.real_run_ranges``: what a real run beats 9 times in 10), the mean
breaking ties. The range widens where the fit is unsure, so a setting far from the calibration runs does not win on an
optimistic mean; the best of thousands of predictions is still optimistic (docs/api.md has the measured shortfall).
The search stops at ``budget_seconds`` and says how many candidates it scored (``searched``).

The calibrated range. The simulator clamps inputs beyond its calibration to the edges, where its prediction stops
following the knobs; a search would exploit that flat extrapolation. So a candidate is kept only when every one of the
GP's inputs (``app.simulation.features``) at its final step lies within the range the calibration rows span: the
search never suggests settings outside the simulator's calibrated range. Each candidate carries the range a real run
of it ends in 8 times in 10 (``Simulator.real_run_range``) and its epsilon recomputed by the person's accountant
(PLD too, for the few returned).
"""

from __future__ import annotations

import math
import time

import numpy as np

from app import params as P
from app import privacy, records, simulation
from app.simulation.divergence import divergence_inputs
from app.simulation.features import ACCURACY_RANGE, expit, features

FIELDS = P.RUN_FIELDS  # a suggestion request is a run request (its knobs and target_epsilon) plus max_seconds
MAX_SECONDS_RANGE = (1.0, 86_400.0)
BUDGET_SECONDS = 3.0  # the search's own time budget (a cold accountant cache costs about 0.7 s per batch size)
CANDIDATES = 3
BATCHES = (32, 64, 128, 256, 512, 1024, 2048)
EPOCHS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40)
CLIPS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
LEARNING_RATES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0)
RANGE_CHUNK = 8  # plans whose real-run range is computed at once, best means first
SEARCHED_KNOBS = ("noise_multiplier", "max_grad_norm", "batch_size", "learning_rate", "epochs")


def validate(body) -> tuple[dict, float | None]:
    """A suggestion request's knobs (as a run request's) and its ``max_seconds`` (None when absent).

    Raises:
        ParamError: every bad field at once: a knob out of its range, ``max_seconds`` not a number in
            ``MAX_SECONDS_RANGE``, a non-private run (a budget needs privacy), or a real-mode-only knob away from the
            value the simulator is fitted to.
    """
    errors, max_seconds = {}, None
    if isinstance(body, dict) and "max_seconds" in body:
        body = dict(body)
        raw = body.pop("max_seconds")
        if raw is not None:
            low, high = MAX_SECONDS_RANGE
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not low <= raw <= high:
                errors["max_seconds"] = f"must be a number of seconds between {low:g} and {high:g}, got {raw!r}"[:160]
            else:
                max_seconds = float(raw)
    try:
        clean = P.validate(body, FIELDS)
    except P.ParamError as exc:
        raise P.ParamError({**exc.errors, **errors}) from None
    if not clean["private"]:
        errors["private"] = "must be true: the search looks for settings within a privacy budget, got false"
    for name in FIELDS:
        fitted = P.KNOB_BY_NAME[name].simulated_as
        if fitted is not None and clean[name] != fitted:
            errors[name] = (f"the search uses the simulator, which is fitted to {name} {fitted!r}; got "
                            f"{clean[name]!r}")
    if errors:
        raise P.ParamError(errors)
    return clean, max_seconds


def _grid(values: tuple, own, name: str, low=None, high=None) -> list:
    """The grid's values of knob ``name`` with the person's own value (at its nearest slider stop), within limits."""
    knob = P.KNOB_BY_NAME[name]
    low = knob.min if low is None else low
    high = knob.max if high is None else high
    return sorted({v for v in (*values, P.nearest_stop(name, own)) if low <= v <= high})


def _noise_for(base: dict, batch: int, epochs: int, target: float) -> float | None:
    """The smallest noise-multiplier stop whose RDP epsilon after ``epochs`` epochs of batch ``batch`` meets
    ``target`` (binary search over the stops: epsilon falls as sigma grows); None when even the largest misses."""
    stops = [s for s in P.slider_stops(P.KNOB_BY_NAME["noise_multiplier"]) if s > 0]

    def fits(sigma: float) -> bool:
        curve = privacy.epsilon_curve(**privacy.accounting_args(
            {**base, "sampling": records.RUN_SAMPLING}, noise_multiplier=sigma, batch_size=batch, epochs=epochs,
            accountant="rdp"))
        return curve[-1] <= target

    if not fits(stops[-1]):
        return None
    low, high = 0, len(stops) - 1  # invariant: stops[high] fits
    while low < high:
        middle = (low + high) // 2
        if fits(stops[middle]):
            high = middle
        else:
            low = middle + 1
    return stops[high]


def planned(knobs: dict) -> dict:
    """A candidate's knobs with the plan a runner receives (sampling, q, steps per epoch, steps), no epsilon curve."""
    per_epoch = privacy.steps_per_epoch(dataset_size=knobs["dataset_size"], batch_size=knobs["batch_size"])
    return {**knobs, "sampling": records.RUN_SAMPLING, "sample_rate": knobs["batch_size"] / knobs["dataset_size"],
            "steps_per_epoch": per_epoch, "steps": per_epoch * knobs["epochs"], "epsilon_curve": None}


def seconds(sim, plan: dict) -> float:
    """A run's training and evaluation time by the simulator's timing model (the calibration machine's)."""
    return round(sum(sim.epoch_timing(plan, index)["epoch_seconds"] for index in range(plan["epochs"])), 2)


def score(sim, plans: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted final test accuracy of each plan (the simulator's mean, death mixed in) and whether each lies inside
    the calibrated range (every GP input at its final step within the calibration rows' span)."""
    noise_weight = sim.gp.hyper["noise_weight"]
    x = np.vstack([features(p, np.array([p["steps"]]), noise_weight) for p in plans])
    z = (x - sim.gp.x_mean) / sim.gp.x_scale
    inside = np.all((z >= sim.gp.train_z.min(0)) & (z <= sim.gp.train_z.max(0)), axis=1)
    alive = np.clip(expit(sim.gp.predict(x)[:, 0]), *ACCURACY_RANGE)
    accuracy = alive.copy()
    model = sim.divergence.private
    if model is not None and len(sim.divergence.dead_targets[True]):
        inputs = np.array([divergence_inputs(p) for p in plans])
        dead = model.dead_by(inputs, np.array([p["steps"] for p in plans], dtype=float))
        for i in np.flatnonzero(dead > 1e-4):
            dead_accuracy = float(np.clip(expit(sim.divergence.profile(plans[i])[0]), *ACCURACY_RANGE))
            accuracy[i] = (1 - dead[i]) * alive[i] + dead[i] * dead_accuracy
    return accuracy, inside


def suggest(clean: dict, *, max_seconds: float | None = None, budget_seconds: float = BUDGET_SECONDS,
            count: int = CANDIDATES, clock=time.monotonic) -> dict:
    """The best settings the simulator predicts within the budget ``clean["target_epsilon"]``.

    Args:
        clean: a validated suggestion request (``validate``): the person's knobs; the dataset size, delta,
            accountant, seed and the rest are kept, the knobs of ``SEARCHED_KNOBS`` searched.
        max_seconds: keep only runs the timing model expects to take at most this long (None: any).
        budget_seconds: stop searching after this long (the candidates found so far are answered).
        count: how many candidates to answer, at most one per (batch size, epochs) pair.
        clock: seconds, monotonic (tests pass a fake one).

    Returns:
        ``{"candidates": [{"params", "predicted_accuracy", "real_run_range", "epsilon", "seconds"}], "searched",
        "complete", "target_epsilon", "accountant", "delta", "sampling"}``, best first; ``params`` holds every run
        field (apply them as a run request), ``epsilon`` is the person's accountant's for the candidate (within the
        target), ``real_run_range`` where a real run ends 8 times in 10; ``searched`` counts the candidates scored,
        ``complete`` says whether the whole grid was (False when the time budget ran out).
    """
    started = clock()
    sim = simulation.load()
    target = clean["target_epsilon"]
    batches = _grid(BATCHES, clean["batch_size"], "batch_size", high=clean["dataset_size"])
    # batch-major, nearest batch first: the accountant's cost is per batch (one sampled Gaussian per batch and sigma;
    # other epoch counts compose it at no cost), so a search cut short has covered whole batches around the person's
    batches.sort(key=lambda b: (abs(math.log2(b / clean["batch_size"])), -b))
    pairs = [(b, e) for b in batches for e in _grid(EPOCHS, clean["epochs"], "epochs")]
    clips = _grid(CLIPS, clean["max_grad_norm"], "max_grad_norm")
    rates = _grid(LEARNING_RATES, clean["learning_rate"], "learning_rate")
    best: dict[tuple, tuple] = {}  # (batch, epochs) -> (accuracy, plan): the pair's best inside the calibrated range
    searched, complete = 0, True
    for batch, epochs in pairs:
        if clock() - started > budget_seconds:
            complete = False
            break
        base = {**clean, "batch_size": batch, "epochs": epochs, "budget_stop": False}
        if max_seconds is not None and seconds(sim, planned(base)) > max_seconds:
            continue
        noise = _noise_for(clean, batch, epochs, target)
        if noise is None:
            continue
        plans = [planned({**base, "noise_multiplier": noise, "max_grad_norm": c, "learning_rate": lr})
                 for c in clips for lr in rates]
        accuracy, inside = score(sim, plans)
        searched += len(plans)
        kept = np.flatnonzero(inside & (accuracy >= entry_floor(best, count)))
        if kept.size:
            best[(batch, epochs)] = best_of_pair(sim, plans, accuracy, kept)
    ranked = sorted(best.values(), key=lambda item: (-item[0][0], -item[1]))
    candidates = []
    for real_run_range, accuracy, plan in ranked:
        if len(candidates) == count:
            break
        candidate = _candidate(sim, plan, accuracy, real_run_range, target)
        if candidate is not None:
            candidates.append(candidate)
    return {"candidates": candidates, "searched": searched, "complete": complete, "target_epsilon": target,
            "accountant": clean["accountant"], "delta": clean["delta"], "sampling": records.RUN_SAMPLING}


def best_of_pair(sim, plans: list[dict], accuracy: np.ndarray, kept: np.ndarray) -> tuple:
    """``(real_run_range, accuracy, plan)`` of the plan among ``kept`` with the highest range lower end (the higher
    mean breaking ties). Ranges are computed in chunks, best means first, and no further once the next mean is below
    the best lower end found (a lower end is below its mean): the same answer for a fraction of the work."""
    order = kept[np.argsort(-accuracy[kept], kind="stable")]
    found = None
    for start in range(0, len(order), RANGE_CHUNK):
        chunk = order[start:start + RANGE_CHUNK]
        if found is not None and accuracy[chunk[0]] < found[0][0]:
            break
        for i, real_run_range in zip(chunk, sim.real_run_ranges([plans[i] for i in chunk],
                                                                [plans[i]["steps"] for i in chunk])):
            if found is None or (real_run_range[0], accuracy[i]) > (found[0][0], found[1]):
                found = (real_run_range, float(accuracy[i]), plans[i])
    return found


def entry_floor(best: dict, count: int) -> float:
    """The lowest mean accuracy a plan may have and still enter the answer: the lower end of the range of the
    ``2 * count``-th best pair so far (a range's lower end is below its mean, so a plan whose mean is under it cannot
    rank above those pairs; twice ``count``, because the person's accountant may refuse some), else none."""
    lows = sorted((item[0][0] for item in best.values()), reverse=True)
    return lows[2 * count - 1] if len(lows) >= 2 * count else -math.inf


def _candidate(sim, plan: dict, accuracy: float, real_run_range: list, target: float) -> dict | None:
    """The answer for one plan: its run fields, scores and epsilon by the person's accountant (None when that
    accountant puts it above the target or refuses it: PLD can be looser than RDP at tiny epsilon)."""
    try:
        epsilon = privacy.compute_privacy(**privacy.accounting_args(plan)).epsilon
    except P.ParamError:
        return None
    if not math.isfinite(epsilon) or epsilon > target:
        return None
    return {"params": {name: plan[name] for name in FIELDS}, "predicted_accuracy": round(accuracy, 4),
            "real_run_range": real_run_range, "epsilon": epsilon,
            "seconds": seconds(sim, plan)}
