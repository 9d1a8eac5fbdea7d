"""The cost of privacy across engines: one table of time and memory, private against public, on the same model and
batch, in one run.

Engines (all on the tutorial CNN, ``app.training.model``, MNIST batches of ``--batch`` examples): Keras ``fit``; our
non-private step; our DP step with each clipping variant, with random sparsification (rate 0.9) and with microbatches
(B / 4); TF Privacy's ``DPKerasSGDOptimizer`` with ``num_microbatches`` B and B / 4, and ``DPSequential``. Time is
measured in one process, round-robin: each repetition runs every engine for a few steps, and each engine's time per
example is divided by our non-private step's *in the same repetition*; the table gives the median of those paired
ratios (and the median examples/s, which on a loaded machine mean little on their own). Peak memory is each engine's
own fresh process's high-water mark (VmHWM: a process's peak only grows, so side by side they would mix), and, with
``--budget-mb``, the largest batch that fits that budget, searched by measurement: fresh processes at doubling
batches until one's peak exceeds the budget (or the batch reaches the training set, or the engine's search time runs
out), then bisection between the last that fit and the first that did not, to within an eighth of the bracket.

Run: ``MNIST_PATH=... python bench/profile.py [--batch 64] [--repetitions 5] [--budget-mb 2000]``; writes
bench/results/profile.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write  # noqa: E402

CLIP, SIGMA, LR = 1.0, 1.1, 0.5
STEPS = {"tfp_optimizer_microbatches_B": 1, "tfp_optimizer_microbatches_B/4": 1, "tfp_dp_sequential": 2}  # slow ones
DEFAULT_STEPS = 5
SEARCH_SECONDS = 300  # per engine, for the largest batch within the budget

DESCRIPTIONS = {
    "ours_nonprivate": "DPStep(private=False): plain backward pass, SGD (the baseline)",
    "ours_nonprivate_with_norms": "DPStep(private=False) measuring per-example norms: the baseline plus norms",
    "keras_fit": "model.fit, tf.keras SGD, non-private",
    "ours_flat": "DPStep, flat clipping",
    "ours_per_layer": "DPStep, per-layer clipping (C/sqrt(L) per tensor)",
    "ours_automatic": "DPStep, automatic clipping (AUTO-S)",
    "ours_adaptive": "DPStep, adaptive clipping (flat at C_t; the count update is host-side)",
    "ours_sparsified": "DPStep, random sparsification rate 0.9 (materialised per-example gradients)",
    "ours_microbatches": "DPStep, B/4 microbatches (materialised per-example gradients)",
    "tfp_optimizer_microbatches_B": "TF Privacy DPKerasSGDOptimizer, num_microbatches = B",
    "tfp_optimizer_microbatches_B/4": "TF Privacy DPKerasSGDOptimizer, num_microbatches = B/4",
    "tfp_dp_sequential": "TF Privacy DPSequential, default layer registry (fast clipping for Dense only)",
}


def engines(tf, mnist, batch: int, rng) -> dict:
    """For each engine, a maker returning ``train(steps) -> examples``."""
    import tensorflow_privacy
    from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry

    from app.training import clipping
    from app.training.dpsgd import DPStep
    from app.training.model import build_model

    x, y = mnist.x_train, mnist.y_train

    def batch_of(size):
        start = int(rng.integers(0, len(y) - size))
        return x[start:start + size], y[start:start + size]

    def ours(private=True, clipping_name="flat", microbatches=0, sparsification=0.0, measure_norms=False):
        step = DPStep(build_model(seed=0), batch_size=batch, private=private, seed=0, clipping=clipping_name,
                      microbatches=microbatches, sparsified=sparsification > 0)
        step.trace()
        extra = {}
        if sparsification:
            extra["keep"] = clipping.sparsification_mask(sizes=step.sizes, rate=sparsification, seed=0, period=0)
        if microbatches:
            extra["groups"] = np.arange(batch) % microbatches

        def train(steps):
            for _ in range(steps):
                step(*batch_of(batch), max_grad_norm=CLIP, noise_multiplier=SIGMA, learning_rate=LR,
                     measure_norms=measure_norms, **extra)
            return steps * batch
        return train

    def fitted(model, optimizer, loss):
        model.compile(optimizer=optimizer, loss=loss)

        def train(steps):
            xs, ys = batch_of(steps * batch)
            model.fit(xs, ys, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            return steps * batch
        return train

    def logits_loss(reduction=None):
        kwargs = {"reduction": reduction} if reduction else {}
        return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, **kwargs)

    def tfp_optimizer(microbatches):
        optimizer = tensorflow_privacy.DPKerasSGDOptimizer(l2_norm_clip=CLIP, noise_multiplier=SIGMA,
                                                           num_microbatches=microbatches, learning_rate=LR)
        return fitted(build_model(seed=0), optimizer, logits_loss(tf.keras.losses.Reduction.NONE))

    def dp_sequential():
        model = tensorflow_privacy.DPSequential(
            l2_norm_clip=CLIP, noise_multiplier=SIGMA, layer_registry=layer_registry.make_default_layer_registry(),
            layers=[tf.keras.Input(shape=(28, 28, 1)), *build_model(seed=0).layers])
        return fitted(model, tf.keras.optimizers.SGD(LR), logits_loss())

    return {
        "ours_nonprivate": lambda: ours(private=False),
        "ours_nonprivate_with_norms": lambda: ours(private=False, measure_norms=True),
        "keras_fit": lambda: fitted(build_model(seed=0), tf.keras.optimizers.SGD(LR), logits_loss()),
        "ours_flat": lambda: ours(),
        "ours_per_layer": lambda: ours(clipping_name="per_layer"),
        "ours_automatic": lambda: ours(clipping_name="automatic"),
        "ours_adaptive": lambda: ours(clipping_name="adaptive"),
        "ours_sparsified": lambda: ours(sparsification=0.9),
        "ours_microbatches": lambda: ours(microbatches=batch // 4),
        "tfp_optimizer_microbatches_B": lambda: tfp_optimizer(batch),
        "tfp_optimizer_microbatches_B/4": lambda: tfp_optimizer(batch // 4),
        "tfp_dp_sequential": dp_sequential,
    }


def setup():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from app.training import data
    from app.training.runner import configure_tensorflow

    return configure_tensorflow(), data.load(60000)


def paired_ratios(makers: dict, repetitions: int) -> dict:
    """Round-robin repetitions; per engine the median examples/s and the median over repetitions of its time per
    example divided by our non-private step's in the same repetition."""
    runs = {}
    for name, make in makers.items():
        runs[name] = make()
        runs[name](1)  # trace, warm the kernels: not timed
    per_example = {name: [] for name in runs}
    for _ in range(repetitions):
        for name, train in runs.items():
            started = time.perf_counter()
            seen = train(STEPS.get(name, DEFAULT_STEPS))
            per_example[name].append((time.perf_counter() - started) / seen)
    base = per_example["ours_nonprivate"]
    return {name: {"examples_per_second": float(np.median([1 / t for t in times])),
                   "time_ratio_to_ours_nonprivate": float(np.median([t / b for t, b in zip(times, base)])),
                   "seconds_per_example": [round(t, 7) for t in times]}
            for name, times in per_example.items()}


