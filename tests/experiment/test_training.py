"""Real runs through the CLI (TensorFlow, a few hundred examples): the files and a report naming both runs; Ctrl-C
cancels the run in progress through should_stop and keeps the finished ones."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from app.experiment import files
from tests.experiment.common import ROOT, cli, env, write

pytestmark = pytest.mark.training


def test_a_tiny_real_baseline_and_dp_run_make_files_and_a_report(tmp_path):
    path = write(tmp_path, """
defaults: {mode: real, dataset_size: 300, epochs: 1, batch_size: 64}
runs:
  - name: baseline
    private: false
  - name: dp
    target_epsilon: 8
""")
    result = cli("run", path, "--out", tmp_path / "out", timeout=600)
    assert result.returncode == 0, result.stderr
    for name in ("baseline", "dp"):
        summary_file = json.loads((tmp_path / "out" / name / files.SUMMARY).read_text())
        summary = summary_file["summary"]
        assert summary_file["status"] == "succeeded" and summary["simulated"] is False
        assert summary["epochs_completed"] == 1 and 0 <= summary["final_test_accuracy"] <= 1
        recorded = json.loads((tmp_path / "out" / name / files.RECORDS).read_text())
        assert files.read_csv(tmp_path / "out" / name / files.EPOCHS_CSV) == recorded["epochs"]
        assert files.read_csv(tmp_path / "out" / name / files.STEPS_CSV) == recorded["steps"]
    dp = json.loads((tmp_path / "out" / "dp" / files.SUMMARY).read_text())
    assert dp["summary"]["final_epsilon"] <= 8 and dp["solved"]["noise_multiplier"] == dp["params"]["noise_multiplier"]

    report = cli("compare", tmp_path / "out", "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| baseline | real | succeeded | 1 |" in text and "| dp | real | succeeded | 1 |" in text
    assert "(predicted)" not in text.split("## ")[0]  # measured, not predicted


def test_ctrl_c_cancels_the_current_run_and_keeps_the_finished_ones(tmp_path):
    path = write(tmp_path, """
defaults: {mode: real, batch_size: 64}
runs:
  - name: first
    dataset_size: 200
    epochs: 1
  - name: second
    dataset_size: 3000
    epochs: 8
  - name: third
    dataset_size: 200
    epochs: 1
""")
    process = subprocess.Popen([sys.executable, "-m", "app.experiment", "run", str(path), "--out",
                                str(tmp_path / "out")], cwd=ROOT, env=env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if line.strip().startswith("second: epoch 1,"):  # the first run is written; the second is training
                process.send_signal(signal.SIGINT)
                break
        else:
            pytest.fail("the second run never reported an epoch:\n" + "".join(seen))
        out, rest = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, "".join(seen) + rest
    assert "interrupted: stopping the current run at its next step" in rest
    assert out.splitlines() == [f"succeeded\tfirst\t{tmp_path / 'out' / 'first'}",
                                f"cancelled\tsecond\t{tmp_path / 'out' / 'second'}"]
    first = json.loads((tmp_path / "out" / "first" / files.SUMMARY).read_text())
    assert first["status"] == "succeeded" and first["summary"]["epochs_completed"] == 1
    second = json.loads((tmp_path / "out" / "second" / files.SUMMARY).read_text())
    assert second["status"] == "cancelled" and 1 <= second["summary"]["epochs_completed"] < 8
    assert len(json.loads((tmp_path / "out" / "second" / files.RECORDS).read_text())["epochs"]) == \
        second["summary"]["epochs_completed"]
    assert not (tmp_path / "out" / "third").exists()
