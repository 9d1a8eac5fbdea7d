"""The Gaussian process regression the simulator predicts with (Rasmussen & Williams 2006, ch. 2): its kernel, its
rows' noise, and the clamp that keeps inputs within the calibrated range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

CLAMP_SLACK = 0.25  # standard deviations beyond the calibrated range before inputs are clamped


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
