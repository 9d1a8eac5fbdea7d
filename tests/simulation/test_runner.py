"""The package's face: the runner contract through the run API with the real runners, and no TensorFlow."""

import subprocess
import sys

from app import create_app
from tests.simulation.common import ROOT


def test_through_the_run_api_with_the_real_runners():
    app = create_app({"TESTING": True, "SIM_PACING_SECONDS": 0.0})
    client = app.test_client()
    assert client.get("/api/params").json["modes"]["simulate"]["available"]
    started = client.post("/api/runs", json={"mode": "simulate", "epochs": 3, "seed": 5})
    assert started.status_code == 202
    snap = client.get(f"/api/runs/{started.json['id']}").json
    assert snap["status"] == "succeeded" and snap["mode"] == "simulate" and len(snap["epochs"]) == 3
    assert snap["summary"]["final_epsilon"] == snap["epochs"][-1]["epsilon"]
    assert snap["summary"]["simulated"] and snap["summary"]["statement"].startswith("Simulated run")
    low, high = snap["summary"]["real_run_range"]
    assert 0 < low < high < 1
    assert snap["recommendations"] is not None
    app.extensions["jobs"].close()


def test_simulating_imports_no_tensorflow():
    code = ("import sys; from app import simulation, params as P; from app.jobs import service; "
            "simulation.load().simulate(service.plan(P.validate({'mode': 'simulate'}, P.RUN_FIELDS))[0]); "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
