"""How far off the simulation is: leave-one-setting-out validation on the calibration runs, and its speed.

For each calibrated setting, the simulator is solved without any run of that setting (both seeds left out; the
hyperparameters stay those of ``app/simulator.json``), then its mean prediction is compared with each real run of the
setting, epoch by epoch: test accuracy (points), final test accuracy (points), clip fraction and train loss.
Prints mean and max absolute errors (overall, and per group of settings) and the worst settings, and times whole
20-epoch simulated runs (CPU time, median). Writes bench/results/sim_fidelity.json.
Targets: final-accuracy MAE <= 1.5 points and max <= 4; clip-fraction MAE <= 0.1; a 20-epoch run under 50 ms CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import params as P  # noqa: E402
from app import runs, simulate  # noqa: E402
from bench.common import table, write  # noqa: E402


def plan(setting: dict, epochs: int, seed: int = 0) -> dict:
    clean = P.validate({**{k: v for k, v in setting.items() if k != "epochs"}, "epochs": epochs, "seed": seed,
                        "mode": "simulate"}, P.RUN_FIELDS)
    return runs.plan(clean)[0]


LOSS_COMPARED_BELOW = 10.0  # a diverged run's loss (up to 1e6 here) is compared as "diverged", not in absolute terms


def seed_floor(calibration: dict) -> float:
    """Mean absolute difference of final accuracy (points) between the two seeds of each setting: the error a
    perfect simulator of the mean would still show against a single real run, times about sqrt(2)."""
    by_setting: dict[str, list] = {}
    for run in calibration["runs"]:
        by_setting.setdefault(json.dumps(run["setting"], sort_keys=True), []).append(run["epochs"][-1])
    pairs = [abs(a["test_accuracy"] - b["test_accuracy"]) * 100 for a, b, *_ in
             (finals for finals in by_setting.values() if len(finals) >= 2)]
    return float(np.mean(pairs))


def group_of(setting: dict) -> str:
    if not setting["private"]:
        return "non-private"
    if "epochs" in setting:
        return "long runs"
    return "private"


def leave_one_out(calibration: dict, fit: dict) -> list[dict]:
    """One row per real run: its errors against the simulator solved without its setting."""
    settings = []
    for run in calibration["runs"]:
        if run["setting"] not in settings:
            settings.append(run["setting"])
    rows = []
    for setting in settings:
        simulator = simulate.Simulator.from_calibration(calibration, fit, leave_out=setting)
        for run in calibration["runs"]:
            if run["setting"] != setting or not run["epochs"]:
                continue
            predicted, _ = simulator.simulate(plan(run["setting"], len(run["epochs"]), run["seed"]), seeded=False)
            real = run["epochs"]
            accuracy = [abs(p["test_accuracy"] - r["test_accuracy"]) * 100 for p, r in zip(predicted, real)]
            clip = [abs(p["clip_fraction"] - r["clip_fraction"]) for p, r in zip(predicted, real)
                    if r["clip_fraction"] is not None]
            loss = [abs(p["train_loss"] - r["train_loss"]) for p, r in zip(predicted, real)
                    if r["train_loss"] is not None and r["train_loss"] < LOSS_COMPARED_BELOW]
            rows.append({"setting": run["setting"], "seed": run["seed"], "group": group_of(run["setting"]),
                         "diverged": simulate.diverged(run),
                         "final_real": real[-1]["test_accuracy"], "final_simulated": predicted[-1]["test_accuracy"],
                         "final_error": accuracy[-1], "epoch_errors": accuracy, "clip_errors": clip,
                         "loss_errors": loss})
    return rows


def summary(rows: list[dict], label: str) -> dict:
    epoch = np.concatenate([r["epoch_errors"] for r in rows])
    final = np.array([r["final_error"] for r in rows])
    clip = np.concatenate([r["clip_errors"] for r in rows]) if any(r["clip_errors"] for r in rows) else np.zeros(1)
    loss = np.concatenate([r["loss_errors"] for r in rows]) if any(r["loss_errors"] for r in rows) else np.zeros(1)
    return {"settings": label, "runs": len(rows), "acc_epoch_mae": float(epoch.mean()), "acc_epoch_max": float(
        epoch.max()), "final_mae": float(final.mean()), "final_median": float(np.median(final)), "final_max": float(final.max()),
        "clip_mae": float(clip.mean()), "clip_max": float(clip.max()), "loss_mae": float(loss.mean()),
        "loss_max": float(loss.max())}


def speed(simulator: simulate.Simulator, repeats: int) -> dict:
    """CPU milliseconds to compute a whole 20-epoch simulated run (records and epsilon), median over varied knobs."""
    rng = np.random.default_rng(0)
    times = []
    for i in range(repeats):
        params = plan({"noise_multiplier": float(10 ** rng.uniform(-0.5, 1)), "max_grad_norm": 1.0,
                       "batch_size": int(2 ** rng.integers(5, 11)), "learning_rate": 0.15, "dataset_size": 60000,
                       "private": True}, 20, seed=i)
        started = time.process_time()
        simulator.simulate(params)
        times.append((time.process_time() - started) * 1000)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)), "runs": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out")
    parser.add_argument("--speed-runs", type=int, default=50)
    args = parser.parse_args()
    calibration = json.loads(simulate.CALIBRATION_FILE.read_text())
    fit = json.loads(simulate.FIT_FILE.read_text())
    rows = leave_one_out(calibration, fit)
    groups = sorted({r["group"] for r in rows})
    summaries = [summary(rows, "all")] + [summary([r for r in rows if r["group"] == g], g) for g in groups]
    summaries.append(summary([r for r in rows if not r["diverged"]], "real run trained"))
    print(table(summaries, ["settings", "runs", "acc_epoch_mae", "acc_epoch_max", "final_mae", "final_median", "final_max",
                            "clip_mae", "clip_max", "loss_mae", "loss_max"]))
    floor = seed_floor(calibration)
    print(f"\nseed-to-seed difference of final accuracy, real runs: {floor:.2f} points on average")
    worst = sorted(rows, key=lambda r: -r["final_error"])[:8]
    print("\nworst final-accuracy errors (points):")
    print(table([{"setting": json.dumps(r["setting"]), "seed": r["seed"], "real": r["final_real"],
                  "simulated": r["final_simulated"], "error": r["final_error"]} for r in worst],
                ["setting", "seed", "real", "simulated", "error"]))
    started = time.perf_counter()
    simulator = simulate.load()
    load_seconds = time.perf_counter() - started
    timing = speed(simulator, args.speed_runs)
    print(f"\nsimulated 20-epoch run: median {timing['median_ms']:.1f} ms CPU, p95 {timing['p95_ms']:.1f} ms; "
          f"first use solves the GP once: {load_seconds:.2f} s")
    out = write("sim_fidelity", {"summaries": summaries, "seed_floor_points": floor, "worst": worst, "speed": {**timing,
                "first_load_seconds": load_seconds}, "targets": "final MAE <= 1.5 pts, max <= 4; clip MAE <= 0.1"},
                args.json_out)
    print(f"written {out}")


if __name__ == "__main__":
    main()
