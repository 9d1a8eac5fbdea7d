"""The settings search checked by real training (slow lane): on the TF Privacy tutorial row (batch 256, sigma 1.1,
60 epochs, target epsilon 3), the best candidate the search finds within a ten-minute time budget, trained for real on
two seeds, stays within the budget by the accountant and does at least as well as the low end of the range the
simulator states for the person's own setting: the search must not make a run worse than where it started.

What this does not claim: that the winner ends inside its own stated range. Measured 3 December, it does not: the best
of thousands of predictions is optimistic (ranked by its range's lower end, the winner, sigma 1.2, C 0.1, B 512, lr 4,
40 epochs, was stated 97.2%-98.5% and ended at 96.7% and 96.5%; ranked by the mean, the search had answered C 5, lr
0.5 at 98.5% predicted, which ended at 94.3% and 93.7%). docs/api.md says so, and so does the page.
"""

import pytest

from app import simulation, suggest
from app.jobs import service
from app.params import RUN_FIELDS, validate

pytestmark = [pytest.mark.training, pytest.mark.slow]

TUTORIAL = {"noise_multiplier": 1.1, "max_grad_norm": 1.0, "batch_size": 256, "learning_rate": 0.15, "epochs": 60,
            "dataset_size": 60000, "target_epsilon": 3.0}


def test_the_best_candidate_on_the_tutorial_row_does_no_worse_than_the_persons_own_setting_for_real():
    from app.training import runner

    clean, max_seconds = suggest.validate({**TUTORIAL, "max_seconds": 600})
    best = suggest.suggest(clean, max_seconds=max_seconds, budget_seconds=60)["candidates"][0]
    own = suggest.planned(clean)
    own_low = simulation.load().real_run_range(own, own["epochs"])[0]
    finals = []
    for seed in (0, 1):
        params = service.plan(validate({**best["params"], "mode": "real", "seed": seed}, RUN_FIELDS))[0]
        records = []
        runner.run(params, records.append, lambda: False)
        epochs = [r for r in records if r.get("type", "epoch") == "epoch" and "test_accuracy" in r]
        assert epochs[-1]["epsilon"] <= TUTORIAL["target_epsilon"]
        finals.append(epochs[-1]["test_accuracy"])
    assert sum(finals) / len(finals) >= own_low, (best, finals, own_low)
