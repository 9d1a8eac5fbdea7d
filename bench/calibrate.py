"""Calibration data for the simulator: real runs of our own trainer over a grid that spans the parameter table.

Every run goes through the same path as a user's real run (``app.jobs.service.plan`` then
``app.training.runner.run``), and every per-epoch record it reports is written to
``app/simulation/data/calibration.json`` with the run's setting and seed, plus the provenance (date, commit, package
versions, machine, wall time). The simulator (``app.simulation``) is fitted
to that file and ``bench/sim_fidelity.py`` measures how far off it is.

The grid varies one knob at a time around an anchor (the page's defaults: N 60,000, B 256, sigma 1.1, C 1, lr 0.15,
the TF Privacy tutorial's knobs), out to the table's corners (tiny and huge C,
noise that drowns the signal, learning rates that stall or diverge, tiny and full datasets, non-private runs), plus a
seeded set of random combinations that checks how the knobs interact, and a second drawn over the whole table
(``table_draws``, every slider from end to end). Three seeds each (``SEEDS``), three more
where those three disagree or the learning rate is on a cliff (``MORE_SEEDS``), and six more where those six still
disagree by more than ``MOST_SEEDS_SPREAD``: seeds that train or die (``MOST_SEEDS``).

Timing: the grid's wall times are measured while other work may share the machine, so ``--timing`` adds a small
set of short runs (batch sizes across the table, private and not, full MNIST) to be made on a quiet machine; the
simulator's epoch seconds are fitted to those when present.

Held out: ``--holdout`` runs a second set of settings, drawn at random over the whole parameter table by another seed
(``holdout_settings``), into ``bench/data/holdout.json``; the simulator is never fitted to it, and
``bench/sim_fidelity.py`` scores the committed simulator on it as a user's settings would be scored.

Resumable: runs already in the file are skipped, and the file is rewritten after every run, so the script can run in
the background across a session (``--limit`` stops after that many new runs).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import params as P  # noqa: E402
from app.jobs import service  # noqa: E402
from app.simulation.fit import file_hash  # noqa: E402
from app.simulation.simulator import CALIBRATION_FILE  # noqa: E402
from bench.common import HOLDOUT_FILE, LEARNING_RATE_CLIFFS, machine, on_a_learning_rate_cliff  # noqa: E402

ANCHOR = {"noise_multiplier": 1.1, "max_grad_norm": 1.0, "batch_size": 256, "learning_rate": 0.15,
          "dataset_size": 60000, "private": True}
EPOCHS = 10
SEEDS = (0, 1, 2)  # three: the fidelity check compares with the seed mean, and the seed spread needs pairs
# Where the first three seeds disagree, their mean is too uncertain to judge a simulator by (three runs with a
# 10-point spread leave the mean 6 points uncertain): such settings get more seeds, round by round.
MORE_SEEDS = (3, 4, 5)
MORE_SEEDS_SPREAD = 0.02  # final test accuracy std over SEEDS above which a setting gets MORE_SEEDS
# Where six seeds still differ by 10 points or more, some train and some die: their mean is uncertain by 4 to 19
# points, and so is the chance of death the simulator learns there; six more halve its variance.
MOST_SEEDS = (6, 7, 8, 9, 10, 11)
MOST_SEEDS_SPREAD = 0.1  # final test accuracy std over SEEDS + MORE_SEEDS above which a setting gets MOST_SEEDS
STEP_RECORDS_KEPT = 40  # per run: enough for the per-step curve's shape, small enough to commit
# Each sweep is dense where accuracy turns (stall, collapse, divergence), so that no setting is far from its
# neighbours: leaving one out to validate must not turn interpolation into extrapolation.
VARIATIONS = {
    "noise_multiplier": (0.0, 0.5, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0, 40.0, 50.0),
    "max_grad_norm": (0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 3.0, 5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 100.0),
    "batch_size": (8, 16, 24, 32, 36, 40, 48, 64, 96, 128, 512, 1024, 2048, 3000, 4096),
    "learning_rate": (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.02, 0.05, 0.5, 1.0, 1.5, 2.5, 3.5, 5.0, 6.0, 6.5, 7.0, 7.25,
                      7.5, 7.75, 8.0, 8.25, 8.5, 8.75, 9.0, 10.0),
    "dataset_size": (500, 750, 1000, 1500, 2000, 3500, 5000, 10000, 30000),
}
NON_PRIVATE_RATES = (0.02, 0.05, 0.15, 0.25, 0.275, 0.3, 0.325, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 1.0, 2.0, 4.0, 8.0)
NON_PRIVATE_DATASET_SIZES = (500, 750, 1000, 2000, 10000)  # how much less data costs without the noise
SMALL_BATCH_RATES = (1.0, 2.0, 4.0)  # B 32: noise steps lr*sigma*C/B where private runs explode rather than drift
SMALL_DATA = ({"dataset_size": 100, "batch_size": 32}, {"dataset_size": 250, "batch_size": 64})  # B <= N
RANDOM_SETTINGS = 26
# Random combinations over the whole table, drawn as the held-out test draws them but by another seed: the 26 above
# keep to where DP-SGD is usually run (lr 0.02-2, B 32-1024, N from 1,000), while people move every slider.
TABLE_SETTINGS = 40
TABLE_SEED = 2028
# The held-out test: settings as someone moving every slider might pick them, each knob drawn on its slider's scale
# over the table's whole range (``app.params``), by a seed the grid does not use. Epochs up to 20 and at most
# HOLDOUT_MAX_STEPS steps (tiny batches on big data would take an hour a run): a stated limit of the sample.
HOLDOUT_SETTINGS = 40
HOLDOUT_SEED = 2027
HOLDOUT_EPOCHS = (1, 20)
HOLDOUT_MAX_STEPS = 40_000
HOLDOUT_PRIVATE_SHARE = 0.75
TIMING_BATCH_SIZES = (32, 128, 256, 1024, 4096)
TIMING_EPOCHS = 2
# Long runs on small datasets (cheap): how curves go on past EPOCHS, including overfitting on tiny data.
LONG_RUNS = (
    {**ANCHOR, "epochs": 60},  # the TF Privacy tutorial row itself (epsilon 2.6)
    {**ANCHOR, "dataset_size": 10000, "epochs": 40},
    {**ANCHOR, "dataset_size": 10000, "noise_multiplier": 4.0, "epochs": 40},
    {**ANCHOR, "dataset_size": 10000, "private": False, "epochs": 40},
    {**ANCHOR, "dataset_size": 1000, "batch_size": 64, "epochs": 100},
    {**ANCHOR, "dataset_size": 1000, "batch_size": 64, "private": False, "epochs": 100},
)
PACKAGES = ("tensorflow", "tensorflow-privacy", "dp-accounting", "numpy")
TRAINER_SOURCES = ("app/training/runner.py", "app/training/dpsgd.py", "app/training/model.py", "app/training/data.py")
ROOT = Path(__file__).resolve().parent.parent


def grid() -> list[dict]:
    """Every setting, anchor first; each is a full set of training knobs (``epochs`` only where not EPOCHS)."""
    settings = [dict(ANCHOR)]
    for name, values in VARIATIONS.items():
        settings += [{**ANCHOR, name: value} for value in values]
    settings += [{**ANCHOR, "private": False, "learning_rate": lr} for lr in NON_PRIVATE_RATES]
    settings += [{**ANCHOR, "private": False, "dataset_size": n} for n in NON_PRIVATE_DATASET_SIZES]
    settings += [{**ANCHOR, **small, "private": private} for small in SMALL_DATA for private in (True, False)]
    settings += [{**ANCHOR, "batch_size": 32, "learning_rate": lr} for lr in SMALL_BATCH_RATES]
    rng = np.random.default_rng(2026)
    for _ in range(RANDOM_SETTINGS):
        dataset_size = int(round(10 ** rng.uniform(3, np.log10(60000)), -2))
        settings.append({"noise_multiplier": round(float(10 ** rng.uniform(-0.5, 1)), 2),
                         "max_grad_norm": round(float(10 ** rng.uniform(-1.5, 1)), 3),
                         "batch_size": int(min(dataset_size // 4, 2 ** rng.integers(5, 11))),
                         "learning_rate": round(float(10 ** rng.uniform(-1.7, 0.3)), 3),
                         "dataset_size": dataset_size, "private": bool(rng.random() < 0.85)})
    return settings + [dict(run) for run in LONG_RUNS] + table_draws(TABLE_SEED, TABLE_SETTINGS)


def holdout_settings() -> list[dict]:
    """``HOLDOUT_SETTINGS`` settings drawn over the whole parameter table, each with its own number of epochs."""
    return table_draws(HOLDOUT_SEED, HOLDOUT_SETTINGS, HOLDOUT_EPOCHS)


def table_draws(seed: int, count: int, epochs: tuple[int, int] | None = None) -> list[dict]:
    """``count`` settings, each knob drawn along its slider over the table's whole range (``_slider_draw``), private
    with chance ``HOLDOUT_PRIVATE_SHARE``; with a number of epochs drawn from ``epochs`` (else EPOCHS, not stored);
    draws of more than ``HOLDOUT_MAX_STEPS`` steps, or B above N, are drawn again."""
    rng = np.random.default_rng(seed)
    settings = []
    while len(settings) < count:
        setting = {name: _slider_draw(P.KNOB_BY_NAME[name], rng)
                   for name in ("noise_multiplier", "max_grad_norm", "batch_size", "learning_rate", "dataset_size")}
        setting["private"] = bool(rng.random() < HOLDOUT_PRIVATE_SHARE)
        if epochs:
            setting["epochs"] = int(rng.integers(epochs[0], epochs[1] + 1))
        steps = round(setting["dataset_size"] / setting["batch_size"]) * setting.get("epochs", EPOCHS)
        if setting["batch_size"] <= setting["dataset_size"] and steps <= HOLDOUT_MAX_STEPS:
            settings.append(setting)
    return settings


def _slider_draw(knob: P.Knob, rng: np.random.Generator):
    """A value uniform along the knob's slider (log or powers of two), to three significant digits."""
    low = knob.slider_min or knob.min
    if knob.scale == "pow2":
        return int(2 ** rng.integers(round(np.log2(low)), round(np.log2(knob.max)) + 1))
    value = float(10 ** rng.uniform(np.log10(low), np.log10(knob.max)))
    return int(round(value)) if knob.type == "int" else float(f"{value:.3g}")


