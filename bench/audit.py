"""The privacy audit beside the accountant: the seed tutorial's comparison (no DP, target epsilon 5, target epsilon 1)
with our trainer, each row one real run with both audits.

Each row trains the tutorial CNN (``app.training``) through the runner users hit, with audit ``canaries``: N = 5,000
training examples of which the included canaries are part (about m/2 of m = 500, mislabelled), batch 256, 20 epochs,
delta 2e-4, C 1.5, lr 0.25 (TF Privacy's tutorial settings), the noise multiplier calibrated to the target epsilon by
``app.privacy.calibrate_noise`` (RDP, Poisson). The table gives test accuracy, the best membership attack's AUC and
TPR at FPR 0.1% and 1% (members: the clean training examples, non-members: as many MNIST training examples the run
never saw), the loss attack's AUC alone, the canary audit's 95% lower bound on epsilon with its ceiling, and the
accountant's epsilon; beside it, the tutorial's published row (its model is not ours). A last non-private row per seed
trains ``--long-epochs`` (100) epochs: how leakage grows as the model overfits.

Run: ``MNIST_PATH=... python bench/audit.py [--dataset-size 5000 --epochs 20 --canaries 500 --seeds 0 1 2 --long-epochs 100]``; writes
bench/results/audit.json. The sizes are flags so a loaded machine can run a smaller comparison (and says so).
``--overhead 3`` instead times epochs with and without the audit (bench/results/audit_overhead.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write  # noqa: E402

# The seed tutorial's published figures: (test accuracy, membership attack AUC), 5,000 training examples.
PUBLISHED = {"none": (0.988, 0.671), 5.0: (0.978, 0.558), 1.0: (0.962, 0.512)}
COLUMNS = ["row", "seed", "noise_multiplier", "accountant_epsilon", "test_accuracy", "auc", "attack", "loss_auc",
           "tpr_at_0.1%", "tpr_at_1%", "canary_bound", "canary_ceiling", "canaries_in", "train_seconds",
           "audit_seconds", "published_accuracy", "published_auc"]


def run_row(target, *, seed: int, args, epochs: int | None = None) -> dict:
    from app import privacy
    from app.jobs import service
    from app.params import RUN_FIELDS, noise_search_range, validate
    from app.training import runner

    epochs = epochs or args.epochs
    knobs = {"mode": "real", "dataset_size": args.dataset_size, "batch_size": 256, "epochs": epochs,
             "delta": 2e-4, "max_grad_norm": 1.5, "learning_rate": 0.25, "seed": seed, "audit": "canaries",
             "canaries": args.canaries, "private": target != "none"}
    if target != "none":
        solved = privacy.calibrate_noise(target_epsilon=target, batch_size=256, epochs=epochs,
                                         dataset_size=args.dataset_size, delta=2e-4, accountant="rdp",
                                         noise_range=noise_search_range())
        knobs["noise_multiplier"] = round(solved.noise_multiplier, 4)
    params = service.plan(validate(knobs, RUN_FIELDS))[0]
    records, marks = [], []

    def report(event):
        records.append(event)
        if event["type"] == "epoch" and event["epoch"] == params["epochs"]:
            marks.append(time.perf_counter())

    started = time.perf_counter()
    runner.run(params, report, lambda: False)
    ended = time.perf_counter()
    last = [r for r in records if r["type"] == "epoch"][-1]
    audit = next(r for r in records if r["type"] == "summary")["audit"]
    membership, canaries = audit["membership"], audit["canaries"]
    published = PUBLISHED[target]
    name = "no DP" if target == "none" else f"target ε {target:g}"
    return {"row": name if epochs == args.epochs else f"{name}, {epochs} epochs", "seed": seed, "epochs": epochs,
            "noise_multiplier": knobs.get("noise_multiplier"), "accountant_epsilon": last["epsilon"],
            "test_accuracy": last["test_accuracy"], "auc": membership["auc"], "attack": membership["attack"],
            "loss_auc": membership["attacks"]["loss"]["auc"], "tpr_at_0.1%": membership["tpr_at_fpr"]["0.001"],
            "tpr_at_1%": membership["tpr_at_fpr"]["0.01"], "canary_bound": canaries["epsilon_lower_bound"],
            "canary_ceiling": canaries["ceiling"], "canaries_in": canaries["included"],
            "canary_guesses": canaries["guesses"], "canary_correct": canaries["correct"],
            "members": membership["members"], "attacks": membership["attacks"],
            "train_seconds": round(marks[0] - started, 1), "audit_seconds": round(ended - marks[0], 2),
            "published_accuracy": published[0] if epochs == args.epochs else None,
            "published_auc": published[1] if epochs == args.epochs else None}


def overhead(args) -> dict:
    """What the per-epoch ``membership_auc`` costs: per dataset size, the median epoch time of private runs without
    an audit (epochs after the first) against the median time of the probe itself on the same machine moments later
    (a forward pass of at most 500 + 500 examples and one AUC). Timing two whole runs against each other measures the
    machine's load more than the probe here (their ratio moved from 0.8 to 1.24 between two tries), so the probe is
    timed alone, ``--overhead`` runs per size, interleaved."""
    import statistics

    from app.jobs import service
    from app.params import RUN_FIELDS, validate
    from app.training import audit, runner
    from app.training.model import build_model

    result = {}
    for size in (1000, args.dataset_size):
        epochs, probes = [], []
        for rep in range(args.overhead):
            knobs = {"mode": "real", "dataset_size": size, "batch_size": 256, "epochs": 4, "delta": 2e-4,
                     "max_grad_norm": 1.5, "learning_rate": 0.25, "noise_multiplier": 1.1, "seed": rep}
            params = service.plan(validate({**knobs, "audit": "none"}, RUN_FIELDS))[0]
            records = []
            runner.run(params, records.append, lambda: False)
            epochs += [r["epoch_seconds"] for r in records if r["type"] == "epoch" and r["epoch"] > 1]
            with_audit = service.plan(validate({**knobs, "audit": "membership"}, RUN_FIELDS))[0]
            probe = audit.epoch_probe(build_model(seed=rep), audit.prepare(with_audit), with_audit)
            probe()  # the first call traces, as in a run's first epoch
            for _ in range(3):
                started = time.perf_counter()
                probe()
                probes.append(time.perf_counter() - started)
        row = {"median_epoch_seconds": statistics.median(epochs), "median_probe_seconds": statistics.median(probes),
               "epoch_seconds": epochs, "probe_seconds": [round(p, 4) for p in probes]}
        row["overhead"] = round(row["median_probe_seconds"] / row["median_epoch_seconds"], 3)
        result[str(size)] = row
        print(f"N {size}: epoch {row['median_epoch_seconds']:.3f} s, probe {row['median_probe_seconds']:.3f} s, "
              f"overhead {row['overhead']:.1%}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-size", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--canaries", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--long-epochs", type=int, default=100,
                        help="also a non-private row trained this long, to show leakage growing with overfitting (0: none)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--overhead", type=int, default=0,
                        help="instead: time epochs with and without the audit this many times each (ratio of medians)")
    args = parser.parse_args()
    if args.overhead:
        print(f"wrote {write('audit_overhead', overhead(args), args.out)}")
        return
    rows = []
    for seed in args.seeds:
        for target in ("none", 5.0, 1.0):
            rows.append(run_row(target, seed=seed, args=args))
            print(table(rows[-1:], COLUMNS), flush=True)
        if args.long_epochs:
            rows.append(run_row("none", seed=seed, args=args, epochs=args.long_epochs))
            print(table(rows[-1:], COLUMNS), flush=True)
    print()
    print(table(rows, COLUMNS))
    path = write("audit", {"settings": {"dataset_size": args.dataset_size, "batch_size": 256, "epochs": args.epochs,
                                        "delta": 2e-4, "max_grad_norm": 1.5, "learning_rate": 0.25,
                                        "canaries": args.canaries, "accountant": "rdp", "sampling": "poisson"},
                           "published": {str(k): v for k, v in PUBLISHED.items()}, "rows": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
