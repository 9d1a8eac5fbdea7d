"""Latency of POST /api/suggest through the real Flask app: how long the settings search takes, how much of its grid
it covers within the default time budget, cold (the accountant's caches empty, as on a fresh server) and warm (the
same query again), for a few budgets.

Prints a table and writes bench/results/suggest_latency.json. What it says: whether "hundreds of candidates in a
couple of seconds" holds, and how often the time budget (``SUGGEST_SECONDS``, 3 s) cuts a cold search short.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from bench.common import table, write  # noqa: E402

QUERIES = [{"target_epsilon": 3.0}, {"target_epsilon": 1.0}, {"target_epsilon": 8.0, "batch_size": 64},
           {"target_epsilon": 2.0, "dataset_size": 10000}, {"target_epsilon": 3.0, "max_seconds": 30}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=None, help="SUGGEST_SECONDS (default: the app's)")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    config = {"TESTING": True, **({"SUGGEST_SECONDS": args.budget} if args.budget else {})}
    client = create_app(config).test_client()
    client.post("/api/suggest", json={"target_epsilon": 3.0, "epochs": 1, "batch_size": 4096})  # load the simulator
    rows = []
    for query in QUERIES:
        for run in ("cold", "warm"):
            started = time.perf_counter()
            response = client.post("/api/suggest", json=query)
            seconds = time.perf_counter() - started
            body = response.json
            best = body["candidates"][0] if body.get("candidates") else None
            rows.append({"query": ", ".join(f"{k}={v:g}" for k, v in query.items()), "run": run,
                         "seconds": seconds, "searched": body.get("searched"), "complete": body.get("complete"),
                         "candidates_per_s": body.get("searched", 0) / seconds,
                         "best_predicted": best and best["predicted_accuracy"],
                         "best_epsilon": best and best["epsilon"]})
    print(table(rows, ["query", "run", "seconds", "searched", "complete", "candidates_per_s", "best_predicted",
                       "best_epsilon"]))
    out = write("suggest_latency", {"rows": rows, "budget_seconds": args.budget or "app default (3 s)",
                                    "note": "cold: the accountant's caches empty for that query's batch sizes"},
                args.json_out)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
