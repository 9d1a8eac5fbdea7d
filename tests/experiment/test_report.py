"""``compare``: the report's table (epsilon with its assumptions, audit columns when a summary has them) and plots."""

from __future__ import annotations

import io
import json
import math
import shutil
import sys

import numpy as np
import pytest

from app.experiment import config as C
from app.experiment import files, progress, report
from app.experiment.runner import run_experiment
from tests.experiment.common import cli, main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two simulated runs written by ``run``, and a copy of the private one given an audit part of the shape issue 16
    fixes (made-up numbers: the audit is not built here; this checks only how a report renders one)."""
    out = tmp_path_factory.mktemp("runs") / "out"
    experiment = C.parse("defaults: {mode: simulate, dataset_size: 5000, epochs: 3}\n"
                         "runs: [{name: baseline, private: false}, {name: dp, target_epsilon: 2}]")
    outcome = run_experiment(experiment, out, progress=progress.Lines(io.StringIO()))
    assert outcome.exit_status == 0
    shutil.copytree(out / "dp", out / "dp-audited")
    path = out / "dp-audited" / files.SUMMARY
    result = json.loads(path.read_text())
    fpr = np.linspace(0, 1, 51)
    result["name"] = "dp-audited"
    result["summary"]["audit"] = {
        "membership": {"auc": 0.5321, "advantage": 0.07, "tpr_at_fpr": {"0.01": 0.0123, "0.001": 0.0015},
                       "roc": {"fpr": fpr.tolist(), "tpr": np.sqrt(fpr).tolist()}, "members": 500,
                       "non_members": 500},
        "canaries": {"count": 1000, "guesses": 100, "correct": 60, "epsilon_lower_bound": 0.41, "confidence": 0.95}}
    path.write_text(json.dumps(result))
    return out


def test_compare_writes_the_report_and_plots(runs, tmp_path):
    result = cli("compare", runs, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    written = result.stdout.split()
    assert written == [str(tmp_path / "report" / name) for name in ("report.md", "accuracy.png", "epsilon.png",
                                                                    "roc.png")]
    for name in ("accuracy.png", "epsilon.png", "roc.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == PNG
    text = (tmp_path / "report" / "report.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"baseline", "dp", "dp-audited"}
    summary = json.loads((runs / "dp" / files.SUMMARY).read_text())["summary"]
    assert f"{summary['final_epsilon']:.4g} (RDP, delta 1e-05, Poisson sampling)" in rows["dp"]
    assert "infinite (non-private)" in rows["baseline"]
    assert f"{100 * summary['final_test_accuracy']:.2f}% (predicted)" in rows["dp"]
    assert "(solved)" in rows["dp"] and "(solved)" not in rows["baseline"]
    audited = rows["dp-audited"].split(" | ")
    assert audited[7:11] == ["0.532", "1.23%", "0.15%", "0.41 (95% conf., 1,000 canaries)"]
    assert rows["dp"].split(" | ")[7:11] == ["—"] * 4
    assert "![Membership attack ROC against the (epsilon, delta)-DP region](roc.png)" in text
    assert "not an epsilon bound" in text


def test_compare_without_an_audit_says_why_there_is_no_roc(runs, tmp_path):
    status, out, _ = main("compare", runs / "baseline", runs / "dp", "--out", tmp_path)
    assert status == 0 and "roc.png" not in out
    assert "No ROC plot: no run has a membership audit." in (tmp_path / "report.md").read_text()


def test_compare_without_matplotlib_still_writes_the_table(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    written = report.write_report([runs], tmp_path)
    assert written == [tmp_path / "report.md"]
    text = written[0].read_text()
    assert "Plots not drawn: matplotlib is not installed" in text and "| dp-audited |" in text


def test_runs_with_the_same_name_are_told_apart(runs, tmp_path):
    shutil.copytree(runs, tmp_path / "again")
    labels = [run["label"] for run in report.collect([runs, tmp_path / "again"])]
    assert len(labels) == len(set(labels)) == 6 and "again/dp" in labels


def test_compare_of_nothing_exits_2(tmp_path):
    status, _, err = main("compare", tmp_path, "--out", tmp_path / "report")
    assert status == 2 and f"{tmp_path}: holds no run" in err


@pytest.mark.parametrize("fpr, epsilon, delta, expected", [
    (0.0, 1.0, 1e-5, 1e-5),  # at FPR 0 only delta
    (0.01, 1.0, 1e-5, math.e * 0.01 + 1e-5),  # the e^eps FPR + delta side
    (0.5, 1.0, 1e-5, 1 - math.exp(-1) * (0.5 - 1e-5)),  # the 1 - e^-eps (1 - delta - FPR) side
    (0.3, 0.0, 0.0, 0.3),  # epsilon 0, delta 0: no test beats chance
    (1.0, 1.0, 1e-5, 1.0),  # clipped at 1 (the formula gives a little more)
])
def test_the_dp_region(fpr, epsilon, delta, expected):
    assert report.dp_region([fpr], epsilon, delta)[0] == pytest.approx(expected)
