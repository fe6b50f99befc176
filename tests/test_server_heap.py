"""`router serve` settles its heap once started: start-up's objects are collected and frozen
(gc.freeze) before the first request, so no full collection walks them while requests are in
flight (the first burst after each start had a 250-360 ms stall: docs/performance.md)."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from router.cli import app as cli


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()  # whatever an earlier test left
    yield
    gc.unfreeze()


def test_serve_freezes_the_started_heap_before_the_first_request(test_config, monkeypatch):
    import uvicorn

    seen = {}

    def fake_run(application, host, port, **kw):
        # The lifespan's start-up, as uvicorn runs it before accepting (a loopback Host).
        with TestClient(application, base_url="http://127.0.0.1") as client:
            seen["frozen"] = gc.get_freeze_count()  # before any request
            seen["status"] = client.get("/health").status_code
        seen["after"] = gc.get_freeze_count()

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr("router.server.logs.configure", lambda *a, **k: None)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    assert gc.get_freeze_count() == 0
    args = ["serve", "--config", str(test_config), "--port", "8125", "--workers", "1"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert seen["frozen"] > 10_000 and seen["status"] == 200  # litellm, FastAPI, the router
    assert seen["after"] == 0  # unfrozen when it stops


def test_each_worker_freezes_its_started_heap(test_config, tmp_path, monkeypatch):
    from router.server import run

    lock = tmp_path / "start.lock"
    lock.touch()
    monkeypatch.setenv(run.CONFIG_ENV, str(test_config))
    monkeypatch.setenv(run.START_LOCK_ENV, str(lock))
    monkeypatch.delenv(run.LOCAL_STATE_ENV, raising=False)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    monkeypatch.setattr("router.server.logs.configure", lambda *a, **k: None)
    application = run.worker_app()
    assert gc.get_freeze_count() == 0  # built, not started
    with TestClient(application):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_an_app_not_served_by_router_serve_leaves_the_heap_alone(router):
    from router.server.app import create_app

    with TestClient(
        create_app(router, router.config.server.model_copy(update={"decision_log": None}))
    ):
        assert gc.get_freeze_count() == 0
