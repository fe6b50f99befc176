"""Added latency of a cascaded request, through the proxy, with the real local model as the
cheap tier (SmolLM2-135M on llama.cpp) and a loopback upstream as the large tier.

    python bench/cascade_latency.py [--n 12] [--max-tokens 48]   (or: make bench-cascade)

Starts SmolLM2's llama.cpp server (router/serving/local.py), the test upstream
(tests/upstream.py) as the "large" model, and a `router serve` process with five policies:
- cheap: straight to SmolLM2 (no cascade);
- large: straight to the loopback large model;
- accept: cascade with threshold 0, so every cheap answer is judged and kept;
- escalate: cascade with threshold 1, so every cheap answer is judged and replaced; the
  large call starts speculatively after SPECULATE_TOKENS tokens of the cheap answer;
- escalate-nospec: the same without speculation (the large call waits for the verdict).
For each, non-streaming and streaming, one client, it prints p50/p90 end-to-end latency and
(streaming) time to first content byte. Added latency of the cascade:
accept - cheap (the verdict, and for a stream the held buffer) and escalate - large (the cheap
call and the verdict, less what speculation overlaps with the large call; escalate-nospec -
large without it). The loopback large model answers after LARGE_S seconds, as a real provider
would take a while.
Prints figures and records bench/results/cascade_latency.json; it is not a test. Every loop is
bounded.
"""

from __future__ import annotations

import argparse
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
from tests.upstream import Upstream  # noqa: E402

START_SECONDS = 180
BUFFER_TOKENS = 16
SPECULATE_TOKENS = 8  # the escalating policy starts the large call after this many tokens
LARGE_S = 0.5  # the loopback large model answers after this long, like a real provider
WARM_UPS = 4  # warm-up requests per policy and kind (non-streamed, streamed)
POLICY_ROWS = {
    "cheap": "cheap (SmolLM2, no cascade)",
    "large": f"large (loopback, {LARGE_S} s)",
    "accept": "cascade, kept (threshold 0)",
    "escalate": f"cascade, escalated (threshold 1), speculating after {SPECULATE_TOKENS} tokens",
    "escalate-nospec": "cascade, escalated (threshold 1), no speculation",
}


