"""What write-ahead decision rows cost: the spool's append (and fsync) per row, and what it adds
to a request through the proxy, for each fsync policy against no spool at all.

    python bench/write_ahead.py [--rows 5000] [--requests 300] [--clients 16] [--dir DIR]
    (or: make bench-write-ahead)

1. In process: `DecisionLog.record()` followed by `durable()` (what the proxy awaits before an
   answer), for rows the size the proxy writes, on a SQLite log whose spool is in `--dir`
   (default: a temporary directory; point it at the disk the proxy's spool will live on):
   one thread, then `--clients` threads at once (the `always` policy's fsyncs are shared by
   concurrent callers: group commit).
2. Through `router serve` (one worker, SQLite log, a fast loopback upstream answering at once):
   one client sending `--requests` requests back to back, non-streamed (latency to the whole
   answer) and streamed (latency to the first byte, where the write-ahead row is written),
   then `--clients` clients at once. Each policy runs on its own server process.

Everything runs on 127.0.0.1 and is stopped by pid. Prints figures and records
bench/results/write_ahead.json; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from decision_log import VECTOR, sample_decision  # noqa: E402
from load import ROOT, free_port, loopback_models, start, stop, wait_up  # noqa: E402
from results import command_line, record  # noqa: E402

from router.serving.decision_log import DecisionLog, Spool, decision_row  # noqa: E402

POLICIES = ("none", "off", "interval", "always")  # "none": no spool (the in-memory queue)


def _us(values) -> dict:
    a = np.asarray(values) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def in_process(policy: str, rows: int, clients: int, where: Path) -> dict:
    """record() + durable() per row: one thread, then `clients` threads."""
    tmp = Path(tempfile.mkdtemp(prefix=f"wal-{policy}-", dir=where))
    spool = None if policy == "none" else Spool(tmp / "spool", fsync=policy)
    log = DecisionLog(
        tmp / "d.db", embed=lambda _t: VECTOR, encoder="bench/1", spool=spool, queue_size=10**7
    )
    d = sample_decision()

    def one(i: int) -> float:
        row = decision_row(d, f"req_{policy}_{i:08d}", routing_text="What is 17 * 23?")
        t = time.perf_counter()
        log.durable(log.record(row))
        return time.perf_counter() - t

    single = [one(i) for i in range(rows)]
    per_thread = max(1, rows // clients)
    costs: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def worker(w: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            costs[w].append(one(rows + w * per_thread + i))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    assert log.flush(600), "flush timed out"
    log.close()
    assert log.dropped == 0, log.dropped
    return {
        "one_thread": _us(single),
        "concurrent": {
            **_us([c for w in costs for c in w]),
            "rows_per_s": clients * per_thread / wall,
        },
    }


# ---- through the proxy ----------------------------------------------------------------------


def write_config(tmp: Path, upstream: str, policy: str) -> Path:
    (tmp / "policies").mkdir(parents=True)
    models = loopback_models(
        upstream,
        [("fast-small", "fast-small", "small", 1), ("fast-large", "fast-large", "large", 1)],
    )
    spool = "null" if policy == "none" else f"{{fsync: {policy}}}"
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "default_policy: fast\n"
        f"decision_log: {{url: decisions.db, spool: {spool}}}\n"
        "server: {keys_env: null}\n" + models
    )
    (tmp / "policies" / "fast.yaml").write_text(
        "default: [fast-small]\nlarge: [fast-large]\n"
        "escalation:\n  min_domain_confidence: 0.3\n  max_difficulty: 0.5\n"
    )
    return cfg


async def _one(session, url: str, i: int, stream: bool) -> float:
    body = {
        "model": "router/fast",
        "messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
        "max_tokens": 8,
        "stream": stream,
    }
    t = time.perf_counter()
    async with session.post(url, json=body) as r:
        if stream:
            await r.content.readany()  # the first byte of the body: headers went before it
            first = time.perf_counter() - t
            await r.read()
            assert r.status == 200, r.status
            return first
        await r.read()
        assert r.status == 200, r.status
    return time.perf_counter() - t


async def _drive(url: str, requests: int, clients: int, stream: bool, start_i: int) -> dict:
    import aiohttp

    lat: list[float] = []
    counter = iter(range(start_i, start_i + requests))
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=conn, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def worker() -> None:
            for i in counter:
                lat.append(await _one(session, url, i, stream))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "req_per_s": len(lat) / wall,
    }


def through_proxy(policy: str, args, env: dict, upstream: str, where: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"wal-proxy-{policy}-", dir=where))
    cfg = write_config(tmp, upstream, policy)
    port = free_port()
    cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg), "--port", str(port)]
    server = start(cmd, tmp / "server.log", env)
    try:
        wait_up(f"http://127.0.0.1:{port}/ready", server, f"proxy ({policy})")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        print(f"  proxy, spool {policy}: warm-up, then measuring ...", file=sys.stderr, flush=True)
        asyncio.run(_drive(url, 100, 4, False, 0))  # warm-up (not counted)
        out = {
            "plain": asyncio.run(_drive(url, args.requests, 1, False, 10**6)),
            "stream_first_byte": asyncio.run(_drive(url, args.requests, 1, True, 2 * 10**6)),
            "concurrent": asyncio.run(
                _drive(url, args.requests * 2, args.clients, False, 3 * 10**6)
            ),
        }
    finally:
        stop(server, grace=60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5000, help="rows per in-process run")
    ap.add_argument("--requests", type=int, default=300, help="requests per proxy run")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--dir", type=Path, default=None, help="where spools and logs go")
    ap.add_argument("--no-proxy", action="store_true", help="the in-process figures only")
    args = ap.parse_args()
    args.rows, args.requests = min(args.rows, 200_000), min(args.requests, 20_000)
    where = args.dir or Path(tempfile.mkdtemp(prefix="write-ahead-bench-"))
    where.mkdir(parents=True, exist_ok=True)

    print("  in process ...", file=sys.stderr, flush=True)
    inproc = {p: in_process(p, args.rows, args.clients, where) for p in POLICIES}
    proxied: dict = {}
    if not args.no_proxy:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("ROUTER_API_KEYS", None)
        up_port = free_port()
        up = start(
            [sys.executable, "-m", "tests.upstream", "--port", str(up_port)],
            where / "upstream.log",
            env,
        )
        try:
            wait_up(f"http://127.0.0.1:{up_port}/", up, "upstream")
            upstream = f"http://127.0.0.1:{up_port}/v1"
            for p in ("none", "interval", "always"):
                proxied[p] = through_proxy(p, args, env, upstream, where)
        finally:
            stop(up)

    print(f"\n{os.cpu_count()} cores; spools and logs in {where}\n")
    print(f"record() + durable(), {args.rows} rows: one thread, then {args.clients} threads\n")
    print(
        f"| spool fsync | 1 thread p50 µs | p99 µs | {args.clients} threads p50 µs | p99 µs | rows/s |"
    )
    print("|---|---|---|---|---|---|")
    in_rows = []
    for p, r in inproc.items():
        row = [
            p,
            r["one_thread"]["p50_us"],
            r["one_thread"]["p99_us"],
            r["concurrent"]["p50_us"],
            r["concurrent"]["p99_us"],
            r["concurrent"]["rows_per_s"],
        ]
        in_rows.append(row)
        print("| {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:,.0f} |".format(*row))
    px_rows = []
    if proxied:
        base = proxied["none"]
        print(
            f"\nthrough the proxy: 1 client x {args.requests} requests (plain: whole answer; "
            f"stream: first byte), then {args.clients} clients x {args.requests * 2}\n"
        )
        print(
            "| spool fsync | plain p50 ms | added | p99 ms | stream first byte p50 ms | added "
            f"| p99 ms | {args.clients} clients p50 ms | p99 ms | req/s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for p, r in proxied.items():
            row = [
                p,
                r["plain"]["p50_ms"],
                r["plain"]["p50_ms"] - base["plain"]["p50_ms"],
                r["plain"]["p99_ms"],
                r["stream_first_byte"]["p50_ms"],
                r["stream_first_byte"]["p50_ms"] - base["stream_first_byte"]["p50_ms"],
                r["stream_first_byte"]["p99_ms"],
                r["concurrent"]["p50_ms"],
                r["concurrent"]["p99_ms"],
                r["concurrent"]["req_per_s"],
            ]
            px_rows.append(row)
            print(
                "| {} | {:.2f} | {:+.2f} | {:.2f} | {:.2f} | {:+.2f} | {:.2f} | {:.2f} | {:.2f} "
                "| {:.1f} |".format(*row)
            )
    tables = [
        {
            "title": f"record() + durable() per row ({args.rows} rows; {args.clients} threads)",
            "columns": [
                "spool fsync",
                "1 thread p50 µs",
                "1 thread p99 µs",
                f"{args.clients} threads p50 µs",
                f"{args.clients} threads p99 µs",
                "rows/s",
            ],
            "formats": ["", ".1f", ".1f", ".1f", ".1f", ",.0f"],
            "rows": in_rows,
        }
    ]
    if px_rows:
        tables.append(
            {
                "title": "through the proxy (added: against no spool)",
                "columns": [
                    "spool fsync",
                    "plain p50 ms",
                    "added p50 ms",
                    "plain p99 ms",
                    "stream first byte p50 ms",
                    "added p50 ms",
                    "stream first byte p99 ms",
                    f"{args.clients} clients p50 ms",
                    f"{args.clients} clients p99 ms",
                    "req/s",
                ],
                "formats": ["", ".2f", "+.2f", ".2f", ".2f", "+.2f", ".2f", ".2f", ".2f", ".1f"],
                "rows": px_rows,
            }
        )
    record(
        "write_ahead",
        title="Write-ahead decision rows: what the spool adds",
        command=command_line(),
        figures={
            "rows": args.rows,
            "requests": args.requests,
            "clients": args.clients,
            "in_process": inproc,
            "proxy": proxied,
        },
        tables=tables,
        notes="none: no spool (rows wait in memory; a kill loses the unwritten ones). off, "
        "interval, always: the spool's fsync policy (docs/reliability.md).",
    )


if __name__ == "__main__":
    main()
