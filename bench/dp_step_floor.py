"""Where our DP step's extra time goes, and what a perfect implementation of each part would leave: the floor under
issue 17's target (DP step at most 1.25x the plain step).

Two tables, both on the tutorial CNN at B 256 (``--batch``), TensorFlow configured as real runs configure it:

1. Ablations, in paired round-robin repetitions of 20 steps (medians of the per-repetition ratios to the plain step):
   our plain step; our DP step; the DP step with the first convolution's input patches given for free (a constant
   captured in the graph instead of computed); with that layer's whole per-example gradient free; with both
   convolutions' per-example gradients free. Each "free" variant computes wrong numbers on purpose: it only bounds
   what a faster way of computing that part could gain.
2. Ways to compute the first convolution's per-example kernel gradients (16 filters of 8x8 on one channel, stride 2,
   196 output positions) on one padded chunk, every one checked equal to the default to 1e-5, each timed alone:
   the default (patches by a convolution with an identity kernel, then one batched matmul), strided slices,
   space-to-depth slices, a gather, ``tf.image.extract_patches``, the depthwise-convolution backprop-filter trick
   (batch folded into channels), ``tf.vectorized_map`` over the backprop filter, and, for reference, that layer's
   plain forward convolution and its summed backprop filter (what the plain step pays for the layer).

Run: ``MNIST_PATH=... python bench/dp_step_floor.py``; writes bench/results/dp_step_floor.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write  # noqa: E402


def ablation_steps(tf, batch: int) -> dict:
    """Plain, DP, and DP with parts of the per-example work replaced by constants (see the module docstring)."""
    from app.training import dpsgd
    from app.training.model import build_model

    def step(private: bool, free: tuple = ()):
        built = dpsgd.DPStep(build_model(seed=0), batch_size=batch, private=private, seed=0)
        n, (conv1, conv2) = built.capacity, built._layers[:2]
        rng = np.random.default_rng(0)
        if "patches1" in free:
            patches = tf.constant(rng.random((n, 196, 64), dtype=np.float32))
            conv1._patches = lambda a: patches
        for layer, free_name, shape in ((conv1, "per_example1", (n, 16, 64)), (conv2, "per_example2", (n, 32, 256))):
            if free_name in free:
                kernel = tf.constant(rng.random(shape, dtype=np.float32))
                layer.per_example = (lambda k, filters: lambda a, g: (
                    k, tf.reduce_sum(tf.reshape(g, [n, -1, filters]), axis=1)))(kernel, shape[1])
        built.trace()
        return built

    return {"plain": step(False), "dp": step(True), "dp, conv1 patches free": step(True, ("patches1",)),
            "dp, conv1 per-example gradient free": step(True, ("per_example1",)),
            "dp, both convs' per-example gradients free": step(True, ("per_example1", "per_example2"))}


def paired(steps: dict, x, y, repetitions: int, calls: int = 20) -> list[dict]:
    def timed(call):
        started = time.perf_counter()
        for _ in range(calls):
            call(x, y, max_grad_norm=1.0, noise_multiplier=1.1, learning_rate=0.1, measure_norms=False)
        return (time.perf_counter() - started) / calls
    for call in steps.values():
        timed(call)  # warm
    times = {name: [] for name in steps}
    for _ in range(repetitions):
        for name, call in steps.items():
            times[name].append(timed(call))
    return [{"step": name, "ms": round(1000 * statistics.median(t), 2),
             "ratio_to_plain": round(statistics.median(a / b for a, b in zip(t, times["plain"])), 3)}
            for name, t in times.items()]


def conv1_methods(tf, n: int) -> dict:
    """Functions of (x [n, 28, 28, 1], g [n, 14, 14, 16]) returning the per-example kernel gradients [n, 16, 64]
    (filters x (row, column) taps), and two plain references that return other shapes."""
    eye = tf.reshape(tf.eye(64), [8, 8, 1, 64])
    gather_index = tf.constant([(2 * p + kh) * 34 + 2 * q + kw for kh in range(8) for kw in range(8)
                                for p in range(14) for q in range(14)], tf.int32)

    def matmul(g, patches):  # patches [n, 196, 64] in (kh, kw) order
        return tf.matmul(tf.reshape(g, [n, 196, 16]), patches, transpose_a=True)

    def padded(x):
        return tf.pad(x[..., 0], [[0, 0], [3, 3], [3, 3]])  # 'same' padding of 8 taps at stride 2: 34 x 34

    def identity_conv(x, g):
        return matmul(g, tf.reshape(tf.nn.conv2d(x, eye, strides=2, padding="SAME"), [n, 196, 64]))

    def strided_slices(x, g):
        xp = padded(x)
        taps = tf.stack([xp[:, kh:kh + 27:2, kw:kw + 27:2] for kh in range(8) for kw in range(8)], axis=3)
        return matmul(g, tf.reshape(taps, [n, 196, 64]))

    def space_to_depth(x, g):
        blocks = tf.nn.space_to_depth(padded(x)[..., None], 2)  # [n, 17, 17, (bh, bw)]
        shifted = tf.stack([blocks[:, u:u + 14, v:v + 14, :] for u in range(4) for v in range(4)], axis=3)
        shifted = tf.reshape(shifted, [n, 196, 4, 4, 2, 2])  # (u, v, bh, bw) -> (kh, kw) = (2u + bh, 2v + bw)
        return matmul(g, tf.reshape(tf.transpose(shifted, [0, 1, 2, 4, 3, 5]), [n, 196, 64]))

    def gather(x, g):
        taps = tf.gather(tf.reshape(padded(x), [n, 34 * 34]), gather_index, axis=1)  # [n, (kh, kw, p, q)]
        return matmul(g, tf.transpose(tf.reshape(taps, [n, 64, 196]), [0, 2, 1]))

    def extract_patches(x, g):
        patches = tf.image.extract_patches(x, [1, 8, 8, 1], [1, 2, 2, 1], [1, 1, 1, 1], "SAME")
        return matmul(g, tf.reshape(patches, [n, 196, 64]))

    def depthwise_backprop_filter(x, g):
        kernel = tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter(
            tf.transpose(x, [3, 1, 2, 0]), [8, 8, n, 16], tf.reshape(tf.transpose(g, [1, 2, 0, 3]), [1, 14, 14, n * 16]),
            [1, 2, 2, 1], "SAME")  # [8, 8, n, 16]
        return tf.transpose(tf.reshape(kernel, [64, n, 16]), [1, 2, 0])

    def vectorized_backprop_filter(x, g):
        kernel = tf.vectorized_map(lambda pair: tf.compat.v1.nn.conv2d_backprop_filter(
            pair[0][None], [8, 8, 1, 16], pair[1][None], [1, 2, 2, 1], "SAME"), (x, g))
        return tf.transpose(tf.reshape(kernel, [n, 64, 16]), [0, 2, 1])

    w = tf.constant(np.random.default_rng(1).random((8, 8, 1, 16), dtype=np.float32))
    return {
        "identity-kernel conv + matmul (ours)": identity_conv, "strided slices + matmul": strided_slices,
        "space-to-depth slices + matmul": space_to_depth, "gather + matmul": gather,
        "tf.image.extract_patches + matmul": extract_patches,
        "depthwise backprop filter (batch as channels)": depthwise_backprop_filter,
        "vectorized_map of backprop filter": vectorized_backprop_filter,
        "reference: the layer's forward conv": lambda x, g: tf.nn.conv2d(x, w, strides=2, padding="SAME"),
        "reference: its summed backprop filter (plain step)": lambda x, g: tf.compat.v1.nn.conv2d_backprop_filter(
            x, [8, 8, 1, 16], g, [1, 2, 2, 1], "SAME"),
    }


def time_methods(tf, n: int, repetitions: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (n, 28, 28, 1)).astype(np.float32) / np.float32(255))
    g = tf.constant(rng.standard_normal((n, 14, 14, 16), dtype=np.float32))
    methods = {name: tf.function(f) for name, f in conv1_methods(tf, n).items()}
    ours = methods["identity-kernel conv + matmul (ours)"](x, g).numpy()
    rows = []
    for name, f in methods.items():
        out = f(x, g).numpy()
        if not name.startswith("reference"):
            assert np.allclose(out, ours, rtol=1e-5, atol=1e-5 * np.abs(ours).max()), name
        times = []
        for _ in range(repetitions):
            started = time.perf_counter()
            for _ in range(10):
                f(x, g).numpy()
            times.append((time.perf_counter() - started) / 10)
        rows.append({"method": name, "ms": round(1000 * statistics.median(times), 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from app.training import data
    from app.training.runner import configure_tensorflow

    tf = configure_tensorflow()
    mnist = data.load(max(1000, args.batch))
    x, y = mnist.x_train[:args.batch], mnist.y_train[:args.batch]
    steps = ablation_steps(tf, args.batch)
    ablations = paired(steps, x, y, args.repetitions)
    methods = time_methods(tf, steps["dp"].capacity, args.repetitions)
    load = os.getloadavg()
    print(f"B {args.batch} (chunks of {steps['dp'].capacity}), {args.repetitions} paired repetitions; "
          f"load average {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores")
    print(table(ablations, ["step", "ms", "ratio_to_plain"]))
    print(f"\nthe first convolution's per-example kernel gradients, one chunk of {steps['dp'].capacity} (each alone)")
    print(table(methods, ["method", "ms"]))
    print("wrote", write("dp_step_floor", {"batch_size": args.batch, "capacity": steps["dp"].capacity,
                                            "repetitions": args.repetitions, "load_average": load,
                                            "ablations": ablations, "conv1_methods": methods}, args.json_out))


if __name__ == "__main__":
    main()
