"""`router serve --workers 2` as a real subprocess: both workers answer on one port, and
/metrics, whichever worker serves it, sums the requests of both (Prometheus multiprocess mode).
"""

from __future__ import annotations

import contextlib
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

from tests.conftest import serve_until_exit

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


@contextlib.contextmanager
def serving(cfg_path: Path, tmp_path: Path, workers: int = 2):
    """`router serve --workers N` in its own session until every worker answers; stopped with
    SIGTERM. Yields (base URL, metrics dir, the process)."""
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
    env.pop("ROUTER_PROCESSES", None)
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg_path)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", str(workers)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    answered: set[int] = set()
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"router serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not ready: {(tmp_path / 'serve.log').read_text()[-3000:]}")
            # Every worker up and serving: each answered /ready (a new connection each time,
            # so either may answer), past its start-up (local models, lifespan).
            try:
                r = httpx.get(url + "/ready", timeout=5)
                if r.status_code == 200:
                    answered.add(r.json()["pid"])
            except httpx.HTTPError:
                pass
            if len(answered) >= workers:
                break
            time.sleep(0.2)
        yield url, metrics_dir, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


@pytest.fixture
def two_workers(test_config, tmp_path):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    with serving(cfg_dir / "config.yaml", tmp_path) as (url, metrics_dir, _):
        yield url, metrics_dir


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


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below `pid`."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            try:
                cmd = Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            out.append((k, cmd))
            todo.append(k)
    return out


def test_workers_share_one_local_model_server_started_and_stopped_once(tmp_path, upstream):
    """Two workers, one llama.cpp server: both workers report the same server (same pid), the
    process tree holds one, and it is gone once `router serve` has stopped."""
    from tests.test_local import write_local_config

    cfg_path = write_local_config(tmp_path / "cfg", upstream.base_url)
    with serving(cfg_path, tmp_path) as (url, _, proc):
        servers = [c for c in _children(proc.pid) if "router.serving.llama_server" in c[1]]
        assert len(servers) == 1, servers
        (llama_pid, _), seen = servers[0], set()
        for _ in range(8):  # a new connection each time: either worker may answer
            with httpx.Client(timeout=30) as c:
                local = c.get(url + "/ready").json()["local_models"]["smollm2"]
            assert local["state"] == "ready" and local["pid"] == llama_pid, local
            seen.add(local["api_base"])
        assert len(seen) == 1
        body = {"model": "smollm2", "messages": [{"role": "user", "content": "Say hi."}]}
        body["max_tokens"] = 4
        with httpx.Client(timeout=120) as c:
            r = c.post(url + "/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["x-router-model"] == "smollm2", r.text
    assert proc.poll() is not None
    assert not Path(f"/proc/{llama_pid}").exists() or _is_zombie(llama_pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_workers_that_cannot_start_stop_serve_with_the_reason(test_config, tmp_path):
    """A worker that cannot build its app (here: its PostgreSQL decision log's URL has an option
    libpq refuses; a database that is merely down is waited for) makes `router serve --workers 2` exit with the reason, as one worker would, rather than be
    started again and again with the port bound and nothing answering."""
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    cfg_path = cfg_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    bad = f"postgresql://postgres@127.0.0.1:{_free_port()}/router?no_such_option=1"
    cfg["decision_log"] = bad
    cfg["server"] = {**cfg.get("server", {}), "keys_env": None}
    cfg_path.write_text(yaml.safe_dump(cfg))
    code, out = serve_until_exit(cfg_path, _free_port(), 2, START_S)  # not restarting them
    assert code == 2, out[-3000:]
    words = " ".join(out.split())  # the error line is wrapped to the terminal's width
    assert "error: a worker could not start: decision log postgresql" in words, out[-3000:]
    assert words.count("could not start") <= 3, out[-3000:]  # no restarts: each worker once
