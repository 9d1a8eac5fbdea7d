"""The fitted simulator (``Simulator``): a run's epoch and step records from the GP, the divergence model and the seed
spread; and the runner contract, ``load``, ``unavailable_reason`` and ``run``, over the committed files."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from app.records import (HISTOGRAM_EDGES, measures_norms, norm_statistics_from_cdf, recorded_steps,
                         steps_measuring_norms)
from app.simulation.divergence import Divergence
from app.simulation.features import ACCURACY_RANGE, expit, features
from app.simulation.gp import GaussianProcess
from app.simulation.rows import Rows, calibration_rows, without_setting

DATA = Path(__file__).resolve().parent / "data"
CALIBRATION_FILE = DATA / "calibration.json"
FIT_FILE = DATA / "simulator.json"

LOG_EDGES = np.log10(HISTOGRAM_EDGES)
SEED_SPREAD_SCALE = (0.05, 5.0)  # how much quieter or noisier than the typical setting a setting's seeds may be
MIXED_FIELDS = ("test_accuracy", "train_loss", "test_loss", "clip_fraction")  # averaged over divergence in a mean
RANGE_QUANTILES = (0.1, 0.9)  # the range stated for a real run's final accuracy holds 80% of real runs
RANGE_GRID = np.linspace(-12.0, 12.0, 961)  # logit accuracy, where the range's quantiles are read off


class Simulator:
    """The fitted model: GP, divergence, seed spread and timing, built from the committed fit file on first use."""

    def __init__(self, gp: GaussianProcess, divergence: Divergence, fit: dict):
        self.gp = gp
        self.divergence = divergence
        self.seed_spread = np.asarray(fit["seed_spread"])  # per output: (persistent, per-epoch) std
        # how a seed's deviations go together across outputs: a factor F with F F^T their correlation, per kind
        self.seed_factors = [correlated_factor(np.asarray(fit["seed_correlation"][kind]))
                             for kind in ("persistent", "per_epoch")]
        self.timing = fit["timing"]
        self.step_loss_spread = fit["step_loss_spread"]
        self.error_scale = fit["error_scale"]  # on the GP's posterior std: what leaving settings out measured

    @classmethod
    def from_fit(cls, fit: dict) -> "Simulator":
        """The simulator a fit file stores (``app.simulation.fit``): its GP solved on the stored rows, every other part
        read. Nothing is fitted or optimised here.

        Args:
            fit: the fit file's content, with its ``gp_rows`` and ``divergence``.

        Returns:
            The simulator ``from_calibration`` gives for the calibration the fit was made from, to the last bit.
        """
        return cls.solved(Rows.from_dict(fit["gp_rows"]), Divergence.from_dict(fit["divergence"]), fit)

    @classmethod
    def from_calibration(cls, calibration: dict, fit: dict, leave_out: dict | None = None) -> "Simulator":
        """Fit to the calibration runs (all but those of the setting ``leave_out``, if given): the divergence model by
        maximum likelihood (seconds), the rest read from ``fit``. For validating and fitting; the app loads
        ``from_fit``."""
        if leave_out is not None:
            calibration = without_setting(calibration, leave_out)
        return cls.solved(calibration_rows(calibration), Divergence.fit(calibration), fit)

    @classmethod
    def solved(cls, rows: Rows, divergence: Divergence, fit: dict) -> "Simulator":
        """The GP solved on ``rows`` with the hyperparameters of ``fit`` (a Cholesky solve), beside ``divergence``."""
        outputs = np.column_stack([rows.y, rows.seed_log_variance])  # the last: how much this setting's seeds differ
        gp = GaussianProcess.fit(rows.features(fit["hyper"]["noise_weight"]), outputs, rows.variance, fit["hyper"])
        return cls(gp, divergence, fit)

    def simulate(self, params: dict, *, seeded: bool = True) -> tuple[list[dict], list[dict]]:
        """Epoch and step records of a simulated run of ``params`` (the knobs plus ``steps_per_epoch``).

        ``seeded=False`` gives the model's mean prediction (for validation): no seed offset or jitter, and accuracy,
        losses and clip fraction averaged over the chance that the run has died by each epoch instead of drawn.
        """
        steps = params["steps_per_epoch"] * np.arange(1, params["epochs"] + 1)
        rng = np.random.default_rng([params["seed"], 7])
        dead_by = self.divergence.dead_by(params, steps)
        predicted = self.gp.predict(features(params, steps, self.gp.hyper["noise_weight"]))
        trained, seed_log_variance = predicted[:, :-1], predicted[:, -1]
        dead = np.tile(self.divergence.profile(params), (len(steps), 1)) if dead_by.any() else trained
        if not seeded:
            records = self._epoch_records(params, trained)
            if dead_by.any():
                for record, other, chance in zip(records, self._epoch_records(params, dead), dead_by):
                    for name in MIXED_FIELDS:
                        record[name] = (1 - chance) * record[name] + chance * other[name]
            return records, self._steps(params, records, rng)
        died = rng.random() < dead_by  # one draw: its death step
        predicted = np.where(died[:, None], dead, trained)
        # One run's deviation from its setting's mean, of the typical size and correlated across outputs as real
        # seeds' are, scaled to how much this setting's seeds differ (predicted by the GP; dead runs: as much as the
        # dead calibration runs differ).
        persistent, jitter = self.seed_spread[:, 0], self.seed_spread[:, 1]
        offset_factor, jitter_factor = self.seed_factors
        offset = offset_factor @ rng.standard_normal(len(offset_factor))
        jitter_draw = rng.standard_normal((len(predicted), len(jitter_factor))) @ jitter_factor.T
        deviation = spread_over_outputs(offset, persistent) + spread_over_outputs(jitter_draw, jitter)
        dead_log_variance = 2 * math.log(max(self.divergence.profile_spread, 1e-9))
        scale = self._seed_scale(np.where(died, dead_log_variance, seed_log_variance))
        predicted = predicted + scale[:, None] * deviation
        records = self._epoch_records(params, predicted)
        return records, self._steps(params, records, rng)

    def _seed_scale(self, seed_log_variance: np.ndarray) -> np.ndarray:
        """How much more a seed's logit accuracy deviates than the typical setting's seeds do, within limits."""
        typical = math.hypot(*self.seed_spread[0])
        return np.clip(np.exp(np.asarray(seed_log_variance) / 2) / typical, *SEED_SPREAD_SCALE)

    def real_run_range(self, params: dict, epochs: int) -> list[float]:
        """The test accuracy between whose bounds a real run of ``params`` ends after ``epochs`` epochs, with the
        chances ``RANGE_QUANTILES``: the setting's predicted accuracy, widened by how much its seeds differ (in logit
        accuracy, a normal of the std the GP predicts for them), by its chance to have died (then a normal about the
        dead runs' accuracy), and by the fit's own uncertainty there (the GP's posterior std times ``error_scale``,
        measured by leaving settings out, ``app.simulation.fit.error_scale``)."""
        return self.real_run_ranges([params], [params["steps_per_epoch"] * epochs])[0]

    def real_run_ranges(self, plans: list[dict], steps: list[int]) -> list[list[float]]:
        """``real_run_range`` of each plan after its number of ``steps``, computed together (the settings search
        ranks whole grids by it)."""
        x = np.vstack([features(p, np.array([n]), self.gp.hyper["noise_weight"]) for p, n in zip(plans, steps)])
        predicted = self.gp.predict(x)
        seed_std = self._seed_scale(predicted[:, -1]) * math.hypot(*self.seed_spread[0])
        alive_std = np.hypot(seed_std, self.error_scale * self.gp.latent_std(x))
        cdf = ndtr((RANGE_GRID[None, :] - predicted[:, :1]) / alive_std[:, None])
        ranges = []
        for row, plan, n in zip(cdf, plans, steps):
            dead = float(self.divergence.dead_by(plan, np.array([n]))[0])
            if dead:
                dead_std = max(self.divergence.profile_spread, 1e-3)
                row = (1 - dead) * row + dead * ndtr((RANGE_GRID - self.divergence.profile(plan)[0]) / dead_std)
            bounds = np.interp(RANGE_QUANTILES, row + np.arange(len(row)) * 1e-12, RANGE_GRID)
            ranges.append([round(float(np.clip(expit(b), *ACCURACY_RANGE)), 4) for b in bounds])
        return ranges

    def collapse_chance(self, params: dict, epochs: int) -> float:
        """The chance that a run of ``params`` has collapsed (diverged: ``app.simulation.divergence``) by the end of
        epoch ``epochs``: what ``real_run_range`` mixes in, said on its own so that a range whose lower bound excludes
        a collapse can still say how likely one is."""
        return round(float(self.divergence.dead_by(params, np.array([params["steps_per_epoch"] * epochs]))[0]), 4)

    def _epoch_records(self, params: dict, predicted: np.ndarray) -> list[dict]:
        """Epoch records from the model's outputs (one row per epoch), with the accountant's epsilon."""
        per_epoch = params["steps_per_epoch"]
        curve = params["epsilon_curve"]
        records = []
        for index, row in enumerate(predicted):
            cdf = _monotone_cdf(expit(row[3:]))
            records.append({
                "type": "epoch", "epoch": index + 1, "step": per_epoch * (index + 1),
                "train_loss": float(math.exp(row[1])), "test_loss": float(math.exp(row[2])),
                "test_accuracy": round(float(np.clip(expit(row[0]), *ACCURACY_RANGE)), 4),
                "epsilon": curve[index] if curve else None,
                "clip_fraction": clip_fraction(cdf, params["max_grad_norm"]),
                **norm_statistics_from_cdf(cdf, params["batch_size"] * steps_measuring_norms(params, index + 1)),
                **self.epoch_timing(params, index),
            })
        return records

    def epoch_timing(self, params: dict, index: int) -> dict:
        """Epoch wall time and training throughput as the real trainer takes them on the calibration machine."""
        t = self.timing
        per_epoch = params["steps_per_epoch"]
        examples = params["batch_size"] * per_epoch
        train = per_epoch * t["seconds_per_step"] + examples * t["seconds_per_example"]
        if not params["private"]:
            train *= t["non_private_factor"]
        first = t["first_epoch_extra_seconds"] if index == 0 else 0.0
        return {"epoch_seconds": round(train + first + t["evaluation_seconds"], 3),
                "examples_per_second": round(examples / (train + first), 1)}

    def _steps(self, params: dict, epochs: list[dict], rng: np.random.Generator) -> list[dict]:
        """Per-step loss and clip fraction, thinned like the real trainer's: the epoch curves interpolated in the
        log of the step count, with the batch-to-batch spread of a Poisson batch of B examples on average (its size
        drawn as the trainer draws it); the clip fraction only on steps that measure norms, as in the trainer."""
        per_epoch, total = params["steps_per_epoch"], params["steps_per_epoch"] * params["epochs"]
        chosen = recorded_steps(total)
        at = np.array([e["step"] for e in epochs], dtype=float) - per_epoch / 2  # epoch means sit mid-epoch
        log_loss = np.interp(np.log(chosen), np.log(np.maximum(at, 1)), [math.log(e["train_loss"]) for e in epochs])
        clipped = np.interp(np.log(chosen), np.log(np.maximum(at, 1)), [e["clip_fraction"] for e in epochs])
        batch = params["batch_size"]
        log_loss = log_loss + rng.standard_normal(len(chosen)) * self.step_loss_spread / math.sqrt(batch)
        drawn = rng.binomial(params["dataset_size"], params["sample_rate"], len(chosen))  # a Poisson batch's size
        clipped = rng.binomial(drawn, np.clip(clipped, 0, 1)) / np.maximum(drawn, 1)
        return [{"type": "step", "step": int(s), "epoch": int(math.ceil(s / per_epoch)), "loss": float(math.exp(loss)),
                 "batch_size": int(size),
                 "clip_fraction": float(c) if size and measures_norms(params, int(s)) else None}
                for s, loss, size, c in zip(chosen, log_loss, drawn, clipped)]


def spread_over_outputs(draws: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Deviations of every output from draws of (accuracy, train loss, test loss, norm distribution), each of unit
    variance (last axis): the first three each times its output's spread, the last times every histogram edge's."""
    return np.concatenate([draws[..., :3], np.repeat(draws[..., 3:], len(spread) - 3, axis=-1)], axis=-1) * spread


def correlated_factor(correlation: np.ndarray) -> np.ndarray:
    """F with F F^T = ``correlation`` (its negative eigenvalues, from rounding, set to 0): F z is a draw of
    deviations with that correlation from independent standard normals z."""
    eigenvalues, eigenvectors = np.linalg.eigh(correlation)
    return eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))


