"""How far off the simulation is: leave-one-setting-out validation on the calibration runs, and its speed.

For each calibrated setting, the simulator is solved without any run of that setting (every seed left out; the
hyperparameters stay those of ``app/simulation/data/simulator.json``), then its mean prediction (no seed offset;
death averaged over its chance by each epoch) is compared with the mean of the setting's real runs over their seeds,
epoch by epoch: test accuracy (points), final test accuracy (points), clip fraction and train loss; and the predicted
chance that a run is dead (collapsed or exploded) by its last epoch against the share of the setting's seeds that
were (``dead_mae``).
The truth is a mean of three to twelve seeds, so it is itself uncertain: the table also gives the error that a perfect
simulator (one that knew each setting's expected accuracy) would show against that mean (``final_floor``: sqrt(2/pi)
times the mean's standard error, averaged), the largest error it would show over the settings (``final_floor_max``)
and how often it would meet the targets (``perfect_meets_targets``; ``perfect_simulator``), the error against single
runs, and the seed-to-seed spread (std of final accuracy, median over settings) of the real runs beside that of
``SIMULATED_SEEDS`` seeded simulated runs; the row "mean known to 1 pt" keeps the settings whose real mean has a
standard error of at most one point, and "below the lr cliffs" those whose learning rate is below where real runs
start to decay or die (``bench.common``).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import params as P  # noqa: E402  (first: the app sets numpy's threads, and the speed is the server's)
from app.jobs import service  # noqa: E402
from app.simulation.divergence import dead, diverged  # noqa: E402
from app.simulation.features import features  # noqa: E402
from app.simulation.rows import runs_by_setting  # noqa: E402
from app.simulation.simulator import CALIBRATION_FILE, FIT_FILE, Simulator  # noqa: E402
import numpy as np  # noqa: E402
from bench.common import HOLDOUT_FILE, on_a_learning_rate_cliff, table, write  # noqa: E402


def plan(setting: dict, epochs: int, seed: int = 0) -> dict:
    clean = P.validate({**{k: v for k, v in setting.items() if k != "epochs"}, "epochs": epochs, "seed": seed,
                        "mode": "simulate"}, P.RUN_FIELDS)
    return service.plan(clean)[0]


SIMULATED_SEEDS = 12  # seeded simulated runs per setting, to compare their spread with the real seeds'
PRECISE_TRUTH = 1.0  # points: standard error of a setting's real mean up to which the mean counts as known
TARGETS = {"final_mae": 1.5, "final_max": 4.0, "clip_mae": 0.1}  # points, points, fraction (the issue's)
PERFECT_DRAWS = 4000  # draws of the real means about a perfect simulator's predictions (``perfect_simulator``)
SUMMARY_COLUMNS = ["settings", "count", "acc_epoch_mae", "acc_epoch_max", "final_mae", "final_median", "final_max",
                   "final_floor", "final_floor_max", "perfect_meets_targets", "final_mae_single_runs", "dead_mae",
                   "seed_spread_real", "seed_spread_simulated",
                   "range_holds", "range_width", "clip_mae", "clip_max", "loss_mae", "loss_max"]
HELD_OUT_GROUPS = {True: "held out, within the calibrated range", False: "held out, beyond it"}
LOSS_COMPARED_BELOW = 10.0  # a diverged run's loss (up to 1e6 here) is compared as "diverged", not in absolute terms


def seed_floor(rows: list[dict]) -> float:
    """Mean over settings of the std of final accuracy (points) between seeds: how much one real run differs from
    its setting's mean, which bounds how close any simulator can come to a single run."""
    return float(np.mean([r["final_real_spread"] for r in rows if r["final_real_spread"] is not None]))


def group_of(setting: dict) -> str:
    if not setting["private"]:
        return "non-private"
    if "epochs" in setting:
        return "long runs"
    return "private"


def seed_mean(runs: list[dict], field: str, epochs: int, usable=lambda value: value is not None) -> list:
    """Per epoch, the mean of ``field`` over the seeds where it is usable (None where no seed's is)."""
    means = []
    for index in range(epochs):
        values = [run["epochs"][index][field] for run in runs if usable(run["epochs"][index][field])]
        means.append(float(np.mean(values)) if values else None)
    return means


