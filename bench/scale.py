"""Scale-out on loopback: real runs completed per minute on the embedded backend and on the Redis backend with 1 and
2 Celery workers (one run each at a time), and poll latency with 50 pollers on one web process (embedded) and spread
over 2 (Redis).

Throughput: a real gunicorn (gunicorn.conf.py) per setting; on Redis a redis-server on a free port and ``--workers``
``python -m app.jobs.worker`` processes (``make worker``). Each worker (or the embedded trainer thread) first trains
one warm-up run (TensorFlow loaded and the step traced once per process, as a deployment does), then ``--runs``
tiny real runs are submitted at once and timed from the first submit to the last one finished: runs/minute =
runs / that time. Tiny runs (``--dataset-size`` 1000, B 256, 1 epoch: 4 steps and one evaluation on the 10k test
set) keep the benchmark short on a shared machine; a run's fixed costs (model build, evaluation) dominate them, which
is the part that parallelises worst on 2 cores.

Polls: ``--pollers`` clients, each on its own keep-alive connection with its own address (the server trusts one
proxy), start a simulated run (paced over 20 s so it is running throughout) and poll it every second with the
page's ``since`` cursor for ``--seconds``, starting another when it ends. p50/p99 per setting.

Prints a table, writes bench/results/scale.json with the machine's load average before and after. Loopback only;
bounded in runs, requests and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table, write  # noqa: E402
from bench.load import Client, percentile  # noqa: E402
from tests.redis_backend import RedisServer  # noqa: E402
from tests.serving.gunicorn_process import Gunicorn, get, post  # noqa: E402

SIM = {"mode": "simulate", "epochs": 5, "dataset_size": 10000, "batch_size": 256}


def tiny_run(dataset_size: int, seed: int) -> dict:
    return {"mode": "real", "dataset_size": dataset_size, "batch_size": 256, "epochs": 1, "noise_multiplier": 1.1,
            "max_grad_norm": 1.0, "learning_rate": 0.15, "seed": seed}


def server_env(redis_url: str | None) -> dict:
    env = {"REAL_RUNS_PER_CLIENT": "0", "MAX_QUEUE": "64", "RATE_LIMIT_REAL": "1000 per minute",
           "RATE_LIMIT_SIMULATE": "1000 per minute", "TRUSTED_PROXY_HOPS": "1", "SIM_PACING_SECONDS": "20",
           "WARM_UP": "0"}
    if redis_url:
        env.update(REDIS_URL=redis_url, WEB_WORKERS="2")
    else:
        env["REDIS_URL"] = ""
    return env


def wait_done(base: str, ids: list[str], timeout: float) -> dict:
    """Poll until every run ended; their snapshots (a run that does not end in ``timeout`` raises)."""
    deadline, done = time.monotonic() + timeout, {}
    while len(done) < len(ids):
        for run_id in ids:
            if run_id not in done:
                snap = json.loads(get(f"{base}/api/runs/{run_id}")[2])
                if snap["status"] in ("succeeded", "failed", "cancelled"):
                    done[run_id] = snap
        if time.monotonic() > deadline:
            raise RuntimeError(f"runs not finished after {timeout:g} s")
        time.sleep(0.2)
    return done


def submit(base: str, body: dict, address: str) -> str:
    status, _, answer = post(f"{base}/api/runs", body, headers={"X-Forwarded-For": address})
    if status != 202:
        raise RuntimeError(f"POST /api/runs: {status} {answer}")
    return answer["id"]


def throughput(base: str, args, warm_ups: int) -> dict:
    warm = [submit(base, tiny_run(args.dataset_size, 100 + i), f"10.0.0.{i + 1}") for i in range(warm_ups)]
    wait_done(base, warm, timeout=600)
    started = time.monotonic()
    ids = [submit(base, tiny_run(args.dataset_size, i), f"10.0.1.{i + 1}") for i in range(args.runs)]
    snaps = wait_done(base, ids, timeout=1800)
    seconds = time.monotonic() - started
    failed = [s["error"] for s in snaps.values() if s["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"runs failed: {failed[:3]}")
    run_seconds = sorted(s["progress"]["elapsed_seconds"] for s in snaps.values())
    return {"runs": args.runs, "seconds": round(seconds, 2), "runs_per_minute": round(args.runs / seconds * 60, 2),
            "run_seconds_median": run_seconds[len(run_seconds) // 2]}


async def pollers(port: int, count: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []

    async def one(i: int):
        client = Client(port, f"10.1.{i // 250}.{i % 250 + 1}")
        run_id, cursor = None, 0
        end = time.monotonic() + seconds
        await asyncio.sleep(i / count)  # spread over the first second
        try:
            while time.monotonic() < end:
                if run_id is None:
                    status, payload = await client.request("POST", "/api/runs", SIM)
                    if status != 202:
                        errors.append(f"POST {status}")
                        return
                    run_id, cursor = json.loads(payload)["id"], 0
                started = time.perf_counter()
                status, payload = await client.request("GET", f"/api/runs/{run_id}?since={cursor}")
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(f"GET {status}")
                else:
                    snap = json.loads(payload)
                    cursor = snap["cursor"]
                    if snap["status"] != "running":
                        run_id = None
                await asyncio.sleep(1.0)
        finally:
            client.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    return {"polls": len(latencies), "errors": len(errors),
            "poll_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "poll_p99_ms": round(percentile(latencies, 99) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="timed real runs per setting")
    parser.add_argument("--dataset-size", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="of polling per setting")
    parser.add_argument("--out", help="JSON file (default bench/results/scale.json)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    logs = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    rows = []
    redis_server = RedisServer()
    try:
        for name, workers in (("embedded", 0), ("redis, 1 worker", 1), ("redis, 2 workers", 2)):
            url = redis_server.url if workers else None
            if url:
                redis_server.flush()
            server = Gunicorn(ROOT, logs / f"web-{workers}.log", env=server_env(url))
            procs = [subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "app.jobs.worker"], cwd=ROOT,
                                      env={**os.environ, "REDIS_URL": url, "WORKER_CONCURRENCY": "1",
                                           "WARM_UP": "0"},
                                      stdout=open(logs / f"worker-{workers}-{i}.log", "w"), stderr=subprocess.STDOUT)
                     for i in range(workers)]
            try:
                row = {"setting": name, "web_processes": 2 if workers else 1, "workers": workers or "1 thread"}
                row.update(throughput(server.base, args, warm_ups=max(1, workers)))
                print(f"{name}: {row['runs_per_minute']} runs/min", flush=True)
                row.update(asyncio.run(pollers(server.port, args.pollers, args.seconds)))
                print(f"{name}: polls p50 {row['poll_p50_ms']} ms, p99 {row['poll_p99_ms']} ms", flush=True)
                rows.append(row)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=30)
                server.stop()
    finally:
        redis_server.close()
    load_after = os.getloadavg()
    columns = ["setting", "web_processes", "workers", "runs", "seconds", "runs_per_minute", "run_seconds_median",
               "polls", "errors", "poll_p50_ms", "poll_p99_ms"]
    print(table(rows, columns))
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}; {os.cpu_count()} CPUs")
    out = write("scale", {"args": vars(args), "rows": rows, "load_before": load_before, "load_after": load_after,
                          "tiny_run": tiny_run(args.dataset_size, 0)}, args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
