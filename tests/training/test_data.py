"""MNIST loading without TensorFlow: sources, the seeded class-balanced subset, and clear reasons when it is missing."""

import os
import sys

import numpy as np
import pytest

from app.training import data

needs_mnist = pytest.mark.skipif(not os.environ.get("MNIST_PATH"), reason="MNIST_PATH is not set")


@pytest.fixture
def no_cache(monkeypatch):
    """Forget what this process has read, so a test sees its own environment."""
    monkeypatch.setattr(data, "_cache", {})
    monkeypatch.setattr(data, "_last", {})


@needs_mnist
def test_subset_is_class_balanced_fixed_for_a_seed_and_scaled():
    mnist = data.load(300)
    assert np.array_equal(np.bincount(mnist.y_train, minlength=10), [30] * 10)
    assert mnist.x_train.shape == (300, 28, 28, 1) and mnist.x_train.dtype == np.float32
    assert 0 <= mnist.x_train.min() and mnist.x_train.max() <= 1 and mnist.x_train.max() > 0.99
    assert mnist.x_test.shape == (10000, 28, 28, 1) and len(mnist.y_test) == 10000
    again = data.load(300)
    assert np.array_equal(again.x_train, mnist.x_train) and np.array_equal(again.y_train, mnist.y_train)
    assert not mnist.x_train.flags.writeable  # runs share it


@needs_mnist
def test_the_whole_training_set_is_all_of_it():
    mnist = data.load(60000)
    _, y_train, _, _ = data.raw()
    assert np.array_equal(mnist.y_train, y_train)


def test_subset_depends_on_its_seed_and_fills_a_short_class():
    labels = np.repeat(np.arange(10), [2] + [50] * 9)  # class 0 has two examples only
    first = data.balanced_indices(labels, 95, seed=1)
    assert len(first) == len(set(first)) == 95
    counts = np.bincount(labels[first], minlength=10)
    assert counts[0] == 2 and counts[1:].min() >= 10 and counts.max() - counts[1:].min() <= 1
    assert np.array_equal(first, data.balanced_indices(labels, 95, seed=1))
    assert set(first) != set(data.balanced_indices(labels, 95, seed=2))


@pytest.mark.parametrize("size", [0, 453, -3])
def test_subset_size_out_of_range_is_refused_with_the_value(size):
    labels = np.repeat(np.arange(10), [2] + [50] * 9)
    with pytest.raises(ValueError, match=f"got {size}"):
        data.balanced_indices(labels, size, seed=0)


def test_mnist_path_pointing_nowhere_gives_the_reason(monkeypatch, no_cache, tmp_path):
    missing = tmp_path / "nowhere" / "mnist.npz"
    monkeypatch.setenv("MNIST_PATH", str(missing))
    assert data.source() == (None, f"MNIST_PATH is set to {str(missing)!r}, but no such file exists")
    with pytest.raises(data.DataUnavailable, match="no such file exists"):
        data.load(300)


def test_a_file_that_is_not_mnist_gives_the_reason(monkeypatch, no_cache, tmp_path):
    broken = tmp_path / "mnist.npz"
    broken.write_bytes(b"not a zip file")
    monkeypatch.setenv("MNIST_PATH", str(broken))
    with pytest.raises(data.DataUnavailable, match="could not be read as MNIST"):
        data.raw()
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x_train=np.zeros((5, 32, 32), np.uint8), y_train=np.zeros(5, np.uint8),
             x_test=np.zeros((2, 32, 32), np.uint8), y_test=np.zeros(2, np.uint8))
    monkeypatch.setenv("MNIST_PATH", str(wrong))
    with pytest.raises(data.DataUnavailable, match=r"not hold MNIST .*\(5, 32, 32\)"):
        data.raw()


def test_keras_cache_is_the_second_source(monkeypatch, no_cache, tmp_path):
    cached = tmp_path / "mnist.npz"
    np.savez(cached, x_train=np.full((20, 28, 28), 255, np.uint8), y_train=np.arange(20) % 10,
             x_test=np.zeros((4, 28, 28), np.uint8), y_test=np.arange(4))
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(data, "KERAS_CACHE", cached)
    assert data.source() == (cached, f"MNIST from the Keras cache ({cached})")
    mnist = data.load(10)
    assert np.array_equal(np.bincount(mnist.y_train), [1] * 10) and mnist.x_train.max() == 1.0


def test_no_source_and_no_download_gives_the_reason(monkeypatch, no_cache, tmp_path):
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path / "absent.npz")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if Keras could not be imported (or fetch) here
    assert data.source()[0] is None and "downloaded" in data.source()[1]
    with pytest.raises(data.DataUnavailable, match="could not be downloaded .*set MNIST_PATH"):
        data.raw()


def test_a_corrupt_mnist_file_makes_the_real_mode_unavailable_with_the_reason(monkeypatch, tmp_path):
    from app import create_app

    broken = tmp_path / "mnist.npz"
    broken.write_bytes(b"not a zip archive")
    monkeypatch.setenv("MNIST_PATH", str(broken))
    app = create_app({"TESTING": True})
    client = app.test_client()
    real = client.get("/api/params").json["modes"]["real"]
    assert not real["available"] and str(broken) in real["reason"]
    response = client.post("/api/runs", json={"mode": "real"})
    assert response.status_code == 400 and "could not be read as MNIST" in response.json["errors"]["mode"]
    assert client.get("/api/params").json["modes"]["simulate"]["available"]  # the simulation carries on
    app.extensions["jobs"].close()
