"""Recommendations: one diagnosis of what limits a run, with its numbers and one change, and notes that never
contradict it; every change priced by the accountant and rounded to a slider stop."""

import json
import subprocess
from pathlib import Path

import pytest

from app import advice, privacy, simulation
from app import params as P
from app.jobs import service

ROOT = Path(__file__).resolve().parents[1]


def planned(**knobs):
    return service.plan(P.validate({"mode": "simulate", **knobs}, P.RUN_FIELDS))[0]


def epoch(number, *, accuracy=0.9, clip=0.5, p50=1.0, p90=3.0, loss=0.4, epsilon=1.0):
    return {"epoch": number, "test_accuracy": accuracy, "train_loss": loss, "clip_fraction": clip, "epsilon": epsilon,
            "grad_norm": {"p10": 0.1, "p50": p50, "p90": p90}}


def ids(found):
    return [a["id"] for a in found]


def test_over_budget_is_the_diagnosis_and_its_change_meets_the_budget():
    params = planned(epochs=10, target_epsilon=1.0, noise_multiplier=1.1)
    curve = privacy.epsilon_curve(noise_multiplier=1.1, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5)
    found = advice.recommend(params, [epoch(i + 1, epsilon=curve[i]) for i in range(10)])
    diagnosis = found[0]
    assert diagnosis["id"] == "over_budget" and diagnosis["role"] == "diagnosis"
    assert diagnosis["severity"] == "warning" and f"ε = {curve[-1]:.3g}" in diagnosis["title"]
    allowed = privacy.epochs_within_budget(target_epsilon=1.0, noise_multiplier=1.1, batch_size=256, epochs=10,
                                           dataset_size=60000, delta=1e-5)
    assert f"stop after {allowed} epochs" in diagnosis["detail"]
    sigma = diagnosis["change"]["noise_multiplier"]
    solved = privacy.calibrate_noise(target_epsilon=1.0, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5,
                                     noise_range=P.noise_search_range())
    assert sigma == P.nearest_stop("noise_multiplier", solved.noise_multiplier, direction="up") >= 1.1
    priced = privacy.compute_privacy(noise_multiplier=sigma, batch_size=256, epochs=10, dataset_size=60000,
                                     delta=1e-5)
    assert priced.epsilon <= 1.0 and f"raise σ to {sigma:g} (ε = {priced.epsilon:.3g} (RDP" in diagnosis["detail"]


def test_over_budget_under_pld_prices_every_change_with_the_runs_accountant():
    params = planned(epochs=10, target_epsilon=0.7, noise_multiplier=1.1, accountant="pld")
    curve = privacy.epsilon_curve(noise_multiplier=1.1, batch_size=256, epochs=10, dataset_size=60000, delta=1e-5,
                                  accountant="pld")
    over = advice.recommend(params, [epoch(i + 1, epsilon=curve[i]) for i in range(10)])[0]
    assert curve[-1] > 0.7 and over["id"] == "over_budget"
    assert over["detail"].count("(PLD, δ = 1e-5, Poisson sampling)") == 2 and "RDP" not in over["detail"]


def test_within_budget_says_nothing_about_it():
    assert "over_budget" not in ids(advice.recommend(planned(target_epsilon=50.0), [epoch(1, epsilon=1.0)]))


@pytest.mark.parametrize("knobs, record, expected", [
    ({"max_grad_norm": 0.01}, epoch(1, accuracy=0.11, clip=1.0, p50=5.0), "clip_raise"),
    ({"learning_rate": 0.001}, epoch(1, accuracy=0.3, clip=0.5, p50=1.0), "lr_too_low"),
    ({}, epoch(1, accuracy=0.098), "lr_too_high"),
    ({}, epoch(1, accuracy=0.5, loss=float("nan")), "lr_too_high"),
    ({"noise_multiplier": 20.0, "batch_size": 64}, epoch(1, accuracy=0.09, clip=0.6, p50=0.9), "too_much_noise"),
    ({"private": False}, epoch(1, accuracy=0.98, epsilon=None), "no_privacy"),
    ({"noise_multiplier": 0.0}, epoch(1, accuracy=0.98, epsilon=None), "no_privacy"),
    ({"target_epsilon": 3.0}, epoch(1, accuracy=0.95, epsilon=0.5, clip=0.5, p90=3.0), "unused_budget"),
])
def test_the_diagnosis_names_what_the_run_measured(knobs, record, expected):
    found = advice.recommend(planned(**knobs), [record])
    assert found[0]["id"] == expected and found[0]["role"] == "diagnosis"


def test_clipping_diagnosis_quotes_the_measured_norms_and_keeps_epsilon():
    found = advice.recommend(planned(max_grad_norm=0.01, target_epsilon=50.0), [epoch(1, accuracy=0.11, clip=0.97,
                                                                                     p50=7.25)])
    detail = found[0]["detail"]
    assert "97%" in detail and "C = 0.01" in detail and "7.25" in detail and "ε is unchanged" in detail
    assert found[0]["change"] == {"max_grad_norm": 1.0}


