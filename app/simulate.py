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
TYPICAL_NORM = 10.0  # median per-example gradient norm early in training (calibration: about 10 in epoch 1)
NOISE_FLOOR = 1e-6  # noise step of a run without noise (its log must be finite), below every noisy run's
TEMPERATURE_FLOOR = 1e-8
FEATURES = ("log_distance", "log_temperature", "log_signal_step", "log_clip_norm", "log_noise_step",
            "log_dataset_size")
CLAMP_SLACK = 0.25  # standard deviations beyond the calibrated range before inputs are clamped
MEAN_KNOTS = 8
MEAN_INPUTS = (0, 1, 4, 5)
DIVERGENCE_RIDGE = 0.01
CHANCE_CEILING = 0.15  # a run that ends below this accuracy with the loss of a constant guess (ln 10) or worse ...
DEAD_LOSS = 2.29  # ... diverged (or its ReLUs died): it predicts nothing, whatever the other knobs
MEAN_SMOOTHING = 1.0
CDF_LOGIT_LIMIT = 9.0  # CDF targets in (1e-4, 1 - 1e-4)
ACCURACY_RANGE = (0.01, 0.995)


def features(params: dict, steps: np.ndarray) -> np.ndarray:
    """The model's inputs for a run's knobs after each of ``steps`` steps (one row per entry of ``steps``).

    The signal step s = lr * min(C, G) is how far one update moves along the mean clipped gradient (G, a typical
    unclipped gradient norm, caps it when C clips little); s*t is the distance travelled; s*(sigma/B)^2 is the noise
    temperature (the stationary excess loss of SGD grows with step size times gradient-noise variance, here relative
    to the signal); lr*sigma*C/B is the raw noise per update.
    """
    private = params["private"]
    clip = params["max_grad_norm"] if private else UNCLIPPED_NORM
    noise = params["noise_multiplier"] if private else 0.0
    lr, batch = params["learning_rate"], params["batch_size"]
    signal = lr * min(clip, TYPICAL_NORM)
    fixed = [math.log10(signal * (noise / batch) ** 2 + TEMPERATURE_FLOOR), math.log10(signal), math.log10(clip),
             math.log10(lr * noise * clip / batch + NOISE_FLOOR), math.log10(params["dataset_size"])]
    steps = np.asarray(steps, dtype=float)
    return np.column_stack([np.log10(signal * steps), np.tile(fixed, (len(steps), 1))])


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
    """A GP around an additive mean on standardised inputs; ``predict`` returns every output at once.

    The mean is a sum of one smooth piecewise-linear function per input (penalised second differences), which the
    one-knob-at-a-time calibration grid pins down axis by axis and which stays flat beyond the measured range; the GP
    adds what the inputs do together.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    length_scales: np.ndarray
    noise_ratio: float  # noise variance over signal variance, on standardised outputs
    knots: list  # per input, the knots of its piecewise-linear mean
    beta: np.ndarray  # additive mean: additive_design(z, knots) @ beta
    train_z: np.ndarray
    y_scale: np.ndarray
    alpha: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, length_scales, noise_ratio: float) -> "GaussianProcess":
        """Solve the GP for inputs ``x`` (n, d) and outputs ``y`` (n, k) with given hyperparameters."""
        x_mean, x_scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - x_mean) / x_scale
        knots = [np.unique(np.quantile(column, np.linspace(0, 1, MEAN_KNOTS))) if j in MEAN_INPUTS else np.zeros(1)
                 for j, column in enumerate(z.T)]
        design = additive_design(z, knots)
        penalty = smoothness_penalty(knots)
        beta = np.linalg.solve(design.T @ design + MEAN_SMOOTHING * penalty + 1e-6 * np.eye(design.shape[1]),
                               design.T @ y)
        residual = y - design @ beta
        y_scale = residual.std(axis=0) + 1e-9
        kernel = rbf(z, z, np.asarray(length_scales)) + noise_ratio * np.eye(len(z))
        chol = np.linalg.cholesky(kernel)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, residual / y_scale))
        return cls(x_mean, x_scale, np.asarray(length_scales), noise_ratio, knots, beta, z, y_scale, alpha)

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.x_mean) / self.x_scale
        lowest = np.array([k[0] for k in self.knots]) - CLAMP_SLACK
        highest = np.array([k[-1] for k in self.knots]) + CLAMP_SLACK
        z = np.clip(z, lowest, highest)
        trend = additive_design(z, self.knots) @ self.beta
        return trend + (rbf(z, self.train_z, self.length_scales) @ self.alpha) * self.y_scale


def hat_basis(values: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation weights of ``values`` on ``knots`` (flat beyond them): one column per knot."""
    basis = np.zeros((len(values), len(knots)))
    if len(knots) == 1:
        basis[:, 0] = 1.0
        return basis
    values = np.clip(values, knots[0], knots[-1])
    left = np.clip(np.searchsorted(knots, values, side="right") - 1, 0, len(knots) - 2)
    weight = (values - knots[left]) / (knots[left + 1] - knots[left])
    rows = np.arange(len(values))
    basis[rows, left] = 1.0 - weight
    basis[rows, left + 1] += weight
    return basis


def additive_design(z: np.ndarray, knots: list) -> np.ndarray:
    return np.column_stack([np.ones(len(z))] + [hat_basis(z[:, j], k) for j, k in enumerate(knots)])


def smoothness_penalty(knots: list) -> np.ndarray:
    """Sum of squared second differences of each input's knot values (slopes should change gently)."""
    size = 1 + sum(len(k) for k in knots)
    penalty = np.zeros((size, size))
    offset = 1
    for k in knots:
        for i in range(len(k) - 2):
            row = np.zeros(size)
            row[offset + i:offset + i + 3] = (1.0, -2.0, 1.0)
            penalty += np.outer(row, row)
        offset += len(k)
    return penalty


