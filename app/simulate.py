"""Simulated runs: what our real trainer would report, predicted from real runs of it, in milliseconds.

The model is a Gaussian process (Rasmussen & Williams 2006, ch. 2) fitted to ``app/calibration.json``, the per-epoch
records of real runs of ``app.train`` over a grid spanning the parameter table (``bench/calibrate.py``). It predicts,
from the training knobs and the step count, every quantity that the knobs do not determine by arithmetic:

- the test accuracy (as a logit), the train and test loss (as logs);
- the distribution of per-example gradient norms before clipping, as the logit of its CDF at the inner edges of the
  fixed log-spaced histogram bins; the clip fraction, the norm quantiles and the histogram all follow from that one
  distribution, so the histogram and the clip fraction the page shows always agree with each other and with C.

What it assumes. The inputs are the coordinates in which DP-SGD's update is simple (Abadi et al. 2016): the steps
taken t, the signal step lr*C (all that matters when every gradient is clipped), C itself (how much is clipped), the
noise step lr*sigma*C/B (the std of the noise in each update), B and N. A non-private run is a run with C beyond every
measured gradient norm and no noise. Each output is a linear trend in those coordinates plus a GP with one squared-
exponential kernel (one length scale per coordinate, fitted by maximum marginal likelihood on the accuracy, shared by
all outputs). Outside the calibrated range the inputs are clamped to its edges (half a decade of slack), so the
corners of the table behave like the nearest measured corner rather than a runaway extrapolation.

Everything else is computed, not predicted: epsilon by the accountant with the same q, steps and delta as a real run;
histogram counts from the expected number of examples an epoch sees; seconds from a linear timing model fitted to the
same runs (per step plus per example, plus evaluation). Seeds: a seeded offset per run and jitter per epoch whose
sizes are the seed-to-seed spread measured between the two seeds of each calibrated setting.

How far off it is, measured by leaving each calibrated setting out: ``bench/sim_fidelity.py`` (table in the README).
Fitting: ``python -m app.simulate_fit`` writes the hyperparameters to ``app/simulator.json``; the GP weights are
solved from the calibration file on first use (a fraction of a second, once per process). No TensorFlow.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.records import HISTOGRAM_EDGES, epsilons, recorded_steps

HERE = Path(__file__).resolve().parent
CALIBRATION_FILE = HERE / "calibration.json"
FIT_FILE = HERE / "simulator.json"

LOG_EDGES = np.log10(HISTOGRAM_EDGES)
UNCLIPPED_NORM = 1e3  # a non-private run is a run with C above every gradient norm (the histogram's top edge)
NOISE_FLOOR = 1e-7  # noise step of a run without noise (its log must be finite)
FEATURES = ("log_steps", "log_signal_step", "log_clip_norm", "log_noise_step", "log_batch_size", "log_dataset_size")
CLAMP_SLACK = 0.5  # decades beyond the calibrated range before inputs are clamped
CDF_LOGIT_LIMIT = 9.0  # CDF targets in (1e-4, 1 - 1e-4)
ACCURACY_RANGE = (0.01, 0.995)


def features(params: dict, steps: np.ndarray) -> np.ndarray:
    """The model's inputs for a run's knobs after each of ``steps`` steps (one row per entry of ``steps``)."""
    private = params["private"]
    clip = params["max_grad_norm"] if private else UNCLIPPED_NORM
    noise = params["noise_multiplier"] if private else 0.0
    lr, batch = params["learning_rate"], params["batch_size"]
    fixed = [math.log10(lr * clip), math.log10(clip), math.log10(max(lr * noise * clip / batch, NOISE_FLOOR)),
             math.log10(batch), math.log10(params["dataset_size"])]
    steps = np.asarray(steps, dtype=float)
    return np.column_stack([np.log10(steps), np.tile(fixed, (len(steps), 1))])


def logit(p: np.ndarray, limit: float = CDF_LOGIT_LIMIT) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore"):
        return np.clip(np.log(p) - np.log1p(-p), -limit, limit)


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def targets(record: dict) -> np.ndarray:
    """A real epoch record as the model's outputs: logit accuracy, log losses, logit CDF of the norms at inner edges."""
    accuracy = np.clip(record["test_accuracy"], *ACCURACY_RANGE)
    train_loss = record["train_loss"] if record["train_loss"] is not None else 10.0  # diverged: a large loss
    test_loss = record["test_loss"] if record["test_loss"] is not None else 10.0
    counts = np.asarray(record["grad_norm_histogram"]["counts"], dtype=float)
    cdf = np.cumsum(counts)[:-1] / counts.sum() if counts.sum() else np.full(len(counts) - 1, np.nan)
    return np.concatenate([[logit(accuracy, 20.0), math.log(min(train_loss, 10.0)), math.log(min(test_loss, 10.0))],
                           logit(cdf)])


