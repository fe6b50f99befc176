import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Tests never read or write the user's embedding cache.
os.environ["ROUTER_CACHE_DIR"] = tempfile.mkdtemp(prefix="router-test-cache-")

# Throwaway redis-server and PostgreSQL: skipped when absent, failures if ROUTER_REQUIRE_SERVERS=1.
from tests.servers import postgres_server, postgres_url, redis_server, redis_url  # noqa: E402,F401
from tests.upstream import Upstream  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The routing receipt's public keys (README, "The routing receipt").
RECEIPT_KEYS = {
    "model",
    "tier",
    "policy",
    "domain",
    "domain_confidence",
    "difficulty",
    "gain",
    "success",
    "reason",
    "fallbacks",
    "cost_estimate",
    "large_cost_estimate",
    "routing_ms",
    "session",
    "sticky",
    "request_id",
    "cascade",
    "budget",
}


@pytest.fixture(scope="session")
def upstream():
    up = Upstream().start()
    yield up
    up.stop()


def write_test_config(directory: Path, api_base: str, scorer: str = "default") -> Path:
    """A catalogue of test-upstream models and two policies; returns the config path."""
    (directory / "policies").mkdir(parents=True, exist_ok=True)
    cfg = directory / "config.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            scorer: {scorer}
            default_policy: balanced
            # Off: these tests count on every call reaching the upstream (test_breaker.py: on).
            breaker: {{failures: 0}}
            models:
              - name: small-general
                litellm_model: openai/small-general
                api_base: {api_base}
                input_price: 0.1
                output_price: 0.2
                context_window: 8000
                capabilities: [json, streaming]
                tier: small
              - name: small-math
                litellm_model: openai/small-math
                api_base: {api_base}
                input_price: 0.2
                output_price: 0.4
                context_window: 8000
                capabilities: [tools, json, streaming]
                tier: small
                profile: mistralai/Mixtral-8x7B-Instruct-v0.1
              - name: large
                litellm_model: openai/large
                api_base: {api_base}
                input_price: 5
                output_price: 15
                context_window: 128000
                capabilities: [tools, json, vision, streaming]
                tier: large
                profile: gpt-4-1106-preview
              - name: broken
                litellm_model: openai/fail-500
                api_base: {api_base}
                input_price: 0.05
                output_price: 0.05
                context_window: 8000
                capabilities: [tools, json, streaming]
                tier: small
              - name: keyless
                litellm_model: openai/small-general
                api_base: {api_base}
                api_key_env: ROUTER_TEST_KEY_THAT_IS_NOT_SET
                input_price: 0.05
                output_price: 0.05
                context_window: 8000
                capabilities: [json, streaming]
                tier: small
            """
        )
    )
    (directory / "policies" / "balanced.yaml").write_text(
        textwrap.dedent(
            """
            name: balanced
            default: [small-general]
            domains:
              math: [small-math]
            large: [large]
            escalation:
              min_domain_confidence: 0.2
              max_difficulty: 0.6
            """
        )
    )
    (directory / "policies" / "flaky.yaml").write_text(
        textwrap.dedent(
            """
            name: flaky
            description: the cheap choice is broken or keyless, so calls must fall back
            default: [keyless, broken]
            large: [large]
            fallbacks: [broken, large]
            escalation:
              max_difficulty: 1.0
            """
        )
    )
    return cfg


@pytest.fixture(scope="session")
def test_config(tmp_path_factory, upstream) -> Path:
    return write_test_config(tmp_path_factory.mktemp("cfg"), upstream.base_url)


@pytest.fixture(scope="session")
def router(test_config):
    from router import Router

    return Router.from_config(test_config)


def decision_rows(db: Path | str) -> dict[str, dict]:
    """A SQLite decision log's rows by request id."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return {r["request_id"]: dict(r) for r in con.execute("SELECT * FROM decisions")}
    finally:
        con.close()


def serve_until_exit(cfg_path: Path, port: int, workers: int, timeout: float) -> tuple[int, str]:
    """`router serve` run in a subprocess until it exits by itself: (its exit code, its output).
    Killed and failed if it is still running after `timeout` seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("ROUTER_PROCESSES", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg_path)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"router serve did not stop by itself: {out[-3000:]}")
    return proc.returncode, out


@pytest.fixture(scope="module")
def cascade_upstream():
    """The cascade tests' loopback upstream (tests/cascade_upstream.py), one per module."""
    from tests.cascade_upstream import CascadeUpstream

    up = CascadeUpstream().start()
    yield up
    up.stop()
