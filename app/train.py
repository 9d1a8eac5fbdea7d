"""The real runner: DP-SGD (or the non-private baseline) on MNIST with the tutorial CNN, reporting live records.

``run(params, report, should_stop)`` is the runner contract of ``app.jobs``. Each step draws a Poisson batch
(``app.dpsgd.poisson_sample``), takes one DP step (``app.dpsgd.DPStep``: per-example clip, sum, noise, SGD), and the
per-example gradient norms that step already computed feed the clipping statistics. After each epoch the model is
evaluated on the whole 10k MNIST test set and epsilon comes from ``app.privacy`` with the same q, steps and delta.

TensorFlow is imported here (and in ``app.model`` / ``app.dpsgd``) only: on the first real run, never at start.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from app import data, privacy

STEP_RECORDS_PER_RUN = 400  # per-step records are thinned to about this many, whatever the run's length
HISTOGRAM_EDGES = tuple(float(e) for e in np.logspace(-3, 3, 49))  # 8 bins a decade, fixed so runs overlay
EVAL_BATCH = 2000

_tf_lock = threading.Lock()
_tf_ready = False


def configure_tensorflow():
    """Import TensorFlow once and set its thread pools: both cores for one op (a run's step is one big graph), one
    op at a time, so a training run cannot starve the threads that serve the page."""
    global _tf_ready
    with _tf_lock:
        import tensorflow as tf

        if not _tf_ready:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(2)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # already initialised by an earlier import in this process: keep its settings
                pass
            _tf_ready = True
        return tf


def run(params: dict, report, should_stop) -> None:
    """Train as ``params`` say, calling ``report`` with step and epoch records; return early when ``should_stop()``.

    Raises:
        data.DataUnavailable: MNIST cannot be had here.
    """
    tf = configure_tensorflow()
    from app.dpsgd import DPStep, poisson_sample
    from app.model import build_model

    mnist = data.load(params["dataset_size"])
    seed = params["seed"]
    tf.keras.utils.set_random_seed(seed)
    model = build_model(seed=seed)
    step = DPStep(model, batch_size=params["batch_size"], private=params["private"], seed=seed)
    evaluate = _evaluator(tf, model)
    rng = np.random.default_rng(seed)

    per_epoch = params["steps_per_epoch"]
    total_steps = per_epoch * params["epochs"]
    record_every = max(1, math.ceil(total_steps / STEP_RECORDS_PER_RUN))
    epsilons = _epsilons(params)
    knobs = dict(max_grad_norm=params["max_grad_norm"], noise_multiplier=params["noise_multiplier"],
                 learning_rate=params["learning_rate"])
    if not params["private"]:
        knobs["noise_multiplier"] = 0.0

    global_step = 0
    for epoch in range(1, params["epochs"] + 1):
        started = time.perf_counter()
        norms, losses, sizes, clipped = [], [], [], 0
        for _ in range(per_epoch):
            if should_stop():
                return
            chosen = poisson_sample(rng, len(mnist.y_train), params["sample_rate"])
            result = step(mnist.x_train[chosen], mnist.y_train[chosen], **knobs)
            global_step += 1
            norms.append(result.grad_norms)
            losses.append(result.loss * len(chosen))
            sizes.append(len(chosen))
            clipped += result.clipped
            if global_step % record_every == 0 or global_step == total_steps:
                report({"type": "step", "step": global_step, "epoch": epoch,
                        "loss": _finite(result.loss), "batch_size": len(chosen),
                        "clip_fraction": result.clipped / len(chosen) if len(chosen) else 0.0})
        train_seconds = time.perf_counter() - started
        test_loss, test_accuracy = evaluate(mnist.x_test, mnist.y_test)
        all_norms = np.concatenate(norms) if norms else np.zeros(0)
        examples = int(sum(sizes))
        report({
            "type": "epoch", "epoch": epoch, "step": global_step,
            "train_loss": _finite(sum(losses) / examples) if examples else None,
            "test_loss": _finite(test_loss), "test_accuracy": test_accuracy,
            "epsilon": epsilons[epoch - 1] if epsilons else None,
            "clip_fraction": clipped / examples if examples else 0.0,
            **norm_statistics(all_norms),
            "epoch_seconds": round(time.perf_counter() - started, 3),
            "examples_per_second": round(examples / train_seconds, 1) if train_seconds > 0 else None,
        })


def norm_statistics(norms: np.ndarray) -> dict:
    """``grad_norm`` quantiles and a histogram over fixed log-spaced edges (outliers go to the end bins)."""
    if norms.size == 0:
        return {"grad_norm": {"p10": None, "p50": None, "p90": None},
                "grad_norm_histogram": {"edges": list(HISTOGRAM_EDGES), "counts": [0] * (len(HISTOGRAM_EDGES) - 1)}}
    p10, p50, p90 = (float(v) for v in np.quantile(norms, [0.1, 0.5, 0.9]))
    edges = np.asarray(HISTOGRAM_EDGES)
    counts, _ = np.histogram(np.clip(norms, edges[0], edges[-1]), bins=edges)
    return {"grad_norm": {"p10": p10, "p50": p50, "p90": p90},
            "grad_norm_histogram": {"edges": list(HISTOGRAM_EDGES), "counts": counts.tolist()}}


def _epsilons(params: dict) -> tuple | None:
    if not params["private"]:
        return None
    curve = privacy.epsilon_curve(noise_multiplier=params["noise_multiplier"], batch_size=params["batch_size"],
                                  epochs=params["epochs"], dataset_size=params["dataset_size"],
                                  delta=params["delta"], accountant=params["accountant"], sampling="poisson")
    return tuple(None if math.isinf(e) else e for e in curve)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _evaluator(tf, model):
    """Mean cross-entropy and accuracy over a whole set, in batches, in one compiled function."""
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    @tf.function(reduce_retracing=True)
    def batch_sums(x, y):
        logits = model(x, training=False)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y), tf.float32))
        return loss_fn(y, logits), correct

    def evaluate(x, y):
        loss_total, correct_total = 0.0, 0.0
        for start in range(0, len(y), EVAL_BATCH):
            loss, correct = batch_sums(x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH])
            loss_total += float(loss)
            correct_total += float(correct)
        return loss_total / len(y), correct_total / len(y)

    return evaluate
