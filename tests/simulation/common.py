"""What the simulation tests share: planning a run as a user's is planned, simulating it, the committed calibration."""

import json
import sys
from pathlib import Path

from app import params as P
from app import simulation
from app.jobs import service
from app.simulation.simulator import CALIBRATION_FILE

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from bench import calibrate  # noqa: E402,F401
from bench.common import HOLDOUT_FILE  # noqa: E402,F401

EPOCH_FIELDS = {"epoch", "step", "train_loss", "test_loss", "test_accuracy", "epsilon", "clip_fraction", "grad_norm",
                "grad_norm_histogram", "epoch_seconds", "examples_per_second"}
STEP_FIELDS = {"step", "epoch", "loss", "batch_size", "clip_fraction"}


def planned(**knobs) -> dict:
    return service.plan(P.validate({"mode": "simulate", **knobs}, P.RUN_FIELDS))[0]


def simulated(seeded=True, **knobs):
    return simulation.load().simulate(planned(**knobs), seeded=seeded)


def final_accuracy(**knobs) -> float:
    return simulated(seeded=False, **knobs)[0][-1]["test_accuracy"]


CALIBRATION = json.loads(CALIBRATION_FILE.read_text())
