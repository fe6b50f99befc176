"""Scale-out: two `router serve` replicas sharing one Redis and one PostgreSQL, one killed -9.

    python bench/scale.py [--duration 60] [--clients 64] [--warmup 10] [--workers 1]
    (or: make bench-scale)

Everything is started here on 127.0.0.1 and stopped by pid at the end: a throwaway
`redis-server` and PostgreSQL cluster (tests/servers.py), the fast loopback upstream
(tests/upstream.py) and two replicas on two ports whose config says
`state: redis://...` and `decision_log: postgresql://...`.

`--clients` clients send requests back to back for `--duration` seconds, half of them to each
replica and half of them streaming. Early in the run a breaker is opened on replica A (three
failing calls of a model whose upstream always fails) and replica B's /ready is watched until
it shows that breaker open too; B is then asked for that model and must refuse it (503) without
calling it. Half-way through, replica B is killed with SIGKILL; its clients move to A on their
first failed request. At the end A is stopped gracefully (it flushes its decision log), and the
request ids of the answers the clients received complete are looked up in PostgreSQL.

Reported: requests, failures and p50/p99 per replica and in all; decision rows missing for
completed requests (survivor and killed replica apart); the breaker's propagation time; RSS of
each replica after warm-up and at the end (B: just before its kill). Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

# bench/ is on sys.path when run as a script; the repository root for tests.servers.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from load import ROOT, Tally, free_port, one, pct, rss_mb, start, stop, wait_up  # noqa: E402

from tests.servers import PostgresServer, RedisServer  # noqa: E402

BREAKER_FAILURES = 3


def write_config(tmp: Path, upstream: str, redis_url: str, pg_url: str) -> Path:
    (tmp / "policies").mkdir()
    models = ""
    for name, upstream_model, tier, profile in (
        ("fast-small", "fast-small", "small", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
        ("fast-large", "fast-large", "large", "gpt-4-1106-preview"),
        ("broken", "fail-500", "small", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    ):
        models += textwrap.dedent(
            f"""
              - name: {name}
                litellm_model: openai/{upstream_model}
                api_base: {upstream}
                input_price: {0.1 if tier == "small" else 5}
                output_price: {0.2 if tier == "small" else 15}
                context_window: 100000
                capabilities: [json, streaming]
                tier: {tier}
                profile: {profile}
                timeout: 30
                retries: {0 if name == "broken" else 1}
            """
        )
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "default_policy: fast\n"
        f"state: {redis_url}\n"
        f"decision_log: {pg_url}\n"
        # A long cool-down: the breaker opened early must still be open when B is asked.
        f"breaker: {{failures: {BREAKER_FAILURES}, cooldown_s: 600}}\n"
        "server: {keys_env: null, shutdown_grace_s: 30}\n"
        "models:" + textwrap.indent(models, "  ")
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
    completed: set[str] = field(default_factory=set)  # request ids of complete 200 answers
    cut: int = 0  # failed in flight at the kill, or refused before the clients moved


@dataclass
class Run:
    sides: dict[str, Side]
    wall: float = 0.0
    killed_at: float | None = None  # seconds into the run


async def drive(urls: dict[str, str], clients: int, seconds: float, start_i: int,
                kill_at: float | None, kill, kill_after=None) -> Run:  # fmt: skip
    """Clients 0, 2, 4... go to A and 1, 3, 5... to B; every other pair streams. After the
    kill (at `kill_at` s, and not before the `kill_after` task is done), the first transport
    error from B moves every client to A."""
    import aiohttp

    run = Run({n: Side(n) for n in urls})
    counter = iter(range(start_i, start_i + 10_000_000))
    t0 = time.perf_counter()
    deadline = t0 + seconds
    down: set[str] = set()
    killed = asyncio.Event()
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
                await one(session, urls[target], "router/fast", i, stream, t)
                side = run.sides[target]
                if t.lost and killed.is_set() and target == "B":
                    down.add("B")  # the client's failover: to the replica still up
                    side.cut += 1
                    continue
                _merge(side, t)

        async def killer() -> None:
            if kill_at is None:
                return
            await asyncio.sleep(kill_at)
            if kill_after is not None:
                # The breaker check needs both replicas: on a busy machine it can run long.
                await asyncio.wait([kill_after], timeout=max(0.0, deadline - time.perf_counter()))
            killed.set()
            run.killed_at = time.perf_counter() - t0
            kill()

        await asyncio.gather(killer(), *(worker(w) for w in range(clients)))
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
    if t.ok:
        side.completed |= t.ids


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


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s"


def decision_ids(pg: PostgresServer, db: str) -> set[str]:
    out = pg.query("SELECT request_id FROM decisions", db)
    return {line for line in out.splitlines() if line}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=10, help="warm-up seconds (not counted)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="worker processes per replica")
    ap.add_argument("--kill-at", type=float, default=None, help="seconds in; default: half-way")
    args = ap.parse_args()
    args.duration = min(args.duration, 600)  # bounded whatever is asked
    args.warmup = min(args.warmup, 120)
    kill_at = args.duration / 2 if args.kill_at is None else args.kill_at
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ROUTER_API_KEYS", None)
    tmp = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    redis = RedisServer().start()
    pg = PostgresServer().start()
    pg_url = pg.create_database("decisions")
    procs: list = []
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
        replicas = {}
        for name, port in ports.items():
            cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)]
            if args.workers > 1:
                cmd += ["--workers", str(args.workers)]
            p = start([*cmd, "--port", str(port)], tmp / f"replica-{name}.log", env)
            procs.append(p)
            replicas[name] = p
        for name, port in ports.items():
            wait_up(f"http://127.0.0.1:{port}/ready", replicas[name], f"replica {name}")
        base = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
        urls = {n: b + "/v1/chat/completions" for n, b in base.items()}

        print(f"  warm-up {args.warmup:.0f} s ...", file=sys.stderr, flush=True)
        warm = asyncio.run(drive(urls, args.clients, args.warmup, 0, None, lambda: None))
        rss_warm = {n: tree_rss_mb(p.pid) for n, p in replicas.items()}
        rss_end: dict[str, float] = {}

        def kill_b() -> None:
            rss_end["B"] = tree_rss_mb(replicas["B"].pid)
            os.killpg(replicas["B"].pid, signal.SIGKILL)  # its own session: only what we started
            print("  replica B killed -9", file=sys.stderr, flush=True)

        async def measured() -> tuple[Run, dict]:
            check = asyncio.create_task(breaker_check(base["A"], base["B"], min(5.0, kill_at / 4)))
            load = asyncio.create_task(
                drive(urls, args.clients, args.duration, 5_000_000, kill_at, kill_b, check)
            )
            return await load, await check

        print(f"  measuring {args.duration:.0f} s ...", file=sys.stderr, flush=True)
        run, breaker = asyncio.run(measured())
        rss_end["A"] = tree_rss_mb(replicas["A"].pid)
        stop(replicas["A"], grace=60)  # graceful: its decision log is flushed
        a_exit = replicas["A"].returncode
        have = decision_ids(pg, "decisions")
    finally:
        for p in reversed(procs):
            stop(p)
        redis.stop()
        pg.stop()

    print(
        f"\n{os.cpu_count()} cores, {args.clients} clients (half streaming) over 2 replicas "
        f"({args.workers} worker process{'es' if args.workers > 1 else ''} each), "
        f"{args.duration:.0f} s measured after {args.warmup:.0f} s warm-up, replica B killed -9 "
        f"at {_s(run.killed_at)}; shared Redis and PostgreSQL; logs in {tmp}\n"
    )
    head = (
        "| replica | requests | ok | failed | of which cut by the kill | p50 ms | p99 ms "
        "| req/s | RSS warm MB | RSS end MB | RSS growth | decision rows missing |"
    )
    print(head)
    print("|" + "|".join("---" for _ in head.split("|")[1:-1]) + "|")
    total = Side("all")
    for name, side in run.sides.items():
        t = side.tally
        n = t.ok + t.clean_errors + t.lost + side.cut
        # Warm-up requests count for the rows too: they completed as well.
        ids = side.completed | warm.sides[name].completed
        missing = len(ids - have)
        growth = (rss_end[name] - rss_warm[name]) / rss_warm[name]
        label = f"{name}{' (killed)' if name == 'B' else ''}"
        print(
            f"| {label} | {n} | {t.ok} | {n - t.ok} | {side.cut} | {pct(t.lat_ms, 50):.1f} "
            f"| {pct(t.lat_ms, 99):.1f} | {n / run.wall:.1f} | {rss_warm[name]:.0f} "
            f"| {rss_end[name]:.0f} | {growth:+.1%} | {missing} of {len(ids)} |"
        )
        _merge(total, t)
        total.cut += side.cut
        total.completed |= ids
        for why in t.lost_examples:
            print(f"    lost: {why}")
    t = total.tally
    n = t.ok + t.clean_errors + t.lost + total.cut
    print(
        f"| all | {n} | {t.ok} | {n - t.ok} | {total.cut} | {pct(t.lat_ms, 50):.1f} "
        f"| {pct(t.lat_ms, 99):.1f} | {n / run.wall:.1f} | | | "
        f"| {len(total.completed - have)} of {len(total.completed)} |"
    )
    b = breaker
    if "error" in b:
        print(f"\nbreaker check failed: {b['error']}")
        b = {"a_statuses": "?", "a_state": "?", "seen_on_b_s": None, "b_status": "?",
             "b_message": ""}  # fmt: skip
    seen = "never (30 s)" if b["seen_on_b_s"] is None else f"after {b['seen_on_b_s']:.2f} s"
    print(
        f"\nbreaker: A's {BREAKER_FAILURES} calls of `broken` answered {b['a_statuses']}, A's "
        f"circuit {b['a_state']}; B showed it open {seen}; B then answered {b['b_status']}: "
        f"{b['b_message']!r}"
    )
    print(f"replica A exit code after SIGTERM: {a_exit}")


if __name__ == "__main__":
    main()
