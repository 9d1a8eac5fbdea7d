"""Runs that die: what counts as dead, when a run died, and how simulated runs die and report."""

import json
import math

import numpy as np

from app import simulation
from app.simulation.divergence import Divergence, death_epoch, diverged
from app.simulation.rows import calibration_rows
from app.simulation.time_to_death import TimeToDeath
from tests.simulation.common import planned, simulated


def test_what_counts_as_diverged():
    def run(accuracy, loss, median_norm=1.0):
        return {"epochs": [{"test_accuracy": accuracy, "train_loss": loss, "grad_norm": {"p50": median_norm}}]}

    assert diverged(run(0.1135, math.log(10)))  # collapsed to a constant guess, its ReLUs dead
    assert not diverged(run(0.1086, 2.304, median_norm=3.9))  # stalled at initialisation (lr 1e-4)
    assert diverged(run(0.10, 1.4e6)) and diverged(run(0.10, None))  # exploded
    assert diverged(run(0.10, 14.0, median_norm=0.95))  # dead, one confident output: killed by the noise
    assert not diverged(run(0.11, 14.0, median_norm=4.0))  # at chance but alive: the GP's business
    assert not diverged(run(0.93, 0.25))


def test_a_run_dies_at_the_epoch_from_which_it_stays_dead():
    def run(*epochs):
        return {"epochs": [{"test_accuracy": a, "train_loss": loss, "grad_norm": {"p50": norm}} for a, loss, norm in
                           epochs]}

    learning, dying, dead = (0.8, 0.6, 5.0), (0.3, 2.5, 3.0), (0.10, 6.0, 0.95)
    assert death_epoch(run(learning, dying, dead, dead)) == 3  # heavy noise: learns, then dies
    assert death_epoch(run(dead, learning, learning)) is None  # looked dead once, then trained
    assert death_epoch(run(dead, dead)) == 1
    seeds = [{"setting": {"private": True}, "seed": seed, "epochs": [
        {**e, "step": 10 * (i + 1), "test_loss": e["train_loss"], "grad_norm_histogram": {"counts": [1, 2, 3]}}
        for i, e in enumerate(run(learning, learning, dead)["epochs"])]} for seed in (0, 1)]
    calibration = {"runs": seeds}
    assert calibration_rows(calibration).steps == [[10, 20]]  # the GP learns from the epochs it trained


def test_a_dead_run_reports_like_the_calibrated_runs_that_died_nearest_it():
    # Real runs killed by a huge noise step on tiny batches exploded (median norm past 1e3, most clipped); at sigma 50
    # on B 256 they collapsed to a constant guess whose gradients are about 1.
    exploded = simulated(noise_multiplier=16.9, max_grad_norm=5.05, batch_size=8, learning_rate=0.906,
                         dataset_size=355, epochs=5)[0][-1]
    collapsed = simulated(noise_multiplier=50.0, epochs=20)[0][-1]
    assert exploded["test_accuracy"] < 0.15 and exploded["grad_norm"]["p50"] > 100 and exploded["clip_fraction"] > 0.5
    assert collapsed["test_accuracy"] < 0.15 and collapsed["grad_norm"]["p50"] < 2.5


def test_small_batches_die_at_a_learning_rate_that_large_ones_survive():
    # Non-private, lr 0.26: real runs on B 256 trained (0 of 6 died at lr 0.25); on B 4 all six died (held out).
    steps = np.array([2000.0])
    divergence = simulation.load().divergence
    small, large = (divergence.dead_by(planned(private=False, learning_rate=0.26, batch_size=batch, dataset_size=n),
                                       steps)[0] for batch, n in ((4, 8000), (256, 60000)))
    assert small > 0.5 and large < 0.05


def test_heavy_noise_runs_learn_before_they_die_and_seeds_die_at_different_epochs():
    deaths = []
    for seed in range(30):
        accuracies = [e["test_accuracy"] for e in simulated(noise_multiplier=32.0, epochs=10, seed=seed)[0]]
        dead = [a < 0.13 for a in accuracies]
        deaths.append(dead.index(True) + 1 if any(dead) else None)
    died = [d for d in deaths if d is not None]
    assert len(died) > 15 and len(set(died)) > 2  # real seeds at sigma 32 died at epochs 2 to 6


def test_a_stored_divergence_model_reads_back_exactly_with_its_gaps():
    # A kind no run of which died, a model without a gate, a target no dead record had (NaN), through strict JSON.
    model = Divergence(TimeToDeath(np.array([-3.0, 0.1, 2.0]), None), None,
                       {True: np.array([[0.5]]), False: np.array([])},
                       {True: np.array([[0.2, np.nan, 1 / 3]]), False: np.array([])},
                       np.array([0.2, np.nan, 1 / 3]), 0.13)
    back = Divergence.from_dict(json.loads(json.dumps(model.as_dict(), allow_nan=False)))
    np.testing.assert_array_equal(back.private.hazard, model.private.hazard)
    assert back.private.gate is None and back.non_private is None and back.profile_spread == 0.13
    for field in ("dead_inputs", "dead_targets"):
        for kind in (True, False):
            np.testing.assert_array_equal(getattr(back, field)[kind], getattr(model, field)[kind])
    np.testing.assert_array_equal(back.dead_mean, model.dead_mean)
