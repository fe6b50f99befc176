"""Feedback: POST /v1/feedback on the proxy and `Router.feedback` in the SDK, stored as outcomes
of the decision log; /v1/route rows; the proxy on PostgreSQL through an outage."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from router import Router
from router.server import create_app
from tests.proxy import Proxy, router_from, shared_server_router

KEY = "sk-feedback-test-key-1234"
PROMPT = "Write a haiku about the sea."


@pytest.fixture(scope="session")
def server_router(test_config, tmp_path_factory, upstream) -> Router:
    return shared_server_router(test_config, tmp_path_factory, upstream)


@pytest.fixture(scope="module")
def proxy(server_router, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("ROUTER_FEEDBACK_TEST_KEYS", KEY)
    spec = server_router.config.server.model_copy(
        update={
            "decision_log": str(tmp_path_factory.mktemp("fb") / "d.db"),
            "keys_env": "ROUTER_FEEDBACK_TEST_KEYS",
        }
    )
    p = Proxy(create_app(server_router, spec)).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture
def http(proxy):
    with httpx.Client(
        base_url=proxy.url, headers={"authorization": f"Bearer {KEY}"}, timeout=120
    ) as c:
        yield c


def _chat(http) -> str:
    r = http.post(
        "/v1/chat/completions",
        json={"model": "router", "messages": [{"role": "user", "content": PROMPT}]},
    )
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def _row(proxy, rid: str) -> dict:
    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    con.row_factory = sqlite3.Row
    try:
        return dict(con.execute("SELECT * FROM decisions WHERE request_id=?", (rid,)).fetchone())
    finally:
        con.close()


def test_feedback_is_recorded_and_idempotent(http, proxy):
    rid = _chat(http)
    row = _row(proxy, rid)
    # What retraining needs, and no prompt text by default.
    assert row["kind"] == "chat" and row["embedding"] is not None and row["encoder"]
    assert row["routing_text"] is None and row["prompt"] is None and row["gain"] is not None
    for _ in range(2):  # the same feedback twice: one outcome, two revisions
        r = http.post("/v1/feedback", json={"request_id": rid, "score": "up"})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "object": "feedback",
            "request_id": rid,
            "score": 1.0,
            "model": None,
            "source": "feedback",
        }
    r = http.post("/v1/feedback", json={"request_id": rid, "score": 0.25})
    assert r.status_code == 200
    r = http.post("/v1/feedback", json={"request_id": rid, "score": "down", "model": "large"})
    assert r.status_code == 200 and r.json()["model"] == "large"
    proxy.decision_log.flush()
    got = {o["model"]: o for o in proxy.decision_log.outcomes_of(rid)}
    assert got[None]["score"] == 0.25 and got[None]["revision"] == 3  # last write wins
    assert got["large"]["score"] == 0.0 and got["large"]["source"] == "feedback"


def test_a_hostile_feedback_body_is_a_400_not_a_500(http):
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"request_id": "r", "score": ' + b"9" * 5000 + b"}",
    ):
        r = http.post("/v1/feedback", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text


def test_feedback_right_after_the_answer_finds_the_queued_row(http, proxy):
    # No flush in between: the row may still be queued for the writer thread.
    rid = _chat(http)
    assert http.post("/v1/feedback", json={"request_id": rid, "score": 1}).status_code == 200


def test_unknown_request_id_is_404(http):
    r = http.post("/v1/feedback", json={"request_id": "req_nope", "score": 1})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["param"] == "request_id" and err["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"score": 1}, "request_id"),
        ({"request_id": "", "score": 1}, "request_id"),
        ({"request_id": 7, "score": 1}, "request_id"),
        ({"request_id": "req_x"}, "score"),
        ({"request_id": "req_x", "score": 1.5}, "score"),
        ({"request_id": "req_x", "score": -1}, "score"),
        ({"request_id": "req_x", "score": "meh"}, "score"),
        ({"request_id": "req_x", "score": True}, "score"),
        ({"request_id": "req_x", "score": None}, "score"),
        ({"request_id": "req_x", "score": 1, "model": "gpt-99"}, "model"),
        ({"request_id": "req_x", "score": 1, "comment": "great"}, "comment"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(http, body, field):
    r = http.post("/v1/feedback", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and err["message"].startswith(field)
    assert err["type"] == "invalid_request_error"


def test_not_json_is_400(http):
    r = http.post("/v1/feedback", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = http.post("/v1/feedback", json=[1, 2])
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("body")


def test_feedback_needs_the_same_auth_as_chat(proxy):
    r = httpx.post(proxy.url + "/v1/feedback", json={"request_id": "x", "score": 1}, timeout=60)
    assert r.status_code == 401
    r = httpx.post(
        proxy.url + "/v1/feedback",
        json={"request_id": "x", "score": 1},
        headers={"authorization": "Bearer wrong-key-123456789"},
        timeout=60,
    )
    assert r.status_code == 401


def test_route_writes_a_row_that_takes_feedback(http, proxy):
    r = http.post(
        "/v1/route", json={"model": "router", "messages": [{"role": "user", "content": PROMPT}]}
    )
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert r.json()["request_id"] == rid
    row = _row(proxy, rid)
    assert row["kind"] == "route" and row["embedding"] is not None and row["status"] == 200
    assert http.post("/v1/feedback", json={"request_id": rid, "score": 0}).status_code == 200


def test_feedback_without_a_decision_log_is_503(server_router):
    spec = server_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    p = Proxy(create_app(server_router, spec)).start()
    try:
        r = httpx.post(p.url + "/v1/feedback", json={"request_id": "x", "score": 1}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "decision_log_off"
    finally:
        p.stop()


def test_store_text_keeps_the_routing_text(test_config, server_router, tmp_path):
    import yaml

    cfg = yaml.safe_load(test_config.read_text())
    cfg["decision_log"] = {"url": str(tmp_path / "t.db"), "store_text": True}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "policies").symlink_to(test_config.parent / "policies")
    r = router_from(path, server_router)
    p = Proxy(create_app(r, r.config.server.model_copy(update={"keys_env": None}))).start()
    try:
        resp = httpx.post(
            p.url + "/v1/chat/completions",
            json={"model": "router", "messages": [{"role": "user", "content": PROMPT}]},
            timeout=120,
        )
        assert resp.status_code == 200
        row = _row(p, resp.headers["x-request-id"])
        assert row["routing_text"] == PROMPT and row["prompt"] is None
    finally:
        p.stop()


# ---- the SDK ------------------------------------------------------------------------------


def test_sdk_feedback(router, tmp_path):
    with pytest.raises(RuntimeError, match="decision log"):
        router.feedback("req_x", 1.0)
    log = router.open_decision_log(tmp_path / "sdk.db")
    try:
        res = router.chat(PROMPT)
        rid = res.decision.request_id
        assert rid and rid.startswith("req_")
        router.feedback(rid, "down")
        router.feedback(rid, 0.75)
        with pytest.raises(KeyError):
            router.feedback("req_unknown", 1.0)
        with pytest.raises(ValueError):
            router.feedback(rid, 3)
        log.flush()
        (o,) = log.outcomes_of(rid)
        assert o["score"] == 0.75 and o["revision"] == 2 and o["source"] == "feedback"
        con = sqlite3.connect(tmp_path / "sdk.db")
        kind, emb, model = con.execute(
            "SELECT kind, embedding, model FROM decisions WHERE request_id=?", (rid,)
        ).fetchone()
        assert kind == "sdk.chat" and emb is not None and model == res.decision.model
    finally:
        log.close()
        router.decision_log = None


# ---- the proxy on PostgreSQL, through an outage ---------------------------------------------


def test_proxy_on_postgres_keeps_answering_through_an_outage(
    server_router, postgres_url, postgres_server
):
    spec = server_router.config.server.model_copy(
        update={"decision_log": postgres_url, "keys_env": None}
    )
    p = Proxy(create_app(server_router, spec)).start()
    ids: list[str] = []
    body = {"model": "router", "messages": [{"role": "user", "content": PROMPT}]}
    try:
        with httpx.Client(base_url=p.url, timeout=120) as c:
            for _ in range(5):
                r = c.post("/v1/chat/completions", json=body)
                assert r.status_code == 200
                ids.append(r.headers["x-request-id"])
            assert p.decision_log.flush(60)
            # The fixture runs with synchronous_commit=off: make the committed rows durable
            # before the crash, so only the outage itself is tested.
            postgres_server.query("CHECKPOINT", postgres_url.rsplit("/", 1)[1])
            postgres_server.kill()
            try:
                for _ in range(10):  # the database is down: answers still come
                    r = c.post("/v1/chat/completions", json=body)
                    assert r.status_code == 200
                    ids.append(r.headers["x-request-id"])
                r = c.post("/v1/feedback", json={"request_id": ids[-1], "score": 1})
                assert r.status_code == 200  # the row is buffered: its id is known
                metrics = c.get("/metrics").text
                assert "router_decision_log_up 0.0" in metrics
                ready = c.get("/ready")
                # Degraded, yet ready: the rows wait in the spool, none is lost.
                assert ready.json()["status"] == "degraded" and ready.status_code == 200
            finally:
                postgres_server.start()
            assert p.decision_log.flush(120)
            assert c.get("/ready").status_code == 200
            assert "router_decision_log_dropped_total 0.0" in c.get("/metrics").text
    finally:
        p.stop()
    written = postgres_server.query(
        "SELECT count(*) FROM decisions", postgres_url.rsplit("/", 1)[1]
    ).strip()
    assert int(written) == len(ids) == 15
