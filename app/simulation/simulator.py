"""Simulated runs: what our real trainer would report, predicted from real runs of it, in milliseconds.

The model is a Gaussian process (Rasmussen & Williams 2006, ch. 2) fitted to ``app/calibration.json``, the per-epoch
records of real runs of ``app.train`` over a grid spanning the parameter table (``bench/calibrate.py``). It predicts,
from the training knobs and the step count, every quantity that the knobs do not determine by arithmetic:

- the test accuracy (as a logit), the train and test loss (as logs);
- the distribution of per-example gradient norms before clipping, as the logit of its CDF at the inner edges of the
  fixed log-spaced histogram bins; the clip fraction, the norm quantiles and the histogram all follow from that one
  distribution, so the histogram and the clip fraction the page shows always agree with each other and with C.

What it assumes. The inputs are the coordinates in which DP-SGD's update is simple (Abadi et al. 2016; see
``features``): the distance travelled lr*min(C, G)*t, SGD's temperature (step size times the variance of the
sampling and Gaussian noise, over the pull of the clipped gradient), the signal step lr*min(C, G), N and C. A
non-private run is a run with C beyond every measured gradient norm and no noise. Each output is one GP whose kernel is
squared-exponential (one length scale per input) plus linear, on one row per calibrated setting and epoch (the mean
over its seeds, trusted by how well its seeds agree: each row's noise is a floor plus the sampling variance of its
seed mean); the hyperparameters, including the weight of the Gaussian noise in the temperature, minimise the error in
accuracy when each setting is left out (``app.simulate_fit``). Outside the calibrated range the inputs are clamped
to its edges (with a little slack), so the corners of the table behave like the nearest measured corner rather than a
runaway extrapolation. Runs die: they collapse or explode (``dead``), at once under a huge step or after learning for
some epochs under heavy noise. The GP learns from the epochs before a run died; whether and when a run dies is a
separate model, a Weibull time to death in steps behind a gate that says whether the knobs can kill at all
(``TimeToDeath``), from which a simulated run draws its death step.

Everything else is computed, not predicted: epsilon by the accountant with the same q, steps and delta as a real run;
histogram counts from the expected number of examples whose norms an epoch measures; seconds from a linear timing
model fitted to the same runs (per step plus per example, plus evaluation). Seeds: a seeded offset per run and jitter
per epoch, of the typical seed-to-seed spread of the calibration and correlated as real seeds' deviations are (higher
accuracy with lower losses and fewer large gradients; every histogram edge moving together, so a seed's histogram is
as smooth as a real run's), scaled to how much this setting's seeds differ: one more GP output, the log of the seeds'
variance (real seeds agree within 0.3 point at the defaults and differ by 9 points without noise on 500 examples).

How far off it is, measured by leaving each calibrated setting out: ``bench/sim_fidelity.py`` (table in the README).
How far off one run may be, said with the run: ``Simulator.real_run_range``, where a real run of the same settings ends
8 times in 10 (the seeds' spread, the chance of death and the GP's posterior std, scaled by leaving settings out).
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
from scipy.linalg import solve_triangular
from scipy.optimize import minimize
from scipy.special import digamma, ndtr

from app.records import HISTOGRAM_EDGES, measures_norms, recorded_steps, steps_measuring_norms

DATA = Path(__file__).resolve().parent / "data"
CALIBRATION_FILE = DATA / "calibration.json"
FIT_FILE = DATA / "simulator.json"

LOG_EDGES = np.log10(HISTOGRAM_EDGES)
UNCLIPPED_NORM = 1e3  # a non-private run is a run with C above every gradient norm (the histogram's top edge)
TYPICAL_NORM = 10.0  # median per-example gradient norm early in training (calibration: about 10 in epoch 1)
NOISE_FLOOR = 1e-6  # noise step of a run without noise (its log must be finite), below every noisy run's
FEATURES = ("log_distance", "log_temperature", "log_signal_step", "log_dataset_size", "log_clip_norm")
CLAMP_SLACK = 0.25  # standard deviations beyond the calibrated range before inputs are clamped
DIVERGENCE_RIDGE = 0.001
GATE_STEEPNESS = (5.0, 20.0, 50.0)  # slopes of the time-to-death gate's starting points, per decade of an input
DEAD_NEIGHBOURS = 1  # calibrated settings whose dead runs a dead simulated run reports like (``Divergence.profile``)
CHANCE_CEILING = 0.15  # a dead network that ends below this accuracy (a constant guess) collapsed
CONSTANT_GUESS_LOSS = math.log(10)  # cross-entropy of a uniform guess over ten classes
COLLAPSE_TOLERANCE = 0.03  # a constant guess scores at least ln 10, less this
EXPLODED_LOSS = 1e3  # a run whose loss passes this exploded
DEAD_NETWORK_NORM = 2.5  # median gradient norm below which a constant guess is a dead network (calibration: 0.95-1.6)
CDF_LOGIT_LIMIT = 9.0  # CDF targets in (1e-4, 1 - 1e-4)
ACCURACY_RANGE = (0.01, 0.995)
SEED_VARIANCE_FLOOR = 1e-4  # logit accuracy: seeds within about 0.1 point of each other at 90%
SEED_SPREAD_SCALE = (0.05, 5.0)  # how much quieter or noisier than the typical setting a setting's seeds may be
MIXED_FIELDS = ("test_accuracy", "train_loss", "test_loss", "clip_fraction")  # averaged over divergence in a mean
RANGE_QUANTILES = (0.1, 0.9)  # the range stated for a real run's final accuracy holds 80% of real runs
RANGE_GRID = np.linspace(-12.0, 12.0, 961)  # logit accuracy, where the range's quantiles are read off


def features(params: dict, steps: np.ndarray, noise_weight: float) -> np.ndarray:
    """The model's inputs (``FEATURES``) for a run's knobs after each of ``steps`` steps: one row per entry.

    With G a typical unclipped per-example gradient norm, one update moves lr * min(C, G) along the mean clipped
    gradient (the signal step), so lr * min(C, G) * t is the distance travelled. Near a minimum the clipped gradient
    pulls back at rate lr * min(1, C/G) per unit of curvature while each update adds the variance of a mean of B
    clipped gradients (about min(C, G)^2 / B) and of the Gaussian noise ((sigma*C/B)^2 in each of many directions,
    weighted by ``noise_weight``, a fitted hyperparameter); their ratio is SGD's temperature, which sets how far above
    its minimum the loss settles. The same formula holds for non-private runs (no noise, C beyond every norm).
    """
    private = params["private"]
    clip = params["max_grad_norm"] if private else UNCLIPPED_NORM
    noise = params["noise_multiplier"] if private else 0.0
    lr, batch = params["learning_rate"], params["batch_size"]
    signal = lr * min(clip, TYPICAL_NORM)
    temperature = lr * max(1.0, TYPICAL_NORM / clip) * (
        min(clip, TYPICAL_NORM) ** 2 / batch + noise_weight * (noise * clip / batch) ** 2)
    fixed = [math.log10(temperature), math.log10(signal), math.log10(params["dataset_size"]), math.log10(clip)]
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
    """A GP regression on standardised inputs; ``predict`` returns every output at once.

    The kernel is a squared-exponential (one length scale per input) plus a linear kernel plus a constant: the linear
    part is the trend the one-knob sweeps show, the squared-exponential part what bends it and what the knobs do
    together. Inputs beyond the calibrated range are clamped to it (plus ``CLAMP_SLACK``), so the corners of the table
    behave like the nearest measured corner rather than a runaway extrapolation.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    hyper: dict  # length_scales, linear_variance, noise_ratio, seed_noise_weight, noise_weight
    train_z: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    alpha: np.ndarray
    chol: np.ndarray  # lower Cholesky factor of the training kernel matrix with its row noise

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, variance: np.ndarray, hyper: dict) -> "GaussianProcess":
        """Solve the GP for inputs ``x`` (n, d) and outputs ``y`` (n, k), whose rows are seed means with sampling
        variance ``variance`` (n, of the first output), with the given hyperparameters."""
        z, x_mean, x_scale = standardise(x)
        standard_y, y_mean, y_scale = standardise(y)
        chol = np.linalg.cholesky(kernel(z, z, hyper) + np.diag(row_noise(variance / y_scale[0] ** 2, hyper)))
        alpha = solve_triangular(chol.T, solve_triangular(chol, standard_y, lower=True), lower=False)
        return cls(x_mean, x_scale, hyper, z, y_mean, y_scale, alpha, chol)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.y_mean + (kernel(self._clamped(x), self.train_z, self.hyper) @ self.alpha) * self.y_scale

    def latent_std(self, x: np.ndarray) -> np.ndarray:
        """The posterior std of the first output (logit accuracy) at each row of ``x``, without the rows' noise: how
        unsure the fit itself is there (small among calibrated settings, large between distant ones)."""
        z = self._clamped(x)
        spread = solve_triangular(self.chol, kernel(z, self.train_z, self.hyper).T, lower=True)
        prior = kernel_diagonal(z, self.hyper)
        return np.sqrt(np.maximum(prior - (spread ** 2).sum(axis=0), 0.0)) * self.y_scale[0]

    def _clamped(self, x: np.ndarray) -> np.ndarray:
        """Standardised inputs, clamped to the calibrated range plus ``CLAMP_SLACK``."""
        return clamped_to((x - self.x_mean) / self.x_scale, self.train_z)