def key(setting: dict, seed: int) -> str:
    return json.dumps({**setting, "seed": seed}, sort_keys=True)


def run_one(setting: dict, seed: int, epochs: int) -> dict:
    """One real run through the users' path; its records, thinned step records and wall time."""
    from app.training import runner as train

    clean = P.validate({"epochs": epochs, **setting, "seed": seed, "mode": "real"}, P.RUN_FIELDS)
    params, _ = service.plan(clean)
    records = {"epoch": [], "step": []}
    started = time.perf_counter()
    train.run(params, lambda event: records[event["type"]].append(
        {k: v for k, v in event.items() if k != "type"}), lambda: False)
    steps = records["step"]
    keep = sorted(set(np.linspace(0, len(steps) - 1, min(len(steps), STEP_RECORDS_KEPT)).astype(int))) if steps else []
    return {"setting": setting, "seed": seed, "epochs": records["epoch"], "steps": [steps[i] for i in keep],
            "steps_per_epoch": params["steps_per_epoch"], "seconds": round(time.perf_counter() - started, 2)}


def pending(data: dict, settings: list[dict]) -> list[tuple[dict, int]]:
    """The (setting, seed) runs still to make, round by round: first every setting's SEEDS, then MORE_SEEDS for
    settings whose SEEDS disagree and for every setting on a learning-rate cliff (where three seeds that agree may
    still be a coin that fell the same way thrice), then MOST_SEEDS for settings whose six seeds differ by more than
    MOST_SEEDS_SPREAD; within a round one seed at a time over all settings, so a stopped calibration leaves them
    balanced."""
    done = {key(r["setting"], r["seed"]): r for r in data["runs"]}

    def spread(setting: dict, seeds: tuple) -> float:
        return float(np.std([done[key(setting, seed)]["epochs"][-1]["test_accuracy"] for seed in seeds], ddof=1))

    rounds = [(SEEDS, lambda s: True),
              (MORE_SEEDS, lambda s: spread(s, SEEDS) > MORE_SEEDS_SPREAD or on_a_learning_rate_cliff(s)),
              (MOST_SEEDS, lambda s: spread(s, SEEDS + MORE_SEEDS) > MOST_SEEDS_SPREAD)]
    chosen = settings  # a round's settings, all of whose earlier rounds' runs are done: only they may need the next
    for seeds, needs in rounds:
        chosen = [s for s in chosen if needs(s)]
        todo = [(s, seed) for seed in seeds for s in chosen if key(s, seed) not in done]
        if todo:
            return todo
    return []