def _monotone_cdf(cdf: np.ndarray) -> np.ndarray:
    """The CDF at the inner edges made non-decreasing by rearrangement (sorting its values: never farther from the
    predicted CDF than it was from the true one; Chernozhukov, Fernández-Val & Galichon 2010), with 0 and 1 at the
    outer edges. A running maximum instead cuts a dip flat, leaving empty bins followed by a spike."""
    return np.concatenate([[0.0], np.sort(np.clip(cdf, 0.0, 1.0)), [1.0]])


def clip_fraction(cdf: np.ndarray, clip_norm: float) -> float:
    """Share of norms above ``clip_norm``: the CDF interpolated linearly in log-norm within a bin."""
    return float(1.0 - np.interp(math.log10(clip_norm), LOG_EDGES, cdf))


_lock = threading.Lock()
_simulator: list = []


def load() -> Simulator:
    """The simulator of the committed fit file, built once per process: read and solved (``Simulator.from_fit``)."""
    with _lock:
        if not _simulator:
            _simulator.append(Simulator.from_fit(json.loads(FIT_FILE.read_text())))
        return _simulator[0]


def unavailable_reason() -> str | None:
    """Why the simulation cannot run here (the fit file, all that ``load`` reads, is missing), or None."""
    return None if FIT_FILE.is_file() else f"the simulator's fitted file is missing ({FIT_FILE.name})"


def run(params: dict, report, should_stop) -> None:
    """The runner contract: report every record of the simulated run (the job manager paces their release)."""
    epochs, steps = load().simulate(params)
    by_epoch = {}
    for record in steps:
        by_epoch.setdefault(record["epoch"], []).append(record)
    for record in epochs:
        for step in by_epoch.get(record["epoch"], []):
            if should_stop():
                return
            report(step)
        report(record)
