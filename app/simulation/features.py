"""The model's coordinates: a run's knobs and step count as the GP's inputs, an epoch record as its outputs.

Inputs (``features``) are the coordinates in which DP-SGD's update is simple (Abadi et al. 2016): the distance
travelled, SGD's temperature, the signal step, N and C. Outputs (``targets``) are the logit of the test accuracy, the
logs of the losses and the logit of the gradient-norm CDF at the inner edges of the fixed histogram bins.
"""

from __future__ import annotations

import math

import numpy as np

UNCLIPPED_NORM = 1e3  # a non-private run is a run with C above every gradient norm (the histogram's top edge)
TYPICAL_NORM = 10.0  # median per-example gradient norm early in training (calibration: about 10 in epoch 1)
FEATURES = ("log_distance", "log_temperature", "log_signal_step", "log_dataset_size", "log_clip_norm")
CDF_LOGIT_LIMIT = 9.0  # CDF targets in (1e-4, 1 - 1e-4)
ACCURACY_RANGE = (0.01, 0.995)


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
