"""Training throughput of the tutorial CNN on MNIST, side by side: non-private, our DP step, TF Privacy's DP paths.

Every method trains the same model (``app.training.model``) on MNIST batches of expected size 256 in one process, in
round-robin repetitions, so the machine's load hits all of them alike (the slow TF Privacy methods in a second round
with our non-private step again as their baseline); the table gives median examples per second and
the ratio of each method's time per example to our non-private step's (the epoch-time ratio, as the median of the
ratios within each repetition; the target for our DP step is at most 1.5). Our steps take Poisson batches padded to capacity, as in real runs; Keras fit and TF Privacy take
fixed batches of 256. TF Privacy's methods are slow, so they run a few steps only.

Peak RSS is measured per method in a fresh subprocess (a process's peak only grows, so side by side it would mix).
``--threads 2,1 2,2 1,2`` compares our plain and DP steps under those TensorFlow thread settings and ``app.training.runner``'s,
each in fresh processes (threads can only be set before TensorFlow starts), interleaved over ``--rounds``.

``--batch-sizes 256 512 --ours-only --repeat 9`` measures only our plain and DP steps (paired repetitions) at each
batch size, the DP step's target being at most 1.25x the plain one's time at B 256 and 512.

Run: ``MNIST_PATH=... python bench/throughput.py``; writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write  # noqa: E402

BATCH = 256
CLIP, SIGMA, LR = 1.0, 1.1, 0.15
# method: (steps per repetition, repetitions) - the slow reference methods run briefly
METHODS = {
    "ours_nonprivate": (40, 7),
    "ours_nonprivate_with_norms": (40, 7),
    "ours_dp": (40, 7),
    "keras_fit_nonprivate": (40, 7),
    "tfp_dp_sequential": (4, 3),
    "tfp_dp_keras_sgd_optimizer": (1, 3),
}
SWEPT = ("ours_nonprivate", "ours_dp")  # the thread sweep compares these
# The slow reference methods run in a second phase, after the fast ones, against our non-private step again: their
# memory (6 GB for DPKerasSGDOptimizer's jacobians) and XLA's threads must not slow the fast comparison.
PHASES = (("ours_nonprivate", "ours_nonprivate_with_norms", "ours_dp", "keras_fit_nonprivate"),
          ("ours_nonprivate", "tfp_dp_sequential", "tfp_dp_keras_sgd_optimizer"))
DESCRIPTIONS = {
    "ours_nonprivate": "app.training.dpsgd.DPStep(private=False): plain backward pass, SGD",
    "ours_nonprivate_with_norms": "DPStep(private=False) measuring per-example norms on every step",
    "ours_dp": "app.training.dpsgd.DPStep: per-example clip, sum, noise, SGD",
    "keras_fit_nonprivate": "model.fit with tf.keras SGD (reference)",
    "tfp_dp_sequential": "TF Privacy DPSequential with the default layer registry (Conv2D is not in it), XLA",
    "tfp_dp_keras_sgd_optimizer": "TF Privacy DPKerasSGDOptimizer, one microbatch per example",
}


def trainers(tf, mnist, rng, batch: int = BATCH) -> dict:
    """For each method, a function that trains ``steps`` steps and returns the examples it processed."""
    import tensorflow_privacy
    from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry

    from app.training.dpsgd import DPStep, poisson_sample
    from app.training.model import build_model

    x, y = mnist.x_train, mnist.y_train
    q = batch / len(y)

    def ours(private, measure_norms):
        step = DPStep(build_model(seed=0), batch_size=batch, private=private, seed=0)
        step.trace()

        def train(steps):
            seen = 0
            for _ in range(steps):
                chosen = poisson_sample(rng, len(y), q)
                step(x[chosen], y[chosen], max_grad_norm=CLIP, noise_multiplier=SIGMA, learning_rate=LR,
                     measure_norms=measure_norms)
                seen += len(chosen)
            return seen
        return train

    def fitted(model, optimizer, loss):
        model.compile(optimizer=optimizer, loss=loss)

        def train(steps):
            start = int(rng.integers(0, len(y) - steps * BATCH))
            model.fit(x[start:start + steps * BATCH], y[start:start + steps * BATCH], batch_size=BATCH, epochs=1,
                      shuffle=False, verbose=0)
            return steps * BATCH
        return train

    def dp_sequential():
        layers = build_model(seed=0).layers
        model = tensorflow_privacy.DPSequential(
            l2_norm_clip=CLIP, noise_multiplier=SIGMA, layer_registry=layer_registry.make_default_layer_registry(),
            layers=[tf.keras.Input(shape=(28, 28, 1)), *layers])
        return fitted(model, tf.keras.optimizers.SGD(LR),
                      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def dp_optimizer():
        optimizer = tensorflow_privacy.DPKerasSGDOptimizer(l2_norm_clip=CLIP, noise_multiplier=SIGMA,
                                                           num_microbatches=BATCH, learning_rate=LR)
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
        return fitted(build_model(seed=0), optimizer, loss)

    return {
        "ours_nonprivate": lambda: ours(False, False),
        "ours_nonprivate_with_norms": lambda: ours(False, True),
        "ours_dp": lambda: ours(True, True),
        "keras_fit_nonprivate": lambda: fitted(build_model(seed=0), tf.keras.optimizers.SGD(LR),
                                               tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        "tfp_dp_sequential": dp_sequential,
        "tfp_dp_keras_sgd_optimizer": dp_optimizer,
    }


def setup(threads: tuple[int, int] | None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from app.training import data
    from app.training import runner as train

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    else:
        train.configure_tensorflow()
    return tf, data.load(60000)


def measure(makers: dict, methods: tuple[str, ...], repeat: int | None = None) -> dict:
    """Median examples/s of each method, measured round-robin in this process (``repeat``: repetitions of every
    method instead of ``METHODS``')."""
    runs = {}
    for name in methods:
        runs[name] = makers[name]()
        runs[name](1)  # trace, and let oneDNN build its kernels
    rates = {name: [] for name in methods}
    for repetition in range(repeat or max(METHODS[m][1] for m in methods)):
        for name in methods:
            steps, repetitions = METHODS[name]
            repetitions = repeat or repetitions
            if repetition < repetitions:
                started = time.perf_counter()
                seen = runs[name](steps)
                rates[name].append(seen / (time.perf_counter() - started))
    return {name: {"examples_per_second": float(np.median(r)), "samples": [round(v, 1) for v in r]}
            for name, r in rates.items()}


def peak_rss_mb(method: str) -> float:
    """Peak resident memory of a fresh process that trains ``method`` for a few steps."""
    out = subprocess.run([sys.executable, __file__, "--rss-of", method], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def sweep_threads(settings: list[str], rounds: int) -> dict:
    """Our plain and DP steps under each intra,inter setting, one fresh process per setting and round, the settings
    interleaved round by round so that load which comes and goes hits them alike; medians over rounds."""
    runs = {setting: [] for setting in settings}
    for _ in range(rounds):
        for setting in settings:
            intra, inter = setting.split(",")
            out = subprocess.run([sys.executable, __file__, "--sweep-child", "--intra", intra, "--inter", inter],
                                 capture_output=True, text=True, check=True)
            runs[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {setting: {**{f"{name}_examples_per_second": float(np.median([r[name]["examples_per_second"] for r in rs]))
                         for name in SWEPT},
                      "dp_time_ratio": float(np.median([r["ours_dp"]["time_ratio_to_ours_nonprivate"] for r in rs])),
                      "rounds": rs}
            for setting, rs in runs.items()}


def with_ratios(rates: dict) -> dict:
    """Each method's time per example over our non-private step's: the median over repetitions of the ratio within
    a repetition, so that load which comes and goes cancels out."""
    base = rates["ours_nonprivate"]["samples"]
    return {name: {**r, "time_ratio_to_ours_nonprivate": float(np.median([b / v for b, v in zip(base, r["samples"])]))}
            for name, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs="*", default=[], help="other intra,inter settings to compare ours under")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per thread setting in the sweep")
    parser.add_argument("--no-rss", action="store_true", help="skip the per-method peak RSS subprocesses")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="with --ours-only: the batch sizes to measure")
    parser.add_argument("--ours-only", action="store_true", help="only our plain and DP steps, paired")
    parser.add_argument("--repeat", type=int, help="paired repetitions per method (default: per method, 7 or 3)")
    parser.add_argument("--json-out")
    parser.add_argument("--rss-of", help=argparse.SUPPRESS)
    parser.add_argument("--sweep-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--intra", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inter", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_of:  # child: train a few steps, print peak RSS in MB
        tf, mnist = setup(None)
        trainers(tf, mnist, np.random.default_rng(0))[args.rss_of]()(min(METHODS[args.rss_of][0], 8))
        status = Path("/proc/self/status").read_text()  # VmHWM starts afresh at exec; ru_maxrss would not
        print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024)
        return
    if args.sweep_child:  # child: our steps under one thread setting, as JSON
        tf, mnist = setup((args.intra, args.inter))
        print(json.dumps(with_ratios(measure(trainers(tf, mnist, np.random.default_rng(0)), SWEPT))))
        return

    from app.training import runner as train

    default = f"{train.INTRA_OP_THREADS},{train.INTER_OP_THREADS}"
    tf, mnist = setup(None)
    if args.ours_only:
        ours_only(tf, mnist, args.batch_sizes or [BATCH], args.repeat or 9, default, args.json_out)
        return
    makers = trainers(tf, mnist, np.random.default_rng(0))
    fast, slow = (with_ratios(measure(makers, phase)) for phase in PHASES)
    rates = {**fast, **{name: r for name, r in slow.items() if name not in fast}}
    rows = [{"method": name, "examples_per_s": round(r["examples_per_second"]),
             "time_ratio": round(r["time_ratio_to_ours_nonprivate"], 2),
             "peak_rss_mb": None if args.no_rss else peak_rss_mb(name), "what": DESCRIPTIONS[name]}
            for name, r in rates.items()]
    for row in rows:
        rates[row["method"]]["peak_rss_mb"] = row["peak_rss_mb"]
    print(f"threads intra,inter = {default} (app.training.runner); batch {BATCH}, C {CLIP}, sigma {SIGMA}")
    print(table(rows, ["method", "examples_per_s", "time_ratio", "peak_rss_mb", "what"]))

    sweep = sweep_threads(list(dict.fromkeys([default, *args.threads])), args.rounds) if args.threads else {}
    if sweep:
        print(f"\nthread settings, {args.rounds} interleaved fresh processes each (medians):")
        print(table([{"threads": setting, **{f"{name}/s": round(r[f"{name}_examples_per_second"]) for name in SWEPT},
                      "dp_time_ratio": round(r["dp_time_ratio"], 2)} for setting, r in sweep.items()],
                    ["threads", *(f"{name}/s" for name in SWEPT), "dp_time_ratio"]))
    path = write("throughput", {"batch_size": BATCH, "max_grad_norm": CLIP, "noise_multiplier": SIGMA,
                                "threads": default, "methods": rates, "descriptions": DESCRIPTIONS,
                                "threads_sweep": sweep}, args.json_out)
    print(f"\nwrote {path}")


def ours_only(tf, mnist, batch_sizes, repeat, threads, json_out) -> None:
    """Our plain and DP steps at each batch size, ``repeat`` paired repetitions of 40 steps each; the ratio is the
    median over repetitions of the DP step's time per example over the plain one's in the same repetition."""
    out, rows = {}, []
    for batch in batch_sizes:
        rates = with_ratios(measure(trainers(tf, mnist, np.random.default_rng(0), batch), SWEPT, repeat))
        out[str(batch)] = rates
        ratios = [b / v for b, v in zip(rates["ours_nonprivate"]["samples"], rates["ours_dp"]["samples"])]
        rows.append({"batch_size": batch, "nonprivate_per_s": round(rates["ours_nonprivate"]["examples_per_second"]),
                     "dp_per_s": round(rates["ours_dp"]["examples_per_second"]),
                     "dp_time_ratio_median": round(float(np.median(ratios)), 3),
                     "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}"})
    load = os.getloadavg()
    print(f"threads intra,inter = {threads}; {repeat} paired repetitions of 40 steps; load average at the end "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) on {os.cpu_count()} cores")
    print(table(rows, list(rows[0])))
    path = write("throughput_ours", {"threads": threads, "repeat": repeat, "load_average": load, "rows": rows,
                                     "methods": out}, json_out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
