"""docker-compose.yml: web, redis and worker, the web and worker services from the one image the Dockerfile builds,
both pointed at the compose file's Redis; `docker compose config` accepts it where Docker's compose plugin exists."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_web_and_worker_are_the_same_image_on_the_compose_redis():
    services = compose()["services"]
    assert set(services) == {"web", "redis", "worker"}
    web, worker = services["web"], services["worker"]
    assert web["image"] == worker["image"] == "dp-sgd-playground"
    assert web["build"] == worker["build"] == "."  # the repository's Dockerfile
    assert "command" not in web  # the image's CMD: gunicorn with gunicorn.conf.py
    assert worker["command"][-2:] == ["-m", "app.jobs.worker"]
    assert (ROOT / worker["command"][0]).parent.name == "bin"
    for service in (web, worker):
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "--appendonly" in services["redis"]["command"]  # a Redis restart keeps the runs
    assert int(web["environment"]["WEB_WORKERS"]) >= 2 and "ports" not in worker


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker here")
def test_docker_compose_accepts_the_file():
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker has no compose plugin here")
    done = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
