"""`item_reference` input items of the Responses API, as the Vercel AI SDK sends them.

`@ai-sdk/openai`'s Responses model (the default of `openai(...)`) stores its answers and sends a
conversation whole on every turn, each earlier answer as `{"type": "item_reference", "id":
"msg_..."}` rather than its text. The proxy puts the output item the id names (of a response the
same key stored) in its place; an id it does not know is OpenAI's 404 naming the item. These
reproduce the client's bodies with raw HTTP (the AI SDK itself is not part of the suite)."""

from __future__ import annotations

import json

import httpx
import pytest

TOOLS = [
    {
        "type": "function",
        "name": "weather",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def http(agent_proxy):
    with httpx.Client(base_url=agent_proxy.url, timeout=120) as c:
        yield c


def user(text: str) -> dict:
    """A user message as the AI SDK sends it."""
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


def create(http: httpx.Client, **body) -> dict:
    r = http.post("/v1/responses", json={"model": "router", **body})
    assert r.status_code == 200, r.text
    return r.json()


def create_streamed(http: httpx.Client, **body) -> dict:
    """The final response of a streamed answer (its `response.completed` event)."""
    with http.stream(
        "POST", "/v1/responses", json={"model": "router", "stream": True, **body}
    ) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    (done,) = [e for e in events if e["type"] == "response.completed"]
    return done["response"]


def sent_messages(agent_upstream, marker: str) -> list[dict]:
    """The chat messages of the last upstream call whose messages mention `marker`."""
    calls = [r for r in agent_upstream.requests if marker in json.dumps(r.get("messages", []))]
    return calls[-1]["messages"]


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_an_earlier_answer_sent_by_reference_reaches_the_model_as_its_text(
    http, agent_upstream, streamed
):
    first = (create_streamed if streamed else create)(http, input=[user(f"hello {streamed}")])
    (answer,) = first["output"]
    assert answer["type"] == "message"
    # The AI SDK's second turn: the first question, the answer by reference, a new question.
    marker = f"and again {streamed}"
    reference = {"type": "item_reference", "id": answer["id"]}
    second = create(http, input=[user(f"hello {streamed}"), reference, user(marker)])
    assert second["output"][0]["content"][0]["text"] == f"echo: {marker}"
    assert sent_messages(agent_upstream, marker) == [
        {"role": "user", "content": f"hello {streamed}"},
        {"role": "assistant", "content": f"echo: hello {streamed}"},
        {"role": "user", "content": marker},
    ]
    # The referenced item is listed among the request's input items, under its own id.
    r = http.get(f"/v1/responses/{second['id']}/input_items", params={"order": "asc"})
    listed = r.json()["data"]
    assert [i["id"] for i in listed][1] == answer["id"]
    assert listed[1]["role"] == "assistant"
    assert listed[1]["content"][0]["text"] == f"echo: hello {streamed}"


def test_a_reference_without_a_type_is_a_reference_too(http, agent_upstream):
    (answer,) = create(http, input="typeless")["output"]
    second = create(http, input=[user("typeless"), {"id": answer["id"]}, user("next one")])
    assert second["status"] == "completed"
    assert sent_messages(agent_upstream, "next one")[1] == {
        "role": "assistant",
        "content": "echo: typeless",
    }


def test_a_function_call_sent_by_reference_can_be_answered(http, agent_upstream):
    first = create(http, input=[user("weather by reference?")], tools=TOOLS)
    (call,) = first["output"]
    assert call["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    second = create(
        http,
        input=[user("weather by reference?"), {"type": "item_reference", "id": call["id"]}, output],
        tools=TOOLS,
    )
    assert second["output"][0]["content"][0]["text"] == "done: sunny"
    sent = sent_messages(agent_upstream, "weather by reference?")
    assert sent[1]["tool_calls"][0]["id"] == call["call_id"]
    assert sent[2] == {"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"}


def _refused(http: httpx.Client, item_id: str) -> dict:
    reference = {"type": "item_reference", "id": item_id}
    r = http.post("/v1/responses", json={"model": "router", "input": [user("x"), reference]})
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["param"] == "input[1].id" and err["code"] == "item_not_found"
    assert err["type"] == "not_found_error"
    return err


def test_an_unknown_deleted_or_unstored_item_is_a_404_naming_it(http):
    assert "msg_nowhere" in _refused(http, "msg_nowhere")["message"]
    # Not stored (store: false): nothing to refer to, as with OpenAI.
    (unstored,) = create(http, input="not kept", store=False)["output"]
    _refused(http, unstored["id"])
    # Deleted with its response.
    kept = create(http, input="kept, then deleted")
    assert http.delete(f"/v1/responses/{kept['id']}").status_code == 200
    _refused(http, kept["output"][0]["id"])
    # The id of a response is no item id.
    _refused(http, kept["id"])


def test_a_reference_without_an_id_is_a_400_naming_it(http):
    r = http.post(
        "/v1/responses",
        json={"model": "router", "input": [user("x"), {"type": "item_reference"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "input[1].id"
