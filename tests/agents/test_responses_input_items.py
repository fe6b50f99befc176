"""GET /v1/responses/{id}/input_items driven by the official `openai` client
(`client.responses.input_items.list`): a stored response's own input as the API lists it, with
ids that stay the same, a page at a time in either order; the same ownership as GET
/v1/responses/{id}; 404 and 400 in the API's error shape."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from router.core.config import APIKeySpec
from router.server import create_app
from tests.proxy import Proxy

TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a city up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]
FIVE = [{"role": "user", "content": f"turn {i}"} for i in range(5)]


@pytest.fixture(scope="module")
def client(agent_proxy):
    with openai.OpenAI(base_url=agent_proxy.base_url, api_key="unused", max_retries=0) as c:
        yield c


def _raw(client, response_id: str, **query) -> dict:
    """The list object as sent (the client's page keeps only `data` and `has_more`)."""
    url = f"{client.base_url}responses/{response_id}/input_items"
    r = httpx.get(url, params=query, headers={"authorization": "Bearer unused"})
    assert r.status_code == 200, r.text
    return r.json()


def _texts(items) -> list[str]:
    return [item.content[0].text for item in items]


def test_the_input_items_are_the_requests_input_newest_first(client):
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    r = client.responses.create(
        model="router",
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "answer in French"},
            {"role": "assistant", "content": "bonjour"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is"},
                    {"type": "input_text", "text": "this picture"},
                    image,
                ],
            },
        ],
    )
    page = client.responses.input_items.list(r.id)
    items = page.data
    assert page.has_more is False
    # Newest first (order defaults to desc); the instructions are no input item.
    assert [(i.type, i.role) for i in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "developer"),
    ]
    user, assistant, developer = items
    assert [p.type for p in user.content] == ["input_text", "input_text", "input_image"]
    assert [p.text for p in user.content[:2]] == ["what is", "this picture"]
    assert user.content[2].image_url == image["image_url"] and user.content[2].detail == "auto"
    assert assistant.content[0].type == "output_text" and assistant.content[0].text == "bonjour"
    assert developer.content[0].model_dump(exclude_none=True) == {
        "type": "input_text",
        "text": "answer in French",
    }
    assert all(i.status == "completed" for i in items)
    ids = [i.id for i in items]
    assert len(set(ids)) == 3 and all(i.startswith("msg_") for i in ids)
    # The same ids on every call, in the order asked for; the list object as the API has it.
    raw = _raw(client, r.id)
    assert set(raw) == {"object", "data", "first_id", "last_id", "has_more"}
    assert raw["object"] == "list" and [i["id"] for i in raw["data"]] == ids
    assert (raw["first_id"], raw["last_id"], raw["has_more"]) == (ids[0], ids[-1], False)
    asc = client.responses.input_items.list(r.id, order="asc")
    assert [i.id for i in asc.data] == ids[::-1]
    # `include` is accepted (image URLs are always there).
    same = client.responses.input_items.list(r.id, include=["message.input_image.image_url"])
    assert [i.id for i in same.data] == ids


def test_pages_follow_the_cursors_in_both_orders(client):
    r = client.responses.create(model="router", input=FIVE)
    asc = [f"turn {i}" for i in range(5)]
    # The client follows `after` by itself, page after page.
    everything = client.responses.input_items.list(r.id, order="asc", limit=2)
    assert _texts(everything.data) == asc[:2] and everything.has_more is True
    assert _texts(everything) == asc
    assert _texts(client.responses.input_items.list(r.id, limit=2)) == asc[::-1]
    ids = [i.id for i in client.responses.input_items.list(r.id, order="asc").data]
    # One page at a time, by hand.
    page = _raw(client, r.id, order="asc", limit=2)
    assert (page["first_id"], page["last_id"], page["has_more"]) == (ids[0], ids[1], True)
    page = _raw(client, r.id, order="asc", limit=2, after=page["last_id"])
    assert [i["id"] for i in page["data"]] == ids[2:4] and page["has_more"] is True
    page = _raw(client, r.id, order="asc", limit=2, after=page["last_id"])
    assert [i["id"] for i in page["data"]] == ids[4:] and page["has_more"] is False
    page = _raw(client, r.id, order="asc", after=ids[4])
    assert page == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    # desc: `after` goes on to older items.
    page = _raw(client, r.id, limit=3, after=ids[3])
    assert [i["id"] for i in page["data"]] == ids[2::-1] and page["has_more"] is False
    page = _raw(client, r.id, limit=2, after=ids[4])
    assert [i["id"] for i in page["data"]] == [ids[3], ids[2]] and page["has_more"] is True
    # `before`: the items just before the cursor, in the order asked for.
    page = client.responses.input_items.list(
        r.id, order="asc", limit=2, extra_query={"before": ids[3]}
    )
    assert [i.id for i in page.data] == ids[1:3] and page.has_more is True
    page = _raw(client, r.id, order="asc", limit=5, before=ids[3])
    assert [i["id"] for i in page["data"]] == ids[:3] and page["has_more"] is False
    page = _raw(client, r.id, limit=2, before=ids[1])
    assert [i["id"] for i in page["data"]] == [ids[3], ids[2]] and page["has_more"] is True
    # Both: the items between them.
    page = _raw(client, r.id, order="asc", after=ids[0], before=ids[4])
    assert [i["id"] for i in page["data"]] == ids[1:4] and page["has_more"] is False