def test_diverged_run_is_told_to_lower_the_learning_rate_and_no_note_raises_it():
    params = planned(learning_rate=8.0, target_epsilon=50.0)
    records = [epoch(1, accuracy=0.75), epoch(2, accuracy=0.7), epoch(3, accuracy=0.6, loss=0.45)]
    found = advice.recommend(params, records)
    assert found[0]["id"] == "lr_too_high" and found[0]["change"] == {"learning_rate": 2.0}
    assert all("learning_rate" not in note["change"] for note in found[1:])


def test_stall_and_still_improving_are_stated_in_points():
    stalled = [epoch(i, accuracy=0.7) for i in (1, 2, 3)]
    stall = next(a for a in advice.recommend(planned(target_epsilon=50.0), stalled) if a["id"] == "stalled")
    assert "+0.0 points" in stall["detail"] and stall["change"] == {"learning_rate": 0.3}
    improving = [epoch(1, accuracy=0.8, epsilon=0.5), epoch(2, accuracy=0.86, epsilon=0.6)]
    more = next(a for a in advice.recommend(planned(epochs=2, target_epsilon=50.0), improving)
                if a["id"] == "more_epochs")
    four = privacy.compute_privacy(noise_multiplier=1.1, batch_size=256, epochs=4, dataset_size=60000, delta=1e-5)
    assert "+6.0 points" in more["detail"] and more["change"] == {"epochs": 4}
    assert f"ε = {four.epsilon:.3g}" in more["detail"]


def test_more_epochs_are_offered_only_within_the_budget():
    curve = privacy.epsilon_curve(noise_multiplier=1.1, batch_size=256, epochs=2, dataset_size=60000, delta=1e-5)
    tight = planned(epochs=2, target_epsilon=curve[-1] * 1.01)
    improving = [epoch(1, accuracy=0.8, epsilon=curve[0]), epoch(2, accuracy=0.86, epsilon=curve[1])]
    assert "more_epochs" not in ids(advice.recommend(tight, improving))


def test_non_private_runs_get_no_privacy_budget_or_clipping_advice():
    found = advice.recommend(planned(private=False), [epoch(1, clip=0.99, epsilon=None)])
    assert found[0]["id"] == "no_privacy"
    assert not {"clip_raise", "clip_lower", "over_budget", "more_epochs", "unused_budget"} & set(ids(found))


def test_no_epochs_no_advice():
    assert advice.recommend(planned(), []) == []


def test_numbers_read_as_the_page_writes_them():
    assert advice.num(1e-5) == "1e-5" and advice.num(0.000123) == "1.23e-4" and advice.num(0.963) == "0.963"
    assert advice.num(2.5943) == "2.59" and advice.num(26010) == "26,010" and advice.points(-0.623) == "-62.3 points"


def presets() -> list[dict]:
    """The page's presets, read from static/js/presets.js by node (one source)."""
    code = "import('./static/js/presets.js').then((m) => console.log(JSON.stringify(m.PRESETS)))"
    return json.loads(subprocess.run(["node", "-e", code], cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout)


# What each preset teaches, and so what a run of it must be told first.
LESSONS = {"tutorial": "balanced", "tutorial-low-noise": "over_budget", "tutorial-short": "unused_budget",
           "strong": "unused_budget", "clip-too-small": "clip_raise", "too-much-noise": "too_much_noise",
           "lr-too-high": "lr_too_high", "no-privacy": "no_privacy"}
# Presets of real-mode-only knobs (the tanh CNN, momentum): the simulator cannot run them, so their lesson is a real
# run's, not checked here.
REAL_ONLY_PRESETS = {"best-known"}


def simulable(preset: dict) -> bool:
    return all(P.KNOB_BY_NAME[name].simulated_as in (None, value) for name, value in preset["params"].items())


def test_every_preset_is_simulable_or_listed_as_real_only():
    assert {p["id"] for p in presets() if not simulable(p)} == REAL_ONLY_PRESETS
    assert set(LESSONS) == {p["id"] for p in presets() if simulable(p)}


@pytest.mark.parametrize("seed", [0, 1])
def test_each_presets_simulated_run_is_diagnosed_with_its_lesson(seed):
    for preset in filter(simulable, presets()):
        params = planned(**{**preset["params"], "mode": "simulate"}, seed=seed)
        epochs, _ = simulation.load().simulate(params)
        found = advice.recommend(params, epochs)
        assert found[0]["id"] == LESSONS[preset["id"]], (preset["id"], found[0])
        changed = set(found[0]["change"])
        for note in found[1:]:
            assert note["role"] == "note" and changed.isdisjoint(note["change"]), (preset["id"], note)
            changed |= set(note["change"])
        for finding in found:
            for name, value in finding["change"].items():
                knob = P.KNOB_BY_NAME[name]
                assert knob.scale == "none" or value in P.slider_stops(knob), (preset["id"], name, value)
