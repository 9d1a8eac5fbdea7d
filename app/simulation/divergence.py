"""Runs that die: what counts as dead, when a simulated run dies (``Divergence``), and what it reports then.

A run collapses or explodes (``dead``), at once under a huge step or after learning for some epochs under heavy noise.
Whether and when is a ``TimeToDeath`` in the logs of the step sizes that kill (``divergence_inputs``), fitted to the
epochs at which calibration runs died; a dead run reports like the calibrated runs that died nearest it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from app.simulation.features import TYPICAL_NORM, UNCLIPPED_NORM, targets
from app.simulation.time_to_death import TimeToDeath, fit_time_to_death

NOISE_FLOOR = 1e-6  # noise step of a run without noise (its log must be finite), below every noisy run's
DEAD_NEIGHBOURS = 1  # calibrated settings whose dead runs a dead simulated run reports like (``Divergence.profile``)
CHANCE_CEILING = 0.15  # a dead network that ends below this accuracy (a constant guess) collapsed
CONSTANT_GUESS_LOSS = math.log(10)  # cross-entropy of a uniform guess over ten classes
COLLAPSE_TOLERANCE = 0.03  # a constant guess scores at least ln 10, less this
EXPLODED_LOSS = 1e3  # a run whose loss passes this exploded
DEAD_NETWORK_NORM = 2.5  # median gradient norm below which a constant guess is a dead network (calibration: 0.95-1.6)
KINDS = (("private", True), ("non_private", False))  # a stored model's name for each kind of run, and its ``private``


def dead(record: dict) -> bool:
    """Whether an epoch record is of a run that collapsed or exploded: from here on it predicts nothing.

    Collapsed: a constant guess (chance accuracy) whose ReLUs died, so that the only gradient left is the output
    bias's, of norm about 1. A constant guess scores a loss of at least ln 10 (the entropy of the labels), often far
    more when its one output is confident: heavy noise or a huge step kills the network this way, gradually or at
    once. A run that stalled at its initialisation (a tiny learning rate) guesses the same but keeps its gradients,
    and is not dead. Exploded: a loss beyond ``EXPLODED_LOSS``.
    """
    loss = record["train_loss"]
    if loss is None or not math.isfinite(loss) or loss > EXPLODED_LOSS:
        return True
    return (record["test_accuracy"] < CHANCE_CEILING and loss > CONSTANT_GUESS_LOSS - COLLAPSE_TOLERANCE
            and record["grad_norm"]["p50"] < DEAD_NETWORK_NORM)


def death_epoch(run: dict) -> int | None:
    """The first epoch (from 1) from which a calibration run stays dead to its end, or None if it ends alive."""
    death = None
    for index in range(len(run["epochs"]) - 1, -1, -1):
        if not dead(run["epochs"][index]):
            break
        death = index + 1
    return death


def diverged(run: dict) -> bool:
    """Whether a calibration run ends dead (``dead``): it collapsed or exploded at some epoch and never recovered."""
    return death_epoch(run) is not None


@dataclass
class Divergence:
    """When a run dies (``dead``: collapses or explodes), and what a dead run reports.

    Whether and when: a ``TimeToDeath`` per kind of run (private or not), in the logs of the step sizes that drive
    death (``divergence_inputs``): the signal step lr*min(C, G), the sampling noise in it and a private run's Gaussian
    noise step lr*sigma*C/B. Near the boundary seeds die at different epochs or not at all, as real runs do; a simulated
    run draws its fate from its seed. Fitted by maximum likelihood to the calibration runs (``fit_time_to_death``). A
    dead run reports what the dead runs of the ``DEAD_NEIGHBOURS`` nearest calibrated settings (in those inputs)
    reported from their death on (``profile``): collapsed to chance with gradient norms about 1, or exploded with norms
    in the thousands and most of them clipped.
    """

    private: TimeToDeath | None  # None: no run of the kind died
    non_private: TimeToDeath | None
    dead_inputs: dict  # by ``private``: one row of ``divergence_inputs`` per calibrated setting some of whose runs died
    dead_targets: dict  # by ``private``: one row per such setting, its dead runs' mean targets from their death on
    dead_mean: np.ndarray | None  # the mean dead record: where the nearest setting's records lack a target
    profile_spread: float  # std of logit accuracy between dead records: how much dead runs differ

    def as_dict(self) -> dict:
        """Every fitted part as JSON values (NaN as None), read back exactly by ``from_dict``: what the fit file
        stores, so that loading the simulator fits nothing."""
        models = {"private": self.private, "non_private": self.non_private}
        return {**{name: None if model is None else model.as_dict() for name, model in models.items()},
                "dead_inputs": {name: _json_ready(self.dead_inputs[kind]) for name, kind in KINDS},
                "dead_targets": {name: _json_ready(self.dead_targets[kind]) for name, kind in KINDS},
                "dead_mean": None if self.dead_mean is None else _json_ready(self.dead_mean),
                "profile_spread": self.profile_spread}

    @classmethod
    def from_dict(cls, stored: dict) -> "Divergence":
        """The inverse of ``as_dict``: the same model, to the last bit, from its value read from JSON."""

        def model(name: str) -> TimeToDeath | None:
            return None if stored[name] is None else TimeToDeath.from_dict(stored[name])

        def by_kind(field: str) -> dict:
            return {kind: np.array(stored[field][name], dtype=float) for name, kind in KINDS}

        dead_mean = None if stored["dead_mean"] is None else np.array(stored["dead_mean"], dtype=float)
        return cls(model("private"), model("non_private"), by_kind("dead_inputs"), by_kind("dead_targets"), dead_mean,
                   stored["profile_spread"])

    @classmethod
    def fit(cls, calibration: dict) -> "Divergence":
        samples: dict[bool, list] = {True: [], False: []}
        dead_records: dict[str, list] = {}
        for run in calibration["runs"]:
            if not run["epochs"]:
                continue
            steps = [0] + [record["step"] for record in run["epochs"]]
            death = death_epoch(run)
            if death is None:
                interval = (steps[-1], math.inf)
            else:
                interval = (steps[death - 1], steps[death])
                dead_records.setdefault(json.dumps(run["setting"], sort_keys=True), []).extend(
                    targets(record) for record in run["epochs"][death - 1:])
            samples[run["setting"]["private"]].append((divergence_inputs(run["setting"]), *interval))
        dead_inputs, dead_targets = {True: [], False: []}, {True: [], False: []}
        for key, records in dead_records.items():
            setting = json.loads(key)
            dead_inputs[setting["private"]].append(divergence_inputs(setting))
            dead_targets[setting["private"]].append(np.nanmean(np.array(records), axis=0))
        every = np.array([t for records in dead_records.values() for t in records])
        spread = float(np.std(every[:, 0], ddof=1)) if len(every) > 1 else 0.0
        with np.errstate(invalid="ignore"):
            dead_mean = np.nanmean(every, axis=0) if len(every) else None
        return cls(fit_time_to_death(samples[True]), fit_time_to_death(samples[False]),
                   {k: np.array(v) for k, v in dead_inputs.items()}, {k: np.array(v) for k, v in dead_targets.items()},
                   dead_mean, spread)

    def dead_by(self, params: dict, steps: np.ndarray) -> np.ndarray:
        """The chance that a run of ``params`` is dead after each of ``steps`` steps."""
        model = self.private if params["private"] else self.non_private
        if model is None or not len(self.dead_targets[params["private"]]):
            return np.zeros(len(steps))
        return model.dead_by(np.tile(divergence_inputs(params), (len(steps), 1)), np.asarray(steps, dtype=float))

    def profile(self, params: dict) -> np.ndarray:
        """The targets a dead run of ``params`` reports: the mean over the ``DEAD_NEIGHBOURS`` calibrated settings of
        its kind (private or not) nearest in ``divergence_inputs`` whose runs died, of their dead records' means."""
        inputs, targets_ = self.dead_inputs[params["private"]], self.dead_targets[params["private"]]
        distance = np.linalg.norm(inputs - np.array(divergence_inputs(params)), axis=1)
        nearest = np.argsort(distance, kind="stable")[:DEAD_NEIGHBOURS]
        with np.errstate(invalid="ignore"):
            profile = np.nanmean(targets_[nearest], axis=0)
        return np.where(np.isnan(profile), self.dead_mean, profile)


def divergence_inputs(params: dict) -> list[float]:
    """What decides divergence, as logs of step sizes: a private run's Gaussian noise step lr*sigma*C/B; the signal
    step lr*min(C, G) (G for a non-private run); and the sampling noise in it, lr*min(C, G)/sqrt(B), the spread of a
    mean of B per-example gradients (a non-private run on batches of 4 dies at a learning rate that B 256 survives)."""
    lr = params["learning_rate"]
    clip = params["max_grad_norm"] if params["private"] else UNCLIPPED_NORM
    signal = lr * min(clip, TYPICAL_NORM)
    inputs = [math.log10(signal), math.log10(signal / math.sqrt(params["batch_size"]))]
    if params["private"]:
        noise_step = lr * params["noise_multiplier"] * clip / params["batch_size"]
        inputs.insert(0, math.log10(max(noise_step, NOISE_FLOOR)))
    return inputs


def _json_ready(values: np.ndarray) -> list:
    """``values`` as nested lists of floats, NaN as None: JSON has no NaN, and ``np.array(..., dtype=float)`` restores
    it."""
    return np.where(np.isnan(values), None, values).tolist()