@dataclass
class GaussianProcess:
    """A GP with a linear mean on standardised inputs; ``predict`` returns every output at once."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    x_low: np.ndarray
    x_high: np.ndarray
    length_scales: np.ndarray
    noise_ratio: float  # noise variance over signal variance, on standardised outputs
    train_x: np.ndarray
    beta: np.ndarray  # linear mean: [1, x] @ beta
    y_scale: np.ndarray
    alpha: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, length_scales, noise_ratio: float) -> "GaussianProcess":
        """Solve the GP for inputs ``x`` (n, d) and outputs ``y`` (n, k) with given hyperparameters."""
        x_mean, x_scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - x_mean) / x_scale
        design = np.column_stack([np.ones(len(z)), z])
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ beta
        y_scale = residual.std(axis=0) + 1e-9
        kernel = rbf(z, z, np.asarray(length_scales)) + noise_ratio * np.eye(len(z))
        chol = np.linalg.cholesky(kernel)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, residual / y_scale))
        return cls(x_mean, x_scale, x.min(axis=0) - CLAMP_SLACK, x.max(axis=0) + CLAMP_SLACK,
                   np.asarray(length_scales), noise_ratio, z, beta, y_scale, alpha)

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (np.clip(x, self.x_low, self.x_high) - self.x_mean) / self.x_scale
        trend = np.column_stack([np.ones(len(z)), z]) @ self.beta
        return trend + (rbf(z, self.train_x, self.length_scales) @ self.alpha) * self.y_scale


def rbf(a: np.ndarray, b: np.ndarray, length_scales: np.ndarray) -> np.ndarray:
    """Squared-exponential kernel with unit signal variance and one length scale per input."""
    a, b = a / length_scales, b / length_scales
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-0.5 * np.maximum(squared, 0.0))


def calibration_rows(calibration: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every calibrated epoch as (features, targets, setting index), skipping records without a norm histogram."""
    xs, ys, groups = [], [], []
    settings = {}
    for run in calibration["runs"]:
        group = settings.setdefault(json.dumps(run["setting"], sort_keys=True), len(settings))
        params = run["setting"]
        for record in run["epochs"]:
            y = targets(record)
            if np.isnan(y).any():
                continue
            xs.append(features(params, [record["step"]])[0])
            ys.append(y)
            groups.append(group)
    return np.array(xs), np.array(ys), np.array(groups)


