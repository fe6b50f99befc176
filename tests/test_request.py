import pytest

from router.core.request import RequestError, request_facts, routing_text


def test_plain_string_is_one_user_turn():
    assert routing_text("hello there") == "hello there"


def test_last_user_turn_comes_first_then_earlier_context_then_system():
    msgs = [
        {"role": "system", "content": "You are a SQL expert."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "follow-up question"},
    ]
    text = routing_text(msgs)
    parts = text.split("\n\n")
    assert parts[0] == "follow-up question"
    assert parts[1] == "first answer"
    assert parts[2] == "first question"
    assert parts[-1] == "You are a SQL expert."


def test_earlier_context_is_bounded():
    msgs = [{"role": "user", "content": "x" * 5000}, {"role": "user", "content": "now"}]
    text = routing_text(msgs, context_chars=100)
    assert text.startswith("now")
    assert len(text) <= len("now") + 2 + 100


def test_tool_results_are_left_out_and_content_parts_read():
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": "data:,"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "SECRET TOOL OUTPUT"},
    ]
    text = routing_text(msgs)
    assert "SECRET" not in text
    assert text == "describe"
    facts = request_facts(msgs)
    assert facts.has_image and not facts.has_audio


@pytest.mark.parametrize(
    "messages, param",
    [
        ([], "messages"),
        ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": [{"text": "no type"}]}], "messages[0].content[0]"),
        (
            [{"role": "user", "content": [{"type": "text", "text": 3}]}],
            "messages[0].content[0].text",
        ),
        (b"not a list", "messages"),
    ],
)
def test_bad_messages_name_the_field(messages, param):
    with pytest.raises(RequestError) as e:
        routing_text(messages)
    assert e.value.param == param


def test_facts_from_openai_params():
    f = request_facts(
        "hi",
        {
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"},
            "max_tokens": 50,
            "n": 2,
            "stream": True,
        },
    )
    assert f.needs_tools and f.needs_json and f.stream
    assert f.output_tokens == 100
    assert f.prompt_tokens > 0