def step_phases(mnist, batch: int, repetitions: int, results: dict) -> dict:
    """Our flat DP step split by phase (``app.training.phases``, the runner's own split), in ms per step and in units
    of our non-private step's time per step measured above."""
    from app.training import phases
    from app.training.dpsgd import DPStep
    from app.training.model import build_model

    step = DPStep(build_model(seed=0), batch_size=batch, seed=0)
    split = phases.step_phases(step, mnist.x_train[:batch], mnist.y_train[:batch], max_grad_norm=CLIP,
                               repetitions=repetitions)
    plain = batch / results["ours_nonprivate"]["examples_per_second"]
    return {name: {"ms": round(1000 * seconds, 3), "of_nonprivate_step": round(seconds / plain, 3)}
            for name, seconds in split.items()}


def peak_rss_mb(engine: str, batch: int) -> float:
    """VmHWM of a fresh process that builds ``engine`` and trains it for two steps of ``batch``."""
    out = subprocess.run([sys.executable, __file__, "--rss-of", engine, "--batch", str(batch)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def largest_batch_within(engine: str, budget_mb: float, batch: int, peak_at_batch: float, cap: int) -> dict:
    """The largest batch (a multiple of 4, for the B/4 microbatch engines) whose fresh process peaks within
    ``budget_mb``, measured (see the module docstring), with every probe and what stopped the search: ``budget``
    (bracketed), ``training_set`` (``cap``: the fitted engines draw two batches at once) or ``search_time``."""
    probes = {batch: peak_at_batch}
    started = time.monotonic()

    def fits(size: int) -> bool:
        if size not in probes:
            probes[size] = peak_rss_mb(engine, size)
        return probes[size] <= budget_mb

    def searching() -> bool:
        return time.monotonic() - started < SEARCH_SECONDS

    low, high, limited_by = batch, None, "budget"
    if not fits(batch):
        low = None
    while low is not None and high is None:
        if low >= cap:
            limited_by = "training_set"
            break
        if not searching():
            limited_by = "search_time"
            break
        size = min(2 * low, cap)
        low, high = (size, None) if fits(size) else (low, size)
    tolerance = max(4, (high - low) // 8) if low and high else 0
    while low and high and high - low > tolerance and searching():
        middle = (low + high) // 8 * 4
        low, high = (middle, high) if fits(middle) else (low, middle)
    return {"batch": low, "first_over": high, "limited_by": limited_by,
            "probes": {str(size): round(peak, 1) for size, peak in sorted(probes.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--budget-mb", type=float, help="also search the largest batch within this peak memory")
    parser.add_argument("--no-rss", action="store_true", help="skip the per-engine memory subprocesses")
    parser.add_argument("--only", nargs="*", help="engines to run (default: all)")
    parser.add_argument("--json-out")
    parser.add_argument("--rss-of", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_of:  # child
        tf, mnist = setup()
        engines(tf, mnist, args.batch, np.random.default_rng(0))[args.rss_of]()(2)
        status = Path("/proc/self/status").read_text()
        print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024)
        return

    load_before = os.getloadavg()
    tf, mnist = setup()
    makers = engines(tf, mnist, args.batch, np.random.default_rng(0))
    if args.only:
        makers = {name: make for name, make in makers.items() if name in {"ours_nonprivate", *args.only}}
    results = paired_ratios(makers, args.repetitions)
    largest_probe = len(mnist.x_train) // 2 - 4  # a multiple of 4 whose two batches the training set holds
    for name, result in results.items():
        if args.no_rss:
            continue
        result["peak_rss_mb"] = peak_rss_mb(name, args.batch)
        if args.budget_mb:
            result["largest_batch_in_budget"] = largest_batch_within(name, args.budget_mb, args.batch,
                                                                     result["peak_rss_mb"], largest_probe)
    load_after = os.getloadavg()
    phases = step_phases(mnist, args.batch, args.repetitions, results)
    rows = [{"engine": name, "time_ratio": round(r["time_ratio_to_ours_nonprivate"], 2),
             "examples_per_s": round(r["examples_per_second"]), "peak_rss_mb": r.get("peak_rss_mb"),
             "largest_batch": _largest(r.get("largest_batch_in_budget")), "what": DESCRIPTIONS[name]}
            for name, r in results.items()]
    print(f"batch {args.batch}, {args.repetitions} paired repetitions, C {CLIP}, sigma {SIGMA}; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (2 cores)")
    print(table(rows, ["engine", "time_ratio", "examples_per_s", "peak_rss_mb", "largest_batch", "what"]))
    print("\nour flat DP step by phase (ms; in units of our non-private step): "
          + ", ".join(f"{name} {v['ms']:.2f} ({v['of_nonprivate_step']:.2f})" for name, v in phases.items()))
    path = write("profile", {"batch_size": args.batch, "repetitions": args.repetitions, "max_grad_norm": CLIP,
                             "noise_multiplier": SIGMA, "budget_mb": args.budget_mb,
                             "load_average": {"before": load_before, "after": load_after},
                             "engines": results, "phases": phases, "descriptions": DESCRIPTIONS}, args.json_out)
    print(f"\nwrote {path}")


def _largest(search: dict | None) -> str | None:
    """The table's cell: the batch, and why the search stopped where it did not bracket the budget."""
    if not search:
        return None
    if search["batch"] is None:
        return "none (B over budget)"
    limits = {"budget": "", "training_set": "+ (the largest probed)", "search_time": "+ (search time out)"}
    return f"{search['batch']}{limits[search['limited_by']]}"


if __name__ == "__main__":
    main()
