"""What the simulation tests share: planning a run as a user's is planned, simulating it, the committed calibration."""

import json
import sys
from pathlib import Path

import pytest

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


def assert_same_numbers(got, expected, rel=1e-6, path="value"):
    """``got`` equals ``expected`` in shape and keys, numbers to ``rel``: on another CPU (other BLAS kernels, another
    summation order) an optimiser stops at another point within its tolerance (seen: 5e-8 relative), nothing more."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), path
        for key in expected:
            assert_same_numbers(got[key], expected[key], rel, f"{path}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), path
        for index, (a, b) in enumerate(zip(got, expected)):
            assert_same_numbers(a, b, rel, f"{path}[{index}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert got == pytest.approx(expected, rel=rel, abs=1e-12), path
    else:
        assert got == expected, path
