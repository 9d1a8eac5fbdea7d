"""The committed real runs: the calibration the simulator is fitted to and the held-out runs it is scored on."""

import json

import numpy as np
import pytest

from app import params as P
from tests.simulation.common import CALIBRATION, EPOCH_FIELDS, HOLDOUT_FILE, calibrate

HOLDOUT = json.loads(HOLDOUT_FILE.read_text())  # real runs the simulator is scored on and never fitted to
REAL_RUNS = pytest.mark.parametrize("data", [CALIBRATION, HOLDOUT], ids=["calibration", "holdout"])


@REAL_RUNS
def test_real_run_files_have_their_provenance(data):
    provenance = data["provenance"]
    for key in ("date", "commit", "packages", "machine", "cpus", "wall_seconds", "trainer_sha256", "script"):
        assert provenance[key], key
    assert provenance["packages"]["tensorflow"] == "2.15.1"


@REAL_RUNS
def test_real_runs_match_the_schema_and_the_table(data):
    assert len(data["runs"]) >= 40
    for run in data["runs"]:
        knobs = {k: v for k, v in run["setting"].items() if k != "epochs"}
        P.validate({**knobs, "mode": "real", "seed": run["seed"]}, P.RUN_FIELDS)  # raises if off the table
        assert run["epochs"] and all(set(e) == EPOCH_FIELDS for e in run["epochs"])
        assert [e["epoch"] for e in run["epochs"]] == list(range(1, len(run["epochs"]) + 1))


def test_calibration_covers_the_grid_with_every_seed():
    have = {calibrate.key(run["setting"], run["seed"]) for run in CALIBRATION["runs"]}
    wanted = {calibrate.key(setting, seed) for setting in calibrate.grid() for seed in calibrate.SEEDS}
    assert wanted <= have, f"{len(wanted - have)} grid runs missing"
    assert calibrate.pending(CALIBRATION, calibrate.grid()) == []  # and the extra seeds where the first disagree
    for seeds in (calibrate.MORE_SEEDS, calibrate.MOST_SEEDS):  # each round complete for the settings it went to
        extra = [run for run in CALIBRATION["runs"] if run["seed"] in seeds]
        assert extra and len(extra) % len(seeds) == 0


def test_the_held_out_runs_are_the_drawn_settings_and_none_was_calibrated():
    drawn = calibrate.holdout_settings()
    assert calibrate.pending(HOLDOUT, drawn) == []  # every seed of every round
    assert {json.dumps(r["setting"], sort_keys=True) for r in HOLDOUT["runs"]} == {
        json.dumps(s, sort_keys=True) for s in drawn}

    def knobs(setting):  # a setting whatever its number of epochs
        return json.dumps({k: v for k, v in setting.items() if k != "epochs"}, sort_keys=True)

    assert not {knobs(s) for s in drawn} & {knobs(r["setting"]) for r in CALIBRATION["runs"]}


def test_table_draws_spread_over_every_slider_and_stay_on_the_table():
    draws = calibrate.table_draws(seed=1, count=200, epochs=(1, 20))
    assert draws == calibrate.table_draws(seed=1, count=200, epochs=(1, 20))  # seeded
    for setting in draws:
        P.validate({**setting, "mode": "real"}, P.RUN_FIELDS)  # raises if off the table
        assert round(setting["dataset_size"] / setting["batch_size"]) * setting["epochs"] <= calibrate.HOLDOUT_MAX_STEPS
    for name in ("noise_multiplier", "max_grad_norm", "batch_size", "learning_rate", "dataset_size"):
        knob, values = P.KNOB_BY_NAME[name], [d[name] for d in draws]
        low = knob.slider_min or knob.min
        assert min(values) < low * 10 and max(values) > knob.max / 10, name  # from one end of the slider to the other
    assert 0.6 < np.mean([d["private"] for d in draws]) < 0.9
