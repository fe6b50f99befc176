"""Proxy overhead: the router proxy and LiteLLM's proxy against calling the upstream directly.

    python bench/proxy_overhead.py [--runs 3] [--n1 200] [--n32 1000] [--workers N] [--no-litellm]
    (or: make bench-proxy)

Every server is a separate process on 127.0.0.1: a minimal OpenAI-compatible upstream (one raw
ASGI handler answering a fixed completion), `router serve` and `litellm --config` (same pinned
litellm), both forwarding to that upstream and both with the same number of worker processes
(default: one per core, `router serve`'s own default). For 1 and 32 concurrent clients it
measures p50/p99 latency, the latency added over the direct call, requests/s and errors for:
direct, router with routing ("model": "router"), router pass-through (a catalogue model) and
LiteLLM's proxy. The whole comparison runs `--runs` times (3) on the same servers; it prints
each run, then the median and the spread (min-max) of each figure with the machine's load
average, checks the targets in every run (>= 150 routed req/s at 32 clients, a routed p99 at or
below LiteLLM's, <= 10 ms added at p50 at 1 client), and records the figures with
bench/results.py (bench/results/proxy_overhead.json; BENCH_RESULTS_DIR elsewhere for a trial
run), beside the figures measured before the work.
Every prompt is distinct across warm-ups, scenarios and runs (each has a range of request
numbers of its own), so the encoder cache never answers a measured request. LiteLLM's proxy
runs from the `litellm` script next to this Python (the venv's bin/), not from PATH.
Every loop is bounded in count and in time. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from prompts import PROMPTS  # noqa: E402  (bench/ is on sys.path when run as a script)
from results import command_line, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MASTER_KEY = "sk-bench-master-key"  # LiteLLM's proxy refuses to start without one
SCENARIO_SECONDS = 90  # hard cap per measured scenario
START_SECONDS = 180  # hard cap for a server to come up

# ---- the upstream (runs in its own process) ------------------------------------------------

_ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "fast",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }
).encode()


async def upstream_app(scope, receive, send) -> None:
    """One tiny handler: any POST gets the same completion."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body
        msg = await receive()
        more = msg.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": _ANSWER})


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(upstream_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, name: str, headers: dict | None = None) -> None:
    import httpx

    deadline = time.time() + START_SECONDS
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not become ready in {START_SECONDS} s")


def wait_workers(url: str, workers: int, proc: subprocess.Popen) -> None:
    """Every router worker answers /ready (each names its pid; a new connection each time)."""
    import httpx

    seen: set[int] = set()
    deadline = time.time() + START_SECONDS
    while len(seen) < workers:
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"{workers} router workers did not all start ({len(seen)} did)")
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200:
                seen.add(r.json()["pid"])
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def write_configs(tmp: Path, upstream: str, batch: bool = True) -> tuple[Path, Path]:
    (tmp / "policies").mkdir()
    router_cfg = tmp / "config.yaml"
    router_cfg.write_text(
        textwrap.dedent(
            f"""
            default_policy: balanced
            server:
              decision_log: decisions.db
              keys_env: null
              batch_routing: {str(batch).lower()}
            models:
              - name: fast-small
                litellm_model: openai/fast-small
                api_base: {upstream}
                input_price: 0.1
                output_price: 0.2
                context_window: 100000
                capabilities: [tools, json, streaming]
                tier: small
                profile: mistralai/Mixtral-8x7B-Instruct-v0.1
              - name: fast-large
                litellm_model: openai/fast-large
                api_base: {upstream}
                input_price: 5
                output_price: 15
                context_window: 100000
                capabilities: [tools, json, streaming]
                tier: large
                profile: gpt-4-1106-preview
            """
        )
    )
    (tmp / "policies" / "balanced.yaml").write_text(
        "default: [fast-small]\nlarge: [fast-large]\n"
        "escalation:\n  min_domain_confidence: 0.3\n  max_difficulty: 0.5\n"
    )
    litellm_cfg = tmp / "litellm.yaml"
    litellm_cfg.write_text(
        textwrap.dedent(
            f"""
            model_list:
              - model_name: fast-small
                litellm_params:
                  model: openai/fast-small
                  api_base: {upstream}
                  api_key: not-needed
            """
        )
    )
    return router_cfg, litellm_cfg


