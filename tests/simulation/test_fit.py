"""The offline fit: reproducible from the data file, the model it stores for loading included; its leave-one-out
exact."""

import json

import numpy as np
import pytest

from app.simulation import fit
from app.simulation.features import FEATURES
from app.simulation.gp import kernel, kernel_diagonal
from app.simulation.rows import calibration_rows
from app.simulation.simulator import CALIBRATION_FILE, FIT_FILE
from tests.simulation.common import CALIBRATION, assert_same_numbers


def test_the_fit_is_reproducible_from_the_data_file():
    committed = json.loads(FIT_FILE.read_text())
    assert committed["calibration_sha256"] == fit.file_hash(CALIBRATION_FILE)
    assert committed["features"] == list(FEATURES)
    # The cheap parts are refitted here; the hyperparameter search (minutes) by `python -m app.simulation.fit --check`.
    assert fit.timing(CALIBRATION) == committed["timing"]
    assert fit.seed_spread(CALIBRATION) == committed["seed_spread"]
    assert fit.seed_correlation(CALIBRATION) == committed["seed_correlation"]
    hyper = committed["hyper"]
    rows = calibration_rows(CALIBRATION)
    held_out = fit.held_out_settings(CALIBRATION, rows)  # a minute or two: a time-to-death fit per setting
    error = fit.leave_one_out_simulation_error(rows, held_out, hyper)
    assert error == pytest.approx(hyper[fit.OBJECTIVE], abs=2e-6)
    assert fit.error_scale(rows, hyper) == committed["error_scale"]


def test_the_stored_model_is_what_refitting_the_calibration_gives():
    # Loading reads these instead of fitting them (``Simulator.from_fit``): a refit must give them, to the last bits
    # an optimiser's summation order moves on another CPU.
    committed = json.loads(FIT_FILE.read_text())
    stored = fit.stored_model(CALIBRATION, calibration_rows(CALIBRATION))
    assert tuple(stored) == fit.STORED_MODEL
    assert_same_numbers(stored, {name: committed[name] for name in fit.STORED_MODEL})


def test_leaving_a_setting_out_by_blocks_equals_refitting_without_it():
    rng = np.random.default_rng(0)
    x, groups = rng.normal(size=(40, 3)), np.repeat(np.arange(8), 5)
    y = np.sin(x).sum(1) + 0.1 * rng.normal(size=40)
    hyper = {"length_scales": [0.8, 1.5, 3.0], "linear_variance": 0.2}
    noise = rng.uniform(0.01, 0.2, size=40)  # each row its own: seed means of different precision
    fast, fast_variance = fit.leave_one_setting_out(x, y, groups, noise, hyper)
    for group in range(8):
        kept, left = groups != group, groups == group
        gram = kernel(x[kept], x[kept], hyper) + np.diag(noise[kept])
        cross = kernel(x[left], x[kept], hyper)
        slow = cross @ np.linalg.solve(gram, y[kept])
        np.testing.assert_allclose(fast[left], slow, rtol=1e-8, atol=1e-10)
        explained = np.einsum("ij,ji->i", cross, np.linalg.solve(gram, cross.T))
        variance = kernel_diagonal(x[left], hyper) - explained
        np.testing.assert_allclose(fast_variance[left], variance, rtol=1e-6, atol=1e-10)
        # and anywhere else: here at points inside the other rows' range, which the clamp leaves as they are
        query = rng.uniform(x[kept].min(0), x[kept].max(0), size=(4, 3))
        [at_query] = fit.held_out_predictions(x, y, groups, noise, hyper, [(group, query)])
        np.testing.assert_allclose(at_query, kernel(query, x[kept], hyper) @ np.linalg.solve(gram, y[kept]),
                                   rtol=1e-8, atol=1e-10)
