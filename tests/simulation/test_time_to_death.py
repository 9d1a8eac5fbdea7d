"""The time-to-death model: its fit recovers known models, with a gate and without; its gradient is its slope."""

import math

import numpy as np

from app.simulation.time_to_death import TimeToDeath, fit_time_to_death


def interval_censored_deaths(model: TimeToDeath, x: np.ndarray, rng: np.random.Generator) -> list:
    """Runs whose death steps are drawn from a known ``model``, seen only at epoch ends (every 100 steps, 10 epochs)
    as the calibration sees them: (inputs, last step seen alive, first seen dead or inf)."""
    epoch_ends = np.arange(0, 1001, 100)
    fine = np.arange(1, 1001, dtype=float)
    samples = []
    for inputs in x:
        alive = 1 - model.dead_by(np.tile(inputs, (len(fine), 1)), fine)
        fate = rng.random()  # the run dies at the first step whose survival falls below it
        if alive[-1] >= fate:
            samples.append((inputs.tolist(), float(epoch_ends[-1]), math.inf))
        else:
            end = int(np.searchsorted(epoch_ends, fine[np.argmax(alive < fate)]))
            samples.append((inputs.tolist(), float(epoch_ends[end - 1]), float(epoch_ends[end])))
    return samples


def chance_of_death_error(found: TimeToDeath, true: TimeToDeath, points: np.ndarray) -> float:
    """The largest difference in the chance that a run is dead after 100, 500 or 1000 steps, over ``points``."""
    steps = np.array([100.0, 500.0, 1000.0])
    return max(float(np.abs(found.dead_by(np.tile(inputs, (3, 1)), steps)
                            - true.dead_by(np.tile(inputs, (3, 1)), steps)).max()) for inputs in points)


def test_the_time_to_death_fit_recovers_a_known_weibull_without_a_gate():
    rng = np.random.default_rng(1)
    true = TimeToDeath(np.array([-9.0, math.log(1.5), 2.0]), None)  # a, log k, slope
    samples = interval_censored_deaths(true, rng.uniform(-1, 1, size=(600, 1)), rng)
    found = fit_time_to_death(samples)
    assert found.gate is None  # every run could die here: a gate is not worth its parameters
    assert chance_of_death_error(found, true, np.linspace(-1, 1, 9)[:, None]) < 0.1  # 600 runs' sampling error
    assert fit_time_to_death([([0.0], 1000.0, math.inf)] * 5) is None  # nothing died: no model at all


def test_the_time_to_death_likelihoods_gradient_is_its_slope():
    # The fit follows the analytic gradient; finite differences must agree, with a gate and without, for runs that
    # lived, died between two epochs, or died in the first (seen alive only at step 0).
    from scipy.optimize import approx_fprime

    rng = np.random.default_rng(3)
    inputs, lower = rng.uniform(-1, 1, size=(60, 2)), rng.choice([0.0, 100.0, 500.0], size=60)
    upper = np.where(rng.random(60) < 0.4, lower + rng.choice([100.0, 400.0], size=60), math.inf)
    hazard = np.array([-6.0, math.log(0.8), 1.5, -0.7])
    for gate in (None, np.array([0.3, 2.0, -1.5])):
        flat = hazard if gate is None else np.concatenate([hazard, gate])

        def value(f):
            return TimeToDeath(f[:4], f[4:] if len(f) > 4 else None).log_likelihood(inputs, lower, upper)[0]

        _, gradient = TimeToDeath(hazard, gate).log_likelihood(inputs, lower, upper)
        np.testing.assert_allclose(gradient, approx_fprime(flat, value, 1e-6), rtol=1e-4, atol=1e-3)


def test_a_gate_is_found_when_only_runs_past_an_edge_die():
    # Past x = 0 runs can die, and how soon grows gently with x (as non-private runs past lr 0.33 on B 256): one
    # Weibull spreads the deaths over both sides of the edge, the gated model recovers them.
    rng = np.random.default_rng(2)
    true = TimeToDeath(np.array([-6.0, math.log(0.8), 2.0]), np.array([0.0, 30.0]))
    samples = interval_censored_deaths(true, rng.uniform(-1, 1, size=(800, 1)), rng)
    found = fit_time_to_death(samples)
    points = np.linspace(-1, 1, 21)[:, None]
    assert found.gate is not None and chance_of_death_error(found, true, points) < 0.1
    assert chance_of_death_error(fit_time_to_death(samples, gated=False), true, points) > 0.2
