"""Scale-out under chaos: two `router serve` replicas sharing one Redis and one PostgreSQL;
mid-run, Redis is killed and restarted, one replica is killed -9, then PostgreSQL is killed and
restarted. No request that received a byte may lose its decision row.

    python bench/scale.py [--duration 60] [--clients 64] [--warmup 10] [--workers 1]
                          [--runs 1] [--outage 5]
    (or: make bench-scale, which runs 5 times)

Each run starts everything afresh on 127.0.0.1 and stops it by pid: a throwaway `redis-server`
and PostgreSQL cluster (tests/servers.py; PostgreSQL with synchronous_commit on, as a production
server, so a commit survives its crash), the fast loopback upstream (tests/upstream.py) and
two replicas on two ports whose config says `state: redis://...` and
`decision_log: postgresql://...`; both use the same config folder, so one spool directory.

`--clients` clients send requests back to back for `--duration` seconds (D), half to each
replica, half of them streaming. The measured part, after `--warmup`:
- early: a breaker is opened on replica A (three failing calls of a model whose upstream always
  fails) and B's /ready is watched until it shows it open; B must then refuse that model (503);
- at 0.2 D: Redis is killed -9, and restarted `--outage` s later (empty: nothing persisted);
- at 0.45 D: replica B is killed -9; its clients move to A on their first failed request;
- at 0.65 D: PostgreSQL is stopped at once (`pg_ctl stop -m immediate`, as a crash), and
  restarted `--outage` s later.
Then B is started again on its port (a replica replays a dead process's spool at start, and
every 10 s: A may have taken it over first), both replicas are stopped gracefully, and every
request id whose headers reached a client (an answer, an error, or a stream cut by the kill) is
looked up in PostgreSQL.

Reported per run: requests, failures, those cut by the kill, failures during each outage,
p50/p99, answers begun and their rows missing, rows marked interrupted, how A's /ready showed
the shared state during and after the Redis outage and the decision log during and after
PostgreSQL's, the breaker's propagation, spool files left. Prints figures and records
bench/results/scale.json; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# bench/ is on sys.path when run as a script; the repository root for tests.servers.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from load import (  # noqa: E402
    Tally,
    free_port,
    loopback_models,
    one,
    pct,
    rss_mb,
    start,
    stop,
    wait_up,
)
from results import command_line, record  # noqa: E402

from tests.servers import PostgresServer, RedisServer  # noqa: E402

BREAKER_FAILURES = 3
SETTLE_S = 2.0  # failures this long after a service is back still count to its outage
ROWS_WAIT_S = 120.0  # how long the end waits for the spools to drain into PostgreSQL


def write_config(tmp: Path, upstream: str, redis_url: str, pg_url: str) -> Path:
    (tmp / "policies").mkdir()
    models = loopback_models(
        upstream,
        [
            ("fast-small", "fast-small", "small", 1),
            ("fast-large", "fast-large", "large", 1),
            ("broken", "fail-500", "small", 0),
        ],
    )
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "default_policy: fast\n"
        f"state: {redis_url}\n"
        f"decision_log: {pg_url}\n"
        # A long cool-down: the breaker opened early must still be open when B is asked.
        f"breaker: {{failures: {BREAKER_FAILURES}, cooldown_s: 600}}\n"
        "server: {keys_env: null, shutdown_grace_s: 30}\n" + models
    )
    esc = "escalation:\n  min_domain_confidence: 0.3\n  max_difficulty: 0.5\n"
    (tmp / "policies" / "fast.yaml").write_text(
        "default: [fast-small]\nlarge: [fast-large]\n" + esc
    )
    (tmp / "policies" / "breakertest.yaml").write_text("default: [broken]\nlarge: [broken]\n")
    return cfg


@dataclass
class Side:
    """One replica's share of the run, as the clients saw it."""

    name: str
    tally: Tally = field(default_factory=Tally)
    begun: set[str] = field(default_factory=set)  # request ids whose headers arrived
    cut: int = 0  # failed in flight at the kill, or refused before the clients moved
    failed_at: list[float] = field(default_factory=list)  # seconds into the run


