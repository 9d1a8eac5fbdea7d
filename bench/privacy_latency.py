"""Latency of POST /api/privacy over 500 varied queries, RDP and PLD, through the real Flask app.

Queries are drawn log-uniformly over the parameter table's slider ranges (seeded), so they are all distinct: the
cache does not help, as it would for a learner dragging one slider back and forth. Prints median and p95 per
accountant, overall and for the queries whose epsilon is at most 10 (the regime where a guarantee means something),
and writes bench/results/privacy_latency.json. Target: RDP p95 under 20 ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from bench.common import table, write  # noqa: E402


def queries(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        dataset_size = int(10 ** rng.uniform(2, np.log10(60000)))
        out.append({"noise_multiplier": round(float(10 ** rng.uniform(-1, np.log10(20))), 3),
                    "batch_size": int(min(dataset_size, 2 ** rng.integers(3, 13))),
                    "epochs": int(rng.integers(1, 101)), "dataset_size": dataset_size,
                    "delta": float(10 ** rng.uniform(-8, -3))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    client = create_app({"TESTING": True}).test_client()
    rows, raw = [], {}
    for accountant in ("rdp", "pld"):
        times, meaningful, refused = [], [], 0
        for query in queries(args.queries, args.seed):
            started = time.perf_counter()
            response = client.post("/api/privacy", json={**query, "accountant": accountant})
            elapsed = (time.perf_counter() - started) * 1000
            times.append(elapsed)
            if response.status_code != 200:
                refused += 1
            elif response.json["epsilon"] is not None and response.json["epsilon"] <= 10:
                meaningful.append(elapsed)
        for label, sample in (("all", times), ("epsilon<=10", meaningful)):
            rows.append({"accountant": accountant, "queries": label, "n": len(sample),
                         "median_ms": float(np.median(sample)), "p95_ms": float(np.percentile(sample, 95)),
                         "max_ms": float(np.max(sample)), "refused": refused if label == "all" else None})
        raw[accountant] = times
    print(table(rows, ["accountant", "queries", "n", "median_ms", "p95_ms", "max_ms", "refused"]))
    out = write("privacy_latency", {"rows": rows, "target": "rdp p95 < 20 ms"}, args.json_out)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
