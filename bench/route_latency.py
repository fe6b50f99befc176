"""route() latency on 1,000 real prompts, one at a time after warm-up; cold start; peak RSS.

    python bench/route_latency.py [--config config.yaml] [--n 1000]   (or: make bench)

Records its figures with bench/results.py (bench/results/route_latency.json; BENCH_RESULTS_DIR
elsewhere for a trial run), with the encoder's plan as measured at start-up (threads per call:
`encoder.threads: auto`, router/core/autotune.py) and the figures measured before this work.
Prompts are drawn (fixed seed) from data/routing/*.jsonl, the imported ../shared/data.
The encoder cache is cleared before the timed loop so every prompt is really embedded, and the
warm-up prompts are not among the timed ones. Wall time and CPU time (process_time: all
threads) are both reported: on a shared machine the CPU time is the steadier figure, and the
load average printed with the figures says how shared it was.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import command_line, record  # noqa: E402


def cold_start(config: Path) -> tuple[float, float]:
    """(wall s, CPU s) of a fresh process: import, load, first route."""
    code = (
        "import time; t=time.perf_counter(); c=time.process_time(); from router import Router; "
        f"r=Router.from_config({str(config)!r}); r.route('warm up'); "
        "print(time.perf_counter()-t, time.process_time()-c)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from router import Router
    from router.core.data import read_many

    rows = read_many(sorted((ROOT / "data" / "routing").glob("*.jsonl")))
    rng = random.Random(0)
    sample = rng.sample(rows, args.n + 50)
    prompts = [r.messages if r.messages is not None else r.prompt for r in sample]
    warm, prompts = prompts[:50], prompts[50:]

    colds = [cold_start(args.config) for _ in range(3)]
    router = Router.from_config(args.config)
    for p in warm:
        router.route(p)
    router.encoder._cache.clear()
    times, cpu = [], []
    for p in prompts:
        t, c = time.perf_counter(), time.process_time()
        router.route(p)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    times.sort()
    cpu.sort()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plan = router.encoder.plan
    result = {
        "prompts": len(times),
        "encoder": router.encoder.identity,
        "encoder_threads": plan.threads,
        "encoder_threads_measured": plan.threads_measured,
        "encoder_timings_ms": plan.timings_ms,
        "p50_ms": round(times[len(times) // 2], 2),
        "p90_ms": round(times[int(len(times) * 0.9)], 2),
        "p99_ms": round(times[int(len(times) * 0.99)], 2),
        "mean_ms": round(sum(times) / len(times), 2),
        "cpu_p50_ms": round(cpu[len(cpu) // 2], 2),
        "cpu_p99_ms": round(cpu[int(len(cpu) * 0.99)], 2),
        "cold_start_s": round(sorted(w for w, _ in colds)[1], 2),
        "cold_start_cpu_s": round(sorted(c for _, c in colds)[1], 2),
        "load_average": round(os.getloadavg()[0], 1),
        "peak_rss_mb": round(rss_mb, 1),
    }
    how = "measured at start-up" if plan.threads_measured else "set"
    print(
        f"route() on {result['prompts']} real prompts, encoder {result['encoder']}, "
        f"{plan.threads} thread(s) per call ({how}: {plan.timings_ms})"
    )
    print(f"  p50 {result['p50_ms']} ms   p90 {result['p90_ms']} ms   p99 {result['p99_ms']} ms")
    print(f"  CPU time: p50 {result['cpu_p50_ms']} ms   p99 {result['cpu_p99_ms']} ms")
    print(
        f"  cold start (import + load + first route, median of 3): {result['cold_start_s']} s"
        f" ({result['cold_start_cpu_s']} s CPU)"
    )
    print(f"  load average: {result['load_average']} on {os.cpu_count()} cores")
    print(f"  peak RSS: {result['peak_rss_mb']} MB")
    print(json.dumps(result))
    p50_ok, p99_ok = result["p50_ms"] <= 8, result["p99_ms"] <= 20
    print(
        f"  targets: p50 <= 8 ms {'met' if p50_ok else 'MISSED'}, "
        f"p99 <= 20 ms {'met' if p99_ok else 'MISSED'}"
    )
    default = args.config.resolve() == (ROOT / "config.yaml").resolve() and args.n == 1000
    record(
        "route_latency",
        title="route() latency at config.yaml",
        command="make bench" if default else command_line(),
        figures={**result, "p50_target_met": p50_ok, "p99_target_met": p99_ok},
        tables=[
            {
                "title": "Before this work (measured then): make bench",
                "columns": ["setting", "wall p50 ms", "wall p99 ms", "notes"],
                "rows": [
                    ["encoder.threads: 2 (the old default)", 11.9, 21.8, "228 unseen prompts"],
                    ["encoder.threads: 1", 6.2, 15.3, "load 3.6 (BENCHMARKS.md)"],
                ],
            }
        ],
    )


if __name__ == "__main__":
    main()