@dataclass
class Run:
    sides: dict[str, Side]
    wall: float = 0.0
    events: dict[str, float] = field(default_factory=dict)  # what happened, seconds in
    ready: list[tuple[float, int, dict]] = field(default_factory=list)  # A's /ready over time


async def drive(urls: dict[str, str], clients: int, seconds: float, start_i: int,
                chaos=None) -> Run:  # fmt: skip
    """Clients 0, 2, 4... go to A and 1, 3, 5... to B; every other pair streams. Once B has
    been killed, the first transport error from B moves every client to A. `chaos(run, t0)`,
    if given, runs beside the clients."""
    import aiohttp

    run = Run({n: Side(n) for n in urls})
    counter = iter(range(start_i, start_i + 10_000_000))
    t0 = time.perf_counter()
    deadline = t0 + seconds
    down: set[str] = set()
    timeout = aiohttp.ClientTimeout(total=60)
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def worker(w: int) -> None:
            home = "A" if w % 2 == 0 else "B"
            stream = (w // 2) % 2 == 1
            while time.perf_counter() < deadline:
                target = "A" if home in down else home
                i = next(counter)
                t = Tally()
                sent = time.perf_counter() - t0
                side = run.sides[target]
                await one(session, urls[target], "router/fast", i, stream, t, side.begun)
                if t.lost and "b_killed" in run.events and target == "B":
                    down.add("B")  # the client's failover: to the replica still up
                    side.cut += 1
                    continue
                _merge(side, t)
                if not t.ok:
                    side.failed_at.append(sent)

        tasks = [worker(w) for w in range(clients)]
        if chaos is not None:
            tasks.append(chaos(run, t0))
        await asyncio.gather(*tasks)
    run.wall = time.perf_counter() - t0
    return run


def _merge(side: Side, t: Tally) -> None:
    s = side.tally
    s.ok += t.ok
    s.clean_errors += t.clean_errors
    s.lost += t.lost
    s.lat_ms += t.lat_ms
    s.ids |= t.ids
    s.lost_examples += t.lost_examples[: max(0, 5 - len(s.lost_examples))]


async def breaker_check(a: str, b: str, delay: float) -> dict:
    """Open `broken`'s breaker on A, then watch B's /ready until it shows it open; then ask B."""
    import httpx

    await asyncio.sleep(delay)
    try:
        return await _breaker_check(a, b)
    except httpx.HTTPError as e:
        return {"error": f"{type(e).__name__}: {e}"}


async def _breaker_check(a: str, b: str) -> dict:
    import httpx

    body = {"model": "router/breakertest", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=60) as c:
        statuses = [
            (await c.post(a + "/v1/chat/completions", json=body)).status_code
            for _ in range(BREAKER_FAILURES)
        ]
        a_state = (await c.get(a + "/ready")).json()["circuits"].get("broken")
        t0 = time.perf_counter()
        seen = None
        while time.perf_counter() - t0 < 30:
            if (await c.get(b + "/ready")).json()["circuits"].get("broken") == "open":
                seen = time.perf_counter() - t0
                break
            await asyncio.sleep(0.05)
        resp = await c.post(b + "/v1/chat/completions", json=body)
    return {
        "a_statuses": statuses,
        "a_state": a_state,
        "seen_on_b_s": seen,
        "b_status": resp.status_code,
        "b_message": resp.json().get("error", {}).get("message", "")[:120],
    }


async def watch_ready(url: str, run: Run, t0: float, until: float) -> None:
    """A's /ready every 0.25 s: (seconds in, status code, body)."""
    import httpx

    async with httpx.AsyncClient(timeout=5) as c:
        while time.perf_counter() < until:
            try:
                r = await c.get(url + "/ready")
                run.ready.append((time.perf_counter() - t0, r.status_code, r.json()))
            except (httpx.HTTPError, ValueError):
                run.ready.append((time.perf_counter() - t0, 0, {}))
            await asyncio.sleep(0.25)


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants (a replica with --workers is several processes)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += rss_mb(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


def decision_phases(pg: PostgresServer, db: str) -> dict[str, str]:
    out = pg.query("SELECT request_id, coalesce(phase, '') FROM decisions", db)
    return dict(line.split("|", 1) for line in out.splitlines() if line)


def _during(times: list[float], start: float | None, end: float | None) -> int:
    if start is None or end is None:
        return 0
    return sum(1 for t in times if start <= t <= end + SETTLE_S)


def _first_after(ready: list, since: float | None, ok) -> float | None:
    """Seconds from `since` to the first /ready sample after it for which `ok(code, body)`."""
    if since is None:
        return None
    for t, code, body in ready:
        if t >= since and ok(code, body):
            return round(t - since, 2)
    return None


def one_run(n: int, args, env: dict) -> dict:
    """Everything started afresh, the chaos, the count; the run's figures."""
    D = args.duration
    outage = min(args.outage, 0.15 * D)
    tmp = Path(tempfile.mkdtemp(prefix=f"scale-bench-{n}-"))
    redis = RedisServer().start()
    pg = PostgresServer(durable_commits=True).start()
    pg_url = pg.create_database("decisions")
    procs: list[subprocess.Popen] = []
    replicas: dict[str, subprocess.Popen] = {}
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}/v1"
        cfg = write_config(tmp, upstream, redis.url, pg_url)
        up = start(
            [sys.executable, "-m", "tests.upstream", "--port", str(up_port)], tmp / "up.log", env
        )
        procs.append(up)
        wait_up(f"http://127.0.0.1:{up_port}/", up, "upstream")
        ports = {"A": free_port(), "B": free_port()}
        cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)]
        if args.workers > 1:
            cmd += ["--workers", str(args.workers)]

        def serve(name: str) -> subprocess.Popen:
            log = tmp / f"replica-{name}.log"
            p = start([*cmd, "--port", str(ports[name])], log, env)
            procs.append(p)
            replicas[name] = p
            return p

        for name in ports:
            serve(name)
        for name, port in ports.items():
            wait_up(f"http://127.0.0.1:{port}/ready", replicas[name], f"replica {name}")
        base = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        urls = {k: b + "/v1/chat/completions" for k, b in base.items()}

        print(f"  run {n}: warm-up {args.warmup:.0f} s ...", file=sys.stderr, flush=True)
        warm = asyncio.run(drive(urls, args.clients, args.warmup, 0))
        rss_warm = tree_rss_mb(replicas["A"].pid)

        async def chaos(run: Run, t0: float) -> None:
            check = asyncio.create_task(breaker_check(base["A"], base["B"], min(5.0, D / 8)))
            watch = asyncio.create_task(watch_ready(base["A"], run, t0, t0 + D + 2 * outage))

            async def at(seconds: float) -> None:
                await asyncio.sleep(max(0.0, t0 + seconds - time.perf_counter()))

            def mark(what: str) -> None:
                run.events[what] = round(time.perf_counter() - t0, 2)
                print(f"  run {n}: {what} at {run.events[what]:.1f} s", file=sys.stderr)

            await at(0.2 * D)
            await asyncio.to_thread(redis.kill)
            mark("redis_down")
            await at(0.2 * D + outage)
            await asyncio.to_thread(redis.start)
            mark("redis_up")
            await at(0.45 * D)
            # The breaker check needs both replicas: on a busy machine it can run long.
            await asyncio.wait([check], timeout=max(0.0, t0 + 0.6 * D - time.perf_counter()))
            os.killpg(replicas["B"].pid, signal.SIGKILL)  # its own session: ours alone
            mark("b_killed")
            await at(0.65 * D)
            await asyncio.to_thread(pg.kill)
            mark("pg_down")
            await at(0.65 * D + outage)
            await asyncio.to_thread(pg.start)
            mark("pg_up")
            run.events["breaker"] = await check
            await watch

        print(f"  run {n}: measuring {D:.0f} s ...", file=sys.stderr, flush=True)
        run = asyncio.run(drive(urls, args.clients, D, 5_000_000, chaos))
        rss_end = tree_rss_mb(replicas["A"].pid)
        replicas["B"].wait(10)
        print(f"  run {n}: restarting B, draining ...", file=sys.stderr, flush=True)
        serve("B")
        wait_up(base["B"] + "/ready", replicas["B"], "replica B (restarted)")
        begun = set().union(*(s.begun for s in run.sides.values()))
        begun |= set().union(*(s.begun for s in warm.sides.values()))
        deadline = time.monotonic() + ROWS_WAIT_S
        while time.monotonic() < deadline and begun - set(decision_phases(pg, "decisions")):
            time.sleep(1.0)  # the spools drain (and a dead one's is replayed) meanwhile
        exits = {}
        for name in ("B", "A"):
            stop(replicas[name], grace=60)  # graceful: what is left in the spool is written
            exits[name] = replicas[name].returncode
        phases = decision_phases(pg, "decisions")
        spool_left = sorted(str(p.relative_to(tmp)) for p in tmp.glob("*.spool/*"))
    finally:
        for p in reversed(procs):
            stop(p)
        redis.stop()
        pg.stop()

    ev = run.events
    breaker = ev.pop("breaker", {"error": "not run"})
    side_figs = {}
    for name, side in run.sides.items():
        ids = side.begun | warm.sides[name].begun
        t = side.tally
        side_figs[name] = {
            "requests": t.ok + t.clean_errors + t.lost + side.cut,
            "ok": t.ok,
            "cut_by_the_kill": side.cut,
            "begun": len(ids),
            "rows_missing": len(ids - set(phases)),
            "p50_ms": pct(t.lat_ms, 50),
            "p99_ms": pct(t.lat_ms, 99),
        }
    fails = [t for s in run.sides.values() for t in s.failed_at]
    lat = [x for s in run.sides.values() for x in s.tally.lat_ms]
    requests = sum(f["requests"] for f in side_figs.values())
    shared = [(t, body.get("state")) for t, _, body in run.ready]
    return {
        "run": n,
        "requests": requests,
        "ok": sum(f["ok"] for f in side_figs.values()),
        "cut_by_the_kill": sum(f["cut_by_the_kill"] for f in side_figs.values()),
        "failed_in_redis_outage": _during(fails, ev.get("redis_down"), ev.get("redis_up")),
        "failed_in_pg_outage": _during(fails, ev.get("pg_down"), ev.get("pg_up")),
        "failed_otherwise": len(fails)
        - _during(fails, ev.get("redis_down"), ev.get("redis_up"))
        - _during(fails, ev.get("pg_down"), ev.get("pg_up")),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "req_per_s": requests / run.wall,
        "begun": len(begun),
        "rows_missing": len(begun - set(phases)),
        "rows_interrupted": sum(1 for rid in begun if phases.get(rid) == "interrupted"),
        "state_during_redis_outage": sorted(
            {s for t, s in shared if ev.get("redis_down", 1e9) + 1 < t < ev.get("redis_up", 0)}
        ),
        "state_back_after_s": _first_after(
            run.ready, ev.get("redis_up"), lambda c, b: b.get("state") == "redis"
        ),
        "ready_during_pg_outage": sorted(
            {c for t, c, _ in run.ready if ev.get("pg_down", 1e9) + 1 < t < ev.get("pg_up", 0)}
        ),
        "log_writes_back_after_s": _first_after(
            run.ready, ev.get("pg_up"), lambda c, b: c == 200 and b.get("status") == "ready"
        ),
        "breaker_seen_on_b_s": breaker.get("seen_on_b_s"),
        "breaker_b_status": breaker.get("b_status"),
        "events_s": ev,
        "exit_codes": exits,
        "spool_files_left": len(spool_left),
        "rss_a_growth": (rss_end - rss_warm) / rss_warm if rss_warm else None,
        "sides": side_figs,
        "logs": str(tmp),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=10, help="warm-up seconds (not counted)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="worker processes per replica")
    ap.add_argument("--runs", type=int, default=1, help="runs, each on fresh servers")
    ap.add_argument("--outage", type=float, default=5.0, help="seconds Redis and PG stay down")
    args = ap.parse_args()
    args.duration = min(max(args.duration, 8.0), 600)  # bounded whatever is asked
    args.warmup = min(args.warmup, 120)
    args.runs = min(max(args.runs, 1), 20)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    env.pop("ROUTER_API_KEYS", None)
    runs = [one_run(n, args, env) for n in range(1, args.runs + 1)]

    print(
        f"\n{os.cpu_count()} cores, {args.clients} clients (half streaming) over 2 replicas "
        f"({args.workers} worker process{'es' if args.workers > 1 else ''} each), "
        f"{args.duration:.0f} s measured after {args.warmup:.0f} s warm-up, {args.runs} run(s). "
        f"Redis down at 0.2 D, replica B killed -9 at 0.45 D, PostgreSQL down at 0.65 D, each "
        f"outage {min(args.outage, 0.15 * args.duration):.1f} s\n"
    )
    cols = [
        "run",
        "requests",
        "ok",
        "cut by the kill",
        "failed in Redis outage",
        "failed in PG outage",
        "failed otherwise",
        "p50 ms",
        "p99 ms",
        "req/s",
        "answers begun",
        "rows missing",
        "rows interrupted",
        "state during Redis outage",
        "state back after s",
        "/ready during PG outage",
        "log writes back after s",
        "spool files left",
    ]
    keys = [
        "run",
        "requests",
        "ok",
        "cut_by_the_kill",
        "failed_in_redis_outage",
        "failed_in_pg_outage",
        "failed_otherwise",
        "p50_ms",
        "p99_ms",
        "req_per_s",
        "begun",
        "rows_missing",
        "rows_interrupted",
        "state_during_redis_outage",
        "state_back_after_s",
        "ready_during_pg_outage",
        "log_writes_back_after_s",
        "spool_files_left",
    ]
    rows = []
    for r in runs:
        cells = [r[k] for k in keys]
        cells = [", ".join(map(str, c)) if isinstance(c, list) else c for c in cells]
        rows.append(cells)
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for cells in rows:
        print(
            "| "
            + " | ".join(
                f"{c:.1f}" if isinstance(c, float) else ("-" if c is None else str(c))
                for c in cells
            )
            + " |"
        )
    for r in runs:
        print(
            f"\nrun {r['run']}: events {r['events_s']}; breaker seen on B after "
            f"{r['breaker_seen_on_b_s']} s, B then answered {r['breaker_b_status']}; exit codes "
            f"after SIGTERM {r['exit_codes']}; per replica "
            + "; ".join(
                f"{k}: {v['requests']} requests, {v['begun']} begun, {v['rows_missing']} rows "
                f"missing"
                for k, v in r["sides"].items()
            )
            + f"; logs in {r['logs']}"
        )
    missing = sum(r["rows_missing"] for r in runs)
    begun = sum(r["begun"] for r in runs)
    print(
        f"\nrows missing over {len(runs)} run(s): {missing} of {begun} requests that received "
        f"a byte; runs with none missing: {sum(1 for r in runs if r['rows_missing'] == 0)}"
    )
    for r in runs:
        r.pop("logs")
    record(
        "scale",
        title="Scale-out under chaos: a replica, Redis and PostgreSQL killed mid-run",
        command=command_line(),
        figures={
            "runs": len(runs),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "workers": args.workers,
            "outage_s": min(args.outage, 0.15 * args.duration),
            "answers_begun": begun,
            "rows_missing": missing,
            "runs_without_missing_rows": sum(1 for r in runs if r["rows_missing"] == 0),
            "per_run": {str(r["run"]): r for r in runs},
        },
        tables=[{"title": "each run", "columns": cols, "rows": rows}],
        notes="Answers begun: requests whose response headers reached the client (complete "
        "answers, error answers, and streams cut by the kill). Rows interrupted: streams cut "
        "by the kill, marked so when the dead replica's spool was replayed. Failures during an "
        f"outage count requests sent from its start to {SETTLE_S:.0f} s after its end.",
    )


if __name__ == "__main__":
    main()
