"""The GP's rows: a seed mean in the model's coordinates, trusted by how many seeds agree; the log of a few seeds'
variance, unbiased."""

import math

import numpy as np
import pytest

from app.simulation.features import logit
from app.simulation.rows import calibration_rows, log_variance


def test_the_log_of_a_few_seeds_variance_is_unbiased():
    rng = np.random.default_rng(3)
    for seeds in (2, 3, 6):
        variances = rng.normal(0.0, 0.5, size=(40000, seeds)).var(axis=1, ddof=1)
        logs = log_variance(variances, np.full(len(variances), seeds))
        assert logs.mean() == pytest.approx(math.log(0.25), abs=0.03)  # a plain log would be 0.2-1.3 too low
    assert np.isnan(log_variance(np.array([0.1]), np.array([1])))[0]  # one seed: no spread of its own


def test_a_seed_mean_is_trusted_by_how_many_seeds_agree():
    def run(setting, seed, accuracies):
        return {"setting": setting, "seed": seed, "epochs": [
            {"step": 10 * (i + 1), "test_accuracy": a, "train_loss": 0.5, "test_loss": 0.5,
             "grad_norm": {"p50": 5.0}, "grad_norm_histogram": {"counts": [1, 2, 3, 4]}}
            for i, a in enumerate(accuracies)]}

    base = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "batch_size": 64, "learning_rate": 0.1,
            "dataset_size": 1000, "private": True}
    few, many, single = ({**base, "learning_rate": lr} for lr in (0.1, 0.2, 0.3))
    rows = calibration_rows({"runs": [run(few, s, [0.5, a]) for s, a in enumerate((0.6, 0.8))]
                                      + [run(many, s, [0.5, a]) for s, a in enumerate((0.6, 0.8) * 4)]
                                      + [run(single, 0, [0.5, 0.7])]})
    assert rows.settings == [few, many, single] and rows.groups.tolist() == [0, 0, 1, 1, 2, 2]
    logits = logit(np.array([0.6, 0.8]), 20.0)
    assert rows.y[1, 0] == pytest.approx(logits.mean())  # the mean over seeds, in the model's coordinates
    assert rows.variance[1] == pytest.approx(np.var(logits, ddof=1) / 2)  # the seed mean's sampling variance
    assert rows.variance[3] == pytest.approx(np.var(np.tile(logits, 4), ddof=1) / 8)
    assert rows.variance[0] == 0.0  # every seed at 0.5
    # One seed has no spread of its own: a whole run's variance, the median over the rows that measured one.
    assert rows.variance[5] == pytest.approx(np.median([0.0, np.var(logits, ddof=1), 0.0,
                                                        np.var(np.tile(logits, 4), ddof=1)]))
