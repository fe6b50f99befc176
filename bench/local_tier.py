"""The local tier: SmolLM2-135M on llama.cpp, directly and through the router proxy.

    python bench/local_tier.py [--n 12] [--max-tokens 32]   (or: make bench-local)

Starts the GGUF model's llama.cpp server the way `router serve` does (router/serving/local.py), then a
`router serve` process whose catalogue points at that running server by `api_base`. For 1 and 4
concurrent streaming clients it prints, per target: p50/p90 time to first token, p50 tokens/s of
one stream (after its first token), aggregate tokens/s, p50 latency and errors. Targets: the
llama.cpp server directly, the proxy with routing ("model": "router") and the proxy
pass-through (the catalogue name). Proxy overhead = proxy TTFT - direct TTFT at p50.
Tokens are counted as streamed content chunks (llama.cpp sends one token a chunk). Every prompt
is distinct; every loop is bounded in count and time. Prints figures and records
bench/results/local_tier.json; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prompts import PROMPTS  # noqa: E402  (bench/ is on sys.path when run as a script)
from results import command_line, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.core.config import load_config  # noqa: E402
from router.serving.local import LocalModels, free_port  # noqa: E402

SCENARIO_SECONDS = 300  # hard cap per measured scenario
START_SECONDS = 180


async def one(client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int):
    """One streamed request → (ttft s, tokens, generation s after the first token, total s)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    t0 = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            for c in chunk.get("choices") or []:
                if (c.get("delta") or {}).get("content"):
                    tokens += 1
                    first = first or time.perf_counter()
    end = time.perf_counter()
    first = first or end
    return first - t0, tokens, end - first, end - t0


