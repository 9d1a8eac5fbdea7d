"""The variant knobs at the API: real-mode only, every bad value a 400 naming its field (no TensorFlow here)."""

import pytest


@pytest.mark.parametrize("field, value", [
    ("clipping", "automatic"), ("clipping", "per_layer"), ("clipping", "adaptive"), ("target_quantile", 0.7),
    ("sparsification", 0.9), ("microbatches", 8),
])
def test_a_simulated_run_with_a_variant_is_refused_naming_the_field(client, field, value):
    answer = client.post("/api/runs", json={"mode": "simulate", field: value})
    assert answer.status_code == 400
    message = answer.json["errors"][field]
    assert "real runs only" in message and "use mode real" in message and repr(value) in message


def test_a_simulated_run_may_name_the_fitted_values(client):
    answer = client.post("/api/runs", json={"mode": "simulate", "clipping": "flat", "sparsification": 0,
                                            "microbatches": 0, "target_quantile": 0.5})
    assert answer.status_code == 202, answer.json


@pytest.mark.parametrize("body, field, message", [
    ({"clipping": "ghost"}, "clipping", "must be one of flat, per_layer, automatic, adaptive; got 'ghost'"),
    ({"target_quantile": 1.0}, "target_quantile", "between 0.05 and 0.95, got 1.0"),
    ({"target_quantile": 0}, "target_quantile", "got 0"),
    ({"sparsification": 1.5}, "sparsification", "got 1.5"),
    ({"batch_size": 256, "microbatches": 10}, "microbatches", "must divide batch_size (256)"),
    ({"clipping": "adaptive", "microbatches": 8}, "microbatches", "must be 0 with adaptive"),
])
def test_bad_variant_values_are_400s_naming_the_field(client, body, field, message):
    answer = client.post("/api/runs", json={"mode": "real", **body})
    assert answer.status_code == 400 and message in answer.json["errors"][field], answer.json


def test_privacy_preview_takes_microbatches_and_says_what_they_cost(client):
    flat = client.post("/api/privacy", json={"batch_size": 250, "dataset_size": 60000}).json
    micro = client.post("/api/privacy", json={"batch_size": 250, "dataset_size": 60000, "microbatches": 25}).json
    adaptive = client.post("/api/privacy", json={"batch_size": 250, "dataset_size": 60000,
                                                 "clipping": "adaptive"}).json
    assert micro["epsilon"] > 1.5 * flat["epsilon"] and micro["microbatches"] == 25
    assert adaptive["epsilon"] == pytest.approx(flat["epsilon"]) and adaptive["clipping"] == "adaptive"
