"""The DP step's phases, timed: every phase measured on a real step, and the split is the step's own work (its sum is
close to the whole private step timed beside it)."""

import time

import numpy as np

from app.training.phases import PHASES, step_phases


def test_every_phase_is_timed_and_together_they_are_about_the_step(tf, batch):
    from app.training.dpsgd import DPStep
    from app.training.model import build_model

    x, y = batch
    step = DPStep(build_model(seed=0), batch_size=len(y), seed=0)
    before = [v.numpy() for v in step._variables]
    split = step_phases(step, x, y, max_grad_norm=1.0, repetitions=5)
    assert tuple(split) == PHASES and all(seconds >= 0 for seconds in split.values())
    assert split["forward_backward"] > 0 and split["per_example_norms"] > 0
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, step._variables)), "the update moved nothing"
    whole = []
    for _ in range(5):
        started = time.perf_counter()
        step(x, y, max_grad_norm=1.0, noise_multiplier=1.0, learning_rate=0.0)
        whole.append(time.perf_counter() - started)
    assert 0.3 < sum(split.values()) / float(np.median(whole)) < 3  # the same work, timed in parts


def test_a_materialised_step_is_not_split(tf, batch):
    from app.training.dpsgd import DPStep
    from app.training.model import build_model

    x, y = batch
    assert step_phases(DPStep(build_model(seed=0), batch_size=len(y), seed=0, microbatches=4), x, y,
                       max_grad_norm=1.0, repetitions=1) is None
