"""The model and momentum knobs and per-class accuracy: the tanh CNN's per-example gradients, momentum against Keras'
SGD, and small real runs through POST /api/runs (the users' path)."""

import math

import numpy as np
import pytest

from tests.training.runs import finished_run
from tests.training.test_dpsgd import B, BATCH, clipped_sum, per_example_gradients, summed_update

pytestmark = pytest.mark.training

SMALL = {"mode": "real", "dataset_size": 300, "batch_size": 30, "epochs": 1, "noise_multiplier": 1.1,
         "max_grad_norm": 1.0, "learning_rate": 0.5, "seed": 3}


def test_the_two_models_are_the_same_layers_with_another_activation(tf):
    from app.training.model import build_named

    relu, tanh = build_named("tutorial_cnn", seed=2), build_named("tanh_cnn", seed=2)
    assert [type(layer).__name__ for layer in relu.layers] == [type(layer).__name__ for layer in tanh.layers]
    assert {layer.activation.__name__ for layer in tanh.layers if type(layer).__name__ == "Activation"} == {"tanh"}
    for a, b in zip(relu.trainable_variables, tanh.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # same seed, same initial weights
    with pytest.raises(ValueError, match="model must be one of tutorial_cnn, tanh_cnn; got 'resnet'"):
        build_named("resnet", seed=0)


@pytest.mark.parametrize("clip", [1e-3, 1e3], ids=["all_clipped", "none_clipped"])
def test_tanh_per_example_gradients_match_the_gradient_tape_loop(tf, batch, clip):
    from app.training.dpsgd import DPStep
    from app.training.model import build_named

    x, y = batch
    model = build_named("tanh_cnn", seed=1)
    grads, norms = per_example_gradients(tf, model, x, y)
    moved, result = summed_update(model, DPStep(model, batch_size=B, seed=0), x, y, max_grad_norm=clip,
                                  noise_multiplier=0.0)
    np.testing.assert_allclose(result.grad_norms, norms, rtol=1e-5)
    for got, want in zip(moved, clipped_sum(grads, norms, clip)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_momentum_is_keras_sgd_momentum_on_the_same_noisy_gradient(tf, batch):
    """Three noisy steps with momentum 0.9 against Keras' SGD(momentum=0.9) fed, at each step, the noisy mean gradient
    our step released (recovered from a momentum-free twin with the same noise seed and the same weights)."""
    from app.training.dpsgd import DPStep
    from app.training.model import build_named

    x, y = batch
    lr, knobs = 0.3, {"max_grad_norm": 0.5, "noise_multiplier": 1.0}
    ours, twin, keras_model = (build_named("tanh_cnn", seed=4) for _ in range(3))
    step = DPStep(ours, batch_size=B, seed=9, momentum=0.9)
    plain = DPStep(twin, batch_size=B, seed=9)
    optimizer = tf.keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    for _ in range(3):
        for source, target in zip(keras_model.trainable_variables, twin.trainable_variables):
            target.assign(source)  # the twin computes the noisy gradient at Keras' current weights
        before = [v.numpy() for v in twin.trainable_variables]
        plain(x, y, learning_rate=1.0, **knobs)
        noisy_mean = [b - v.numpy() for b, v in zip(before, twin.trainable_variables)]
        optimizer.apply_gradients(zip([tf.constant(g) for g in noisy_mean], keras_model.trainable_variables))
        step(x, y, learning_rate=lr, **knobs)
    for got, want in zip(ours.trainable_variables, keras_model.trainable_variables):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


# --- through POST /api/runs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_client():
    from app import create_app

    app = create_app({"TESTING": True, "WARM_UP": False, "REAL_RUNS_PER_CLIENT": 0})
    yield app.test_client()
    app.extensions["jobs"].close()


def finished(client, body) -> dict:
    return finished_run(client, body, timeout=180)


@pytest.fixture(scope="module")
def runs(real_client):
    return {name: finished(real_client, {**SMALL, **knobs}) for name, knobs in {
        "relu": {}, "tanh": {"model": "tanh_cnn"}, "tanh_momentum": {"model": "tanh_cnn", "momentum": 0.9}}.items()}


def test_a_tanh_run_trains_and_says_which_model(runs):
    snap = runs["tanh"]
    assert snap["params"]["model"] == "tanh_cnn" and snap["summary"]["model"] == "tanh_cnn"
    assert snap["summary"]["momentum"] == 0.0
    assert snap["epochs"][0]["test_loss"] != runs["relu"]["epochs"][0]["test_loss"]  # another network did train


def test_momentum_changes_the_trajectory_but_not_epsilon(runs):
    plain, heavy = runs["tanh"], runs["tanh_momentum"]
    assert [s["loss"] for s in plain["steps"]][:1] == [s["loss"] for s in heavy["steps"]][:1]  # same first batch
    assert [s["loss"] for s in plain["steps"]] != [s["loss"] for s in heavy["steps"]]
    assert heavy["epochs"][0]["epsilon"] == plain["epochs"][0]["epsilon"]
    assert heavy["summary"]["final_epsilon"] == plain["summary"]["final_epsilon"]
    assert "momentum 0.9 only post-processes" in heavy["summary"]["statement"]
    assert "momentum" not in plain["summary"]["statement"]


def test_class_accuracy_has_ten_values_that_average_to_the_test_accuracy(runs):
    from app.training import data

    counts = np.bincount(data.load(SMALL["dataset_size"]).y_test, minlength=10)
    for snap in runs.values():
        (epoch,) = snap["epochs"]
        per_class = epoch["class_accuracy"]
        assert len(per_class) == 10 and all(0 <= a <= 1 for a in per_class)
        assert math.isclose(np.dot(per_class, counts) / counts.sum(), epoch["test_accuracy"], rel_tol=1e-9)


@pytest.mark.parametrize("field, value", [("model", "tanh_cnn"), ("momentum", 0.9)])
def test_a_simulated_run_asking_a_real_only_knob_is_refused_naming_it(real_client, field, value):
    response = real_client.post("/api/runs", json={**SMALL, "mode": "simulate", field: value})
    assert response.status_code == 400
    assert list(response.json["errors"]) == [field]
    assert "is for real runs only" in response.json["errors"][field]


@pytest.mark.parametrize("field, value, message", [
    ("model", "resnet", "must be one of tutorial_cnn, tanh_cnn; got 'resnet'"),
    ("momentum", 1.0, "must be between 0 and 0.95, got 1.0"),
    ("momentum", "0.9", "must be a number, got '0.9'"),
])
def test_bad_values_of_the_new_knobs_are_a_400_naming_the_field(real_client, field, value, message):
    response = real_client.post("/api/runs", json={**SMALL, field: value})
    assert response.status_code == 400
    assert response.json["errors"] == {field: message}
