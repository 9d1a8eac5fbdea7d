"""A scripted runner for job-manager and API tests: the runner contract, without TensorFlow, reporting made-up records
on a script (block at a gate, fail at an epoch)."""

import threading
import time


def scripted_epoch(epoch: int, epsilon: float | None = 0.5) -> dict:
    """An epoch record of the API.md shape with made-up numbers (for plumbing tests only)."""
    return {"type": "epoch", "epoch": epoch, "train_loss": 1.0 / epoch, "test_loss": 1.1 / epoch,
            "test_accuracy": min(0.99, 0.5 + 0.1 * epoch), "epsilon": epsilon, "clip_fraction": 0.5,
            "grad_norm": {"p10": 0.5, "p50": 1.0, "p90": 2.0},
            "grad_norm_histogram": {"edges": [0.1, 1.0, 10.0], "counts": [3, 4]},
            "epoch_seconds": 0.01, "examples_per_second": 1000.0}


class ScriptedRunner:
    """Reports ``steps_per_epoch`` step records and one epoch record per epoch; can block or count calls.

    A run whose params hold ``fail_at_epoch`` raises there, as a broken trainer would.
    """

    def __init__(self, *, gate: threading.Event | None = None):
        self.gate = gate  # when set, each step waits for it: lets a test hold a run "running"
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, params, report, should_stop):
        self.calls += 1
        self.started.set()
        per_epoch = params.get("steps_per_epoch", 2)
        for epoch in range(1, params["epochs"] + 1):
            for i in range(per_epoch):
                if should_stop():
                    return
                if self.gate is not None:
                    self.gate.wait(timeout=10)
                report({"type": "step", "step": (epoch - 1) * per_epoch + i + 1, "epoch": epoch, "loss": 1.0,
                        "clip_fraction": 0.5})
            if params.get("fail_at_epoch") == epoch:
                raise RuntimeError(f"fake failure at epoch {epoch}")
            report(scripted_epoch(epoch))


def wait_for(predicate, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached")