def load(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"provenance": {}, "runs": []}


def save(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def provenance(data: dict, epochs: int) -> dict:
    return {**machine(), "packages": {p: importlib.metadata.version(p) for p in PACKAGES},
            "mnist": os.environ.get("MNIST_PATH") or "keras cache", "epochs_per_run": epochs,
            "seeds": list(SEEDS), "more_seeds": {"seeds": list(MORE_SEEDS), "when_final_accuracy_std_over":
                                                 MORE_SEEDS_SPREAD, "and_learning_rates_from": LEARNING_RATE_CLIFFS},
            "most_seeds": {"seeds": list(MOST_SEEDS), "when_final_accuracy_std_of_six_over": MOST_SEEDS_SPREAD},
            "script": "bench/calibrate.py",
            "trainer_sha256": {name: file_hash(ROOT / name)[:16]
                               for name in TRAINER_SOURCES},
            "wall_seconds": round(sum(r["seconds"] for r in data["runs"]), 1)}


def measure_timing(path: Path, data: dict) -> None:
    """Short runs for the timing model, replacing any earlier ones; meant for a machine doing nothing else."""
    data["timing_runs"] = []
    for batch in TIMING_BATCH_SIZES:
        for private in (True, False):
            result = run_one({**ANCHOR, "batch_size": batch, "private": private}, 0, TIMING_EPOCHS)
            data["timing_runs"].append(result)
            print(f"timing: B {batch} private {private}: "
                  f"{[e['examples_per_second'] for e in result['epochs']]} examples/s", flush=True)
    data["provenance"]["timing_measured"] = machine()["date"]
    save(path, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--list", action="store_true", help="print the grid and exit")
    parser.add_argument("--timing", action="store_true", help="(re)measure the short timing runs only")
    parser.add_argument("--holdout", action="store_true",
                        help=f"run the held-out settings instead of the grid (default --out {HOLDOUT_FILE})")
    args = parser.parse_args()
    settings = holdout_settings() if args.holdout else grid()
    if args.holdout and args.out == CALIBRATION_FILE:
        args.out = HOLDOUT_FILE
    if args.list:
        for setting in settings:
            print(json.dumps(setting))
        print(f"{len(settings)} settings x {len(SEEDS)} seeds")
        return
    data = load(args.out)
    if args.timing:
        measure_timing(args.out, data)
        return
    count = 0
    while (todo := pending(data, settings)) and (args.limit is None or count < args.limit):
        setting, seed = todo[0]
        count += 1
        result = run_one(setting, seed, args.epochs)
        data["runs"].append(result)
        data["provenance"] = {**data["provenance"], **provenance(data, args.epochs)}
        save(args.out, data)
        last = result["epochs"][-1] if result["epochs"] else {}
        print(f"[{count}, {len(todo) - 1} pending] {json.dumps(setting)} seed {seed}: accuracy "
              f"{last.get('test_accuracy')}, clip {last.get('clip_fraction')}, {result['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