# ---- load ---------------------------------------------------------------------------------


async def load(url: str, model: str, n: int, clients: int, headers: dict, first: int = 0) -> dict:
    """n requests from `clients` concurrent workers, numbered from `first` (so prompts never
    repeat across calls); bounded by SCENARIO_SECONDS."""
    import aiohttp

    lat: list[float] = []
    errors = 0
    counter = iter(range(first, first + n))
    deadline = time.perf_counter() + SCENARIO_SECONDS
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                body = {
                    "model": model,
                    "messages": [
                        {"role": "user", "content": PROMPTS[i % len(PROMPTS)].format(i=i)}
                    ],
                    "max_tokens": 16,
                }
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=body) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    lat.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    return {"p50": pct(50), "p99": pct(99), "rps": len(lat) / wall, "errors": errors, "n": len(lat)}


# Request numbers: each scenario of each run gets a block of its own, warm-ups a block far away.
SCENARIO_BLOCK = 100_000
WARMUP_FIRST = 100_000_000
WARMUP_REQUESTS = 64


def run_load(url, model, n, clients, headers, scenario: int) -> dict:
    """Warm up on prompts never measured, then measure on prompts never seen before."""
    warm = WARMUP_FIRST + scenario * SCENARIO_BLOCK
    asyncio.run(load(url, model, min(WARMUP_REQUESTS, n), clients, headers, first=warm))
    return asyncio.run(load(url, model, n, clients, headers, first=scenario * SCENARIO_BLOCK))


def litellm_command() -> str:
    """LiteLLM's proxy script of the Python running this file (PATH may not hold the venv)."""
    script = Path(sys.executable).parent / "litellm"
    if not script.exists():
        raise SystemExit(
            f"{script} not found: install the bench extra (pip install -e '.[bench]') "
            "or pass --no-litellm"
        )
    return str(script)


