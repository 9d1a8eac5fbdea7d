"""``run`` end to end: a simulated experiment through the CLI writes every file, with the web's records and summary."""

from __future__ import annotations

import io
import json
import time

import pytest

from app import create_app
from app.experiment import config as C
from app.experiment import files, progress
from tests.experiment.common import cli, write

SIMULATED = """
description: two simulated runs
defaults: {mode: simulate, dataset_size: 5000, epochs: 3, delta: 2e-4}
runs:
  - name: baseline
    private: false
  - name: eps5
    target_epsilon: 5
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("simulated")
    result = cli("run", write(tmp_path, SIMULATED), "--out", tmp_path / "out")
    return tmp_path / "out", result


def test_it_writes_every_file_of_every_run(simulated):
    out, result = simulated
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"succeeded\t{name}\t{out / name}" for name in ("baseline", "eps5")]
    for name in ("baseline", "eps5"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(
            [files.SUMMARY, files.RECORDS, files.EPOCHS_CSV, files.STEPS_CSV, files.CONFIG])
    assert (out / "experiment.yaml").read_text() == SIMULATED
    assert "baseline: epoch 3, test accuracy" in result.stderr  # plain lines: stderr is not a terminal
    assert "\r" not in result.stderr


def test_the_summary_records_the_solved_sigma_and_the_epsilon_assumptions(simulated):
    out, _ = simulated
    result = json.loads((out / "eps5" / files.SUMMARY).read_text())
    assert result["status"] == "succeeded" and result["error"] is None
    assert result["solved"]["target_epsilon"] == 5 and result["knobs"]["noise_multiplier"] == \
        result["solved"]["noise_multiplier"] == result["params"]["noise_multiplier"]
    assert "noise_multiplier" not in result["given"]
    summary = result["summary"]
    assert summary["simulated"] is True and summary["epochs_completed"] == 3
    assert (summary["accountant"], summary["delta"], summary["sampling"]) == ("rdp", 2e-4, "poisson")
    assert summary["final_epsilon"] == pytest.approx(result["solved"]["epsilon"]) and summary["final_epsilon"] <= 5
    baseline = json.loads((out / "baseline" / files.SUMMARY).read_text())["summary"]
    assert baseline["private"] is False and baseline["final_epsilon"] is None and baseline["epsilon_infinite"]


def test_the_csvs_read_back_to_the_json_records(simulated):
    out, _ = simulated
    for name in ("baseline", "eps5"):
        recorded = json.loads((out / name / files.RECORDS).read_text())
        assert len(recorded["epochs"]) == 3 and recorded["steps"]
        assert files.read_csv(out / name / files.EPOCHS_CSV) == recorded["epochs"]
        assert files.read_csv(out / name / files.STEPS_CSV) == recorded["steps"]


def test_the_written_config_runs_the_same_knobs(simulated):
    out, _ = simulated
    written = C.load(out / "eps5" / files.CONFIG)
    result = json.loads((out / "eps5" / files.SUMMARY).read_text())
    assert [r.name for r in written.runs] == ["eps5"]
    assert written.runs[0].knobs == result["knobs"]


def test_the_records_and_summary_are_the_webs(simulated):
    """The same knobs through POST /api/runs (the real simulator, unpaced) give the same records and summary."""
    out, _ = simulated
    result = json.loads((out / "eps5" / files.SUMMARY).read_text())
    app = create_app({"TESTING": True, "SIM_PACING_SECONDS": 0.0})
    try:
        client = app.test_client()
        started = client.post("/api/runs", json=result["knobs"])
        assert started.status_code == 202, started.get_json()
        deadline = time.monotonic() + 30
        while (snap := client.get(f"/api/runs/{started.get_json()['id']}").get_json())["status"] != "succeeded":
            assert time.monotonic() < deadline, snap
            time.sleep(0.05)
    finally:
        app.extensions["jobs"].close()
    recorded = json.loads((out / "eps5" / files.RECORDS).read_text())
    timing = ("epoch_seconds", "examples_per_second")  # predicted from the machine's load; everything else is seeded

    def untimed(records):
        return [{k: v for k, v in r.items() if k not in timing} for r in records]

    assert untimed(snap["epochs"]) == untimed(recorded["epochs"])
    assert snap["steps"] == recorded["steps"]
    keep = ("final_test_accuracy", "final_epsilon", "accountant", "delta", "sampling", "statement", "real_run_range")
    assert {k: snap["summary"][k] for k in keep} == {k: result["summary"][k] for k in keep}
    assert snap["params"] == result["params"]


def test_a_terminal_gets_a_progress_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    shown = progress.for_stream(stream)
    assert isinstance(shown, progress.Bars)
    shown.start("dp", 1, 1, {"steps": 40, "steps_per_epoch": 20, "epochs": 2, "mode": "simulate", "private": False})
    shown.update("dp", {"step": 20}, [{"epoch": 1, "test_accuracy": 0.5, "epsilon": None, "epoch_seconds": 1.0}])
    shown.end("dp", "succeeded")
    text = stream.getvalue()
    assert "[1/1] dp" in text and "20/40" in text and "test accuracy 0.5000" in text
    assert isinstance(progress.for_stream(io.StringIO()), progress.Lines)


def test_an_unavailable_mode_exits_2_before_any_run(tmp_path, monkeypatch):
    from app.jobs import runners
    from tests.experiment.common import main

    monkeypatch.setitem(runners.MODES, "real", runners.Mode(
        "real", "Real", lambda: "TensorFlow is not installed on this server", lambda: None, None,
        runners.REAL.lane))
    status, _, err = main("run", write(tmp_path, "runs: [{name: a, mode: real}]\n"), "--out", tmp_path / "out")
    assert status == 2
    assert "run 'a': mode = 'real': is unavailable here: TensorFlow is not installed" in err
    assert not (tmp_path / "out").exists()