def errors(predicted: list[dict], real: list, field: str, scale: float = 1.0) -> list[float]:
    return [abs(p[field] - r) * scale for p, r in zip(predicted, real) if r is not None]


def leave_one_out(calibration: dict, fit: dict) -> list[dict]:
    """One row per setting (``compare``), the simulator solved without any run of it."""
    rows = []
    for runs_of_setting in runs_by_setting(calibration).values():
        setting = runs_of_setting[0]["setting"]
        simulator = Simulator.from_calibration(calibration, fit, leave_out=setting)
        rows.append({**compare(simulator, runs_of_setting), "group": group_of(setting)})
    return rows


def held_out(holdout: dict, simulator: Simulator) -> list[dict]:
    """One row per held-out setting (``compare``), by the simulator fitted to the whole calibration, marked by
    whether the setting's inputs stay within the calibrated ones (interpolation) or not (``within_calibration``)."""
    rows = []
    for runs_of_setting in runs_by_setting(holdout).values():
        row = compare(simulator, runs_of_setting)
        inside = within_calibration(simulator, plan(row["setting"], len(row["epoch_errors"])))
        rows.append({**row, "group": HELD_OUT_GROUPS[inside], "within_calibration": inside})
    return rows


def within_calibration(simulator: Simulator, planned: dict) -> bool:
    """Whether the model's inputs at every epoch of ``planned`` lie within the range of the calibrated rows'."""
    gp = simulator.gp
    steps = planned["steps_per_epoch"] * np.arange(1, planned["epochs"] + 1)
    z = (features(planned, steps, gp.hyper["noise_weight"]) - gp.x_mean) / gp.x_scale
    return bool(((z >= gp.train_z.min(0)) & (z <= gp.train_z.max(0))).all())


def compare(simulator: Simulator, runs_of_setting: list[dict]) -> dict:
    """The simulator's mean prediction for one setting against the mean of its real runs (every seed), epoch by
    epoch; plus its final-accuracy error against each single run, the chance of death and the spread of seeds."""
    setting = runs_of_setting[0]["setting"]
    epochs = min(len(run["epochs"]) for run in runs_of_setting)
    planned = plan(setting, epochs)
    predicted, _ = simulator.simulate(planned, seeded=False)
    accuracy = seed_mean(runs_of_setting, "test_accuracy", epochs)
    clip = seed_mean(runs_of_setting, "clip_fraction", epochs)
    loss = seed_mean(runs_of_setting, "train_loss", epochs,
                     lambda value: value is not None and value < LOSS_COMPARED_BELOW)
    finals = [run["epochs"][epochs - 1]["test_accuracy"] for run in runs_of_setting]
    dead_real = float(np.mean([dead(run["epochs"][epochs - 1]) for run in runs_of_setting]))
    last_step = planned["steps_per_epoch"] * epochs
    dead_predicted = float(simulator.divergence.dead_by(planned, np.array([last_step]))[0])
    spread = float(np.std(finals, ddof=1) * 100) if len(finals) > 1 else None
    seeded = [simulator.simulate(plan(setting, epochs, seed))[0][-1]["test_accuracy"]
              for seed in range(SIMULATED_SEEDS)]
    low, high = simulator.real_run_range(planned, epochs)
    return {"setting": setting, "seeds": len(runs_of_setting),
            "diverged": any(diverged(run) for run in runs_of_setting),
            "dead_real": dead_real, "dead_predicted": dead_predicted,
            "final_real": accuracy[-1], "final_real_spread": spread,
            "final_simulated_spread": float(np.std(seeded, ddof=1) * 100),
            "final_real_standard_error": spread / np.sqrt(len(finals)) if spread is not None else None,
            "final_simulated": predicted[-1]["test_accuracy"],
            "final_error": abs(predicted[-1]["test_accuracy"] - accuracy[-1]) * 100,
            "single_run_errors": [abs(predicted[-1]["test_accuracy"] - f) * 100 for f in finals],
            "range": [low, high], "in_range": [bool(low <= f <= high) for f in finals],
            "epoch_errors": errors(predicted, accuracy, "test_accuracy", 100),
            "clip_errors": errors(predicted, clip, "clip_fraction"),
            "loss_errors": errors(predicted, loss, "train_loss")}


