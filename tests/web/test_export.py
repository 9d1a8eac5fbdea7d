"""POST /api/export/script: a standalone TF Privacy script with the run's knobs, and (marked training) that script
run for two steps on a small sample."""

import ast
import os
import subprocess
import sys

import pytest

from app.params import EXPORT_FIELDS

BEST = {"model": "tanh_cnn", "batch_size": 512, "learning_rate": 0.5, "momentum": 0.9, "max_grad_norm": 0.1,
        "noise_multiplier": 1.23, "epochs": 40}


def knobs_of(script: str) -> dict:
    """The KNOBS literal the script carries (read back by parsing it, not by running it)."""
    tree = ast.parse(script)
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "KNOBS"]
    return ast.literal_eval(value)


def test_the_script_carries_every_knob_it_maps_and_downloads_as_python(client):
    response = client.post("/api/export/script", json=BEST)
    assert response.status_code == 200
    assert response.mimetype == "text/x-python"
    assert response.headers["Content-Disposition"] == 'attachment; filename="dpsgd_mnist.py"'
    script = response.get_data(as_text=True)
    knobs = knobs_of(script)
    assert list(knobs) == list(EXPORT_FIELDS)
    assert {k: knobs[k] for k in BEST} == BEST and knobs["private"] is True and knobs["delta"] == 1e-5
    for needed in ("VectorizedDPKerasSGDOptimizer", "compute_dp_sgd_privacy_statement", "How it differs"):
        assert needed in script


def test_defaults_give_the_tutorial_cnn_and_a_non_private_script_says_so(client):
    assert knobs_of(client.post("/api/export/script", json={}).get_data(as_text=True))["model"] == "tutorial_cnn"
    baseline = client.post("/api/export/script", json={"private": False}).get_data(as_text=True)
    assert knobs_of(baseline)["private"] is False


@pytest.mark.parametrize("body, field", [({"model": "vgg"}, "model"), ({"momentum": 2}, "momentum"),
                                         ({"mode": "real"}, "mode")])
def test_bad_or_unknown_fields_are_a_400_naming_them(client, body, field):
    response = client.post("/api/export/script", json=body)
    assert response.status_code == 400 and field in response.json["errors"]


@pytest.mark.training
@pytest.mark.parametrize("body", [{**BEST, "batch_size": 64}, {"private": False, "momentum": 0.5}],
                         ids=["dp_tanh_momentum", "non_private"])
def test_the_exported_script_trains_one_step_and_prints_epsilon(client, tmp_path, body):
    path = tmp_path / "dpsgd_mnist.py"
    path.write_text(client.post("/api/export/script", json=body).get_data(as_text=True), encoding="utf-8")
    done = subprocess.run([sys.executable, str(path), "--steps", "2", "--dataset-size", "1000",
                           "--mnist-path", os.environ["MNIST_PATH"]], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 1: test accuracy" in done.stdout
    if body.get("private", True):
        assert "DP-SGD performed over 1000 examples with 64 examples per iteration" in done.stdout
        assert "epsilon" in done.stdout
    else:
        assert "no differential privacy guarantee" in done.stdout