def test_a_continued_response_lists_its_own_input_and_calls_keep_their_ids(client):
    r1 = client.responses.create(model="large", input="weather in Paris?", tools=TOOLS)
    (call,) = [o for o in r1.output if o.type == "function_call"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    r2 = client.responses.create(
        model="large", previous_response_id=r1.id, input=[output], tools=TOOLS
    )
    # r2's input is the tool's output alone: r1's turn is r1's (and its items as they were).
    (item,) = client.responses.input_items.list(r2.id).data
    assert item.type == "function_call_output" and item.id.startswith("fco_")
    assert (item.call_id, item.output, item.status) == (call.call_id, "sunny", "completed")
    (first,) = client.responses.input_items.list(r1.id).data
    assert _texts([first]) == ["weather in Paris?"] and first.role == "user"
    # The whole loop sent back without previous_response_id: the call keeps the id it had.
    r3 = client.responses.create(
        model="large",
        input=[
            {"role": "user", "content": "weather in Paris?"},
            call.model_dump(exclude_none=True),
            {**output, "output": [{"type": "input_text", "text": "sunny"}]},
        ],
        tools=TOOLS,
    )
    items = client.responses.input_items.list(r3.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1].id == call.id and items[1].arguments == call.arguments
    assert items[1].name == "lookup" and items[1].call_id == call.call_id
    assert [p.model_dump(exclude_none=True) for p in items[2].output] == [
        {"type": "input_text", "text": "sunny"}
    ]


def test_a_streamed_response_has_its_input_items_too(client):
    events = list(client.responses.create(model="router", input="streamed input", stream=True))
    rid = events[-1].response.id
    (item,) = client.responses.input_items.list(rid).data
    assert _texts([item]) == ["streamed input"] and item.role == "user"


def test_an_unknown_deleted_or_unstored_response_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.input_items.list("resp_that_never_was")
    assert e.value.body["code"] == "response_not_found"
    assert e.value.body["param"] == "response_id"
    assert set(e.value.body) == {"message", "type", "param", "code"}
    r = client.responses.create(model="router", input="gone soon")
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(r.id)
    r = client.responses.create(model="router", input="not kept", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(r.id)


@pytest.mark.parametrize(
    "query, param",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"order": "newest"}, "order"),
        ({"order": "ASC"}, "order"),
        ({"after": "msg_not_in_this_list"}, "after"),
        ({"before": "msg_not_in_this_list"}, "before"),
        ({"after": ""}, "after"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(client, query, param):
    r = client.responses.create(model="router", input="a short list")
    url = f"{client.base_url}responses/{r.id}/input_items"
    got = httpx.get(url, params=query)
    assert got.status_code == 400, got.text
    error = got.json()["error"]
    assert error["param"] == param and error["message"].startswith(param)
    assert error["type"] == "invalid_request_error"
    # Through the client: the same 400.
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.input_items.list(r.id, extra_query=query)
    assert e.value.body["param"] == param
    # A bad limit or order is named even for a response that does not exist.
    if param in ("limit", "order"):
        assert httpx.get(url.replace(r.id, "resp_nope"), params=query).status_code == 400


def test_the_limits_are_inclusive_and_the_default_is_20(client):
    r = client.responses.create(
        model="router", input=[{"role": "user", "content": f"m{i}"} for i in range(25)]
    )
    assert len(_raw(client, r.id)["data"]) == 20 and _raw(client, r.id)["has_more"] is True
    assert len(_raw(client, r.id, limit=1)["data"]) == 1
    page = _raw(client, r.id, limit=100)
    assert len(page["data"]) == 25 and page["has_more"] is False


def test_a_response_stored_before_input_items_were_lists_them_from_its_messages(
    client, agent_proxy
):
    """A record of an older version (no "input"): its items come from the chat messages it
    kept, with ids derived from the response's id (the same on every call)."""
    store = agent_proxy.app.state.router.state
    r = client.responses.create(
        model="large", input=[{"role": "developer", "content": "be terse"}, FIVE[0]], tools=TOOLS
    )
    (call,) = [o for o in r.output if o.type == "function_call"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    r2 = client.responses.create(
        model="large", previous_response_id=r.id, input=[output], tools=TOOLS
    )
    for rid in (r.id, r2.id):
        rec = asyncio.run(store.get("response:" + rid))
        del rec["input"]
        asyncio.run(store.set("response:" + rid, rec, 600))
    items = client.responses.input_items.list(r.id, order="asc").data
    assert [(i.type, i.role) for i in items] == [("message", "developer"), ("message", "user")]
    assert _texts(items) == ["be terse", "turn 0"]
    assert [i.id for i in client.responses.input_items.list(r.id, order="asc").data] == [
        i.id for i in items
    ]
    (item,) = client.responses.input_items.list(r2.id).data
    assert item.type == "function_call_output" and (item.call_id, item.output) == (
        call.call_id,
        "sunny",
    )
    # The conversation goes on from it as before (its messages are read as they were).
    r3 = client.responses.create(model="large", previous_response_id=r2.id, input="thanks")
    assert r3.status == "completed"


def test_the_route_is_documented_and_counted_under_its_own_label(client, agent_proxy):
    op = agent_proxy.app.openapi()["paths"]["/v1/responses/{response_id}/input_items"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert names == {"response_id", "after", "before", "limit", "order", "include"}
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_counted")
    metrics = httpx.get(agent_proxy.url + "/metrics").text
    assert 'router_http_responses_total{path="/v1/responses/{id}/input_items",status="404"}' in (
        metrics
    )


# ---- ownership ----------------------------------------------------------------------------

ALICE = "sk-alice-lists-her-items-1"
BOB = "sk-bob-lists-his-items-22"
ADMIN = "sk-admin-lists-any-items-333"


@pytest.fixture(scope="module")
def keyed(agent_router):
    spec = agent_router.config.server.model_copy(
        update={
            "keys": (APIKeySpec(name="alice", key=ALICE), APIKeySpec(name="bob", key=BOB)),
            "keys_env": None,
            "admin_key": ADMIN,
            "decision_log": None,
        }
    )
    p = Proxy(create_app(agent_router, spec)).start()
    yield p
    p.stop()


def test_the_input_items_are_the_keys_and_the_admins(keyed):
    alice, bob, admin = (
        openai.OpenAI(base_url=keyed.base_url, api_key=k, max_retries=0)
        for k in (ALICE, BOB, ADMIN)
    )
    r = alice.responses.create(model="router", input="my secret plan")
    mine = alice.responses.input_items.list(r.id).data
    assert _texts(mine) == ["my secret plan"]
    # Another key's response is answered exactly as one that never was.
    with pytest.raises(openai.NotFoundError) as stolen:
        bob.responses.input_items.list(r.id)
    with pytest.raises(openai.NotFoundError) as unknown:
        bob.responses.input_items.list("resp_" + "0" * 32)
    assert stolen.value.body["code"] == unknown.value.body["code"] == "response_not_found"
    assert "my secret plan" not in str(stolen.value.body)
    # A cursor of hers tells Bob nothing either.
    with pytest.raises(openai.NotFoundError):
        bob.responses.input_items.list(r.id, after=mine[0].id)
    assert [i.id for i in admin.responses.input_items.list(r.id).data] == [i.id for i in mine]
    # No key, or a wrong one: 401.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=keyed.base_url, api_key="sk-wrong", max_retries=0
        ).responses.input_items.list(r.id)
