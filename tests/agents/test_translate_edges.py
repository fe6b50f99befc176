"""Edge cases of the Responses and Messages translations, found driving them with the official
clients: tool results a chat upstream (and the router's own chat checks) would refuse, and a
`function_call_output` that answers no call."""

from __future__ import annotations

import pytest

from router.core.request import RequestError
from router.server import validate
from router.server.translate.messages import messages_to_chat, parse_messages
from router.server.translate.responses import parse_responses, responses_to_chat

TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]


def _anthropic_turn(result: dict) -> dict:
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    return {
        "model": "router",
        "max_tokens": 50,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "text", "text": "checking"}, use]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", **result}],
            },
        ],
    }


@pytest.mark.parametrize(
    "result",
    [
        {},
        {"content": ""},
        {"content": "  "},
        {"content": []},
        {"content": [{"type": "text", "text": ""}]},
    ],
    ids=["no-content", "empty-string", "blank", "empty-list", "empty-text-block"],
)
def test_an_anthropic_tool_result_without_content_is_still_a_result(result):
    data = _anthropic_turn(result)
    call = messages_to_chat(parse_messages(data), data)
    tool = call.messages[-1]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "toolu_1"
    assert tool["content"] == "(empty)"
    validate.check_messages(call.messages)  # what the router's chat endpoint would take


def test_an_anthropic_tool_result_with_content_is_kept():
    data = _anthropic_turn({"content": [{"type": "text", "text": "sunny"}]})
    tool = messages_to_chat(parse_messages(data), data).messages[-1]
    assert "sunny" in str(tool["content"])


def test_a_blank_responses_function_call_output_is_still_a_result():
    items = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "  "},
    ]
    call = responses_to_chat(parse_responses({"model": "router", "input": items}), [])
    assert call.messages[-1]["content"] == "(empty)"
    validate.check_messages(call.messages)


def test_a_function_call_output_that_answers_no_call_is_a_400_naming_it():
    # Alone, with no previous_response_id: a chat upstream would get an orphaned tool message.
    body = parse_responses(
        {
            "model": "router",
            "input": [{"type": "function_call_output", "call_id": "zz", "output": "o"}],
        }
    )
    with pytest.raises(RequestError) as e:
        responses_to_chat(body, [])
    assert e.value.param == "input[0].call_id"


def test_a_function_call_output_may_answer_a_call_of_the_previous_response():
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
    ]
    outputs = [
        {"type": "function_call_output", "call_id": "c1", "output": "a"},
        {"type": "function_call_output", "call_id": "c2", "output": "b"},
    ]
    body = parse_responses({"model": "router", "previous_response_id": "resp_1", "input": outputs})
    call = responses_to_chat(body, history)
    assert [m["tool_call_id"] for m in call.messages[-2:]] == ["c1", "c2"]
    bad = parse_responses(
        {
            "model": "router",
            "previous_response_id": "resp_1",
            "input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}],
        }
    )
    with pytest.raises(RequestError) as e:
        responses_to_chat(bad, history)
    assert e.value.param == "input[0].call_id"


def test_an_image_a_tool_returned_follows_the_results_as_the_users():
    """Chat takes text only in a tool message (OpenAI refuses an image there): the image moves
    to a user message after the results, and the turn is still the tool loop's."""
    from router.serving.sessions import tool_loop_calls

    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    shot = {"type": "image", "source": png}
    data = _anthropic_turn({"content": [{"type": "text", "text": "the page"}, shot]})
    data["messages"][-1]["content"].append({"type": "text", "text": "<system-reminder>"})
    messages = messages_to_chat(parse_messages(data), data).messages
    tool, images, reminder = messages[-3:]
    assert tool["role"] == "tool" and "image_url" not in str(tool["content"])
    assert "the page" in str(tool["content"])
    assert images["role"] == "user"
    [part] = [p for p in images["content"] if p["type"] == "image_url"]
    assert part["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="
    assert reminder["role"] == "user" and "<system-reminder>" in str(reminder["content"])
    assert tool_loop_calls(messages) is not None
    # An image alone: the tool message still says something.
    data = _anthropic_turn({"content": [shot]})
    tool = messages_to_chat(parse_messages(data), data).messages[-2]
    assert tool["content"] == "(an image, below)"
    validate.check_messages(messages)


@pytest.mark.parametrize("content", ["no such city", [{"type": "text", "text": "no such city"}]])
def test_a_tool_result_marked_as_an_error_says_so(content):
    """Chat has no `is_error`: the model is told in the result's text that the call failed."""
    data = _anthropic_turn({"content": content, "is_error": True})
    tool = messages_to_chat(parse_messages(data), data).messages[-1]
    text = str(tool["content"])
    assert "Error (the tool call failed):" in text and "no such city" in text
    assert text.index("Error") < text.index("no such city")
    data = _anthropic_turn({"content": content})
    assert "Error" not in str(messages_to_chat(parse_messages(data), data).messages[-1]["content"])


def test_a_responses_stream_closes_each_item_before_the_next_opens():
    """As the API streams them: text, then two tool calls, each item done before the next is
    added; the final response holds them all, whole."""
    from router.server.translate.responses import ResponsesStream

    def chunk(text="", calls=(), finish=None):
        delta = {"content": text or None, "tool_calls": [dict(c) for c in calls] or None}
        return {"choices": [{"delta": delta, "finish_reason": finish}]}

    def call(i, cid=None, name=None, args=""):
        return {"index": i, "id": cid, "function": {"name": name, "arguments": args}}

    data = {"model": "router", "input": "weather?", "stream": True}
    stream = ResponsesStream("resp_1", parse_responses(data), "large")
    events = stream.start()
    for c in (
        chunk("Let me check."),
        chunk(calls=[call(0, "call_a", "get_weather", '{"city":')]),
        chunk(calls=[call(0, args='"Oslo"}')]),
        chunk(calls=[call(1, "call_b", "convert", "{}")]),
        chunk(finish="tool_calls"),
    ):
        events += stream.feed(c)
    events += stream.finish_events()
    opened = []
    for ev in events:
        if ev["type"] == "response.output_item.added":
            assert all(o is None for o in opened), "an item opened while another was open"
            opened.append(ev["output_index"])
        if ev["type"] == "response.output_item.done":
            assert opened[-1] == ev["output_index"]
            opened[-1] = None
    assert len(opened) == 3 and events[-1]["type"] == "response.completed"
    final = events[-1]["response"]["output"]
    assert [o["type"] for o in final] == ["message", "function_call", "function_call"]
    assert final[1]["arguments"] == '{"city":"Oslo"}' and final[2]["call_id"] == "call_b"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
