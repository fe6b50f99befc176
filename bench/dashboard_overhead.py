"""Does an open dashboard slow the proxy? `make bench-proxy`'s routed scenario, with and without
a dashboard refreshing.

    python bench/dashboard_overhead.py [--n1 200] [--n32 1000] [--poll 1.0] [--rounds 2]
    (or: make bench-dashboard)

The same processes as bench/proxy_overhead.py (its upstream, `router serve` with one worker and
a SQLite decision log, its loads and prompts). For 1 and 32 clients, the routed scenario runs
`--rounds` times without and with a poller that does what an open dashboard does, only more
often: it fetches `GET /dashboard/panel?since=1h` (what the page's script asks for) and
`GET /admin/stats?since=1h` every `--poll` seconds (the page asks every 5 s). Rounds alternate,
so a machine that gets busier or quieter moves both columns alike; the spread between rounds of
the same kind is the noise to compare the difference with. Prints p50/p99/req/s per round and
the poller's own response times, and records them (bench/results/dashboard.json).
Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from proxy_overhead import (  # noqa: E402  (bench/ is on sys.path when run as a script)
    free_port,
    run_load,
    start,
    stop,
    wait_ready,
    write_configs,
)
from results import record  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


class Poller:
    """An open dashboard, refreshing every `every` seconds, in a thread of its own."""

    def __init__(self, url: str, every: float) -> None:
        self.url, self.every = url, every
        self.times: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=self.url, headers=auth, timeout=30) as c:
            while not self._stop.is_set():
                for path in ("/dashboard/panel?since=1h", "/admin/stats?since=1h"):
                    t0 = time.perf_counter()
                    try:
                        ok = c.get(path).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.times.append((time.perf_counter() - t0) * 1000)
                    self.errors += not ok
                self._stop.wait(self.every)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, default=200, help="requests per round at 1 client")
    ap.add_argument("--n32", type=int, default=1000, help="requests per round at 32 clients")
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between dashboard refreshes")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each kind per load")
    args = ap.parse_args()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
        "ROUTER_ADMIN_KEY": ADMIN_KEY,
    }
    env.pop("ROUTER_API_KEYS", None)
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    up_port, r_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    router_cfg, _ = write_configs(tmp, upstream)
    procs = []
    bench = str(Path(__file__).resolve().parent / "proxy_overhead.py")
    try:
        up = start([sys.executable, bench, "--serve-upstream", str(up_port)], tmp / "up.log", env)
        procs.append(up)
        wait_ready(f"http://127.0.0.1:{up_port}/", up, "upstream")
        cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(router_cfg)]
        rp = start([*cmd, "--port", str(r_port)], tmp / "router.log", env)
        procs.append(rp)
        proxy = f"http://127.0.0.1:{r_port}"
        wait_ready(f"{proxy}/ready", rp, "router proxy")
        url = f"{proxy}/v1/chat/completions"
        rows, polls = [], []
        scenario = 0
        for clients, n in ((1, args.n1), (32, args.n32)):
            for rnd in range(args.rounds):
                for dashboard in (False, True) if rnd % 2 == 0 else (True, False):
                    scenario += 1
                    if dashboard:
                        with Poller(proxy, args.poll) as poller:
                            res = run_load(url, "router", n, clients, {}, scenario)
                        polls += poller.times
                        res["poll_errors"] = poller.errors
                    else:
                        res = run_load(url, "router", n, clients, {}, scenario)
                    rows.append((clients, dashboard, rnd + 1, res))
                    state = "open" if dashboard else "closed"
                    print(
                        f"  {clients} client(s), dashboard {state}, round {rnd + 1}",
                        file=sys.stderr,
                    )
        print(
            f"\n{os.cpu_count()} cores; dashboard refreshed every {args.poll:g} s while open; "
            f"logs in {tmp}; load average {os.getloadavg()[0]:.1f}\n"
        )
        head = "| clients | dashboard | round | p50 ms | p99 ms | req/s | errors |"
        print(head)
        print("|---:|---|---:|---:|---:|---:|---:|")
        table = []
        for clients, dashboard, rnd, r in rows:
            cells = [
                clients,
                "open" if dashboard else "closed",
                rnd,
                round(r["p50"], 2),
                round(r["p99"], 2),
                round(r["rps"], 1),
                r["errors"],
            ]
            table.append(cells)
            print("| " + " | ".join(str(c) for c in cells) + " |")
        figures = {}
        print()
        for clients in (1, 32):
            for metric in ("p50", "p99", "rps"):
                closed = [r[metric] for c, d, _, r in rows if c == clients and not d]
                opened = [r[metric] for c, d, _, r in rows if c == clients and d]
                figures[f"c{clients}_{metric}_closed"] = round(statistics.median(closed), 2)
                figures[f"c{clients}_{metric}_open"] = round(statistics.median(opened), 2)
                spread = max(closed) - min(closed) if len(closed) > 1 else float("nan")
                print(
                    f"{clients:>2} client(s) {metric:>4}: closed {statistics.median(closed):8.2f}  "
                    f"open {statistics.median(opened):8.2f}  (spread of closed rounds {spread:.2f})"
                )
        if polls:
            polls.sort()
            figures["refresh_ms_p50"] = round(polls[len(polls) // 2], 1)
            figures["refresh_ms_p99"] = round(polls[min(len(polls) - 1, int(0.99 * len(polls)))], 1)
            print(
                f"\ndashboard refreshes: {len(polls)} fetches, p50 {figures['refresh_ms_p50']} ms, "
                f"p99 {figures['refresh_ms_p99']} ms"
            )
        record(
            "dashboard",
            title="An open dashboard against the proxy's routed requests",
            command=f"make bench-dashboard (python bench/dashboard_overhead.py --poll {args.poll:g})",
            figures=figures,
            tables=[
                {
                    "title": "Routed requests with the dashboard closed and open (alternating rounds)",
                    "columns": [
                        "clients",
                        "dashboard",
                        "round",
                        "p50 ms",
                        "p99 ms",
                        "req/s",
                        "errors",
                    ],
                    "rows": table,
                }
            ],
            notes=f"dashboard refreshed every {args.poll:g} s (the page: every 5 s)",
        )
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    main()
