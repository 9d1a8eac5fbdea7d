"""``python -m app.privacy``: the statement, --json, the inverse, and bad arguments (exit 2, one line)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ["--dataset-size", "60000", "--batch-size", "256", "--epochs", "60", "--delta", "1e-5"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "app.privacy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_statement():
    done = cli(*TUTORIAL, "--noise-multiplier", "1.1")
    assert done.returncode == 0
    assert "2.59" in done.stdout and "RDP" in done.stdout and "Poisson" in done.stdout and "1e-05" in done.stdout


def test_json_has_the_contract_fields():
    out = json.loads(cli(*TUTORIAL, "--noise-multiplier", "1.1", "--accountant", "pld", "--json").stdout)
    for key in ("epsilon", "noise_multiplier", "sample_rate", "steps", "delta", "accountant", "sampling"):
        assert key in out
    assert out["accountant"] == "pld" and out["epsilon"] < 2.6


def test_shuffle_is_larger():
    out = json.loads(cli(*TUTORIAL, "--noise-multiplier", "1.1", "--sampling", "shuffle", "--json").stdout)
    assert out["epsilon"] == pytest.approx(56.95, abs=0.005)


def test_inverse():
    out = json.loads(cli(*TUTORIAL, "--target-epsilon", "3", "--json").stdout)
    assert out["epsilon"] <= 3 and 0.9 < out["noise_multiplier"] < 1.1
    human = cli(*TUTORIAL, "--target-epsilon", "3")
    assert human.returncode == 0 and "meets epsilon <= 3" in human.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--noise-multiplier", "abc"], "--noise-multiplier: invalid float value: 'abc'"),
    (["--noise-multiplier", "-1"], "--noise-multiplier must be between 0 and 50, got -1.0"),
    (["--delta", "2"], "--delta must be between"),
    (["--epochs", "0"], "--epochs must be between 1 and 100, got 0"),
    (["--batch-size", "70000"], "--batch-size must be between"),
    (["--accountant", "moments"], "invalid choice: 'moments'"),
    (["--noise-multiplier", "1", "--target-epsilon", "2"], "not both"),
    (["--noise-multiplier", "nan"], "finite"),
    (["--target-epsilon", "0.001", "--batch-size", "4096"], "--target-epsilon"),
])
def test_bad_arguments_exit_2_with_one_line(args, fragment):
    done = cli(*args)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert fragment in last, done.stderr


def test_cli_imports_no_tensorflow():
    code = "import sys, runpy; sys.argv=['x', '--json']; import app.privacy.__main__ as p; p.main(['--json']); " \
           "assert 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True).returncode == 0
