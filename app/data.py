"""MNIST: where it comes from, a seeded class-balanced subset, and whether the real mode can have it.

Sources, in order: the file named by ``MNIST_PATH``; the Keras cache (``~/.keras/datasets/mnist.npz``); otherwise
``keras.datasets.mnist.load_data()``, which downloads where there is internet (the Docker image does it at build time).
Everything but the download uses numpy only, so the page can ask whether real training is possible without TensorFlow.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KERAS_CACHE = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
NUM_CLASSES = 10

_lock = threading.Lock()
_cache: dict[str, tuple] = {}


class DataUnavailable(RuntimeError):
    """MNIST cannot be had; the message says why and what to do."""


@dataclass(frozen=True)
class Mnist:
    """Train subset and the whole test set, images float32 in [0, 1] with a channel axis, labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def source() -> tuple[Path | None, str]:
    """Where MNIST would be read from, and a sentence saying so (path None means it must be downloaded)."""
    configured = os.environ.get("MNIST_PATH")
    if configured:
        path = Path(configured)
        if path.is_file():
            return path, f"MNIST from MNIST_PATH ({path})"
        return None, f"MNIST_PATH is set to {configured!r}, but no such file exists"
    if KERAS_CACHE.is_file():
        return KERAS_CACHE, f"MNIST from the Keras cache ({KERAS_CACHE})"
    return None, "MNIST is not on this machine; it will be downloaded with keras.datasets.mnist on the first real run"


def _read_arrays() -> tuple:
    path, why = source()
    if path is None and os.environ.get("MNIST_PATH"):
        raise DataUnavailable(why)
    if path is None:
        try:
            from tensorflow import keras  # only here: the download needs Keras, nothing else in this module does
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as exc:  # noqa: BLE001 - any failure to download means the real mode is unavailable
            raise DataUnavailable(f"MNIST could not be downloaded ({type(exc).__name__}: {exc}); "
                                  "set MNIST_PATH to a local mnist.npz") from exc
    else:
        with np.load(path) as archive:
            x_train, y_train, x_test, y_test = (archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if x_train.shape[1:] != (28, 28) or len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataUnavailable(f"{path} does not hold MNIST in the Keras format (x_train shape {x_train.shape})")
    return x_train, y_train, x_test, y_test


def raw() -> tuple:
    """The four uint8 arrays, read once per process."""
    with _lock:
        if "raw" not in _cache:
            _cache["raw"] = _read_arrays()
        return _cache["raw"]


def balanced_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A fixed, seeded subset of ``size`` indices with classes as equal as the data allows, in shuffled order.

    Each class gets ``size // 10`` (the remainder goes to the first classes); a class short of examples gives what it
    has and the rest comes from the others. The same (labels, size, seed) always gives the same subset.
    """
    if not 1 <= size <= len(labels):
        raise ValueError(f"dataset_size must be between 1 and {len(labels)}, got {size}")
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(NUM_CLASSES)]
    quota = [size // NUM_CLASSES + (1 if c < size % NUM_CLASSES else 0) for c in range(NUM_CLASSES)]
    taken = [min(q, len(members)) for q, members in zip(quota, by_class)]
    shortfall = size - sum(taken)
    for c in range(NUM_CLASSES):  # fill a shortfall from classes that have more
        extra = min(shortfall, len(by_class[c]) - taken[c])
        taken[c] += extra
        shortfall -= extra
    chosen = np.concatenate([members[:n] for members, n in zip(by_class, taken)])
    return rng.permutation(chosen)


def load(dataset_size: int, *, subset_seed: int = 0) -> Mnist:
    """MNIST with a class-balanced training subset of ``dataset_size`` examples and the whole 10k test set.

    The subset depends on ``subset_seed`` only, not on the run's seed, so runs with different seeds train on the same
    examples. Raises :class:`DataUnavailable` when MNIST cannot be had.
    """
    x_train, y_train, x_test, y_test = raw()
    chosen = np.sort(balanced_indices(y_train, dataset_size, subset_seed)) if dataset_size < len(y_train) \
        else np.arange(len(y_train))
    return Mnist(_images(x_train[chosen]), y_train[chosen].astype(np.int32), _images(x_test),
                 y_test.astype(np.int32))


def _images(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) / 255.0)[..., None]
