"""The real runner on a small MNIST sample: the records docs/api.md names, epsilon, cancel, seeds, and the real job path."""

import math
import os
import time

import numpy as np
import pytest

from app import privacy
from app.jobs import service
from app.params import RUN_FIELDS, validate
from tests.training.runs import finished_run

pytestmark = pytest.mark.training

EPOCH_FIELDS = {"epoch", "train_loss", "test_loss", "test_accuracy", "epsilon", "clip_fraction", "grad_norm",
                "grad_norm_histogram", "epoch_seconds", "examples_per_second"}
STEP_FIELDS = {"step", "epoch", "loss", "clip_fraction"}
TIMING = ("epoch_seconds", "examples_per_second", "profile")
SMALL = {"mode": "real", "dataset_size": 300, "batch_size": 30, "epochs": 2, "noise_multiplier": 1.1,
         "max_grad_norm": 1.0, "learning_rate": 0.5, "seed": 4}


def planned(**overrides) -> dict:
    return service.plan(validate({**SMALL, **overrides}, RUN_FIELDS))[0]


def train(params, should_stop=lambda: False) -> list:
    from app.training import runner

    records = []
    runner.run(params, records.append, should_stop)
    return records


def of_type(records, kind):
    return [r for r in records if r["type"] == kind]


@pytest.fixture(scope="module")
def private_records():
    return train(planned())


def test_records_have_every_field_of_the_contract(private_records):
    params = planned()
    epochs, steps = of_type(private_records, "epoch"), of_type(private_records, "step")
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert [s["step"] for s in steps] == list(range(1, params["steps"] + 1))  # short runs report every step
    for record in epochs:
        assert EPOCH_FIELDS <= set(record)
        assert 0 <= record["test_accuracy"] <= 1 and 0 <= record["clip_fraction"] <= 1
        assert record["train_loss"] > 0 and record["test_loss"] > 0 and record["epoch_seconds"] > 0
        quantiles = record["grad_norm"]
        assert 0 < quantiles["p10"] <= quantiles["p50"] <= quantiles["p90"]
        histogram = record["grad_norm_histogram"]
        assert len(histogram["edges"]) == len(histogram["counts"]) + 1
        assert np.all(np.diff(np.log(histogram["edges"])) == pytest.approx(np.log(10) / 8))  # log-spaced
    for record in steps:
        assert STEP_FIELDS <= set(record)
    for epoch in epochs:  # every example of every step is counted once in the histogram
        seen = sum(s["batch_size"] for s in steps if s["epoch"] == epoch["epoch"])
        assert sum(epoch["grad_norm_histogram"]["counts"]) == seen


def test_epsilon_is_the_accountants_curve(private_records):
    curve = privacy.epsilon_curve(noise_multiplier=1.1, batch_size=30, epochs=2, dataset_size=300, delta=1e-5,
                                  accountant="rdp", sampling="poisson")
    assert [e["epsilon"] for e in of_type(private_records, "epoch")] == list(curve)


def test_private_training_learns_something(private_records):
    first, last = of_type(private_records, "epoch")
    assert last["test_accuracy"] > 0.15 and last["test_loss"] < first["test_loss"]  # above chance (0.1) already


def test_same_seed_reproduces_the_curves_and_another_seed_does_not(private_records):
    def curves(records):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in records]

    assert curves(train(planned())) == curves(private_records)
    assert curves(train(planned(seed=5))) != curves(private_records)


def test_non_private_run_has_no_epsilon_but_samples_what_c_would_clip():
    records = train(planned(private=False, epochs=1))  # 10 steps: norms measured at steps 8 and 10 (epoch end)
    (epoch,) = of_type(records, "epoch")
    assert EPOCH_FIELDS <= set(epoch) and epoch["epsilon"] is None
    assert epoch["grad_norm"]["p50"] > 0 and 0 <= epoch["clip_fraction"] <= 1
    steps = of_type(records, "step")
    assert [s["step"] for s in steps if s["clip_fraction"] is not None] == [8, 10]
    assert sum(epoch["grad_norm_histogram"]["counts"]) == sum(s["batch_size"] for s in steps if s["step"] in (8, 10))


def test_long_runs_thin_step_records_and_sample_norms_among_them(monkeypatch):
    from app import records

    monkeypatch.setattr(records, "STEP_RECORDS_PER_RUN", 4)
    run_records = train(planned(private=False))  # 20 steps: a record every 5th, norms every 10th (and epoch ends)
    steps = of_type(run_records, "step")
    assert [s["step"] for s in steps] == [5, 10, 15, 20]
    assert [s["step"] for s in steps if s["clip_fraction"] is not None] == [10, 20]
    for epoch in of_type(run_records, "epoch"):
        assert sum(epoch["grad_norm_histogram"]["counts"]) == steps[2 * epoch["epoch"] - 1]["batch_size"]


def test_cancel_stops_before_the_next_step():
    polls = []

    def should_stop():
        polls.append(time.monotonic())
        return len(polls) > 3

    records = train(planned(), should_stop)
    assert [s["step"] for s in of_type(records, "step")] == [1, 2, 3] and not of_type(records, "epoch")
    assert len(polls) == 4


def test_a_real_run_through_the_job_manager():
    """The path users hit: the app's default runners (no fakes), POST /api/runs, poll until it succeeds."""
    from app import create_app

    app = create_app({"TESTING": True, "WARM_UP": False})
    try:
        client = app.test_client()
        assert client.get("/api/params").json["modes"]["real"]["available"]
        snap = finished_run(client, {**SMALL, "epochs": 1, "accountant": "pld"}, timeout=120)
        (epoch,) = snap["epochs"]
        assert EPOCH_FIELDS <= set(epoch) and "type" not in epoch
        summary = snap["summary"]
        assert math.isclose(epoch["epsilon"], summary["final_epsilon"]) and summary["accountant"] == "pld"
        assert summary["final_test_accuracy"] == epoch["test_accuracy"]
    finally:
        app.extensions["jobs"].close()


def test_warm_up_reads_mnist_and_compiles_a_step(monkeypatch):
    from app.training import data, runner

    monkeypatch.setattr(data, "_cache", {})
    runner.warm_up()
    assert list(data._cache) == [os.environ["MNIST_PATH"]]  # read, so the first run does not wait for the file
