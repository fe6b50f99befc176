"""The decision log's write path: what `record()` costs a request, how fast the writer thread
drains rows into SQLite and PostgreSQL, and a PostgreSQL outage (rows buffered, then written).

    python bench/decision_log.py [--rows 20000] [--outage-rows 5000]

Rows are the size the proxy writes (a Decision's JSON, a 384-dim int8 embedding). The embedding
is computed by a stand-in that returns a fixed vector, so the figures are the database path
alone (the proxy's embedding is an encoder-cache hit). PostgreSQL is a throwaway server
(tests/servers.py) with fsync and synchronous_commit off, as a test database: a durable
production server writes slower. Records bench/results/decision_log.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import command_line, record  # noqa: E402  (bench/ is on sys.path as a script)

from router.core.decision import Attempt, Decision  # noqa: E402
from router.serving.decision_log import DecisionLog, decision_row  # noqa: E402

VECTOR = np.random.default_rng(0).normal(size=384).astype(np.float32)


def sample_decision() -> Decision:
    """A typical routed decision: what every benched row records."""
    return Decision(
        model="small-general",
        tier="small",
        policy="balanced",
        domain="math",
        domain_confidence=0.91,
        difficulty=0.23,
        gain=0.08,
        success={"small-general": 0.77, "large": 0.93},
        reason="math specialist; difficulty 0.23 <= 0.6",
        fallbacks=["large"],
        cost_estimate=0.00012,
        large_cost_estimate=0.0051,
        routing_ms=4.2,
        attempts=[Attempt("small-general", True, None, 812.0)],
    )


def run(url: str, rows: int) -> dict:
    log = DecisionLog(url, embed=lambda _t: VECTOR, encoder="bench/1", queue_size=rows + 1)
    d = sample_decision()
    costs = np.empty(rows)
    t0 = time.perf_counter()
    for i in range(rows):
        row = decision_row(d, f"req_{i:08d}", routing_text="What is 17 * 23?", key_name="bench")
        t = time.perf_counter()
        log.record(row)
        costs[i] = time.perf_counter() - t
    queued = time.perf_counter() - t0
    assert log.flush(600), "flush timed out"
    total = time.perf_counter() - t0
    log.close()
    assert log.dropped == 0 and log.written == rows, (log.dropped, log.written)
    return {
        "record_p50_us": float(np.percentile(costs, 50) * 1e6),
        "record_p99_us": float(np.percentile(costs, 99) * 1e6),
        "rows_per_s": rows / total,
        "queued_s": queued,
    }


def outage(pg, rows: int) -> dict:
    url = pg.create_database()
    log = DecisionLog(url, embed=lambda _t: VECTOR, encoder="bench/1", queue_size=rows + 1)
    pg.query("CHECKPOINT", url.rsplit("/", 1)[1])  # the schema survives the crash below
    pg.kill()
    d = sample_decision()
    costs = np.empty(rows)
    for i in range(rows):
        row = decision_row(d, f"out_{i:08d}", routing_text="x", key_name="bench")
        t = time.perf_counter()
        log.record(row)
        costs[i] = time.perf_counter() - t
    buffered = log.queued
    t0 = time.perf_counter()
    pg.start()
    assert log.flush(600), "flush after the outage timed out"
    drained = time.perf_counter() - t0
    log.close()
    n = int(pg.query("SELECT count(*) FROM decisions", url.rsplit("/", 1)[1]).strip())
    return {
        "record_p99_us": float(np.percentile(costs, 99) * 1e6),
        "buffered": buffered,
        "written_after": n,
        "dropped": log.dropped,
        "restart_to_flushed_s": drained,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--outage-rows", type=int, default=5000)
    args = ap.parse_args()
    from tests.servers import PostgresServer

    pg = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {
                "SQLite": run(str(Path(tmp) / "bench.db"), args.rows),
                "PostgreSQL": run(pg.create_database(), args.rows),
            }
        print(f"\n{args.rows} rows, one thread recording, one writer thread\n")
        print("| database | record() p50 | record() p99 | rows/s written |")
        print("|---|---|---|---|")
        for name, r in results.items():
            print(
                f"| {name} | {r['record_p50_us']:.1f} µs | {r['record_p99_us']:.1f} µs | "
                f"{r['rows_per_s']:,.0f} |"
            )
        o = outage(pg, args.outage_rows)
        print(f"\nPostgreSQL killed, {args.outage_rows} rows recorded, then restarted\n")
        print(
            "| record() p99 while down | buffered | written after restart | dropped | restart → all written |"
        )
        print("|---|---|---|---|---|")
        print(
            f"| {o['record_p99_us']:.1f} µs | {o['buffered']} | {o['written_after']} | "
            f"{o['dropped']} | {o['restart_to_flushed_s']:.1f} s |"
        )
        record(
            "decision_log",
            title="Decision log: the write path and an outage",
            command=command_line(),
            figures={
                "rows": args.rows,
                "outage_rows": args.outage_rows,
                "embedding_dim": int(VECTOR.size),
                "sqlite": results["SQLite"],
                "postgresql": results["PostgreSQL"],
                "outage": o,
            },
            tables=[
                {
                    "title": "the write path",
                    "columns": ["database", "record() p50 µs", "record() p99 µs", "rows/s written"],
                    "formats": ["", ".1f", ".1f", ",.0f"],
                    "rows": [
                        [name, r["record_p50_us"], r["record_p99_us"], r["rows_per_s"]]
                        for name, r in results.items()
                    ],
                },
                {
                    "title": "PostgreSQL killed while rows are recorded, then restarted",
                    "columns": [
                        "record() p99 µs while down",
                        "buffered",
                        "written after restart",
                        "dropped",
                        "restart → all written, s",
                    ],
                    "formats": [".1f", "int", "int", "int", ".1f"],
                    "rows": [
                        [
                            o["record_p99_us"],
                            o["buffered"],
                            o["written_after"],
                            o["dropped"],
                            o["restart_to_flushed_s"],
                        ]
                    ],
                },
            ],
        )
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