def perfect_simulator(standard_errors: list[float]) -> dict:
    """What a simulator that knew every setting's true expected final accuracy would score against the seed means,
    each of which lies about that truth by a normal of its standard error (points): the median over
    ``PERFECT_DRAWS`` draws of its largest error over the settings, and the share of draws in which its mean and
    largest errors meet ``TARGETS``. A lower bound: a seed mean of runs that all lived where some could have died
    is more uncertain than its spread says."""
    errors = np.abs(np.random.default_rng(0).standard_normal((PERFECT_DRAWS, len(standard_errors)))
                    * np.asarray(standard_errors))
    meets = (errors.mean(axis=1) <= TARGETS["final_mae"]) & (errors.max(axis=1) <= TARGETS["final_max"])
    return {"final_floor_max": float(np.median(errors.max(axis=1))), "perfect_meets_targets": float(meets.mean())}


def summary(rows: list[dict], label: str) -> dict:
    spread_rows = [r for r in rows if r["final_real_spread"] is not None]
    epoch = np.concatenate([r["epoch_errors"] for r in rows])
    final = np.array([r["final_error"] for r in rows])
    single = np.concatenate([r["single_run_errors"] for r in rows])
    clip = np.concatenate([r["clip_errors"] for r in rows]) if any(r["clip_errors"] for r in rows) else np.zeros(1)
    loss = np.concatenate([r["loss_errors"] for r in rows]) if any(r["loss_errors"] for r in rows) else np.zeros(1)
    standard_errors = [r["final_real_standard_error"] for r in rows if r["final_real_standard_error"] is not None]
    floor = np.sqrt(2 / np.pi) * np.array(standard_errors)
    return {"settings": label, "count": len(rows), "acc_epoch_mae": float(epoch.mean()),
            "acc_epoch_max": float(epoch.max()), "final_mae": float(final.mean()),
            "final_median": float(np.median(final)), "final_max": float(final.max()),
            "final_floor": float(np.mean(floor)) if len(floor) else None,
            **(perfect_simulator(standard_errors) if standard_errors else {}),
            "final_mae_single_runs": float(single.mean()),
            "dead_mae": float(np.mean([abs(r["dead_predicted"] - r["dead_real"]) for r in rows])),
            # medians: one seed drawn dead among a dozen makes a spread of 20 points, which would swamp a mean
            "seed_spread_real": float(np.median([r["final_real_spread"] for r in spread_rows])),
            "seed_spread_simulated": float(np.median([r["final_simulated_spread"] for r in spread_rows])),
            "range_holds": float(np.mean(np.concatenate([r["in_range"] for r in rows]))),
            "range_width": float(np.median([(r["range"][1] - r["range"][0]) * 100 for r in rows])),
            "clip_mae": float(clip.mean()), "clip_max": float(clip.max()), "loss_mae": float(loss.mean()),
            "loss_max": float(loss.max())}


def verdict(all_settings: dict) -> str:
    """One line per target: the whole grid's figure, met or missed, beside what a perfect simulator would score."""
    lines = ["\ntargets, leaving each setting out, over all settings:"]
    for name, target in TARGETS.items():
        value = all_settings[name]
        lines.append(f"  {name} {value:.3g} (target <= {target:g}): {'met' if value <= target else 'missed'}")
    lines.append(f"  a perfect simulator: final_mae {all_settings['final_floor']:.3g}, final_max "
                 f"{all_settings['final_floor_max']:.3g}; it meets both final targets in "
                 f"{all_settings['perfect_meets_targets']:.0%} of draws of the real means")
    return "\n".join(lines)


def print_worst(rows: list[dict], count: int = 8) -> list[dict]:
    """Print the settings with the largest final-accuracy errors; return them."""
    worst = sorted(rows, key=lambda r: -r["final_error"])[:count]
    print("\nworst final-accuracy errors (points):")
    print(table([{"setting": json.dumps(r["setting"]), "seeds": r["seeds"], "real": r["final_real"],
                  "real_spread": r["final_real_spread"], "real_standard_error": r["final_real_standard_error"],
                  "simulated": r["final_simulated"], "error": r["final_error"]}
                 for r in worst], ["setting", "seeds", "real", "real_spread", "real_standard_error", "simulated",
                                   "error"]))
    return worst


