"""The settings search confirmed by real training (slow lane): on the TF Privacy tutorial row (batch 256, σ 1.1,
60 epochs, target ε 3), the best candidate the search finds within a ten-minute time budget, trained for real, ends
inside the real-run range the search stated for it (an 80% range: this fails about one seed in five by design, so a
failure is retried on a second seed before it counts)."""

import pytest

from app import suggest
from app.jobs import service
from app.params import RUN_FIELDS, validate

pytestmark = [pytest.mark.training, pytest.mark.slow]

TUTORIAL = {"noise_multiplier": 1.1, "max_grad_norm": 1.0, "batch_size": 256, "learning_rate": 0.15, "epochs": 60,
            "dataset_size": 60000, "target_epsilon": 3.0}


def test_the_best_candidate_on_the_tutorial_row_is_confirmed_by_a_real_run():
    from app.training import runner

    clean, max_seconds = suggest.validate({**TUTORIAL, "max_seconds": 600})
    best = suggest.suggest(clean, max_seconds=max_seconds, budget_seconds=60)["candidates"][0]
    low, high = best["real_run_range"]
    finals = []
    for seed in (0, 1):
        params = service.plan(validate({**best["params"], "mode": "real", "seed": seed}, RUN_FIELDS))[0]
        records = []
        runner.run(params, records.append, lambda: False)
        epochs = [r for r in records if r.get("type", "epoch") == "epoch" and "test_accuracy" in r]
        assert epochs[-1]["epsilon"] <= TUTORIAL["target_epsilon"]
        finals.append(epochs[-1]["test_accuracy"])
        if low <= finals[-1] <= high:
            break
    assert low <= finals[-1] <= high, (best, finals)
