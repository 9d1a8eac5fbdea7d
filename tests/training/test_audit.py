"""The audit on real training: the split is what docs/audit.md says (held out by construction, canaries counted in
N), and a run through the users' path (POST /api/runs) carries an honest ``audit`` in its summary."""


import numpy as np
import pytest

from app.jobs import service
from app.params import RUN_FIELDS, validate
from tests.training.runs import finished_run

pytestmark = pytest.mark.training

SMALL = {"mode": "real", "dataset_size": 400, "batch_size": 50, "epochs": 2, "noise_multiplier": 1.1,
         "max_grad_norm": 1.0, "learning_rate": 0.5, "seed": 3}


def planned(**overrides) -> dict:
    return service.plan(validate({**SMALL, **overrides}, RUN_FIELDS))[0]


def test_the_split_holds_out_non_members_and_counts_included_canaries_in_n():
    from app.training import audit, data

    params = planned(audit="canaries", canaries=100)
    sets = audit.prepare(params)
    included = int(sets.included.sum())
    assert 0 < included < 100 and len(sets.y_train) == params["dataset_size"] == 400  # q = B/N is the true rate
    assert len(sets.mnist.y_train) == 400 - included
    assert np.all(sets.y_canaries != _true_labels(sets.x_canaries))  # every canary carries a wrong label
    assert np.array_equal(sets.x_train[400 - included:], sets.x_canaries[sets.included])
    assert sets.source == "train" and len(sets.y_non_members) == len(sets.member_positions) == 400 - included
    trained = {row.tobytes() for row in sets.x_train}
    assert not any(row.tobytes() in trained for row in sets.x_non_members)  # never seen by construction
    assert not any(row.tobytes() in trained for row in sets.x_canaries[~sets.included])
    assert np.all(sets.member_positions < 400 - included)  # members are clean examples, never canaries
    again = audit.prepare(params)  # reproducible from the knobs
    assert np.array_equal(again.x_non_members, sets.x_non_members) and np.array_equal(again.included, sets.included)
    assert data.load(400).x_train.shape[0] == 400


def _true_labels(x_canaries):
    from app.training import data

    x_raw, y_raw, _, _ = data.raw()
    lookup = {data.images(x_raw[i:i + 1])[0].tobytes(): y_raw[i] for i in range(len(y_raw))}
    return np.array([lookup[row.tobytes()] for row in x_canaries])


def test_without_room_in_the_training_pool_non_members_come_from_the_test_set(monkeypatch):
    from app.training import audit

    monkeypatch.setattr(audit, "MAX_MEMBERS", 50)
    params = planned(dataset_size=59990, batch_size=256)
    sets = audit.prepare(params)
    assert sets.source == "test" and len(sets.y_non_members) == 50


def test_a_real_run_with_both_audits_through_the_api():
    """POST /api/runs with audit canaries, poll, and read the audit: its shape, its statements, and that the canary
    bound neither exceeds its ceiling nor (the run being private) the accountant's epsilon."""
    from app import create_app

    app = create_app({"TESTING": True, "WARM_UP": False})
    try:
        client = app.test_client()
        snap = finished_run(client, {**SMALL, "audit": "canaries", "canaries": 100})
        summary = snap["summary"]
        membership, canaries = summary["audit"]["membership"], summary["audit"]["canaries"]
        assert {"auc", "advantage", "tpr_at_fpr", "roc", "attacks", "members", "non_members"} <= set(membership)
        assert set(membership["attacks"]) == {"loss", "confidence", "entropy", "logistic_regression"}
        assert 0 <= membership["auc"] <= 1 and set(membership["tpr_at_fpr"]) == {"0.01", "0.001"}
        assert len(membership["roc"]["fpr"]) == len(membership["roc"]["tpr"]) >= 2
        assert "not an epsilon lower bound" in membership["statement"] and "outside" in membership["source"]
        assert {"count", "guesses", "correct", "epsilon_lower_bound", "confidence", "ceiling"} <= set(canaries)
        assert canaries["count"] == 100 and canaries["confidence"] == 0.95
        assert 0 <= canaries["epsilon_lower_bound"] <= canaries["ceiling"]
        assert canaries["epsilon_lower_bound"] <= summary["final_epsilon"]
        assert all(0 <= e["membership_auc"] <= 1 for e in snap["epochs"])  # the per-epoch leakage probe
        assert "never measures it" in canaries["statement"]
        assert f"counts the {canaries['included']} canaries" in canaries["statement"]
    finally:
        app.extensions["jobs"].close()


def test_an_overfit_non_private_run_memorises_its_canaries():
    """Without DP the mislabelled canaries that were in are fitted and the others are not: the bound is clearly
    above 0 (1,000 examples, 200 canaries, 15 epochs: a few seconds a epoch here)."""
    from app.training import runner

    params = planned(private=False, dataset_size=1000, batch_size=32, epochs=15, learning_rate=0.2,
                     audit="canaries", canaries=200)
    records = []
    runner.run(params, records.append, lambda: False)
    (summary,) = [r for r in records if r["type"] == "summary"]
    canaries = summary["audit"]["canaries"]
    assert canaries["epsilon_lower_bound"] > 0.5, canaries
    assert summary["audit"]["membership"]["attacks"]["loss"]["auc"] > 0.55  # 0.61 measured here


@pytest.mark.parametrize("noise_multiplier", [1.1, 5.0])
def test_private_runs_never_certify_more_than_their_epsilon(noise_multiplier):
    """Two seeds per noise level: the canary bound stays at or below the accountant's epsilon, and with strong
    noise the loss attack is near chance."""
    from app.training import runner

    for seed in (0, 1):
        params = planned(dataset_size=1000, batch_size=64, epochs=5, learning_rate=1.0, seed=seed,
                         noise_multiplier=noise_multiplier, audit="canaries", canaries=200)
        records = []
        runner.run(params, records.append, lambda: False)
        audit = next(r for r in records if r["type"] == "summary")["audit"]
        epsilon = [r for r in records if r["type"] == "epoch"][-1]["epsilon"]
        assert audit["canaries"]["epsilon_lower_bound"] <= epsilon, (seed, audit["canaries"], epsilon)
        if noise_multiplier >= 5:
            assert abs(audit["membership"]["attacks"]["loss"]["auc"] - 0.5) < 0.05