def speed(simulator: Simulator, repeats: int) -> dict:
    """CPU milliseconds to compute a whole 20-epoch simulated run, median over varied knobs: its plan (where the
    accountant computes the epsilon curve, cached per setting: these are first computations) and its records, and
    each part on its own."""
    rng = np.random.default_rng(0)
    planning, records = [], []
    for i in range(repeats):
        knobs = {"noise_multiplier": float(10 ** rng.uniform(-0.5, 1)), "max_grad_norm": 1.0,
                 "batch_size": int(2 ** rng.integers(5, 11)), "learning_rate": 0.15, "dataset_size": 60000,
                 "private": True}
        started = time.process_time()
        planned = plan(knobs, 20, seed=i)
        planned_at = time.process_time()
        simulator.simulate(planned)
        planning.append((planned_at - started) * 1000)
        records.append((time.process_time() - planned_at) * 1000)
    times = np.add(planning, records)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)),
            "plan_median_ms": float(np.median(planning)), "records_median_ms": float(np.median(records)),
            "runs": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out")
    parser.add_argument("--speed-runs", type=int, default=50)
    parser.add_argument("--calibration", type=Path, default=CALIBRATION_FILE)
    parser.add_argument("--fit", type=Path, default=FIT_FILE, help="a fit (simulator.json) to validate")
    parser.add_argument("--holdout", type=Path, default=HOLDOUT_FILE,
                        help="held-out real runs (calibrate.py --holdout)")
    args = parser.parse_args()
    calibration = json.loads(args.calibration.read_text())
    fit = json.loads(args.fit.read_text())
    rows = leave_one_out(calibration, fit)
    groups = sorted({r["group"] for r in rows})
    summaries = [summary(rows, "all")] + [summary([r for r in rows if r["group"] == g], g) for g in groups]
    summaries.append(summary([r for r in rows if not r["diverged"]], "no seed diverged"))
    # so that a user can tell which part of the table the large errors come from
    summaries.append(summary([r for r in rows if not on_a_learning_rate_cliff(r["setting"])], "below the lr cliffs"))
    summaries.append(summary([r for r in rows if r["final_real_standard_error"] is not None
                              and r["final_real_standard_error"] <= PRECISE_TRUTH],
                             f"mean known to {PRECISE_TRUTH:g} pt"))
    print(table(summaries, SUMMARY_COLUMNS))
    print(verdict(summaries[0]))
    floor = seed_floor(rows)
    print(f"\nseed-to-seed std of final accuracy, real runs: {floor:.2f} points on average over settings")
    worst = print_worst(rows)
    started = time.perf_counter()
    simulator = Simulator.from_fit(fit)  # as the app loads it: the fit's stored rows and divergence model, solved
    load_seconds = time.perf_counter() - started
    held = held_out(json.loads(args.holdout.read_text()), simulator) if args.holdout.is_file() else []
    held_summaries = [summary(held, "held out")] if held else []
    held_summaries += [summary([r for r in held if r["group"] == g], g) for g in HELD_OUT_GROUPS.values()
                       if any(r["group"] == g for r in held)]
    if held:
        print(f"\nheld-out settings ({args.holdout}: drawn over the whole table, never in the calibration), "
              "by the committed simulator:")
        print(table(held_summaries, SUMMARY_COLUMNS))
        print_worst(held)
    timing = speed(simulator, args.speed_runs)
    print(f"\nsimulated 20-epoch run: median {timing['median_ms']:.1f} ms CPU, p95 {timing['p95_ms']:.1f} ms "
          f"(plan with the accountant's epsilon curve {timing['plan_median_ms']:.1f} ms, records "
          f"{timing['records_median_ms']:.1f} ms); loading the fit solves the GP once: {load_seconds:.2f} s")
    kept = ("setting", "seeds", "group", "diverged", "dead_real", "dead_predicted", "final_real",
            "final_real_standard_error", "final_real_spread", "final_simulated", "final_simulated_spread",
            "final_error", "range", "in_range")
    out = write("sim_fidelity", {"summaries": summaries, "seed_floor_points": floor, "worst": worst,
                                 "per_setting": [{k: r[k] for k in kept} for r in rows],
                                 "held_out": {"summaries": held_summaries,
                                              "per_setting": [{k: r[k] for k in (*kept, "within_calibration")}
                                                              for r in held]},
                                 "speed": {**timing, "first_load_seconds": load_seconds},
                                 "targets": TARGETS}, args.json_out)
    print(f"written {out}")


if __name__ == "__main__":
    main()
