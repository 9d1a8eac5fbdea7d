"""Our DP step split by phase, timed: forward and backward, per-example norms, clipping and sum, noise, update.

Each phase is a prefix of the step (``app.training.dpsgd.DPStep``'s own methods, compiled apart), timed on the same
padded chunk in round-robin repetitions: the forward pass and the backward pass to every trainable layer's output
gradient; that plus the per-example squared norms; that plus the clip factors and the factor-weighted sums (the
step's whole per-example path); the noise draw over every coordinate; the SGD update. A phase is the difference of
the medians of two prefixes (forward and backward, noise and update stand alone), so the phases add up to about the
step, and one too small for the timer reads 0. Shared by the runner's ``profile`` and ``bench/profile.py``.

Microbatches and random sparsification take the materialised path (every per-example gradient in full, grouped,
masked, clipped by the rule): its parts are not these, so such a step is not split (:func:`step_phases` returns None).
"""

from __future__ import annotations

import statistics
import time

PHASES = ("forward_backward", "per_example_norms", "clip_and_sum", "noise", "update")
NOT_SPLIT = ("microbatches and sparsification take the materialised path (every per-example gradient in full), "
             "which is not split by phase")
CALLS_PER_TIMING = 3


def step_phases(step, x, y, *, max_grad_norm: float, repetitions: int) -> dict | None:
    """Median seconds per phase of one private ``step`` on the batch ``(x, y)`` (its first chunk), or None when the
    step takes the materialised path. Updates the step's model by nothing (learning rate 0)."""
    if not step.private or step.microbatches or step._materialised:
        return None
    tf = step._tf
    chunk = [tf.constant(part) for part in step._pad(x[:step.capacity], y[:step.capacity])]
    clip = tf.constant(max_grad_norm, tf.float32)

    def norms(x, y, mask):
        _, inputs, output_grads = step._forward_backward(x, y, mask)
        return [s for rule, a, g in zip(step._layers, inputs, output_grads)
                for s in rule.squared_norms(rule.per_example(a, g))]

    prefixes = {
        "forward_backward": tf.function(lambda x, y, mask: step._forward_backward(x, y, mask)[2]),
        "norms": tf.function(norms),
        "sums": tf.function(lambda x, y, mask: step._sums(x, y, mask, clip, per_example=True)[0]),
    }
    alone = {
        "noise": tf.function(lambda: step._noise.normal([sum(step._sizes)])),
        "update": tf.function(lambda: step._descend(step._zeros, tf.constant(0.0))),
    }
    calls = {**{name: (lambda f=f: f(*chunk)) for name, f in prefixes.items()}, **alone}
    times = _round_robin(calls, repetitions)
    return {"forward_backward": times["forward_backward"],
            "per_example_norms": max(0.0, times["norms"] - times["forward_backward"]),
            "clip_and_sum": max(0.0, times["sums"] - times["norms"]),
            "noise": times["noise"], "update": times["update"]}


def _round_robin(calls: dict, repetitions: int) -> dict:
    """Median seconds per call of each of ``calls``, in round-robin repetitions (the first call traces: untimed)."""
    for call in calls.values():
        call()
    samples = {name: [] for name in calls}
    for _ in range(repetitions):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(CALLS_PER_TIMING):
                result = call()
            _wait(result)
            samples[name].append((time.perf_counter() - started) / CALLS_PER_TIMING)
    return {name: statistics.median(values) for name, values in samples.items()}


def _wait(result) -> None:
    """Block until a (possibly nested) result's tensors exist, so the timing covers the work."""
    if isinstance(result, (list, tuple)):
        for item in result:
            _wait(item)
    elif hasattr(result, "numpy"):
        result.numpy()
