"""Data belongs to its key: feedback, stored responses and `previous_response_id` chains are
the business of the API key that made the request, or of the admin key. To any other key they
do not exist (404, not 403: an id reveals nothing). Two real keys through the real proxy."""

from __future__ import annotations

import httpx
import openai
import pytest

from router.core.config import APIKeySpec
from router.server import create_app
from tests.proxy import Proxy, shared_server_router

ALICE = "sk-alice-owns-her-data-1"
BOB = "sk-bob-owns-his-data-22"
ADMIN = "sk-admin-of-the-proxy-333"


@pytest.fixture(scope="module")
def proxy(test_config, tmp_path_factory, upstream):
    router = shared_server_router(test_config, tmp_path_factory, upstream)
    spec = router.config.server.model_copy(
        update={
            "keys": (APIKeySpec(name="alice", key=ALICE), APIKeySpec(name="bob", key=BOB)),
            "keys_env": None,
            "admin_key": ADMIN,
            "decision_log": str(tmp_path_factory.mktemp("owners") / "d.db"),
        }
    )
    p = Proxy(create_app(router, spec)).start()
    yield p
    p.stop()


def _http(proxy, key: str) -> httpx.Client:
    return httpx.Client(base_url=proxy.url, headers={"authorization": f"Bearer {key}"}, timeout=120)


def _openai(proxy, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0)


def _asked_by(proxy, key: str, stream: bool = False) -> str:
    """The request id of a chat answer to `key`."""
    body = {"model": "router", "messages": [{"role": "user", "content": "hello there"}]}
    with _http(proxy, key) as c:
        if stream:
            with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
                assert r.status_code == 200
                r.read()
                return r.headers["x-request-id"]
        r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return r.headers["x-request-id"]


def _feedback(proxy, key: str, rid: str, score: float) -> httpx.Response:
    with _http(proxy, key) as c:
        return c.post("/v1/feedback", json={"request_id": rid, "score": score})


@pytest.mark.parametrize("stream", [False, True])
def test_only_the_requests_key_or_the_admin_key_can_score_it(proxy, stream):
    rid = _asked_by(proxy, ALICE, stream)
    unknown = _feedback(proxy, BOB, "req_that_never_was", 1.0)
    stolen = _feedback(proxy, BOB, rid, 0.0)
    # Another key's request is answered exactly as an unknown one: nothing to tell them apart.
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert stolen.json()["error"]["param"] == "request_id"
    assert _feedback(proxy, ALICE, rid, 1.0).status_code == 200
    assert _feedback(proxy, ADMIN, rid, 0.5).status_code == 200
    assert proxy.decision_log.flush(60)
    (mine,) = proxy.decision_log.outcomes_of(rid)
    assert mine["score"] == 0.5 and mine["revision"] == 2  # Alice's, then the admin's; not Bob's


def test_a_stored_response_is_its_keys_and_the_admins(proxy):
    alice, bob, admin = _openai(proxy, ALICE), _openai(proxy, BOB), _openai(proxy, ADMIN)
    r = alice.responses.create(model="router", input="keep me")
    with pytest.raises(openai.NotFoundError) as e:
        bob.responses.retrieve(r.id)
    assert e.value.status_code == 404 and e.value.body["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(r.id)
    assert alice.responses.retrieve(r.id).output_text == "echo: keep me"  # Bob deleted nothing
    assert admin.responses.retrieve(r.id).id == r.id
    admin.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(r.id)
    # The admin key reads stored data; it is no API key to make requests with.
    with pytest.raises(openai.AuthenticationError):
        admin.responses.create(model="router", input="x")


def test_a_conversation_is_continued_only_by_its_key(proxy):
    alice, bob = _openai(proxy, ALICE), _openai(proxy, BOB)
    first = alice.responses.create(model="router", input="my secret plan")
    with pytest.raises(openai.NotFoundError) as e:
        bob.responses.create(model="router", previous_response_id=first.id, input="go on")
    assert e.value.body["param"] == "previous_response_id"
    assert "my secret plan" not in str(e.value.body)
    # Alice goes on; her next turn is hers alone as well.
    second = alice.responses.create(model="router", previous_response_id=first.id, input="more")
    assert second.output_text == "echo: more"
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model="router", previous_response_id=second.id, input="x")
    third = alice.responses.create(model="router", previous_response_id=second.id, input="last")
    assert third.output_text == "echo: last"


def test_an_output_item_is_referred_to_only_by_its_key(proxy):
    """An `item_reference` (the Vercel AI SDK's way of sending an earlier answer back) to
    another key's output item is answered as one to an item that never was."""
    alice, bob = _openai(proxy, ALICE), _openai(proxy, BOB)
    first = alice.responses.create(model="router", input="my secret answer")
    item = {"type": "item_reference", "id": first.output[0].id}
    question = {"role": "user", "content": "what did you say?"}
    unknown = {"type": "item_reference", "id": "msg_that_never_was"}
    errors = []
    for ref in (item, unknown):
        with pytest.raises(openai.NotFoundError) as e:
            bob.responses.create(model="router", input=[ref, question])
        errors.append(e.value.body)
    assert errors[0]["param"] == errors[1]["param"] == "input[0].id"
    assert errors[0]["code"] == errors[1]["code"] == "item_not_found"
    assert "secret" not in str(errors[0])
    mine = alice.responses.create(model="router", input=[item, question])
    assert mine.output_text == "echo: what did you say?"