class Simulator:
    """The fitted model: GP, seed spread and timing, loaded from the committed files on first use."""

    def __init__(self, gp: GaussianProcess, fit: dict):
        self.gp = gp
        self.seed_spread = np.asarray(fit["seed_spread"])  # per output: (persistent, per-epoch) std
        self.timing = fit["timing"]
        self.step_loss_spread = fit["step_loss_spread"]

    @classmethod
    def from_calibration(cls, calibration: dict, fit: dict, keep: np.ndarray | None = None) -> "Simulator":
        """Solve the GP on the calibration rows (only those where ``keep`` is true, if given)."""
        x, y, _ = calibration_rows(calibration)
        if keep is not None:
            x, y = x[keep], y[keep]
        return cls(GaussianProcess.fit(x, y, length_scales=fit["length_scales"], noise_ratio=fit["noise_ratio"]), fit)

    def simulate(self, params: dict, *, seeded: bool = True) -> tuple[list[dict], list[dict]]:
        """Epoch and step records of a simulated run of ``params`` (the knobs plus ``steps_per_epoch``).

        ``seeded=False`` gives the model's mean prediction, without the seed's offset and jitter (for validation).
        """
        per_epoch, epochs = params["steps_per_epoch"], params["epochs"]
        steps = per_epoch * np.arange(1, epochs + 1)
        rng = np.random.default_rng([params["seed"], 7])
        predicted = self.gp.predict(features(params, steps))
        if seeded:
            persistent, jitter = self.seed_spread[:, 0], self.seed_spread[:, 1]
            predicted = predicted + rng.standard_normal(predicted.shape[1]) * persistent \
                + rng.standard_normal(predicted.shape) * jitter
        curve = epsilons(params)
        expected_examples = params["batch_size"] * per_epoch
        epoch_records = []
        for index, row in enumerate(predicted):
            cdf = _monotone_cdf(expit(row[3:]))
            accuracy = float(np.clip(expit(row[0]), *ACCURACY_RANGE))
            epoch_records.append({
                "type": "epoch", "epoch": index + 1, "step": int(steps[index]),
                "train_loss": float(math.exp(row[1])), "test_loss": float(math.exp(row[2])),
                "test_accuracy": round(accuracy, 4),
                "epsilon": curve[index] if curve else None,
                "clip_fraction": clip_fraction(cdf, params["max_grad_norm"]),
                **norm_statistics(cdf, expected_examples),
                **self._seconds(params, index),
            })
        return epoch_records, self._steps(params, epoch_records, rng)

    def _seconds(self, params: dict, index: int) -> dict:
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
        log of the step count, with the batch-to-batch spread of a Poisson batch of B examples."""
        per_epoch, total = params["steps_per_epoch"], params["steps_per_epoch"] * params["epochs"]
        chosen = recorded_steps(total)
        at = np.array([e["step"] for e in epochs], dtype=float) - per_epoch / 2  # epoch means sit mid-epoch
        log_loss = np.interp(np.log(chosen), np.log(np.maximum(at, 1)), [math.log(e["train_loss"]) for e in epochs])
        clipped = np.interp(np.log(chosen), np.log(np.maximum(at, 1)), [e["clip_fraction"] for e in epochs])
        batch = params["batch_size"]
        log_loss = log_loss + rng.standard_normal(len(chosen)) * self.step_loss_spread / math.sqrt(batch)
        clipped = rng.binomial(batch, np.clip(clipped, 0, 1)) / batch
        return [{"type": "step", "step": int(s), "epoch": int(math.ceil(s / per_epoch)),
                 "loss": float(math.exp(loss)), "batch_size": batch, "clip_fraction": float(c)}
                for s, loss, c in zip(chosen, log_loss, clipped)]


def _monotone_cdf(cdf: np.ndarray) -> np.ndarray:
    """The CDF at the inner edges, made non-decreasing, with 0 and 1 at the outer edges."""
    return np.concatenate([[0.0], np.maximum.accumulate(np.clip(cdf, 0.0, 1.0)), [1.0]])


def clip_fraction(cdf: np.ndarray, clip_norm: float) -> float:
    """Share of norms above ``clip_norm``: the CDF interpolated linearly in log-norm within a bin."""
    return float(1.0 - np.interp(math.log10(clip_norm), LOG_EDGES, cdf))


def norm_statistics(cdf: np.ndarray, examples: int) -> dict:
    """Quantiles (the CDF inverted in log-norm) and histogram counts of ``examples`` norms, as the trainer reports."""
    log_edges = LOG_EDGES
    strictly = cdf + np.arange(len(cdf)) * 1e-12  # np.interp needs increasing abscissae
    quantiles = {name: float(10 ** np.interp(q, strictly, log_edges)) for name, q in
                 (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))}
    counts = np.diff(np.round(cdf * examples)).astype(int)
    return {"grad_norm": quantiles,
            "grad_norm_histogram": {"edges": list(HISTOGRAM_EDGES), "counts": counts.tolist()}}


_lock = threading.Lock()
_simulator: list = []


def load() -> Simulator:
    """The simulator of the committed calibration and fit files, built once per process."""
    with _lock:
        if not _simulator:
            _simulator.append(Simulator.from_calibration(json.loads(CALIBRATION_FILE.read_text()),
                                                         json.loads(FIT_FILE.read_text())))
        return _simulator[0]


def unavailable_reason() -> str | None:
    """Why the simulation cannot run here (its fitted files are missing), or None."""
    missing = [path.name for path in (CALIBRATION_FILE, FIT_FILE) if not path.is_file()]
    return f"the simulator's fitted files are missing ({', '.join(missing)})" if missing else None


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