def one(client: httpx.Client, url: str, policy: str, prompt: str, max_tokens: int, stream: bool):
    """(latency s, time to first content s or None, model, cascade header)."""
    body = {
        "model": f"router/{policy}",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    t0 = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        if stream:
            for line in r.iter_lines():
                if line.startswith("data: {") and first is None:
                    chunk = json.loads(line[6:])
                    if any((c.get("delta") or {}).get("content") for c in chunk["choices"]):
                        first = time.perf_counter() - t0
        else:
            r.read()
        return (
            time.perf_counter() - t0,
            first,
            r.headers.get("x-router-model"),
            r.headers.get("x-router-cascade-escalated", ""),
        )


def q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def verdict_ms(n: int = 50) -> float:
    """Median time of one verdict by the shipped verifier on a 90-word answer, in process."""
    from router.core.verifier import AnswerCase, load_verifier

    v = load_verifier("default")
    case = AnswerCase(
        PROMPTS[0].format(i=7) * 3,
        "First, 7 * 17 = <<7*17=119>>119. Then we check the result step by step. " * 6,
    )
    v.probability(case)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        v.probability(case)
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="requests per scenario")
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()

    cfg = load_config(ROOT / "config.yaml")
    spec = next(m for m in cfg.models if m.is_local)
    local = LocalModels([spec], ROOT, start_timeout=START_SECONDS).start()
    server = local.servers[spec.name]
    upstream = Upstream().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cascade-"))
    (tmp / "policies").mkdir()
    (tmp / "config.yaml").write_text(
        f"policies_dir: policies\ndefault_policy: cheap\nserver: {{decision_log: null}}\n"
        f"models:\n"
        f"  - {{name: {spec.name}, litellm_model: openai/{spec.name}, "
        f"api_base: '{server.api_base}', input_price: 0, output_price: 0, "
        f"context_window: {spec.context_window}, capabilities: [streaming], timeout: 180}}\n"
        f"  - {{name: large, litellm_model: openai/delay-{LARGE_S}, "
        f"api_base: '{upstream.base_url}', "
        f"input_price: 2.5, output_price: 10, context_window: 128000, "
        f"capabilities: [streaming], tier: large}}\n"
    )
    pols = {
        "cheap": "escalation: {max_difficulty: 1.0}",
        "large": "escalation: {max_difficulty: 0.0}",
        "accept": f"cascade: {{threshold: 0.0, buffer_tokens: {BUFFER_TOKENS}}}",
        "escalate": f"cascade: {{threshold: 1.0, buffer_tokens: {BUFFER_TOKENS}, "
        f"speculate_tokens: {SPECULATE_TOKENS}}}",
        # The same without speculation: the large call waits for the verdict.
        "escalate-nospec": f"cascade: {{threshold: 1.0, buffer_tokens: {BUFFER_TOKENS}, "
        "speculate_tokens: null}",
    }
    for name, body in pols.items():
        (tmp / "policies" / f"{name}.yaml").write_text(
            f"default: [{spec.name}]\nlarge: [large]\n{body}\n"
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
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        deadline = time.time() + START_SECONDS
        while time.time() < deadline:
            if proxy.poll() is not None:
                raise RuntimeError(f"router serve exited; see {tmp / 'serve.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        with httpx.Client(timeout=300) as client:
            # Warm-up: caches, the verifier's first load, in every worker process (a new
            # connection each time, so each worker gets some), streamed and not.
            for w in range(WARM_UPS):
                for policy in pols:
                    for stream in (False, True):
                        with httpx.Client(timeout=300) as fresh:
                            one(fresh, url, policy, f"Warm up {w}: say hi.", 8, stream)
            print(
                f"SmolLM2 ({local.threads} llama.cpp threads) as the cheap tier, loopback large; "
                f"max_tokens={args.max_tokens}, buffer_tokens={BUFFER_TOKENS}, {args.n} requests "
                "each, one client"
            )
            print(
                f"{'policy':15} {'stream':>6} {'lat p50':>8} {'lat p90':>8} {'TTFB p50':>8} model"
            )
            p50 = {}
            table = []
            for stream in (False, True):
                # Interleaved, one request of each policy in turn, so a busy machine's drift
                # falls on every policy alike.
                lat = {p: [] for p in pols}
                first = {p: [] for p in pols}
                models = {p: set() for p in pols}
                for k in range(args.n):
                    for i, policy in enumerate(pols):
                        prompt = PROMPTS[k % len(PROMPTS)].format(i=1000 * (i + 1) + k)
                        r = one(client, url, policy, prompt, args.max_tokens, stream)
                        lat[policy].append(r[0])
                        if r[1] is not None:
                            first[policy].append(r[1])
                        models[policy].add(r[2])
                for policy in pols:
                    f = first[policy]
                    p50[(policy, stream)] = (q(lat[policy], 0.5), q(f, 0.5) if f else None)
                    ttfb = f"{1000 * q(f, 0.5):6.0f}ms" if f else "       -"
                    answered = ",".join(sorted(m or "?" for m in models[policy]))
                    print(
                        f"{policy:15} {str(stream):>6} {1000 * q(lat[policy], 0.5):6.0f}ms "
                        f"{1000 * q(lat[policy], 0.9):6.0f}ms {ttfb} {answered}",
                        flush=True,
                    )
                    table.append(
                        [
                            POLICY_ROWS[policy],
                            stream,
                            1000 * q(lat[policy], 0.5),
                            1000 * q(lat[policy], 0.9),
                            1000 * q(f, 0.5) if f else None,
                            answered,
                        ]
                    )
            verdict = verdict_ms()
            print("\nadded by the cascade (p50):")
            print(f"  the shipped verifier's verdict alone: {verdict:.1f} ms (in process)")
            added = {}
            for stream in (False, True):
                kind = "stream, first byte" if stream else "non-streaming"
                idx = 1 if stream else 0
                acc = p50[("accept", stream)][idx] - p50[("cheap", stream)][idx]
                esc = p50[("escalate", stream)][idx] - p50[("large", stream)][idx]
                nospec = p50[("escalate-nospec", stream)][idx] - p50[("large", stream)][idx]
                key = "first_byte" if stream else "latency"
                added[f"kept_{key}_ms"] = 1000 * acc
                added[f"escalated_{key}_ms"] = 1000 * esc
                added[f"escalated_without_speculation_{key}_ms"] = 1000 * nospec
                print(
                    f"  {kind}: kept cheap answer {1000 * acc:+.0f} ms vs cheap alone; "
                    f"escalated {1000 * esc:+.0f} ms vs large alone "
                    f"({1000 * nospec:+.0f} ms without speculation)"
                )
            lat_cheap = statistics.median([p50[("cheap", s)][0] for s in (False, True)])
            print(f"  (SmolLM2 alone answers in {1000 * lat_cheap:.0f} ms at p50)")
        record(
            "cascade_latency",
            title="Cascades: the added latency of a cascaded request, through the proxy",
            command=command_line(),
            figures={
                "n": args.n,
                "max_tokens": args.max_tokens,
                "buffer_tokens": BUFFER_TOKENS,
                "speculate_tokens": SPECULATE_TOKENS,
                "large_latency_s": LARGE_S,
                "cheap_model": spec.name,
                "llama_threads": local.threads,
                "verdict_ms": verdict,
                "cheap_latency_p50_ms": 1000 * lat_cheap,
                "added": added,
            },
            tables=[
                {
                    "title": "one client, policies interleaved",
                    "columns": [
                        "policy",
                        "stream",
                        "latency p50 ms",
                        "latency p90 ms",
                        "first content byte p50 ms",
                        "answered by",
                    ],
                    "formats": ["", "", ",.0f", ",.0f", ",.0f", ""],
                    "rows": table,
                }
            ],
        )
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        upstream.stop()
        local.stop()


if __name__ == "__main__":
    main()
