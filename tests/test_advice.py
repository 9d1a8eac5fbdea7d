"""Recommendations: each rule fires on what a run measured, says why with the numbers it used, and asks the
accountant what a change would cost."""

import pytest

from app import advice, privacy
from app import params as P
from app.jobs import service


def planned(**knobs):
    return service.plan(P.validate({"mode": "simulate", **knobs}, P.RUN_FIELDS))[0]


def epoch(number, *, accuracy=0.9, clip=0.5, p50=1.0, p90=3.0, loss=0.4, epsilon=1.0):
    return {"epoch": number, "test_accuracy": accuracy, "train_loss": loss, "clip_fraction": clip, "epsilon": epsilon,
            "grad_norm": {"p10": 0.1, "p50": p50, "p90": p90}}


def ids(found):
    return [a["id"] for a in found]


def test_over_budget_offers_changes_priced_by_the_accountant():
    params = planned(epochs=10, target_epsilon=1.0, noise_multiplier=1.1)
    curve = privacy.epsilon_curve(noise_multiplier=1.1, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5)
    records = [epoch(i + 1, epsilon=curve[i]) for i in range(10)]
    found = advice.recommend(params, records)
    over = next(a for a in found if a["id"] == "over_budget")
    assert over["severity"] == "warning" and found[0]["severity"] == "warning"
    allowed = privacy.epochs_within_budget(target_epsilon=1.0, noise_multiplier=1.1, batch_size=256, epochs=10,
                                           dataset_size=60000, delta=1e-5)
    solved = privacy.calibrate_noise(target_epsilon=1.0, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5,
                                     noise_range=P.noise_search_range())
    assert f"stop after {allowed} epochs" in over["detail"]
    assert f"noise multiplier {solved.noise_multiplier:.3g}" in over["detail"]
    assert f"{curve[-1]:.3g}" in over["title"]


def test_over_budget_under_pld_states_every_epsilons_assumptions():
    params = planned(epochs=10, target_epsilon=0.7, noise_multiplier=1.1, accountant="pld")
    curve = privacy.epsilon_curve(noise_multiplier=1.1, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5,
                                  accountant="pld")
    over = next(a for a in advice.recommend(params, [epoch(i + 1, epsilon=curve[i]) for i in range(10)])
                if a["id"] == "over_budget")
    # The noise is solved under RDP (a valid bound, found in milliseconds); the halved batch is priced by PLD.
    solved = privacy.calibrate_noise(target_epsilon=0.7, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5,
                                     noise_range=P.noise_search_range())
    assert curve[-1] > 0.7
    assert f"noise multiplier {solved.noise_multiplier:.3g} (epsilon {solved.epsilon:.3g} (RDP, delta 1e-05, " \
           "Poisson sampling))" in over["detail"]
    assert "(PLD, delta 1e-05, Poisson sampling)" in over["detail"]


def test_within_budget_says_nothing_about_it():
    assert "over_budget" not in ids(advice.recommend(planned(target_epsilon=50.0), [epoch(1, epsilon=1.0)]))


@pytest.mark.parametrize("record, expected, absent", [
    (epoch(1, clip=0.97, p50=12.0), "clip_raise", "clip_lower"),
    (epoch(1, clip=0.03, p90=0.2), "clip_lower", "clip_raise"),
    (epoch(1, accuracy=0.098), "lr_too_high", "clip_raise"),
])
def test_rules_fire_on_what_the_run_measured(record, expected, absent):
    found = advice.recommend(planned(target_epsilon=50.0), [record])
    assert expected in ids(found) and absent not in ids(found)


def test_clip_advice_quotes_the_measured_norms():
    found = advice.recommend(planned(max_grad_norm=0.5, target_epsilon=50.0), [epoch(1, clip=0.95, p50=7.25)])
    detail = next(a["detail"] for a in found if a["id"] == "clip_raise")
    assert "95%" in detail and "C = 0.5" in detail and "7.25" in detail


def test_stall_and_still_improving():
    stalled = [epoch(i, accuracy=0.7) for i in (1, 2, 3)]
    assert "stalled" in ids(advice.recommend(planned(target_epsilon=50.0), stalled))
    improving = [epoch(1, accuracy=0.8, epsilon=0.5), epoch(2, accuracy=0.86, epsilon=0.6)]
    found = advice.recommend(planned(epochs=2, target_epsilon=50.0), improving)
    more = next(a for a in found if a["id"] == "more_epochs")
    four = privacy.compute_privacy(noise_multiplier=1.1, batch_size=256, epochs=4, dataset_size=60000, delta=1e-5)
    assert f"{four.epsilon:.3g}" in more["detail"]


def test_non_private_runs_get_no_privacy_or_clipping_advice():
    found = advice.recommend(planned(private=False), [epoch(1, clip=0.99, epsilon=None)])
    assert not {"clip_raise", "clip_lower", "over_budget", "more_epochs"} & set(ids(found))


def test_no_epochs_no_advice():
    assert advice.recommend(planned(), []) == []
