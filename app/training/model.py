"""The model: the TF Privacy MNIST tutorial CNN, defined once as a table of layers.

The architecture is the one of TF Privacy's ``mnist_dpsgd_tutorial_keras.py`` (Conv 16@8x8 stride 2 'same', MaxPool 2
stride 1, Conv 32@4x4 stride 2 'valid', MaxPool 2 stride 1, Flatten, Dense 32, Dense 10 logits) on 28x28x1 inputs in
[0, 1]. ``ACT`` marks where the hidden activation goes: ReLU as in the tutorial, or tanh (Papernot et al. 2021 found
bounded activations suit DP-SGD) by passing ``activation="tanh"``.

Activations are separate layers and every Conv/Dense layer is linear, so ``app.training.dpsgd`` can read each trainable layer's
input and the gradient at its pre-activation output, which is all the per-example gradient norms need.
"""

from __future__ import annotations

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
ACT = "act"  # placeholder for the hidden activation in the table below

TUTORIAL_CNN = (
    ("Conv2D", {"filters": 16, "kernel_size": 8, "strides": 2, "padding": "same"}),
    (ACT, {}),
    ("MaxPool2D", {"pool_size": 2, "strides": 1}),
    ("Conv2D", {"filters": 32, "kernel_size": 4, "strides": 2, "padding": "valid"}),
    (ACT, {}),
    ("MaxPool2D", {"pool_size": 2, "strides": 1}),
    ("Flatten", {}),
    ("Dense", {"units": 32}),
    (ACT, {}),
    ("Dense", {"units": NUM_CLASSES}),  # logits
)
ACTIVATIONS = ("relu", "tanh")
# The ``model`` knob's choices: the same layers, one activation each.
MODELS = {"tutorial_cnn": "relu", "tanh_cnn": "tanh"}


def build_named(name: str, *, seed: int):
    """The model the ``model`` knob names (``tutorial_cnn`` or ``tanh_cnn``), its weights a function of ``seed``.

    Raises:
        ValueError: an unknown name.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {name!r}")
    return build_model(seed=seed, activation=MODELS[name])


def build_model(*, seed: int, activation: str = "relu", layers=TUTORIAL_CNN):
    """A Keras ``Sequential`` model built from ``layers``, its weights a function of ``seed`` alone.

    Kernels are Glorot-uniform (Keras' default) seeded per layer; biases start at zero.

    Raises:
        ValueError: an unknown activation.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    import tensorflow as tf

    built = [tf.keras.Input(shape=INPUT_SHAPE)]
    for index, (kind, options) in enumerate(layers):
        if kind == ACT:
            built.append(tf.keras.layers.Activation(activation))
        elif kind in ("Conv2D", "Dense"):
            built.append(getattr(tf.keras.layers, kind)(
                **options, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed * 1000 + index)))
        else:
            built.append(getattr(tf.keras.layers, kind)(**options))
    return tf.keras.Sequential(built, name=f"tutorial_cnn_{activation}")
