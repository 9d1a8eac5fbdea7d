"""What the DP-step tests share: TensorFlow configured as the trainer configures it, and one fixed batch of MNIST."""

import pytest

BATCH = 24  # the fixed batch of the step tests


@pytest.fixture(scope="module")
def tf():
    from app.training.runner import configure_tensorflow

    return configure_tensorflow()


@pytest.fixture(scope="module")
def batch():
    from app.training import data

    mnist = data.load(1000)
    return mnist.x_train[:BATCH], mnist.y_train[:BATCH]
