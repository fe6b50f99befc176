"""Load: many concurrent clients, mixed streaming and non-streaming, against `router serve`.

    python bench/load.py [--duration 60] [--clients 64] [--warmup 10]      (or: make bench-load)

Two scenarios, one after the other, against the same server process:
1. a fast upstream (tests/upstream.py answering at once): every request must succeed;
2. the same while the upstream fails 20% of calls (`flaky-20`: every fifth call is a 500), with
   retries off so the failures show (the fallback model is tried, then a clean error): each request must end in an answer (first model or its
   fallback) or a clean OpenAI error; none may hang, be cut or go missing.
For each it prints requests, failures, clean errors, lost requests, p50/p99 latency (to the end
of the answer, stream or not), requests/s, the server's RSS after warm-up and at the end, and
whether every request id the clients saw has its row in the decision log.

Everything runs on 127.0.0.1 in separate processes (upstream, server, this client), each started
in its own session and stopped by pid. Every loop is bounded in count and time. Prints figures
and records bench/results/load.json; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from prompts import PROMPTS  # noqa: E402  (bench/ is on sys.path when run as a script)
from results import command_line, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START_S = 180  # a server must be up by then
REQUEST_TIMEOUT_S = 60  # no request may take longer; past it, it counts as lost


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_up(url: str, proc: subprocess.Popen, name: str) -> None:
    import httpx

    deadline = time.time() + START_S
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise RuntimeError(f"{name} did not come up in {START_S} s")


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


SMALL_PROFILE = "mistralai/Mixtral-8x7B-Instruct-v0.1"  # the scorer rows a small model uses
LARGE_PROFILE = "gpt-4-1106-preview"


def loopback_models(upstream: str, entries) -> str:
    """The `models:` entries of a bench config, each `(name, upstream_model, tier, retries)`
    answered by the loopback upstream; small models cost 0.1/0.2, large ones 5/15."""
    models = ""
    for name, upstream_model, tier, retries in entries:
        small = tier == "small"
        models += textwrap.dedent(
            f"""
              - name: {name}
                litellm_model: openai/{upstream_model}
                api_base: {upstream}
                input_price: {0.1 if small else 5}
                output_price: {0.2 if small else 15}
                context_window: 100000
                capabilities: [json, streaming]
                tier: {tier}
                profile: {SMALL_PROFILE if small else LARGE_PROFILE}
                timeout: 30
                retries: {retries}
            """
        )
    return "models:" + textwrap.indent(models, "  ")


def write_config(tmp: Path, upstream: str) -> Path:
    (tmp / "policies").mkdir()
    # The fast models keep the default retries (1): a dropped keep-alive connection under a
    # burst is retried, as in production. The flaky ones have none, so the 20% show.
    models = loopback_models(
        upstream,
        [
            ("fast-small", "fast-small", "small", 1),
            ("fast-large", "fast-large", "large", 1),
            ("flaky-small", "flaky-20", "small", 0),
            ("flaky-large", "flaky-20", "large", 0),
        ],
    )
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "default_policy: fast\n"
        "server: {decision_log: decisions.db, keys_env: null, shutdown_grace_s: 30}\n" + models
    )
    esc = "escalation:\n  min_domain_confidence: 0.3\n  max_difficulty: 0.5\n"
    (tmp / "policies" / "fast.yaml").write_text(
        "default: [fast-small]\nlarge: [fast-large]\n" + esc
    )
    (tmp / "policies" / "faulty.yaml").write_text(
        "default: [flaky-small]\nlarge: [flaky-large]\n" + esc
    )
    return cfg


# ---- the clients --------------------------------------------------------------------------


@dataclass
class Tally:
    ok: int = 0
    clean_errors: int = 0  # OpenAI-format error (status or stream error event)
    lost: int = 0  # transport error, time-out, malformed or cut without an error event
    lat_ms: list[float] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    lost_examples: list[str] = field(default_factory=list)

    def add_lost(self, why: str) -> None:
        self.lost += 1
        if len(self.lost_examples) < 5:
            self.lost_examples.append(why)


async def one(
    session, url: str, model: str, i: int, stream: bool, tally: Tally, begun: set | None = None
) -> None:
    """One request; `begun` (if given) gets its request id as soon as its headers arrive: an
    answer that began, even if it is cut afterwards."""
    import aiohttp

    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)].format(i=i)}],
        "max_tokens": 16,
        "stream": stream,
    }
    t0 = time.perf_counter()
    try:
        async with session.post(url, json=body) as r:
            rid = r.headers.get("x-request-id")
            if rid and begun is not None:
                begun.add(rid)
            raw = await r.read()
    except (TimeoutError, aiohttp.ClientError) as e:
        tally.add_lost(f"{type(e).__name__}: {e}")
        return
    if rid:
        tally.ids.add(rid)
    ms = (time.perf_counter() - t0) * 1000
    try:
        if r.status != 200:
            err = json.loads(raw)["error"]
            assert {"message", "type", "param", "code"} <= set(err)
            tally.clean_errors += 1
            return
        if not stream:
            assert json.loads(raw)["choices"][0]["message"]["content"]
            tally.ok += 1
            tally.lat_ms.append(ms)
            return
        events = [ln[6:] for ln in raw.decode().splitlines() if ln.startswith("data: ")]
        if events and events[-1] == "[DONE]":
            tally.ok += 1
            tally.lat_ms.append(ms)
        elif events and "error" in json.loads(events[-1]):
            tally.clean_errors += 1
        else:
            tally.add_lost(f"stream without [DONE] or error event: {raw[-200:]!r}")
    except (ValueError, KeyError, IndexError, AssertionError, TypeError) as e:
        tally.add_lost(f"malformed {r.status} answer ({type(e).__name__}): {raw[:200]!r}")


async def drive(url: str, model: str, clients: int, seconds: float, start_i: int) -> Tally:
    """`clients` workers send requests back to back for `seconds`; odd ones stream."""
    import aiohttp

    tally = Tally()
    counter = iter(range(start_i, start_i + 10_000_000))
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                await one(session, url, model, i, i % 2 == 1, tally)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return tally


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")


def scenario(name: str, url: str, model: str, pid: int, args, start_i: int) -> dict:
    """Warm-up (not counted), then the measured run; RSS read from the server's /proc."""
    print(f"  {name}: warm-up {args.warmup} s ...", file=sys.stderr, flush=True)
    warm = asyncio.run(drive(url, model, args.clients, args.warmup, start_i))
    rss_warm = rss_mb(pid)
    print(f"  {name}: measuring {args.duration} s ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    tally = asyncio.run(drive(url, model, args.clients, args.duration, start_i + 5_000_000))
    wall = time.perf_counter() - t0
    rss_end = rss_mb(pid)
    return {
        "name": name,
        "tally": tally,
        "warm": warm,
        "wall": wall,
        "rss_warm": rss_warm,
        "rss_end": rss_end,
    }


def missing_rows(db: Path, ids: set[str]) -> int:
    con = sqlite3.connect(db)
    try:
        have = {r[0] for r in con.execute("SELECT request_id FROM decisions")}
    finally:
        con.close()
    return len(ids - have)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60, help="measured seconds per scenario")
    ap.add_argument("--warmup", type=float, default=10, help="warm-up seconds (not counted)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--no-faults", action="store_true", help="skip the 20%% failure scenario")
    args = ap.parse_args()
    args.duration = min(args.duration, 600)  # bounded whatever is asked
    args.warmup = min(args.warmup, 120)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ROUTER_API_KEYS", None)
    tmp = Path(tempfile.mkdtemp(prefix="load-bench-"))
    up_port, r_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    cfg = write_config(tmp, upstream)
    procs: list[subprocess.Popen] = []
    results = []
    try:
        up = start(
            [sys.executable, "-m", "tests.upstream", "--port", str(up_port)], tmp / "up.log", env
        )
        procs.append(up)
        wait_up(f"http://127.0.0.1:{up_port}/", up, "upstream")
        cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)]
        server = start([*cmd, "--port", str(r_port)], tmp / "server.log", env)
        procs.append(server)
        wait_up(f"http://127.0.0.1:{r_port}/ready", server, "router proxy")
        url = f"http://127.0.0.1:{r_port}/v1/chat/completions"
        results.append(scenario("fast upstream", url, "router/fast", server.pid, args, 0))
        results[-1]["key"] = "fast"
        if not args.no_faults:
            results.append(
                scenario("20% upstream failures", url, "router/faulty", server.pid, args, 10**8)
            )
            results[-1]["key"] = "faults"
        stop(server, grace=60)  # graceful: the decision log is flushed
        exit_code = server.returncode
    finally:
        for p in reversed(procs):
            stop(p)
    db = tmp / "decisions.db"
    print(
        f"\n{os.cpu_count()} cores, {args.clients} clients (half streaming), "
        f"{args.duration:.0f} s measured after {args.warmup:.0f} s warm-up; logs in {tmp}\n"
    )
    head = (
        "| scenario | requests | ok | failed | clean errors | lost | p50 ms | p99 ms | req/s "
        "| RSS warm MB | RSS end MB | RSS growth | rows missing |"
    )
    print(head)
    print("|" + "|".join("---" for _ in head.split("|")[1:-1]) + "|")
    figures: dict = {
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "exit_code_after_sigterm": exit_code,
        "scenarios": {},
    }
    rows = []
    for res in results:
        t: Tally = res["tally"]
        n = t.ok + t.clean_errors + t.lost
        growth = (res["rss_end"] - res["rss_warm"]) / res["rss_warm"]
        ids = t.ids | res["warm"].ids
        missing = missing_rows(db, ids)
        print(
            f"| {res['name']} | {n} | {t.ok} | {t.clean_errors + t.lost} | {t.clean_errors} "
            f"| {t.lost} | {pct(t.lat_ms, 50):.1f} | {pct(t.lat_ms, 99):.1f} "
            f"| {n / res['wall']:.1f} | {res['rss_warm']:.0f} | {res['rss_end']:.0f} "
            f"| {growth:+.1%} | {missing} of {len(ids)} |"
        )
        for why in t.lost_examples:
            print(f"    lost: {why}")
        figures["scenarios"][res["key"]] = {
            "requests": n,
            "ok": t.ok,
            "failed": t.clean_errors + t.lost,
            "clean_errors": t.clean_errors,
            "lost": t.lost,
            "p50_ms": pct(t.lat_ms, 50),
            "p99_ms": pct(t.lat_ms, 99),
            "rps": n / res["wall"],
            "rss_warm_mb": res["rss_warm"],
            "rss_end_mb": res["rss_end"],
            "rss_growth": growth,
            "rows_missing": missing,
            "rows_expected": len(ids),
            "lost_examples": t.lost_examples,
        }
        rows.append(
            [
                res["name"],
                n,
                t.ok,
                t.clean_errors,
                t.lost,
                pct(t.lat_ms, 50),
                pct(t.lat_ms, 99),
                n / res["wall"],
                f"{res['rss_warm']:.0f} → {res['rss_end']:.0f} ({growth:+.1%})",
                f"{missing} of {len(ids)}",
            ]
        )
    print(f"\nserver exit code after SIGTERM: {exit_code}")
    record(
        "load",
        title="Load and faults: many clients, half streaming, against one proxy",
        command=command_line(),
        figures=figures,
        tables=[
            {
                "title": "measured after the warm-up",
                "columns": [
                    "scenario",
                    "requests",
                    "ok",
                    "clean errors",
                    "lost",
                    "p50 ms",
                    "p99 ms",
                    "req/s",
                    "RSS MB warm → end",
                    "decision-log rows missing",
                ],
                "formats": ["", "int", "int", "int", "int", ",.0f", ",.0f", ".1f", "", ""],
                "rows": rows,
            }
        ],
    )


if __name__ == "__main__":
    main()