def clamped_to(z: np.ndarray, train_z: np.ndarray) -> np.ndarray:
    """Standardised inputs ``z`` clamped to the range of the rows ``train_z`` plus ``CLAMP_SLACK``."""
    return np.clip(z, train_z.min(0) - CLAMP_SLACK, train_z.max(0) + CLAMP_SLACK)


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each column minus its mean over its std (floored, so a constant column stays finite), with the mean and std."""
    mean, scale = values.mean(axis=0), values.std(axis=0) + 1e-9
    return (values - mean) / scale, mean, scale


def row_noise(standard_variance: np.ndarray, hyper: dict) -> np.ndarray:
    """The kernel's diagonal noise per row: a floor (what the inputs cannot tell apart) plus the sampling variance of
    the row's seed mean (standardised), weighted: a mean of three disagreeing seeds is trusted less than of eight."""
    return hyper["noise_ratio"] + hyper["seed_noise_weight"] * standard_variance


def kernel(a: np.ndarray, b: np.ndarray, hyper: dict) -> np.ndarray:
    """Squared-exponential (unit variance, one length scale per input) + linear + constant, on standardised inputs."""
    scaled_a, scaled_b = a / np.asarray(hyper["length_scales"]), b / np.asarray(hyper["length_scales"])
    squared = (scaled_a ** 2).sum(1)[:, None] + (scaled_b ** 2).sum(1)[None, :] - 2 * scaled_a @ scaled_b.T
    return np.exp(-0.5 * np.maximum(squared, 0.0)) + hyper["linear_variance"] * (a @ b.T + 1.0)


