"""Fitting the simulator (``app.simulate``) to the calibration runs: ``python -m app.simulate_fit``.

Reads ``app/calibration.json`` (real runs of our trainer, written by ``bench/calibrate.py``) and writes
``app/simulator.json``: the GP's hyperparameters (length scales and noise ratio, by maximum marginal likelihood on the
accuracy output), the seed-to-seed spread of every output, the timing model and the per-step loss spread, with the
calibration file's hash so a stale fit is detected. Deterministic: the same calibration file gives the same fit.
Offline only (scipy); the running app reads the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time

import numpy as np
from scipy.optimize import minimize

from app.simulate import (CALIBRATION_FILE, FEATURES, FIT_FILE, GaussianProcess, additive_design, calibration_rows,
                          diverged, rbf, targets)

HYPERPARAMETER_SAMPLE = 700  # rows used to fit the length scales (the full solve uses every row)


def file_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def negative_log_marginal_likelihood(log_params: np.ndarray, z: np.ndarray, y: np.ndarray) -> float:
    """Of standardised residuals ``y`` (n,) under a unit-variance RBF GP with the given log length scales and noise."""
    length_scales, noise = np.exp(log_params[:-1]), math.exp(log_params[-1])
    kernel = rbf(z, z, length_scales) + (noise + 1e-8) * np.eye(len(z))
    try:
        chol = np.linalg.cholesky(kernel)
    except np.linalg.LinAlgError:
        return 1e10
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
    return float(0.5 * y @ alpha + np.log(np.diag(chol)).sum())


def fit_hyperparameters(x: np.ndarray, y: np.ndarray) -> tuple[list[float], float]:
    """Length scales (standardised inputs) and noise ratio maximising the marginal likelihood of logit accuracy."""
    rng = np.random.default_rng(0)
    rows = rng.choice(len(x), size=min(len(x), HYPERPARAMETER_SAMPLE), replace=False)
    x, y = x[rows], y[rows]
    z = (x - x.mean(0)) / (x.std(0) + 1e-9)
    mean_only = GaussianProcess.fit(x, y[:, None], length_scales=np.ones(x.shape[1]), noise_ratio=1e6)
    residual = y - additive_design(z, mean_only.knots) @ mean_only.beta[:, 0]
    residual = residual / residual.std()
    start = np.log(np.r_[np.ones(z.shape[1]), 0.05])
    bounds = [(math.log(0.05), math.log(50.0))] * z.shape[1] + [(math.log(1e-4), math.log(1.0))]
    found = minimize(negative_log_marginal_likelihood, start, args=(z, residual), method="L-BFGS-B", bounds=bounds,
                     options={"maxiter": 200})
    return [round(float(v), 6) for v in np.exp(found.x[:-1])], round(float(math.exp(found.x[-1])), 8)


def seed_spread(calibration: dict) -> list[list[float]]:
    """Per output: (persistent, per-epoch) std of the seed-to-seed difference, from settings run with two seeds.

    The difference between two seeds' curves splits into its mean over epochs (a persistent offset) and what remains
    (epoch-to-epoch jitter); each std is divided by sqrt(2) to describe one run.
    """
    by_setting: dict[str, list] = {}
    for run in calibration["runs"]:
        by_setting.setdefault(json.dumps(run["setting"], sort_keys=True), []).append(run)
    offsets, jitters = [], []
    for runs in by_setting.values():
        if len(runs) < 2:
            continue
        if any(diverged(run) for run in runs[:2]):
            continue  # a diverged seed is the divergence model's business, not a seed's spread
        a, b = (np.array([targets(r) for r in run["epochs"]]) for run in runs[:2])
        n = min(len(a), len(b))
        diff = a[:n] - b[:n]
        if np.isnan(diff).any():
            continue
        offsets.append(diff.mean(0))
        jitters.append(diff - diff.mean(0))
    if not offsets:
        raise ValueError("the calibration file has no setting run with two seeds; run bench/calibrate.py further")
    offset = np.std(offsets, axis=0) / math.sqrt(2)
    jitter = np.sqrt(np.mean(np.concatenate(jitters) ** 2, axis=0)) / math.sqrt(2)
    return [[round(float(o), 5), round(float(j), 5)] for o, j in zip(offset, jitter)]


def timing(calibration: dict) -> dict:
    """Training seconds per step and per example (least squares over epochs after the first, private runs), the
    non-private speed factor, evaluation seconds and the first epoch's extra (tracing) seconds: medians.

    From the short timing runs made on a quiet machine (``bench/calibrate.py --timing``) when the file has them, else
    from the grid's runs (whose times may include other work sharing the machine).
    """
    timed = calibration.get("timing_runs") or calibration["runs"]
    rows, seconds, evaluation, first_extra, non_private = [], [], [], [], []
    for run in timed:
        per_epoch, batch = run["steps_per_epoch"], run["setting"]["batch_size"]
        train = [batch * per_epoch / r["examples_per_second"] for r in run["epochs"] if r["examples_per_second"]]
        for index, record in enumerate(run["epochs"]):
            if not record["examples_per_second"]:
                continue
            train_seconds = batch * per_epoch / record["examples_per_second"]
            evaluation.append(record["epoch_seconds"] - train_seconds)
            if index == 0:
                if len(train) > 1:
                    first_extra.append(train_seconds - float(np.median(train[1:])))
            elif run["setting"]["private"]:
                rows.append([per_epoch, batch * per_epoch])
                seconds.append(train_seconds)
    coefficients, *_ = np.linalg.lstsq(np.array(rows, dtype=float), np.array(seconds), rcond=None)
    per_step, per_example = (max(0.0, float(c)) for c in coefficients)
    for run in timed:
        if not run["setting"]["private"]:
            per_epoch, batch = run["steps_per_epoch"], run["setting"]["batch_size"]
            model = per_epoch * per_step + batch * per_epoch * per_example
            measured = [batch * per_epoch / r["examples_per_second"] for r in run["epochs"][1:]
                        if r["examples_per_second"]]
            if measured and model > 0:
                non_private.append(float(np.median(measured)) / model)
    return {"seconds_per_step": round(per_step, 6), "seconds_per_example": round(per_example, 9),
            "non_private_factor": round(float(np.median(non_private)) if non_private else 1.0, 4),
            "evaluation_seconds": round(float(np.median(evaluation)), 4),
            "first_epoch_extra_seconds": round(max(0.0, float(np.median(first_extra))) if first_extra else 0.0, 4)}


def step_loss_spread(calibration: dict) -> float:
    """Std of log step loss around its epoch's mean, times sqrt(B): the batch-to-batch spread of one example's loss."""
    spreads = []
    for run in calibration["runs"]:
        batch = run["setting"]["batch_size"]
        by_epoch: dict[int, list] = {}
        for step in run["steps"]:
            if step["loss"]:
                by_epoch.setdefault(step["epoch"], []).append(math.log(step["loss"]))
        for values in by_epoch.values():
            if len(values) >= 3:
                spreads.append(float(np.std(values)) * math.sqrt(batch))
    return round(float(np.median(spreads)), 4) if spreads else 0.0


def fit(calibration: dict) -> dict:
    x, y, _ = calibration_rows(calibration)
    length_scales, noise_ratio = fit_hyperparameters(x, y[:, 0])
    return {"features": list(FEATURES), "length_scales": length_scales, "noise_ratio": noise_ratio,
            "seed_spread": seed_spread(calibration), "timing": timing(calibration),
            "step_loss_spread": step_loss_spread(calibration), "rows": int(len(x)),
            "calibration_sha256": file_hash(CALIBRATION_FILE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="refit and compare with the committed fit; no write")
    args = parser.parse_args()
    started = time.perf_counter()
    result = fit(json.loads(CALIBRATION_FILE.read_text()))
    if args.check:
        committed = json.loads(FIT_FILE.read_text())
        same = {k: committed.get(k) == v for k, v in result.items()}
        print(json.dumps(same, indent=1))
        raise SystemExit(0 if all(same.values()) else 1)
    FIT_FILE.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {FIT_FILE} from {result['rows']} epochs in {time.perf_counter() - started:.1f} s")
    print(json.dumps({k: v for k, v in result.items() if k != "seed_spread"}, indent=1))


if __name__ == "__main__":
    main()
