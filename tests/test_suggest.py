"""The settings search: every candidate within the budget by the accountant, inside the simulator's calibrated range,
its fields a valid run request, the time budget and max_seconds honoured; bad input names its field (also through
``POST /api/suggest``)."""

import numpy as np
import pytest

from app import params as P
from app import privacy, simulation, suggest


@pytest.fixture(scope="module")
def found():
    clean, _ = suggest.validate({"target_epsilon": 2.0, "batch_size": 128, "epochs": 3})
    return clean, suggest.suggest(clean, budget_seconds=60)


def test_every_candidate_is_within_the_budget_by_the_accountant(found):
    clean, answer = found
    assert answer["candidates"] and answer["complete"]
    for candidate in answer["candidates"]:
        p = candidate["params"]
        recomputed = privacy.compute_privacy(**privacy.accounting_args({**p, "sampling": "poisson"})).epsilon
        assert recomputed == pytest.approx(candidate["epsilon"]) and recomputed <= clean["target_epsilon"]


def test_candidates_are_valid_run_requests_at_slider_stops_best_first(found):
    clean, answer = found
    lows = [c["real_run_range"][0] for c in answer["candidates"]]  # best first: by what a real run beats 9 in 10
    assert lows == sorted(lows, reverse=True)
    for candidate in answer["candidates"]:
        p = candidate["params"]
        assert P.validate(p, P.RUN_FIELDS) == p  # applies as is
        for name in suggest.SEARCHED_KNOBS:
            assert p[name] in P.slider_stops(P.KNOB_BY_NAME[name]), name
        assert p["dataset_size"] == clean["dataset_size"] and p["delta"] == clean["delta"]
        low, high = candidate["real_run_range"]
        assert 0 < low <= high <= 1 and candidate["seconds"] > 0
    assert len({(c["params"]["batch_size"], c["params"]["epochs"]) for c in answer["candidates"]}) == len(
        answer["candidates"])


def test_candidates_lie_inside_the_simulators_calibrated_range(found):
    sim = simulation.load()
    for candidate in found[1]["candidates"]:
        plan = suggest.planned(candidate["params"])
        x = simulation.simulator.features(plan, np.array([plan["steps"]]), sim.gp.hyper["noise_weight"])
        z = (x - sim.gp.x_mean) / sim.gp.x_scale
        assert np.all(z >= sim.gp.train_z.min(0)) and np.all(z <= sim.gp.train_z.max(0))


def test_the_search_beats_the_persons_own_setting_and_its_score_is_the_simulators_mean(found):
    clean, answer = found
    sim = simulation.load()
    own = suggest.planned({**clean, "noise_multiplier": suggest._noise_for(clean, 128, 3, 2.0)})
    best = answer["candidates"][0]
    assert best["real_run_range"][0] >= sim.real_run_range(own, own["epochs"])[0]
    assert best["real_run_range"] == sim.real_run_range(suggest.planned(best["params"]), best["params"]["epochs"])
    plan = {**suggest.planned(best["params"]), "epsilon_curve": None, "seed": 0}
    mean = sim.simulate(plan, seeded=False)[0][-1]["test_accuracy"]
    assert best["predicted_accuracy"] == pytest.approx(mean, abs=0.002)


def test_max_seconds_keeps_only_runs_the_timing_model_expects_within_it():
    clean, max_seconds = suggest.validate({"target_epsilon": 3.0, "max_seconds": 20})
    answer = suggest.suggest(clean, max_seconds=max_seconds, budget_seconds=60)
    assert answer["candidates"] and all(c["seconds"] <= 20 for c in answer["candidates"])


def test_the_time_budget_ends_the_search_and_says_so():
    ticks = iter(range(1000))
    clean, _ = suggest.validate({})
    answer = suggest.suggest(clean, budget_seconds=2, clock=lambda: next(ticks))  # each pair costs one "second"
    assert not answer["complete"] and 0 < answer["searched"] < 3 * 6 * 10 * 10


def test_an_unreachable_budget_answers_no_candidate():
    clean, _ = suggest.validate({"target_epsilon": 0.01, "dataset_size": 100, "batch_size": 64})
    answer = suggest.suggest(clean, budget_seconds=60)
    assert answer["candidates"] == [] and answer["searched"] == 0