async def scenario(url: str, model: str, n: int, clients: int, max_tokens: int, offset: int):
    results, errors = [], 0
    queue = list(range(n))
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=180) as client:

        async def worker() -> None:
            nonlocal errors
            while queue and time.perf_counter() - t0 < SCENARIO_SECONDS:
                i = queue.pop()
                prompt = PROMPTS[i % len(PROMPTS)].format(i=offset + i)
                try:
                    results.append(await one(client, url, model, prompt, max_tokens))
                except Exception as e:  # noqa: BLE001 - counted, the run goes on
                    errors += 1
                    print(f"  error: {type(e).__name__}: {e}", file=sys.stderr)

        await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    ttft = sorted(r[0] for r in results)
    tps = [r[1] / r[2] for r in results if r[2] > 0 and r[1] > 1]
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")  # noqa: E731
    return {
        "n": len(results),
        "errors": errors,
        "ttft_p50_ms": 1000 * q(ttft, 0.5),
        "ttft_p90_ms": 1000 * q(ttft, 0.9),
        "tps_p50": statistics.median(tps) if tps else float("nan"),
        "agg_tps": sum(r[1] for r in results) / wall,
        "latency_p50_ms": 1000 * statistics.median(r[3] for r in results) if results else 0,
        "tokens_mean": statistics.mean(r[1] for r in results) if results else 0,
    }


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.time() + START_SECONDS
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"router serve exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("router serve did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="requests per scenario")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: cores - 1)"
    )
    args = ap.parse_args()

    cfg = load_config(ROOT / "config.yaml")
    spec = next(m for m in cfg.models if m.is_local)
    local = LocalModels([spec], ROOT, start_timeout=START_SECONDS, threads=args.threads).start()
    server = local.servers[spec.name]
    print(
        f"{spec.name}: llama.cpp server ({local.threads} threads) ready in {server.ready_s} s "
        f"on {server.api_base}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-local-"))
    (tmp / "policies").mkdir()
    # The proxy reaches the already-running server by api_base: no second model process.
    (tmp / "config.yaml").write_text(
        f"policies_dir: policies\nserver: {{decision_log: null}}\nmodels:\n"
        f"  - {{name: {spec.name}, litellm_model: openai/{spec.name}, "
        f"api_base: '{server.api_base}', input_price: 0, output_price: 0, "
        f"context_window: {spec.context_window}, capabilities: [streaming], timeout: 180}}\n"
    )
    (tmp / "policies" / "balanced.yaml").write_text(
        f"default: [{spec.name}]\nlarge: [{spec.name}]\n"
    )
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proxy = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--config", str(tmp / "config.yaml")]
        + ["--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "serve.log").open("wb"),
        env=env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc=proxy)
        targets = [
            ("direct llama.cpp", f"{server.api_base}/chat/completions", spec.name),
            ("proxy, routed", f"http://127.0.0.1:{port}/v1/chat/completions", "router"),
            ("proxy, pass-through", f"http://127.0.0.1:{port}/v1/chat/completions", spec.name),
        ]
        # Warm-up: first requests load caches on both sides.
        asyncio.run(scenario(targets[1][1], "router", 2, 1, 8, 10_000))
        header = (
            f"{'target':22} {'clients':>7} {'n':>3} {'err':>3} {'TTFT p50':>9} {'TTFT p90':>9} "
            f"{'tok/s p50':>9} {'agg tok/s':>9} {'lat p50':>8} {'tokens':>6}"
        )
        print(f"\nmax_tokens={args.max_tokens}, {args.n} streamed requests per row\n{header}")
        ttft = {}
        rows = []
        offset = 0
        for clients in (1, 4):
            for name, url, model in targets:
                offset += 1000
                r = asyncio.run(scenario(url, model, args.n, clients, args.max_tokens, offset))
                ttft[(name, clients)] = r["ttft_p50_ms"]
                rows.append(
                    [
                        name,
                        clients,
                        r["n"],
                        r["errors"],
                        r["ttft_p50_ms"],
                        r["ttft_p90_ms"],
                        r["tps_p50"],
                        r["agg_tps"],
                        r["latency_p50_ms"],
                    ]
                )
                print(
                    f"{name:22} {clients:>7} {r['n']:>3} {r['errors']:>3} "
                    f"{r['ttft_p50_ms']:>7.0f}ms {r['ttft_p90_ms']:>7.0f}ms {r['tps_p50']:>9.1f} "
                    f"{r['agg_tps']:>9.1f} {r['latency_p50_ms']:>6.0f}ms {r['tokens_mean']:>6.1f}",
                    flush=True,
                )
        print("\nproxy overhead on time to first token (p50, proxy - direct):")
        overhead = {}
        for clients in (1, 4):
            d = ttft[("direct llama.cpp", clients)]
            routed = ttft[("proxy, routed", clients)] - d
            passed = ttft[("proxy, pass-through", clients)] - d
            overhead[str(clients)] = {"routed_ms": routed, "pass_through_ms": passed}
            print(f"  {clients} client(s): routed {routed:+.0f} ms, pass-through {passed:+.0f} ms")
        record(
            "local_tier",
            title="Local tier: SmolLM2-135M on llama.cpp, directly and through the proxy",
            command=command_line(),
            figures={
                "model": spec.name,
                "threads": local.threads,
                "ready_s": server.ready_s,
                "n": args.n,
                "max_tokens": args.max_tokens,
                # TTFT p50 added by the proxy over llama.cpp directly, by client count
                "ttft_overhead": overhead,
            },
            tables=[
                {
                    "title": "streamed requests, one row per target and client count",
                    "columns": [
                        "target",
                        "clients",
                        "requests",
                        "errors",
                        "TTFT p50 ms",
                        "TTFT p90 ms",
                        "tokens/s p50",
                        "aggregate tokens/s",
                        "latency p50 ms",
                    ],
                    "formats": ["", "int", "int", "int", ",.0f", ",.0f", ".1f", ".1f", ",.0f"],
                    "rows": rows,
                }
            ],
        )
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        local.stop()


if __name__ == "__main__":
    main()