def kernel_diagonal(a: np.ndarray, hyper: dict) -> np.ndarray:
    """``kernel(a, a, hyper)``'s diagonal, without the matrix."""
    return 1.0 + hyper["linear_variance"] * ((a ** 2).sum(axis=1) + 1.0)


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


@dataclass
class TimeToDeath:
    """The chance that a run is dead after t steps: g(x) * (1 - exp(-H(t))), with x the run's ``divergence_inputs``.

    H(t) = exp(a + k log t + b.x) is a Weibull cumulative hazard, counted in steps: a huge step kills at once, heavy
    noise lets a run learn for some epochs before it dies. g(x) = 1 / (1 + exp(-(c + d.x))), the gate, is the chance
    that a run of these knobs can die at all: a step past an edge makes training unstable (for plain gradient descent,
    a step past 2 / the loss's sharpness; Cohen et al. 2021, arXiv:2103.00065), and below it runs do not die however
    long they train. Without a gate (``gate`` None, g = 1) the chance of death rises with x as slowly as it rises in
    time, which the real runs contradict: non-private on B 256, 1 seed in 30 died at lr 0.25-0.325 and 12 in 36 at
    0.35-0.45, and one Weibull put 16-27% at the lower rates.
    """

    hazard: np.ndarray  # a, log k, b...
    gate: np.ndarray | None  # c, d...; None: every run can die

    def dead_by(self, inputs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The chance of death by each of ``steps``, for the runs whose inputs are the rows of ``inputs``."""
        return np.exp(self._log_gate(inputs)[1]) * -np.expm1(-_cumulative_hazard(self.hazard, inputs, steps))

    def _log_gate(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log(1 - g) and log g for each row of ``inputs``."""
        if self.gate is None:
            return np.full(len(inputs), -np.inf), np.zeros(len(inputs))
        z = self.gate[0] + inputs @ self.gate[1:]
        return -np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)

    def log_likelihood(self, inputs: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[float, np.ndarray]:
        """Of runs seen alive at step ``lower`` and dead at ``upper`` (inf: it ended alive), interval-censored:
        log(1 - g + g exp(-H(lower))) for a run that lived, log g - H(lower) + log(1 - exp(H(lower) - H(upper))) for
        one that died; with its gradient in (hazard, gate), so that the fit needs no finite differences."""
        died = np.isfinite(upper)
        log_closed, log_open = self._log_gate(inputs)
        alive_until, alive_until_slope = _cumulative_hazard(self.hazard, inputs, lower, slope=True)
        dead_at, dead_at_slope = _cumulative_hazard(self.hazard, inputs[died], upper[died], slope=True)
        gap = dead_at - alive_until[died]
        with np.errstate(divide="ignore", over="ignore"):  # a gap too small to resolve adds nothing to the slope
            gap_slope = np.where(gap > 1e-300, 1.0 / np.expm1(np.maximum(gap, 1e-300)), 0.0)
        lived = np.logaddexp(log_closed[~died], log_open[~died] - alive_until[~died])
        value = lived.sum() + (log_open[died] - alive_until[died] + np.log(-np.expm1(-np.maximum(gap, 1e-300)))).sum()
        # d/dH(lower): a run that lived, minus the chance that it could die given that it lived; one that died,
        # -1 - 1/(exp(gap) - 1); d/dH(upper): 1/(exp(gap) - 1).
        by_lower = np.empty(len(inputs))
        by_lower[~died] = -np.exp(log_open[~died] - alive_until[~died] - lived)
        by_lower[died] = -1.0 - gap_slope
        gradient = by_lower @ alive_until_slope + gap_slope @ dead_at_slope
        if self.gate is not None:  # d/dz, z = c + d.x: 1 - g if it died, else -(1 - g) g (1 - exp(-H)) / exp(lived)
            by_gate = np.exp(log_closed)
            by_gate[~died] = -np.exp(log_closed[~died] + log_open[~died] - lived) * -np.expm1(-alive_until[~died])
            gradient = np.concatenate([gradient, [by_gate.sum()], by_gate @ inputs])
        return float(value), gradient


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


def _cumulative_hazard(hazard: np.ndarray, inputs: np.ndarray, steps: np.ndarray, slope: bool = False):
    """H(t) = exp(a + k log t + b.x) for ``hazard`` (a, log k, b...), each row of ``inputs`` and its step count t
    (0 where t is 0); with ``slope``, also its gradient in (a, log k, b...), one row per run."""
    a, log_k, slopes = hazard[0], hazard[1], hazard[2:]
    with np.errstate(divide="ignore", over="ignore"):
        exponent = a + math.exp(log_k) * np.log(steps) + inputs @ slopes
        hazards = np.exp(np.minimum(exponent, 700.0))
    if not slope:
        return hazards
    active = np.where(exponent < 700.0, hazards, 0.0)  # past the cap H no longer moves
    log_steps = np.where(steps > 0, np.log(np.maximum(steps, 1e-300)), 0.0)  # H is 0 at t = 0, and so its slope
    gradient = active[:, None] * np.column_stack([np.ones(len(steps)), math.exp(log_k) * log_steps, inputs])
    return hazards, gradient


def fit_time_to_death(samples: list, gated: bool = True) -> TimeToDeath | None:
    """The ``TimeToDeath`` maximising the likelihood of ``samples`` (inputs, last step seen alive, first step seen dead
    or inf), its slopes penalised by ``DIVERGENCE_RIDGE`` so that separable data give a steep but finite boundary; None
    if no sample died.

    The gate (unless not ``gated``) is kept only if it raises the log-likelihood by more than its number of
    parameters (AIC). On the calibration it does for both kinds: by about 11 (non-private) and 35 (private) for 3 and
    4 parameters. A gate has flat directions where it is closed or wide open, so it is fitted from several starts
    (``_gate_starts``).
    """
    if not samples or all(math.isinf(upper) for _, _, upper in samples):
        return None
    inputs = np.array([x for x, _, _ in samples], dtype=float)
    lower = np.array([low for _, low, _ in samples], dtype=float)
    upper = np.array([up for _, _, up in samples], dtype=float)
    died = np.isfinite(upper)
    width = 2 + inputs.shape[1]

    def model(flat: np.ndarray) -> TimeToDeath:
        return TimeToDeath(flat[:width], flat[width:] if len(flat) > width else None)

    penalised = np.ones(width + (1 + inputs.shape[1] if gated else 0), dtype=bool)
    penalised[[0, 1]] = False  # the slopes b and d are penalised, not a, log k or the gate's offset c
    if gated:
        penalised[width] = False

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = model(flat).log_likelihood(inputs, lower, upper)
        ridge = DIVERGENCE_RIDGE * penalised[:len(flat)] * flat
        return -value + float(ridge @ flat), -gradient + 2 * ridge

    start = np.zeros(width)
    start[0] = math.log(died.mean()) - math.log(np.median(np.where(died, upper, lower)))
    plain = _minimised(objective, start)
    if not gated:
        return model(plain.x)
    best = min((_minimised(objective, np.concatenate([plain.x, gate])) for gate in _gate_starts(inputs[died])),
               key=lambda found: found.fun)
    return model(best.x if plain.fun - best.fun > width - 1 else plain.x)


def _gate_starts(dead_inputs: np.ndarray) -> list[np.ndarray]:
    """Starting gates: steep in one input or in all together, half open at the median run that died."""
    starts = []
    for steepness in GATE_STEEPNESS:
        for direction in [*np.eye(dead_inputs.shape[1]), np.ones(dead_inputs.shape[1])]:
            slopes = steepness * direction
            starts.append(np.concatenate([[-float(np.median(dead_inputs @ slopes))], slopes]))
    return starts


def _minimised(objective, start: np.ndarray):
    return minimize(objective, start, method="BFGS", jac=True, options={"gtol": 1e-6, "maxiter": 1000})


class Simulator:
    """The fitted model: GP, divergence, seed spread and timing, built from the committed files on first use."""

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
    def from_calibration(cls, calibration: dict, fit: dict, leave_out: dict | None = None) -> "Simulator":
        """Fit to the calibration runs (all but those of the setting ``leave_out``, if given)."""
        if leave_out is not None:
            calibration = without_setting(calibration, leave_out)
        rows = calibration_rows(calibration)
        outputs = np.column_stack([rows.y, rows.seed_log_variance])  # the last: how much this setting's seeds differ
        gp = GaussianProcess.fit(rows.features(fit["hyper"]["noise_weight"]), outputs, rows.variance, fit["hyper"])
        return cls(gp, Divergence.fit(calibration), fit)

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
        measured by leaving settings out, ``app.simulate_fit.error_scale``)."""
        step = np.array([params["steps_per_epoch"] * epochs])
        x = features(params, step, self.gp.hyper["noise_weight"])
        predicted = self.gp.predict(x)[0]
        seed_std = self._seed_scale(predicted[-1]) * math.hypot(*self.seed_spread[0])
        alive_std = math.hypot(float(seed_std), self.error_scale * float(self.gp.latent_std(x)[0]))
        cdf = ndtr((RANGE_GRID - predicted[0]) / alive_std)
        dead = float(self.divergence.dead_by(params, step)[0])
        if dead:
            dead_std = max(self.divergence.profile_spread, 1e-3)
            cdf = (1 - dead) * cdf + dead * ndtr((RANGE_GRID - self.divergence.profile(params)[0]) / dead_std)
        bounds = np.interp(RANGE_QUANTILES, cdf + np.arange(len(cdf)) * 1e-12, RANGE_GRID)
        return [round(float(np.clip(expit(b), *ACCURACY_RANGE)), 4) for b in bounds]

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
                **norm_statistics(cdf, params["batch_size"] * steps_measuring_norms(params, index + 1)),
                **self._seconds(params, index),
            })
        return records

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
