"""`router serve --workers 2` as a real subprocess: both workers answer on one port, and
/metrics, whichever worker serves it, sums the requests of both (Prometheus multiprocess mode).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

START_S = 240  # two workers each load an encoder and a scorer on a busy 2-core machine
ROUND = 12
MAX_ROUNDS = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests_total(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("router_requests_total{") and 'status="200"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _per_worker_totals(metrics_dir: Path, tmp: Path) -> dict[int, float]:
    """Each worker's own count, read from its counter file alone."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for f in sorted(metrics_dir.glob("counter_*.db")):
        pid = int(f.stem.split("_")[1])
        one = tmp / f"only-{pid}"
        one.mkdir()
        shutil.copy(f, one / f.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(one))
        out[pid] = _requests_total(generate_latest(registry).decode())
    return out


@pytest.fixture
def two_workers(test_config, tmp_path):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    cfg_path = cfg_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["server"] = {**cfg.get("server", {}), "keys_env": None}
    cfg_path.write_text(yaml.safe_dump(cfg))
    metrics_dir = tmp_path / "metrics"
    port = _free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("ROUTER_API_KEYS", None)
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg_path)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"router serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not ready: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            # Both workers up: each has written its metric files (one pid each).
            pids = {f.stem.split("_")[-1] for f in metrics_dir.glob("*.db")}
            try:
                ready = httpx.get(url + "/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and len(pids) >= 2:
                break
            time.sleep(0.5)
        yield url, metrics_dir
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def test_two_workers_answer_and_metrics_sum_both(two_workers, tmp_path):
    url, metrics_dir = two_workers

    def ask(i: int) -> int:
        body = {
            "model": "router",
            "messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
        }
        # A new connection per request, so the kernel hands them to either worker.
        with httpx.Client(timeout=120) as c:
            r = c.post(url + "/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].startswith("echo: ")
        return r.status_code

    # Rounds of concurrent requests until both workers have answered some (the kernel picks
    # the worker per connection); bounded.
    sent = 0
    with ThreadPoolExecutor(6) as pool:
        for _ in range(MAX_ROUNDS):
            assert list(pool.map(ask, range(sent, sent + ROUND))) == [200] * ROUND
            sent += ROUND
            if len(list(metrics_dir.glob("counter_*.db"))) >= 2:
                break

    per_worker = _per_worker_totals(metrics_dir, tmp_path)
    assert len(per_worker) == 2, per_worker  # both processes answered requests
    assert all(n > 0 for n in per_worker.values()) and sum(per_worker.values()) == sent
    # Whichever worker answers the scrape, it reports the sum over both.
    for _ in range(6):
        with httpx.Client(timeout=30) as c:
            text = c.get(url + "/metrics").text
        assert _requests_total(text) == sent
        assert "router_routing_seconds_count" in text