def rbf(a: np.ndarray, b: np.ndarray, length_scales: np.ndarray) -> np.ndarray:
    """Squared-exponential kernel with unit signal variance and one length scale per input."""
    a, b = a / length_scales, b / length_scales
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-0.5 * np.maximum(squared, 0.0))


def diverged(run: dict) -> bool:
    """Whether a calibration run ended at chance level with a dead or exploding loss."""
    last = run["epochs"][-1]
    return last["test_accuracy"] < CHANCE_CEILING and (last["train_loss"] is None or last["train_loss"] >= DEAD_LOSS)


def calibration_rows(calibration: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every epoch of the runs that trained (not diverged) as (features, targets, setting index), skipping records
    without a norm histogram."""
    xs, ys, groups = [], [], []
    settings = {}
    for run in calibration["runs"]:
        group = settings.setdefault(json.dumps(run["setting"], sort_keys=True), len(settings))
        params = run["setting"]
        if diverged(run):
            continue
        for record in run["epochs"]:
            y = targets(record)
            if np.isnan(y).any():
                continue
            xs.append(features(params, [record["step"]])[0])
            ys.append(y)
            groups.append(group)
    return np.array(xs), np.array(ys), np.array(groups)


@dataclass
class Divergence:
    """The chance that a run diverges, and what a diverged run reports.

    Two mechanisms, each a logistic regression on the log of one step size over the calibration runs (each seed one
    sample, diverged or not): a private run's noise step lr*sigma*C/B, and a non-private run's unclipped step lr*G
    (clipping bounds a private run's signal step). Near the boundary real runs diverge with some seeds and not with
    others; a simulated run draws its fate from its seed with this probability. A diverged run reports the mean of the
    diverged calibration runs' targets (chance accuracy, a dead or exploding loss).
    """

    private: tuple | None  # (intercept, slope) on log10 of the noise step; None: no private run diverged
    non_private: tuple | None  # on log10 of the unclipped step
    profile: np.ndarray | None

    @classmethod
    def fit(cls, calibration: dict) -> "Divergence":
        samples = {True: ([], []), False: ([], [])}
        profiles = []
        for run in calibration["runs"]:
            private = run["setting"]["private"]
            samples[private][0].append(math.log10(_step_size(run["setting"])))
            samples[private][1].append(diverged(run))
            if diverged(run):
                profiles += [targets(record) for record in run["epochs"]]
        profile = np.nanmean(np.array(profiles), axis=0) if profiles else None
        return cls(_logistic(*samples[True]), _logistic(*samples[False]), profile)

    def probability(self, params: dict) -> float:
        coefficients = self.private if params["private"] else self.non_private
        if coefficients is None or self.profile is None:
            return 0.0
        return float(expit(coefficients[0] + coefficients[1] * math.log10(_step_size(params))))


def _step_size(params: dict) -> float:
    """The step that decides divergence: noise step for a private run, unclipped signal step for a non-private one."""
    if params["private"]:
        return max(params["learning_rate"] * params["noise_multiplier"] * params["max_grad_norm"]
                   / params["batch_size"], NOISE_FLOOR)
    return params["learning_rate"] * TYPICAL_NORM


def _logistic(x: list, labels: list) -> tuple | None:
    """(intercept, slope) of a logistic regression by Newton's method, the slope lightly penalised so that separable
    data (every diverged run beyond every trained one) gives a steep but finite boundary."""
    if not any(labels):
        return None
    design = np.column_stack([np.ones(len(x)), x])
    y = np.asarray(labels, dtype=float)
    penalty = np.diag([0.0, DIVERGENCE_RIDGE])
    coefficients = np.zeros(2)
    for _ in range(100):
        p = expit(design @ coefficients)
        gradient = design.T @ (y - p) - penalty @ coefficients
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        coefficients = coefficients + step
        if np.abs(step).max() < 1e-10:
            break
    return float(coefficients[0]), float(coefficients[1])


class Simulator:
    """The fitted model: GP, divergence, seed spread and timing, built from the committed files on first use."""

    def __init__(self, gp: GaussianProcess, divergence: Divergence, fit: dict):
        self.gp = gp
        self.divergence = divergence
        self.seed_spread = np.asarray(fit["seed_spread"])  # per output: (persistent, per-epoch) std
        self.timing = fit["timing"]
        self.step_loss_spread = fit["step_loss_spread"]

    @classmethod
    def from_calibration(cls, calibration: dict, fit: dict, leave_out: dict | None = None) -> "Simulator":
        """Fit to the calibration runs (all but those of the setting ``leave_out``, if given)."""
        if leave_out is not None:
            calibration = {**calibration, "runs": [r for r in calibration["runs"] if r["setting"] != leave_out]}
        x, y, _ = calibration_rows(calibration)
        gp = GaussianProcess.fit(x, y, length_scales=fit["length_scales"], noise_ratio=fit["noise_ratio"])
        return cls(gp, Divergence.fit(calibration), fit)

    def simulate(self, params: dict, *, seeded: bool = True) -> tuple[list[dict], list[dict]]:
        """Epoch and step records of a simulated run of ``params`` (the knobs plus ``steps_per_epoch``).

        ``seeded=False`` gives the model's mean prediction, without the seed's offset and jitter (for validation).
        """
        per_epoch, epochs = params["steps_per_epoch"], params["epochs"]
        steps = per_epoch * np.arange(1, epochs + 1)
        rng = np.random.default_rng([params["seed"], 7])
        chance = self.divergence.probability(params)
        if (rng.random() < chance) if seeded else chance >= 0.5:
            predicted = np.tile(self.divergence.profile, (len(steps), 1))
        else:
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
