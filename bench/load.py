"""A classroom against the production server: N simulated students on one real gunicorn (the repository's
gunicorn.conf.py) on 127.0.0.1 while one real run trains.

Each student opens the page (``GET /``, ``GET /api/params``), then for ``--seconds``: polls its run every second
(``GET /api/runs/<id>?since=<cursor>``, as the page does), moves a slider every 2-5 s (the page's live preview: RDP
and PLD ``POST /api/privacy`` at once), and starts a simulated run every 20 s (first ones staggered). Each student has
its own address in ``X-Forwarded-For`` (the server trusts one proxy, as behind a Space), so the per-client limits
apply per student, not to the whole class. One real run (10,000 examples, B 256) trains throughout; its examples/s
per epoch are compared between the epochs before the students arrive and after they leave (idle) and the epochs
while they are there (loaded): one run, one process, side by side.

Reports p50/p99 latency per endpoint, errors (any non-2xx, timeout or connection error), the server's RSS at the
start, the end and its peak, the real run's slowdown and the worker's CPU use in cores (idle beside the training, and
under the class), which shows what serving the class costs against what the machine has: ``--no-real-run`` measures
the class alone. Writes bench/results/load.json. Targets: 0 errors, p99 at
most 100 ms for polls and privacy queries, real-run slowdown at most 10%, RSS within 5% after warm-up.
Loopback only; bounded: ``--seconds`` of load, at most ``--max-requests`` requests, 10 s per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table, write  # noqa: E402
from tests.serving.gunicorn_process import Gunicorn, get, post  # noqa: E402

REAL_RUN = {"mode": "real", "dataset_size": 10000, "batch_size": 256, "epochs": 100, "noise_multiplier": 1.1,
            "max_grad_norm": 1.0, "learning_rate": 0.15, "seed": 1}
REQUEST_TIMEOUT = 10.0


class Client:
    """One keep-alive HTTP/1.1 connection to the server (as a browser tab keeps one), one request at a time."""

    def __init__(self, port: int, address: str):
        self.port, self.address = port, address
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        """One request; a kept-alive connection the server closed meanwhile is reopened once, as browsers do."""
        reused = self.writer is not None
        try:
            return await self._request(method, path, body)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            if not reused:
                raise
            return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: dict | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {self.address}\r\n"
                f"Content-Length: {len(data)}\r\n" + ("Content-Type: application/json\r\n" if body is not None else "")
                + "\r\n")
        try:
            self.writer.write(head.encode() + data)
            await self.writer.drain()
            status_line = await self.reader.readline()
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            payload = await self.reader.readexactly(length)
        except Exception:
            self.close()
            raise
        if close:
            self.close()
        return status, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Recorder:
    def __init__(self, max_requests: int):
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.refusals = 0  # PLD's 400 where RDP's epsilon exceeds 50: an answer the page shows, not an error
        self.pld_busy = 0  # PLD's 429 while two are in flight: the page shows RDP alone; counted apart
        self.left = max_requests

    async def call(self, client: Client, kind: str, method: str, path: str, body=None, refusal: str | None = None):
        if self.left <= 0:
            return None
        self.left -= 1
        started = time.perf_counter()
        try:
            status, payload = await asyncio.wait_for(client.request(method, path, body), REQUEST_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - every failure is counted as an error of its endpoint
            self.errors.append(f"{kind}: {type(exc).__name__}")
            client.close()
            return None
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        if status in (400, 429) and refusal and refusal in json.loads(payload).get("errors", {}):
            if status == 400:
                self.refusals += 1
            else:
                self.pld_busy += 1
            return None
        if status >= 300:
            self.errors.append(f"{kind}: HTTP {status} {payload[:120]!r}")
            return None
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload


def slider_move(rng: random.Random) -> dict:
    """A setting a student might slide to (the page asks RDP and PLD for it at once)."""
    dataset_size = rng.choice([1000, 5000, 10000, 30000, 60000])
    return {"noise_multiplier": round(rng.uniform(0.6, 3.0), 2), "epochs": rng.randint(1, 30),
            "batch_size": min(dataset_size, 2 ** rng.randint(5, 10)), "dataset_size": dataset_size, "delta": 1e-5}


async def student(i: int, port: int, seconds: float, rec: Recorder, seed: int, pld: bool):
    rng = random.Random(seed * 1000 + i)
    client = Client(port, f"198.51.100.{i + 1}" if i < 250 else f"203.0.113.{i - 249}")
    second = Client(port, client.address)  # a browser's second connection, for the preview's parallel query
    await rec.call(client, "GET /", "GET", "/")
    await rec.call(client, "GET /api/params", "GET", "/api/params")
    end = time.monotonic() + seconds
    next_run = time.monotonic() + rng.uniform(0, 20)
    next_move = time.monotonic() + rng.uniform(0, 5)
    run_id, cursor = None, None
    while time.monotonic() < end and rec.left > 0:
        now = time.monotonic()
        if now >= next_run:
            started = await rec.call(client, "POST /api/runs (simulate)", "POST", "/api/runs",
                                     {"mode": "simulate", "epochs": rng.randint(3, 15), "seed": rng.randint(0, 99)})
            if started:
                run_id, cursor = started["id"], None
            next_run += 20
        if now >= next_move:
            move = slider_move(rng)
            asks = [rec.call(client, "POST /api/privacy", "POST", "/api/privacy", {**move, "accountant": "rdp"})]
            if pld:  # the page's preview sends both at once, on two connections
                asks.append(rec.call(second, "POST /api/privacy", "POST", "/api/privacy",
                                     {**move, "accountant": "pld"}, refusal="accountant"))
            await asyncio.gather(*asks)
            next_move += rng.uniform(2, 5)
        if run_id:
            query = "" if cursor is None else f"?since={cursor}"
            snap = await rec.call(client, "GET /api/runs/<id> (poll)", "GET", f"/api/runs/{run_id}{query}")
            if snap:
                cursor = snap["cursor"]
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    client.close()
    second.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (gunicorn's master and workers; a Celery worker and its pool)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid] + [p for child in children for p in process_tree(child)]


def _status_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith(field)).split()[1])


class Servers:
    """The server's processes: gunicorn's tree, plus the Celery worker's on the Redis backend."""

    def __init__(self, roots: list[int]):
        self.roots = roots

    def pids(self) -> list[int]:
        return [pid for root in self.roots for pid in process_tree(root)]

    def rss_mib(self) -> float:
        """Resident memory of all of them, in MiB."""
        return sum(_status_kib(pid, "VmRSS") for pid in self.pids()) / 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) they have used so far."""
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """The servers' CPU use over a stretch of wall time, in cores (CPU seconds per second)."""

    def __init__(self, servers: Servers):
        self._servers, self._cpu, self._wall = servers, servers.cpu_seconds(), time.monotonic()

    def cores(self) -> float:
        return round((self._servers.cpu_seconds() - self._cpu) / (time.monotonic() - self._wall), 3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def epochs_of(base: str, run_id: str) -> list[dict]:
    return json.loads(get(f"{base}/api/runs/{run_id}", timeout=120)[2])["epochs"]


async def classroom(server: Gunicorn, servers: Servers, students: int, seconds: float, rec: Recorder, seed: int,
                    rss: list, pld: bool):
    async def sample_rss():
        while True:
            rss.append((time.monotonic(), servers.rss_mib()))
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample_rss())
    await asyncio.gather(*(student(i, server.port, seconds, rec, seed, pld) for i in range(students)))
    sampler.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle-seconds", type=float, default=30, help="real-run epochs measured idle, before and after")
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pld", action="store_true", help="previews ask RDP only (to measure what PLD costs)")
    parser.add_argument("--no-real-run", action="store_true",
                        help="the class alone: what serving it costs the worker in CPU, with no training beside it")
    parser.add_argument("--backend", choices=("embedded", "redis"), default="embedded",
                        help="redis: a redis-server on a free loopback port and one Celery worker process beside "
                             "gunicorn, so the real run trains outside the web process (docs/scaling.md)")
    parser.add_argument("--web-workers", type=int, default=1, help="gunicorn processes on the Redis backend")
    parser.add_argument("--out", help="JSON file (default bench/results/load.json)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    # as the image and `make serve` run it: behind one proxy, warmed up, two malloc arenas (unless the caller says)
    env = {"TRUSTED_PROXY_HOPS": "1", "WARM_UP": "1", "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
    if "MNIST_PATH" not in os.environ and (ROOT.parent / "shared/data/mnist.npz").is_file():
        env["MNIST_PATH"] = str(ROOT.parent / "shared/data/mnist.npz")
    redis_server, celery = None, None
    if args.backend == "redis":
        from tests.redis_backend import RedisServer

        redis_server = RedisServer()
        env.update(REDIS_URL=redis_server.url, WEB_WORKERS=str(args.web_workers))
        celery = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "app.jobs.worker"], cwd=ROOT,
                                  env={**os.environ, **env, "WORKER_CONCURRENCY": "1"},
                                  stdout=open(ROOT / "test-artifacts" / "load-celery.log", "w"),
                                  stderr=subprocess.STDOUT)
    else:
        env["REDIS_URL"] = ""
    server = Gunicorn(ROOT, ROOT / "test-artifacts" / "load-gunicorn.log", env=env, start_timeout=120)
    servers = Servers([server.process.pid] + ([celery.pid] if celery else []))
    try:
        # Warm-up: the simulator and TensorFlow load, one simulated and one tiny real run go through.
        warm = post(f"{server.base}/api/runs", {"mode": "simulate", "epochs": 2}, timeout=120)[2]
        tiny = post(f"{server.base}/api/runs", {"mode": "real", "dataset_size": 500, "batch_size": 50,
                                                "epochs": 1}, timeout=60)[2]
        deadline = time.monotonic() + 180
        while json.loads(get(f"{server.base}/api/runs/{tiny['id']}")[2])["status"] != "succeeded":
            assert time.monotonic() < deadline, "the warm-up real run did not finish"
            time.sleep(0.5)
        del warm
        rss_start = servers.rss_mib()
        real = None if args.no_real_run else post(f"{server.base}/api/runs", REAL_RUN, timeout=30)[2]
        idle_cpu = CpuWindow(servers)
        time.sleep(args.idle_seconds if real else 2)
        cores = {"idle": idle_cpu.cores()}
        load_started, loaded_cpu = time.monotonic(), CpuWindow(servers)
        epochs_before = len(epochs_of(server.base, real["id"])) if real else 0
        rec, rss = Recorder(args.max_requests), []
        asyncio.run(classroom(server, servers, args.students, args.seconds, rec, args.seed, rss, not args.no_pld))
        cores["loaded"] = loaded_cpu.cores()
        epochs_during = len(epochs_of(server.base, real["id"])) if real else 0
        load_seconds = time.monotonic() - load_started
        epochs = []
        if real:
            time.sleep(args.idle_seconds)
            epochs = epochs_of(server.base, real["id"])
            post(f"{server.base}/api/runs/{real['id']}/cancel", {}, headers={"X-Run-Token": real["token"]})
        rss_end = servers.rss_mib()
    finally:
        server.stop()
        if celery:
            celery.terminate()
            celery.wait(timeout=30)
        if redis_server:
            redis_server.close()
    load_after = os.getloadavg()

    # An epoch that finished while the students were there, but not the first (it began before they came).
    speeds = [e["examples_per_second"] for e in epochs]
    idle = speeds[:epochs_before] + speeds[epochs_during + 1:]
    loaded = speeds[epochs_before + 1:epochs_during]
    rows = [{"endpoint": kind, "requests": len(lat), "p50 ms": 1000 * statistics.median(lat),
             "p99 ms": 1000 * percentile(lat, 99), "max ms": 1000 * max(lat),
             "errors": sum(1 for e in rec.errors if e.startswith(kind + ":"))}
            for kind, lat in sorted(rec.latencies.items())]
    rss_after_warm = [mib for _, mib in rss]
    summary = {
        "students": args.students, "pld_previews": not args.no_pld, "real_run_beside": not args.no_real_run,
        "backend": args.backend, "web_workers": args.web_workers if args.backend == "redis" else 1,
        "server_cpu_cores": {**cores, "per_request_ms": round(1000 * cores["loaded"] * load_seconds
                                                              / max(1, sum(r["requests"] for r in rows)), 2)},
        "seconds": round(load_seconds, 1), "requests": sum(r["requests"] for r in rows),
        "errors": len(rec.errors), "error_samples": rec.errors[:10], "pld_refusals": rec.refusals,
        "pld_busy": rec.pld_busy,
        "real_run": {"idle_epochs": len(idle), "loaded_epochs": len(loaded),
                     "idle_examples_per_second": statistics.median(idle) if idle else None,
                     "loaded_examples_per_second": statistics.median(loaded) if loaded else None},
        "rss_mib": {"start": round(rss_start, 1), "end": round(rss_end, 1), "peak": round(max(rss_after_warm), 1),
                    "first_sample_under_load": round(rss_after_warm[0], 1)},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "endpoints": rows,
    }
    real_run = summary["real_run"]
    if idle and loaded:
        real_run["slowdown"] = round(1 - real_run["loaded_examples_per_second"] / real_run["idle_examples_per_second"], 4)
    print(table(rows, ["endpoint", "requests", "p50 ms", "p99 ms", "max ms", "errors"]))
    print(f"\n{args.students} students for {load_seconds:.0f} s: {summary['requests']} requests, "
          f"{summary['errors']} errors {rec.errors[:3]}; PLD previews: {rec.pld_busy} busy (429), "
          f"{rec.refusals} refused (epsilon > 50)")
    print(f"real run: {real_run['idle_examples_per_second']} examples/s idle ({len(idle)} epochs), "
          f"{real_run['loaded_examples_per_second']} loaded ({len(loaded)} epochs): slowdown {real_run.get('slowdown')}")
    print(f"server CPU ({args.backend}), in cores: {cores['idle']} idle ({'training alone' if real else 'nothing running'}), "
          f"{cores['loaded']} with the class; {summary['server_cpu_cores']['per_request_ms']} ms per request on "
          f"average{' (training included)' if real else ''}; the machine has {os.cpu_count()}")
    print(f"server RSS MiB: start {rss_start:.0f}, first under load {rss_after_warm[0]:.0f}, peak "
          f"{max(rss_after_warm):.0f}, end {rss_end:.0f}; load average before {load_before}, after {load_after}")
    poll_privacy = [r for r in rows if r["endpoint"] in ("GET /api/runs/<id> (poll)", "POST /api/privacy")]
    checks = {"0 errors": summary["errors"] == 0,
              "p99 <= 100 ms (polls, privacy)": all(r["p99 ms"] <= 100 for r in poll_privacy),
              **({"real-run slowdown <= 10%": real_run.get("slowdown") is not None and real_run["slowdown"] <= 0.10}
                 if real else {}),
              "RSS within 5% after warm-up": abs(rss_end - rss_after_warm[0]) <= 0.05 * rss_after_warm[0]}
    summary["targets"] = checks
    for name, met in checks.items():
        print(f"  {'met   ' if met else 'MISSED'} {name}")
    print("wrote", write("load", summary, args.out))


if __name__ == "__main__":
    main()