def default_workers() -> int:
    """`router serve`'s default: one worker per core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# What was measured before this work (`make bench-proxy` at its defaults then: one worker
# each; and `--workers 2` on a busy machine, load 3.8), to keep beside the figures recorded now.
BEFORE = [
    ["1 worker each (the old default)", 55.0, 1740.0, "—", 710.0, "make bench-proxy"],
    ["2 workers each", 75.7, 1310.0, 99.5, 440.0, "--workers 2, load 3.8"],
]

ROUTED, PASS, LITELLM, DIRECT = (
    "router: routing",
    "router: pass-through",
    "litellm proxy: pass-through",
    "direct upstream",
)


HEADLINE = [
    "routed_rps_32",
    "routed_p99_ms_32",
    "litellm_rps_32",
    "litellm_p99_ms_32",
    "routed_added_p50_ms_1",
]


def table(results: list[tuple]) -> list[str]:
    head = f"| {'target':<28} | clients | {'p50 ms':>7} | {'p99 ms':>7} | {'added p50':>9} | {'added p99':>9} | {'req/s':>7} | errors |"
    lines = [head, "|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|"]
    for name, clients, r, base in results:
        lines.append(
            f"| {name:<28} | {clients:>7} | {r['p50']:7.2f} | {r['p99']:7.2f} | "
            f"{r['p50'] - base['p50']:9.2f} | {r['p99'] - base['p99']:9.2f} | "
            f"{r['rps']:7.1f} | {r['errors']:>6} |"
        )
    return lines


def figures_of(results: list[tuple]) -> dict[str, float]:
    """The figures the targets are about, for one run."""
    by = {(name, clients): (r, base) for name, clients, r, base in results}
    out: dict[str, float] = {}
    for key, (name, clients) in {
        "routed_added_p50_ms_1": (ROUTED, 1),
        "pass_added_p50_ms_1": (PASS, 1),
        "litellm_added_p50_ms_1": (LITELLM, 1),
    }.items():
        if (name, clients) in by:
            r, base = by[(name, clients)]
            out[key] = round(r["p50"] - base["p50"], 2)
    for key, name in {"routed": ROUTED, "pass": PASS, "litellm": LITELLM}.items():
        if (name, 32) in by:
            r, _ = by[(name, 32)]
            out[f"{key}_rps_32"] = round(r["rps"], 1)
            out[f"{key}_p99_ms_32"] = round(r["p99"], 1)
            out[f"{key}_p50_ms_32"] = round(r["p50"], 1)
            out[f"{key}_errors_32"] = r["errors"]
    return out


def verdicts(f: dict[str, float]) -> dict[str, bool | None]:
    """The targets in one run (None: not measured)."""
    return {
        "routed >= 150 req/s at 32 clients": f.get("routed_rps_32", 0) >= 150,
        "routed p99 <= LiteLLM's at 32 clients": (
            f["routed_p99_ms_32"] <= f["litellm_p99_ms_32"] if "litellm_p99_ms_32" in f else None
        ),
        "routed added p50 <= 10 ms at 1 client": f.get("routed_added_p50_ms_1", 99) <= 10,
    }


# ---- main ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=3, help="times the whole comparison runs")
    ap.add_argument("--n1", type=int, default=200, help="requests at 1 client, per run")
    ap.add_argument("--n32", type=int, default=1000, help="requests at 32 clients, per run")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    ap.add_argument("--no-batch", action="store_true", help="route requests one by one")
    ap.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes of each proxy (default: one per core, as `router serve`)",
    )
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "ERROR",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ROUTER_API_KEYS", None)
    env.pop("ROUTER_PROCESSES", None)  # `router serve` shares the cores among its workers
    tmp = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    up_port, r_port, l_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    router_cfg, litellm_cfg = write_configs(tmp, upstream, batch=not args.no_batch)
    procs = []
    try:
        up = start(
            [sys.executable, __file__, "--serve-upstream", str(up_port)], tmp / "up.log", env
        )
        procs.append(up)
        wait_ready(f"http://127.0.0.1:{up_port}/", up, "upstream")  # any path answers
        rp = start(
            [
                sys.executable,
                "-m",
                "router.cli",
                "serve",
                "--config",
                str(router_cfg),
                "--port",
                str(r_port),
                "--workers",
                str(args.workers),
            ],
            tmp / "router.log",
            env,
        )
        procs.append(rp)
        targets = [(DIRECT, f"{upstream}/chat/completions", "fast-small", {})]
        wait_ready(f"http://127.0.0.1:{r_port}/ready", rp, "router proxy")
        wait_workers(f"http://127.0.0.1:{r_port}/ready", args.workers, rp)
        router_url = f"http://127.0.0.1:{r_port}/v1/chat/completions"
        targets += [(ROUTED, router_url, "router", {}), (PASS, router_url, "fast-small", {})]
        if not args.no_litellm:
            lp = start(
                [
                    litellm_command(),
                    "--config",
                    str(litellm_cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(l_port),
                    "--num_workers",
                    str(args.workers),
                ],
                tmp / "litellm.log",
                env,
            )
            procs.append(lp)
            auth = {"Authorization": f"Bearer {MASTER_KEY}"}
            wait_ready(f"http://127.0.0.1:{l_port}/health/liveliness", lp, "litellm proxy", auth)
            targets.append(
                (LITELLM, f"http://127.0.0.1:{l_port}/v1/chat/completions", "fast-small", auth)
            )
        runs: list[dict] = []
        scenario = 0
        for run in range(1, args.runs + 1):
            results = []
            for clients, n in ((1, args.n1), (32, args.n32)):
                base = None
                for name, url, model, headers in targets:
                    scenario += 1
                    res = run_load(url, model, n, clients, headers, scenario)
                    base = base or res
                    results.append((name, clients, res, base))
                    print(
                        f"  run {run}: {name} at {clients} client(s)", file=sys.stderr, flush=True
                    )
            load = round(os.getloadavg()[0], 2)
            runs.append({"results": results, "load": load, "figures": figures_of(results)})
            print(f"\nrun {run} of {args.runs}: load average {load}\n")
            print("\n".join(table(results)))
        report(args, runs, tmp)
    finally:
        for p in reversed(procs):
            stop(p)


def report(args, runs: list[dict], tmp: Path) -> None:
    """Median and spread of each figure over the runs; the targets per run; the record."""
    keys = list(runs[0]["figures"])
    summary = {}
    for k in keys:
        vals = [r["figures"][k] for r in runs]
        summary[k] = {
            "median": round(statistics.median(vals), 2),
            "min": min(vals),
            "max": max(vals),
        }
    loads = [r["load"] for r in runs]
    print(
        f"\n{os.cpu_count()} cores; {args.workers} worker(s) per proxy; {len(runs)} runs; "
        f"load average per run {loads}; logs in {tmp}\n"
    )
    print("| figure | median | min | max | per run |")
    print("|---|---|---|---|---|")
    for k, v in summary.items():
        per_run = ", ".join(str(r["figures"][k]) for r in runs)
        print(f"| {k} | {v['median']} | {v['min']} | {v['max']} | {per_run} |")
    checks = [verdicts(r["figures"]) for r in runs]
    print("\n| target | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |")
    print("|---|" + "---|" * len(runs))
    for name in checks[0]:
        marks = ["n/a" if c[name] is None else ("met" if c[name] else "MISSED") for c in checks]
        print(f"| {name} | " + " | ".join(marks) + " |")
    command = "make bench-proxy" if _defaults(args) else command_line()
    columns = ["target", "clients", "p50 ms", "p99 ms", "added p50", "added p99", "req/s", "errors"]
    tables = [
        {
            "title": "Median and spread over the runs",
            "columns": ["figure", "median", "min", "max", "per run"],
            "rows": [
                [k, v["median"], v["min"], v["max"], ", ".join(str(r["figures"][k]) for r in runs)]
                for k, v in summary.items()
            ],
        },
        {
            "title": "Targets, per run",
            "columns": ["target", *[f"run {i + 1}" for i in range(len(runs))]],
            "rows": [
                [name, *["n/a" if c[name] is None else c[name] for c in checks]]
                for name in checks[0]
            ],
        },
        {
            "title": "Before this work (measured then): 32 clients",
            "columns": [
                "setting",
                "routed req/s",
                "routed p99 ms",
                "LiteLLM req/s",
                "LiteLLM p99 ms",
                "notes",
            ],
            "rows": BEFORE,
        },
    ]
    for i, r in enumerate(runs, 1):
        tables.append(
            {
                "title": f"Run {i} (load average {r['load']})",
                "columns": columns,
                "rows": [
                    [
                        name,
                        clients,
                        round(x["p50"], 2),
                        round(x["p99"], 2),
                        round(x["p50"] - b["p50"], 2),
                        round(x["p99"] - b["p99"], 2),
                        round(x["rps"], 1),
                        x["errors"],
                    ]
                    for name, clients, x, b in r["results"]
                ],
            }
        )
    record(
        "proxy_overhead",
        title="Proxy overhead: router and LiteLLM's proxy, same workers, three runs",
        command=command,
        figures={
            "workers": args.workers,
            "runs": len(runs),
            "load_average_per_run": loads,
            # The figures the targets are about (medians; every figure's spread is a table).
            **{f"{k}_median": summary[k]["median"] for k in HEADLINE if k in summary},
            "targets_met_in_every_run": all(
                all(v is not False for v in c.values()) for c in checks
            ),
        },
        tables=tables,
        notes="Each run measures every target on the same servers with prompts of its own.",
    )


def _defaults(args) -> bool:
    return (
        args.runs == 3
        and args.n1 == 200
        and args.n32 == 1000
        and args.workers == default_workers()
        and not args.no_litellm
        and not args.no_batch
    )


if __name__ == "__main__":
    main()
