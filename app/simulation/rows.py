"""The GP's data: the calibration runs as one row per calibrated setting and epoch (``Rows``), and how runs group."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma

from app.simulation.divergence import death_epoch
from app.simulation.features import features, targets

SEED_VARIANCE_FLOOR = 1e-4  # logit accuracy: seeds within about 0.1 point of each other at 90%


def without_setting(calibration: dict, setting: dict) -> dict:
    """The calibration without any run of ``setting`` (every seed of it left out)."""
    return {**calibration, "runs": [run for run in calibration["runs"] if run["setting"] != setting]}


def runs_by_setting(calibration: dict) -> dict[str, list]:
    """The calibration runs grouped by setting (its seeds together), in the file's order."""
    grouped: dict[str, list] = {}
    for run in calibration["runs"]:
        grouped.setdefault(json.dumps(run["setting"], sort_keys=True), []).append(run)
    return grouped


@dataclass
class Rows:
    """The GP's data: one row per calibrated setting and epoch, its targets the mean over the seeds still alive then
    (before their ``death_epoch``); epochs without a norm histogram are skipped."""

    settings: list[dict]  # per setting (group)
    steps: list[list[int]]  # per setting, the step count of each of its rows
    y: np.ndarray  # (rows, outputs)
    variance: np.ndarray  # per row: the sampling variance of the seed mean of the first output (logit accuracy)
    groups: np.ndarray  # per row: its setting's index
    seed_log_variance: np.ndarray  # per row: log of one seed's variance of logit accuracy, unbiased (``log_variance``)

    def features(self, noise_weight: float) -> np.ndarray:
        return np.vstack([features(setting, steps, noise_weight) for setting, steps in zip(self.settings, self.steps)])

    def as_dict(self) -> dict:
        """The rows as JSON values, read back exactly by ``from_dict``: what the fit file stores, so that loading the
        simulator needs neither the calibration file nor the work of reducing it."""
        return {"settings": self.settings, "steps": self.steps, "y": self.y.tolist(),
                "variance": self.variance.tolist(), "groups": self.groups.tolist(),
                "seed_log_variance": self.seed_log_variance.tolist()}

    @classmethod
    def from_dict(cls, stored: dict) -> "Rows":
        """The inverse of ``as_dict``: the same rows, to the last bit, from its value read from JSON."""
        return cls(stored["settings"], stored["steps"], np.array(stored["y"], dtype=float),
                   np.array(stored["variance"], dtype=float), np.array(stored["groups"], dtype=int),
                   np.array(stored["seed_log_variance"], dtype=float))


def alive_epochs(run: dict) -> list[dict]:
    """A run's epoch records before it died (all of them if it ends alive)."""
    death = death_epoch(run)
    return run["epochs"] if death is None else run["epochs"][:death - 1]


def calibration_rows(calibration: dict) -> Rows:
    """The calibration runs as the GP's rows (``Rows``): a run that died later counts for the epochs it trained. A row
    with a single seed alive has no spread of its own: it gets the median variance of one run, measured over the rows
    with several."""
    settings, steps, ys, run_variance, counts, groups = [], [], [], [], [], []
    for seeds in runs_by_setting(calibration).values():
        curves = [alive_epochs(run) for run in seeds]
        rows = []
        for index in range(max(len(curve) for curve in curves)):
            alive = [curve[index] for curve in curves if index < len(curve)]
            per_seed = np.array([targets(record) for record in alive])
            with np.errstate(invalid="ignore"):
                y = np.nanmean(per_seed, axis=0)
            if np.isnan(y).any():
                continue
            rows.append(alive[0]["step"])
            ys.append(y)
            run_variance.append(per_seed[:, 0].var(ddof=1) if len(alive) > 1 else np.nan)
            counts.append(len(alive))
            groups.append(len(settings))
        if rows:
            settings.append(seeds[0]["setting"])
            steps.append(rows)
    run_variance, counts = np.array(run_variance), np.array(counts)
    log_variances = log_variance(run_variance, counts)
    log_variances[np.isnan(log_variances)] = np.nanmedian(log_variances)
    run_variance[np.isnan(run_variance)] = np.nanmedian(run_variance)
    return Rows(settings, steps, np.array(ys), run_variance / counts, np.array(groups), log_variances)


def log_variance(sample_variance: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The log of a variance estimated from ``counts`` seeds, without the bias of the log of a few samples' variance
    (E log s^2 = log sigma^2 + digamma((n-1)/2) - log((n-1)/2) for normal samples); floored at ``SEED_VARIANCE_FLOOR``
    (seeds that agree exactly, e.g. stalled at the same accuracy). NaN where a single seed gives no variance."""
    half_degrees = np.maximum(counts - 1, 1) / 2
    with np.errstate(invalid="ignore"):
        logs = np.log(np.maximum(sample_variance, SEED_VARIANCE_FLOOR)) - (digamma(half_degrees) - np.log(half_degrees))
    return np.where(counts > 1, logs, np.nan)