@pytest.mark.parametrize("body, field, words", [
    ({"target_epsilon": 0}, "target_epsilon", "between 0.01 and 100"),
    ({"max_seconds": -1}, "max_seconds", "got -1"),
    ({"max_seconds": "soon"}, "max_seconds", "got 'soon'"),
    ({"private": False}, "private", "must be true"),
    ({"colour": 1}, "colour", "not a known field"),
    ({"batch_size": 512, "dataset_size": 100}, "batch_size", "must not exceed"),
])
def test_bad_input_names_the_field(body, field, words):
    with pytest.raises(P.ParamError) as error:
        suggest.validate(body)
    assert field in error.value.errors and words in error.value.errors[field]


def test_post_api_suggest_answers_the_shape_and_400_naming_the_field(client):
    answer = client.post("/api/suggest", json={"target_epsilon": 3.0, "epochs": 2})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert set(body) >= {"candidates", "searched"} and body["searched"] > 0
    for candidate in body["candidates"]:
        assert set(candidate) == {"params", "predicted_accuracy", "real_run_range", "epsilon", "seconds"}
        assert candidate["epsilon"] <= 3.0
    bad = client.post("/api/suggest", json={"target_epsilon": "three", "max_seconds": 0})
    assert bad.status_code == 400 and set(bad.json["errors"]) == {"target_epsilon", "max_seconds"}


def test_post_api_suggest_refuses_when_every_search_slot_is_busy(client, monkeypatch):
    from app.web import api_suggest
    held = [api_suggest._admission.acquire(blocking=False) for _ in range(api_suggest.SUGGEST_IN_FLIGHT)]
    try:
        answer = client.post("/api/suggest", json={})
        assert answer.status_code == 429 and "target_epsilon" in answer.json["errors"]
        assert answer.headers["Retry-After"]
    finally:
        for ok in held:
            if ok:
                api_suggest._admission.release()


def test_with_pld_each_candidates_epsilon_is_plds_and_within_the_budget():
    clean, _ = suggest.validate({"target_epsilon": 2.0, "accountant": "pld"})
    answer = suggest.suggest(clean, budget_seconds=60, count=1)
    assert answer["accountant"] == "pld" and answer["candidates"]
    candidate = answer["candidates"][0]
    pld = privacy.compute_privacy(**privacy.accounting_args({**candidate["params"], "sampling": "poisson"}))
    assert pld.accountant == "pld" and pld.epsilon == pytest.approx(candidate["epsilon"]) and pld.epsilon <= 2.0


def test_an_unsure_prediction_does_not_win_on_its_optimism():
    # The search used to rank by the mean alone and, asked for 60 epochs within 600 s at epsilon 3, answered C 5 and
    # learning rate 0.5 at 98.5% predicted where two real runs ended at 93.7% and 94.3% (the slow lane): the GP was
    # six times less sure there than among its calibration runs. Ranked by the range's lower end it is not chosen.
    sim = simulation.load()
    unsure = suggest.planned({**suggest.validate({"target_epsilon": 3.0})[0], "noise_multiplier": 1.3,
                              "max_grad_norm": 5.0, "batch_size": 512, "learning_rate": 0.5, "epochs": 60})
    clean, max_seconds = suggest.validate({"target_epsilon": 3.0, "epochs": 60, "max_seconds": 600})
    best = suggest.suggest(clean, max_seconds=max_seconds, budget_seconds=60)["candidates"][0]
    assert suggest.score(sim, [unsure])[0][0] > best["predicted_accuracy"]  # the better mean...
    assert sim.real_run_range(unsure, 60)[0] < best["real_run_range"][0]  # ...and the worse assurance


def test_a_ranges_lower_end_is_below_its_mean_so_the_search_may_skip_plans_under_its_floor():
    sim = simulation.load()
    clean, _ = suggest.validate({"target_epsilon": 3.0})
    plans = [suggest.planned({**clean, "noise_multiplier": sigma, "batch_size": b, "epochs": e, "max_grad_norm": c,
                              "learning_rate": lr})
             for sigma, b, e in ((0.6, 64, 3), (1.2, 512, 40), (3.5, 2048, 20)) for c in suggest.CLIPS
             for lr in suggest.LEARNING_RATES]
    accuracy, _ = suggest.score(sim, plans)
    ranges = sim.real_run_ranges(plans, [p["steps"] for p in plans])
    assert all(low <= mean + 5e-5 for (low, _), mean in zip(ranges, accuracy))  # 5e-5: the ranges' rounding
    assert ranges == [sim.real_run_range(p, p["epochs"]) for p in plans]  # together as one by one
