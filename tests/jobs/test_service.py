"""The run service: plans carry the accountant's derivations, summaries state what ran, modes come from one registry."""

from dataclasses import replace

import pytest

from app import params as P
from app import privacy
from app.jobs import runners, service
from app.jobs.manager import Lane
from tests.scripted_runner import scripted_epoch

CONFIG = {"REAL_WORKERS": 1, "MAX_QUEUE": 3, "SIM_PACING_SECONDS": 0.5, "RUN_TTL_SECONDS": 60, "MAX_FINISHED_RUNS": 5}


def planned(**knobs):
    return service.plan(P.validate({"mode": "simulate", **knobs}, P.RUN_FIELDS))


def test_a_plan_derives_what_the_accountant_uses():
    params, extra = planned(dataset_size=1000, batch_size=64, epochs=3)
    assert params["sampling"] == "poisson" and extra == {}
    assert params["sample_rate"] == 0.064 and params["steps_per_epoch"] == 16 and params["steps"] == 48
    assert params["epsilon_curve"] == privacy.epsilon_curve(noise_multiplier=1.1, batch_size=64, epochs=3,
                                                            dataset_size=1000, delta=1e-5)


def test_a_plan_without_noise_or_privacy_has_no_finite_epsilon():
    assert planned(noise_multiplier=0.0, epochs=2)[0]["epsilon_curve"] == (None, None)
    assert planned(private=False)[0]["epsilon_curve"] is None


def test_a_budget_stop_shortens_the_run_to_the_budget():
    params, extra = planned(epochs=30, budget_stop=True, target_epsilon=1.5)
    assert extra["budget"]["stops_early"] and params["epochs"] == extra["budget"]["epochs_within_budget"] < 30
    assert params["epsilon_curve"][-1] <= 1.5 and params["steps"] == params["epochs"] * params["steps_per_epoch"]
    with pytest.raises(P.ParamError) as caught:
        planned(budget_stop=True, target_epsilon=0.01)
    assert "even one epoch spends epsilon" in caught.value.errors["target_epsilon"]


def test_summary_states_the_guarantee_of_the_epochs_that_ran():
    params, _ = planned(mode="real", epochs=4)
    summary = service.summarize(params, [scripted_epoch(1), scripted_epoch(2)], [])
    two = privacy.compute_privacy(**privacy.accounting_args(params, epochs=2))
    assert summary["final_epsilon"] == two.epsilon and summary["epochs_completed"] == 2
    assert summary["statement"].startswith(two.statement) and "not covered" in summary["statement"]
    assert (summary["accountant"], summary["delta"], summary["sampling"]) == ("rdp", 1e-5, "poisson")
    assert summary["simulated"] is False and "real_run_range" not in summary


def test_summary_of_a_baseline_and_of_a_run_that_released_nothing():
    baseline = service.summarize(planned(mode="real", private=False)[0], [scripted_epoch(1, epsilon=None)], [])
    assert baseline["final_epsilon"] is None and baseline["epsilon_infinite"] and baseline["accountant"] is None
    nothing = service.summarize(planned(mode="real")[0], [], [])
    assert nothing["final_epsilon"] == 0.0 and "No epoch completed" in nothing["statement"]


def test_a_simulated_summary_says_so_and_where_a_real_run_would_end():
    params, _ = planned(epochs=2)
    summary = service.summarize(params, [scripted_epoch(1), scripted_epoch(2)], [])
    low, high = summary["real_run_range"]
    assert summary["simulated"] and 0 < low <= high < 1
    assert summary["statement"].startswith("Simulated run:")


def test_every_mode_of_the_knob_table_has_one_registry_entry():
    assert tuple(runners.MODES) == P.KNOB_BY_NAME["mode"].choices
    lanes = {name: mode.lane(CONFIG, mode.run) for name, mode in runners.MODES.items()}
    assert lanes["real"] == Lane(runners.REAL.run, workers=1, max_queue=3)
    assert lanes["simulate"] == Lane(runners.SIMULATE.run, pacing_seconds=0.5)


def test_availability_says_why_a_mode_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "missing.npz"))
    modes = service.mode_availability(CONFIG)
    assert not modes["real"]["available"] and "no such file exists" in modes["real"]["reason"]
    assert modes["real"]["workers"] == 1 and modes["real"]["max_queue"] == 3 and modes["real"]["backend"] == "embedded"
    assert modes["simulate"] == {"available": True, "reason": None, "label": runners.SIMULATE.label}


def test_the_warm_up_visits_only_available_modes(monkeypatch):
    warmed = []
    for name, mode in runners.MODES.items():
        monkeypatch.setitem(runners.MODES, name, replace(mode, warm_up=lambda name=name: warmed.append(name)))
    config = {**CONFIG, "MODES": {"simulate": {"available": True}, "real": {"available": False}}}
    service.warm_up_in_background(config).join(timeout=10)
    assert warmed == ["simulate"]


def test_submit_refuses_an_unavailable_mode_before_planning():
    config = {**CONFIG, "MODES": {"simulate": {"available": True}, "real": {"available": False, "reason": "no data"}}}
    with pytest.raises(P.ParamError) as caught:
        service.submit(None, P.validate({"mode": "real"}, P.RUN_FIELDS), config)
    assert caught.value.errors["mode"] == "'real' is unavailable on this server: no data"
