"""MNIST: where it comes from, a seeded class-balanced subset, and whether the real mode can have it.

Sources, in order: the file named by ``MNIST_PATH``; the Keras cache (``~/.keras/datasets/mnist.npz``); otherwise
``keras.datasets.mnist.load_data()``, which downloads where there is internet (the Docker image does it at build time).
Everything but the download uses numpy only, so the page can ask whether real training is possible without TensorFlow.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KERAS_CACHE = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
NUM_CLASSES = 10

_lock = threading.Lock()
_cache: dict[str, tuple] = {}  # source path -> raw arrays
_last: dict = {}  # the last load(): its key and Mnist


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


ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def file_problem(path: Path) -> str | None:
    """Why the MNIST file at ``path`` cannot be used (not an npz, arrays missing), or None; reads only the archive's
    directory, so ``GET /api/params`` can ask it on every call."""
    stat = path.stat()
    return _file_problem(str(path), stat.st_mtime, stat.st_size)


@functools.lru_cache(maxsize=8)
def _file_problem(path: str, mtime: float, size: int) -> str | None:
    try:
        with np.load(path) as archive:
            missing = set(ARRAYS) - set(archive.files)
    except Exception as exc:  # noqa: BLE001 - whatever np.load says, the file is no MNIST
        return f"{path} could not be read as MNIST ({type(exc).__name__}: {exc})"
    return f"{path} lacks the arrays {', '.join(sorted(missing))} of the Keras MNIST format" if missing else None


def _read_arrays(path: Path | None) -> tuple:
    if path is None:
        try:
            from tensorflow import keras  # only here: the download needs Keras, nothing else in this module does
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as exc:  # noqa: BLE001 - any failure to download means the real mode is unavailable
            raise DataUnavailable(f"MNIST could not be downloaded ({type(exc).__name__}: {exc}); "
                                  "set MNIST_PATH to a local mnist.npz") from exc
    else:
        try:
            with np.load(path) as archive:
                x_train, y_train, x_test, y_test = (archive[k] for k in ARRAYS)
        except Exception as exc:  # noqa: BLE001 - not an npz, truncated, or missing arrays: all mean no MNIST here
            raise DataUnavailable(f"{path} could not be read as MNIST ({type(exc).__name__}: {exc})") from exc
    if x_train.shape[1:] != (28, 28) or len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataUnavailable(f"{path or 'the download'} does not hold MNIST in the Keras format "
                              f"(x_train shape {x_train.shape})")
    return x_train, y_train, x_test, y_test


def raw() -> tuple:
    """The four uint8 arrays (train images, labels, test images, labels), read once per process and source.

    Raises:
        DataUnavailable: ``MNIST_PATH`` names no readable MNIST file, or the download failed.
    """
    path, why = source()
    if path is None and os.environ.get("MNIST_PATH"):
        raise DataUnavailable(why)
    key = str(path)
    with _lock:
        if key not in _cache:
            _cache[key] = _read_arrays(path)
        return _cache[key]


def balanced_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A fixed, seeded subset of ``size`` indices with classes as equal as the data allows, in shuffled order.

    Water-filling: every class gets the same count L, or all it has if that is fewer, with L as large as fits in
    ``size``; what is left goes one each to the first classes that have more. With enough of every class that is
    ``size // 10`` each, the remainder to the first classes. The same (labels, size, seed) always gives the same subset.

    Raises:
        ValueError: ``size`` is not between 1 and ``len(labels)``.
    """
    if not 1 <= size <= len(labels):
        raise ValueError(f"dataset_size must be between 1 and {len(labels)}, got {size}")
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(NUM_CLASSES)]
    available = np.array([len(members) for members in by_class])
    low, high = 0, int(available.max())
    while low < high:  # the largest level whose total fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(available, mid).sum() <= size else (low, mid - 1)
    taken = np.minimum(available, low)
    spare = size - int(taken.sum())
    for c in np.flatnonzero(available > low)[:spare]:
        taken[c] += 1
    chosen = np.concatenate([members[:n] for members, n in zip(by_class, taken)])
    return rng.permutation(chosen)


def load(dataset_size: int, *, subset_seed: int = 0) -> Mnist:
    """MNIST with a class-balanced training subset of ``dataset_size`` examples and the whole 10k test set.

    The subset depends on ``subset_seed`` only, not on the run's seed, so runs with different seeds train on the same
    examples. The last result is kept, so repeated runs on the same subset skip the conversion to floats.

    Raises:
        DataUnavailable: MNIST cannot be had.
        ValueError: ``dataset_size`` is not between 1 and 60,000.
    """
    arrays = raw()
    key = (id(arrays), dataset_size, subset_seed)
    with _lock:
        if _last.get("key") != key:
            _last.clear()  # drop the old floats before making new ones
            x_train, y_train, x_test, y_test = arrays
            chosen = np.sort(balanced_indices(y_train, dataset_size, subset_seed))
            parts = (images(x_train[chosen]), y_train[chosen].astype(np.int32), images(x_test),
                     y_test.astype(np.int32))
            for part in parts:
                part.flags.writeable = False  # shared by every run on this subset
            _last.update(key=key, mnist=Mnist(*parts))
        return _last["mnist"]


def images(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels [n, 28, 28] -> float32 in [0, 1] with a channel axis [n, 28, 28, 1], as the model takes them."""
    return (pixels.astype(np.float32) / 255.0)[..., None]
