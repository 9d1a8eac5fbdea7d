"""Each clipping variant, sparsification and microbatches as a user runs them: small real runs through POST /api/runs
(the app's own runners), their records, epsilon and the summary's profile."""

import math

import pytest
from jsonschema import Draft202012Validator

from app import create_app, privacy
from app.training.phases import PHASES
from tests.training.runs import finished_run

pytestmark = pytest.mark.training

SMALL = {"mode": "real", "dataset_size": 300, "batch_size": 30, "epochs": 1, "noise_multiplier": 1.1,
         "max_grad_norm": 1.0, "learning_rate": 0.5, "seed": 2}


@pytest.fixture(scope="module")
def client():
    app = create_app({"TESTING": True, "WARM_UP": False})
    yield app.test_client()
    app.extensions["jobs"].close()


def finished(client, body: dict) -> dict:
    snap = finished_run(client, {**SMALL, **body})
    document = client.get("/api/openapi.json").json  # the snapshot, its new fields and the profile, as documented
    Draft202012Validator({"$ref": "#/components/schemas/Run", "components": document["components"]}).validate(snap)
    return snap


def expected_epsilon(**variant) -> float:
    return privacy.epsilon_curve(noise_multiplier=1.1, batch_size=30, epochs=1, dataset_size=300, delta=1e-5,
                                 **variant)[-1]


@pytest.mark.parametrize("body", [
    {"clipping": "per_layer"},
    {"clipping": "automatic", "learning_rate": 0.5},
    {"sparsification": 0.9},
    {"microbatches": 6},
], ids=["per_layer", "automatic", "sparsification", "microbatches"])
def test_a_variant_runs_and_reports_its_true_epsilon(client, body):
    snap = finished(client, body)
    (epoch,) = snap["epochs"]
    want = expected_epsilon(microbatches=body.get("microbatches", 0))
    assert epoch["epsilon"] == pytest.approx(want) and snap["summary"]["final_epsilon"] == pytest.approx(want)
    assert 0 <= epoch["clip_fraction"] <= 1 and epoch["test_accuracy"] is not None
    if "microbatches" in body:
        assert want > 1.5 * expected_epsilon()  # sensitivity doubled: honestly larger
        assert "sensitivity doubles" in snap["summary"]["statement"]
    if "sparsification" in body:
        assert epoch["sparsification_rate"] == pytest.approx(0.9)  # the last period reaches the final rate
    profile = snap["summary"]["profile"]
    assert profile["private_step_seconds"] > 0 and profile["public_step_seconds"] > 0
    assert profile["private_to_public"] > 0 and profile["batch_size"] == 30
    assert profile["train_seconds_per_epoch"] > 0 and profile["evaluation_seconds_per_epoch"] > 0
    assert 0 < profile["rss_start_mb"] <= profile["rss_peak_mb"] and profile["rss_increase_mb"] >= 0
    if "microbatches" in body or "sparsification" in body:  # the materialised path is not split, and says so
        assert profile["phases"] is None and "materialised" in profile["phases_note"]
    else:
        assert set(profile["phases"]) == set(PHASES) and all(t >= 0 for t in profile["phases"].values())
        assert profile["phases"]["forward_backward"] > 0 and profile["phases"]["update"] > 0


def test_adaptive_clipping_records_the_c_of_every_step_and_keeps_epsilon(client):
    snap = finished(client, {"clipping": "adaptive", "target_quantile": 0.5, "max_grad_norm": 0.01, "epochs": 2})
    clips = [s["max_grad_norm"] for s in snap["steps"]]
    assert len(clips) == 20 and clips[0] == pytest.approx(0.01)
    assert clips[-1] > 2 * clips[0]  # from far below every norm, C grows towards their median
    assert all(math.isfinite(c) and c > 0 for c in clips)
    assert snap["epochs"][-1]["max_grad_norm"] == clips[-1]
    assert snap["summary"]["final_epsilon"] == pytest.approx(privacy.epsilon_curve(
        noise_multiplier=1.1, batch_size=30, epochs=2, dataset_size=300, delta=1e-5)[-1])
