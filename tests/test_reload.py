"""Hot reload: POST /admin/reload and SIGHUP swap scorer, policies and catalogue at once; a bad
config is refused and the old one keeps serving; requests in flight finish on the old router;
no request fails while reloads happen under load; /ready shows the versions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.learning import (
    ADMIN_KEY,
    USER_KEY,
    chat,
    model,
    router_for,
    serve,
    wait_for,
    write_config,
)
from tests.upstream import Upstream

AUTH = {"authorization": f"Bearer {USER_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SERVER = {"keys": [{"name": "user", "key": USER_KEY}], "keys_env": None, "admin_key": ADMIN_KEY}


@pytest.fixture(scope="module")
def own_upstream():
    up = Upstream(keep_requests=False).start()  # its own: a test holds its gate
    yield up
    up.gate.set()
    up.stop()


def policy_file(cfg, name="balanced", **body):
    (cfg.parent / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(body))


@pytest.fixture
def served(tmp_path, own_upstream, router):
    cfg = write_config(tmp_path, own_upstream.base_url, server=SERVER)
    proxy = serve(router_for(cfg, like=router))
    yield cfg, proxy
    proxy.stop()


def test_reload_needs_the_admin_key(served):
    cfg, proxy = served
    with httpx.Client(base_url=proxy.url, timeout=60) as c:
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload", headers={"authorization": "Bearer nope"}).status_code == 401
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
        r = c.post("/admin/reload", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "reloaded"
        assert r.json()["changed"] == {"scorer": False, "config": False}


def test_a_reload_swaps_policies_and_ready_shows_the_versions(served):
    cfg, proxy = served
    with httpx.Client(base_url=proxy.url, timeout=60, headers=AUTH) as c:
        before = c.get("/ready").json()["versions"]
        assert before["scorer"]["hash"] and before["config"]["hash"] and before["loaded_at"]
        assert before["reloads"] == 0
        assert chat(c, "What is 2 + 2?").headers["x-router-model"] == "cheap"
        # Every request escalates now: no gain is below 0.
        policy_file(cfg, default=["cheap"], large=["large"], escalation={"max_gain": 0.0})
        r = c.post("/admin/reload", headers=ADMIN)
        assert r.status_code == 200 and r.json()["changed"] == {"scorer": False, "config": True}
        assert chat(c, "What is 2 + 2?").headers["x-router-model"] == "large"
        after = c.get("/ready").json()["versions"]
        assert after["config"]["hash"] != before["config"]["hash"]
        assert after["scorer"]["hash"] == before["scorer"]["hash"]
        assert after["reloads"] == 1
        page = c.get("/metrics").text
        assert 'router_reloads_total{result="ok"} 1.0' in page


def test_a_bad_config_is_refused_and_the_old_one_keeps_serving(served):
    cfg, proxy = served
    with httpx.Client(base_url=proxy.url, timeout=60, headers=AUTH) as c:
        before = c.get("/ready").json()["versions"]
        policy_file(cfg, default=["no-such-model"], large=["large"])
        r = c.post("/admin/reload", headers=ADMIN)
        assert r.status_code == 422
        msg = r.json()["error"]["message"]
        assert "balanced.yaml" in msg and "default[0]" in msg and "no-such-model" in msg
        # A broken config.yaml is refused the same way.
        policy_file(cfg, default=["cheap"], large=["large"])
        good = cfg.read_text()
        cfg.write_text(good.replace("default_policy: balanced", "default_policy: [oops"))
        r = c.post("/admin/reload", headers=ADMIN)
        assert r.status_code == 422 and "config.yaml" in r.json()["error"]["message"]
        # So is a default_policy that names no policy file, before a request meets it.
        cfg.write_text(good.replace("default_policy: balanced", "default_policy: balancd"))
        r = c.post("/admin/reload", headers=ADMIN)
        msg = r.json()["error"]["message"]
        assert r.status_code == 422 and "default_policy" in msg and "balancd" in msg
        # And an API key's policy that names none.
        keyed = yaml.safe_load(good)
        keyed["server"]["keys"][0]["policy"] = "balancd"
        cfg.write_text(yaml.safe_dump(keyed))
        r = c.post("/admin/reload", headers=ADMIN)
        msg = r.json()["error"]["message"]
        assert r.status_code == 422 and "server.keys[0].policy" in msg and "balancd" in msg
        # The old router still answers, and /ready says what was refused.
        assert chat(c, "Still there?").status_code == 200
        ready = c.get("/ready").json()["versions"]
        assert ready["config"]["hash"] == before["config"]["hash"]
        assert "config.yaml" in ready["last_reload_error"]
        cfg.write_text(good)
        assert c.post("/admin/reload", headers=ADMIN).status_code == 200
        assert "last_reload_error" not in c.get("/ready").json()["versions"]


def test_requests_in_flight_finish_on_the_old_router(tmp_path, own_upstream, router):
    own_upstream.gate.clear()
    models = [
        model("cheap", "cheap", own_upstream.base_url),
        model("large", "large", own_upstream.base_url, tier="large"),
        model("waiting", "gated", own_upstream.base_url, timeout=60),
    ]
    cfg = write_config(
        tmp_path,
        own_upstream.base_url,
        models=models,
        server=SERVER,
        policies={"balanced": {"default": ["waiting"], "large": ["large"]}},
    )
    proxy = serve(router_for(cfg, like=router))
    try:
        results = {}

        def in_flight():
            with httpx.Client(base_url=proxy.url, timeout=120, headers=AUTH) as c:
                results["r"] = chat(c, "A slow one, please.")

        t = threading.Thread(target=in_flight)
        t.start()
        wait_for(lambda: own_upstream.calls["gated"] >= 1, what="the gated call")
        # The new config no longer has the model the in-flight request is waiting on.
        data = yaml.safe_load(cfg.read_text())
        data["models"] = [m for m in data["models"] if m["name"] != "waiting"]
        cfg.write_text(yaml.safe_dump(data))
        policy_file(cfg, default=["cheap"], large=["large"])
        with httpx.Client(base_url=proxy.url, timeout=60, headers=AUTH) as c:
            assert c.post("/admin/reload", headers=ADMIN).status_code == 200
            assert chat(c, "A new one.").headers["x-router-model"] == "cheap"
            assert t.is_alive()  # still waiting on the old router's model
            own_upstream.gate.set()
            t.join(60)
        r = results["r"]
        assert r.status_code == 200 and r.headers["x-router-model"] == "waiting"
    finally:
        own_upstream.gate.set()
        proxy.stop()


def test_no_request_fails_while_reloading_under_load(served):
    cfg, proxy = served
    stop = threading.Event()
    statuses: list[int] = []
    models_seen: set[str] = set()
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=proxy.url, timeout=120, headers=AUTH) as c:
            i = 0
            while not stop.is_set():
                r = chat(c, f"Client {n} asks question {i}.")
                with lock:
                    statuses.append(r.status_code)
                    models_seen.add(r.headers.get("x-router-model", "?"))
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=proxy.url, timeout=120) as admin:
            for k in range(6):
                # Alternate between a cheap-only and an escalate-everything policy.
                esc = {"max_gain": 0.0} if k % 2 == 0 else {"max_difficulty": 1.0}
                policy_file(cfg, default=["cheap"], large=["large"], escalation=esc)
                wait_for(lambda: len(statuses) > 0, what="traffic")
                r = admin.post("/admin/reload", headers=ADMIN)
                assert r.status_code == 200, r.text
                seen = len(statuses)
                wait_for(lambda s=seen: len(statuses) >= s + 4, what="requests after a reload")
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert statuses and set(statuses) == {200}, {s for s in statuses if s != 200}
    assert models_seen == {"cheap", "large"}  # both configs really served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sighup_reloads_router_serve(tmp_path, own_upstream):
    port = _free_port()
    cfg = write_config(
        tmp_path,
        own_upstream.base_url,
        server={**SERVER, "port": port},
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        # One process reloads in place; with workers, uvicorn's supervisor answers SIGHUP by
        # replacing them one by one (each loads the new config: no in-place reload to count).
        [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def ready():
            try:
                return httpx.get(url + "/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                return False

        wait_for(ready, timeout=180, what="router serve")
        with httpx.Client(base_url=url, timeout=60, headers=AUTH) as c:
            assert chat(c, "Hello there.").headers["x-router-model"] == "cheap"
            policy_file(cfg, default=["cheap"], large=["large"], escalation={"max_gain": 0.0})
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: c.get("/ready").json()["versions"]["reloads"] == 1, what="SIGHUP reload"
            )
            assert chat(c, "Hello there.").headers["x-router-model"] == "large"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            time.sleep(0.1)


def test_a_reload_reaches_every_process_sharing_redis(tmp_path, own_upstream, router, redis_url):
    # Two proxies (think: two replicas) on one config file and one Redis.
    cfg = write_config(
        tmp_path, own_upstream.base_url, server=SERVER, state=redis_url, decision_log=None
    )
    a = serve(router_for(cfg, like=router))
    b = serve(router_for(cfg, like=router))
    try:
        with httpx.Client(timeout=60, headers=AUTH) as c:
            assert chat_at(c, b, "Hi?").headers["x-router-model"] == "cheap"
            policy_file(cfg, default=["cheap"], large=["large"], escalation={"max_gain": 0.0})
            r = c.post(a.url + "/admin/reload", headers=ADMIN)
            assert r.status_code == 200
            # B was not asked: it sees the generation bump in Redis and reloads itself.
            wait_for(
                lambda: c.get(b.url + "/ready").json()["versions"]["reloads"] == 1,
                what="the other process's reload",
            )
            assert chat_at(c, b, "Hi?").headers["x-router-model"] == "large"
            assert c.get(a.url + "/ready").json()["versions"]["reloads"] == 1  # no echo
    finally:
        a.stop()
        b.stop()


def chat_at(client, proxy, text):
    return client.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "router", "messages": [{"role": "user", "content": text}]},
    )


def _scorer_version(root, name, source, domain_temperature_times=1.0):
    """scorers/<name>: a copy of `source`, its domain head's temperature scaled (so its
    domain confidence tells it apart) and its version recorded as `router retrain` does."""
    import json
    import shutil

    shutil.copytree(source, root / name)
    meta_path = root / name / "scorer.json"
    meta = json.loads(meta_path.read_text())
    meta["domain_temperature"] *= domain_temperature_times
    meta["version"] = name
    meta_path.write_text(json.dumps(meta))


def test_a_reload_after_scorers_current_moved_serves_the_new_version(
    tmp_path, own_upstream, router
):
    # The second retrain (and every rollback) leaves the config's `scorer: scorers/current`
    # as it was and only moves the link: the reload must still load the version it points at.
    from router import Router
    from router.core.config import load_config, load_policies
    from router.core.data import domain_names
    from router.core.scorer import Scorer, configured_scorer_path
    from router.learning.retrain import point_current

    root = tmp_path / "scorers"
    root.mkdir()
    shipped = configured_scorer_path("default", ROOT)
    _scorer_version(root, "v0001", shipped)
    _scorer_version(root, "v0002", shipped, domain_temperature_times=50.0)
    point_current(root, "v0001")
    cfg = write_config(tmp_path, own_upstream.base_url, server=SERVER, scorer="scorers/current")
    config = load_config(cfg)
    policies = load_policies(cfg.parent / "policies", config, domain_names())
    # A scorer of its own (not the session's): loaded from v0001, as `router serve` would.
    first = Router(config, policies, Scorer.load(root / "current"), router.encoder)
    first.base_dir, first.config_path = cfg.parent.resolve(), cfg.resolve()
    proxy = serve(first)
    body = {"model": "router", "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]}
    try:
        with httpx.Client(base_url=proxy.url, timeout=60, headers=AUTH) as c:

            def confidence():
                r = c.post("/v1/route", json=body)
                assert r.status_code == 200, r.text
                return r.json()["domain_confidence"]

            before = confidence()
            assert c.get("/ready").json()["versions"]["scorer"]["version"] == "v0001"
            point_current(root, "v0002")  # what a promotion does
            r = c.post("/admin/reload", headers=ADMIN)
            assert r.status_code == 200, r.text
            assert r.json()["changed"]["scorer"] is True
            assert r.json()["versions"]["scorer"]["version"] == "v0002"
            flat = confidence()
            assert flat < before - 0.05, (flat, before)  # v0002's hot domain head answers
            point_current(root, "v0001")  # what a rollback does
            r = c.post("/admin/reload", headers=ADMIN)
            assert r.status_code == 200 and r.json()["changed"]["scorer"] is True
            assert c.get("/ready").json()["versions"]["scorer"]["version"] == "v0001"
            assert confidence() == pytest.approx(before)
            # Nothing moved: the scorer object is kept (a reload does not re-read its weights).
            held = proxy.app.state.router.scorer
            assert c.post("/admin/reload", headers=ADMIN).json()["changed"]["scorer"] is False
            assert proxy.app.state.router.scorer is held
    finally:
        proxy.stop()


def test_a_cache_a_reload_replaced_is_closed_after_the_swap(
    tmp_path, own_upstream, router, redis_url, monkeypatch
):
    """Its Redis connections were left open for ever: one more pool at every such reload."""
    import redis

    from router.server import admin

    monkeypatch.setattr(admin, "OLD_CACHE_CLOSE_S", 0.2)
    cache = {"mode": "exact", "store": redis_url}
    cfg = write_config(tmp_path, own_upstream.base_url, server=SERVER, cache=cache)
    proxy = serve(router_for(cfg, like=router))
    probe = redis.Redis.from_url(redis_url)

    def clients() -> int:
        return sum(1 for c in probe.client_list() if c.get("cmd") != "client|list")

    try:
        with httpx.Client(base_url=proxy.url, timeout=60, headers=AUTH) as c:
            assert chat(c, "What is 7 + 7?").status_code == 200  # the cache connects
            before = clients()
            assert before >= 1
            text = cfg.read_text().replace(f"store: {redis_url}", "store: null")
            assert text != cfg.read_text()
            cfg.write_text(text)
            assert c.post("/admin/reload", headers=ADMIN).status_code == 200
            assert chat(c, "What is 7 + 7?").status_code == 200  # on the new, in-process cache
            wait_for(lambda: clients() < before, what="the old cache's connections closed")
    finally:
        probe.close()
        proxy.stop()
