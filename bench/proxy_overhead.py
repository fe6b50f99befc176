"""Proxy overhead: the router proxy and LiteLLM's proxy against calling the upstream directly.

    python bench/proxy_overhead.py [--n1 200] [--n32 1000] [--workers 1] [--no-litellm]
    (or: make bench-proxy)

Every server is a separate process on 127.0.0.1: a minimal OpenAI-compatible upstream (one raw
ASGI handler answering a fixed completion), `router serve` (one worker) and `litellm --config`
(one worker, same pinned litellm), all forwarding to that upstream. For 1 and 32 concurrent
clients it prints p50/p99 latency, the latency added over the direct call, requests/s and errors
for: direct, router with routing ("model": "router"), router pass-through (a catalogue model)
and LiteLLM's proxy. Every prompt is distinct across warm-ups and scenarios (each has a range
of request numbers of its own), so the encoder cache never answers a measured request.
LiteLLM's proxy runs from the `litellm` script next to this Python (the venv's bin/), not
from PATH. `--workers N` gives both proxies N worker processes.
Every loop is bounded in count and in time. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from prompts import PROMPTS  # noqa: E402  (bench/ is on sys.path when run as a script)

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


def wait_workers(metrics_dir: Path, workers: int, proc: subprocess.Popen) -> None:
    """Every router worker has built its app (each writes its own metric files)."""
    if workers < 2:
        return
    deadline = time.time() + START_SECONDS
    while len({f.stem.split("_")[-1] for f in metrics_dir.glob("*.db")}) < workers:
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"{workers} router workers did not all start")
        time.sleep(0.25)


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


# Request numbers: each scenario gets a block of its own, warm-ups a block far away.
SCENARIO_BLOCK = 100_000
WARMUP_FIRST = 10_000_000


def run_load(url, model, n, clients, headers, scenario: int) -> dict:
    """Warm up on prompts never measured, then measure on prompts never seen before."""
    warm = WARMUP_FIRST + scenario * SCENARIO_BLOCK
    asyncio.run(load(url, model, min(20, n), clients, headers, first=warm))  # not counted
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


# ---- main ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n1", type=int, default=200, help="requests at 1 client")
    ap.add_argument("--n32", type=int, default=1000, help="requests at 32 clients")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    ap.add_argument("--no-batch", action="store_true", help="route requests one by one")
    ap.add_argument("--workers", type=int, default=1, help="worker processes of each proxy")
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
    tmp = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    up_port, r_port, l_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    router_cfg, litellm_cfg = write_configs(tmp, upstream, batch=not args.no_batch)
    procs = []
    router_env = dict(env)
    if args.workers > 1:  # their metrics are summed through files in this directory
        router_env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics")
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
            router_env,
        )
        procs.append(rp)
        targets = [("direct upstream", f"{upstream}/chat/completions", "fast-small", {})]
        wait_ready(f"http://127.0.0.1:{r_port}/ready", rp, "router proxy")
        wait_workers(tmp / "metrics", args.workers, rp)
        router_url = f"http://127.0.0.1:{r_port}/v1/chat/completions"
        targets += [
            ("router: routing", router_url, "router", {}),
            ("router: pass-through", router_url, "fast-small", {}),
        ]
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
                (
                    "litellm proxy: pass-through",
                    f"http://127.0.0.1:{l_port}/v1/chat/completions",
                    "fast-small",
                    auth,
                )
            )
        results = []
        scenario = 0
        for clients, n in ((1, args.n1), (32, args.n32)):
            base = None
            for name, url, model, headers in targets:
                scenario += 1
                res = run_load(url, model, n, clients, headers, scenario)
                base = base or res
                results.append((name, clients, res, base))
                print(f"  measured {name} at {clients} client(s)", file=sys.stderr, flush=True)
        print(
            f"\n{os.cpu_count()} cores; {args.workers} worker(s) per proxy; upstream answers a "
            f"fixed completion; logs in {tmp}; load average {os.getloadavg()[0]:.1f}\n"
        )
        head = f"| {'target':<28} | clients | {'p50 ms':>7} | {'p99 ms':>7} | {'added p50':>9} | {'added p99':>9} | {'req/s':>7} | errors |"
        print(head)
        print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
        for name, clients, r, base in results:
            print(
                f"| {name:<28} | {clients:>7} | {r['p50']:7.2f} | {r['p99']:7.2f} | "
                f"{r['p50'] - base['p50']:9.2f} | {r['p99'] - base['p99']:9.2f} | "
                f"{r['rps']:7.1f} | {r['errors']:>6} |"
            )
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    main()
