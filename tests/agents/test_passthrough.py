"""Pass-through /v1/embeddings and /v1/completions: the catalogue model named answers, unrouted,
through the official openai client."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="module")
def client(agent_proxy):
    with openai.OpenAI(base_url=agent_proxy.base_url, api_key="unused", max_retries=0) as c:
        yield c


def test_embeddings_pass_through_to_the_named_model(client, agent_upstream):
    raw = client.embeddings.with_raw_response.create(model="embedder", input=["alpha", "beta"])
    r = raw.parse()
    assert r.model == "embedder" and [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == 8 and r.data[0].embedding != r.data[1].embedding
    again = client.embeddings.create(model="embedder", input="alpha")
    assert again.data[0].embedding == r.data[0].embedding  # the upstream's own vector
    assert raw.headers["x-router-model"] == "embedder"
    assert raw.headers["x-router-reason"].startswith("pass-through")
    assert agent_upstream.requests[-1]["model"] == "embedder"


def test_completions_pass_through_plain_and_streamed(client):
    raw = client.completions.with_raw_response.create(model="large", prompt="finish this")
    c = raw.parse()
    assert c.choices[0].text == "echo: finish this" and c.model == "large"
    assert raw.headers["x-router-model"] == "large"
    pieces = [
        ch.choices[0].text
        for ch in client.completions.create(model="large", prompt="stream it", stream=True)
        if ch.choices
    ]
    assert "".join(pieces) == "echo: stream it"


def test_pass_through_is_not_routed_and_names_bad_fields(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="router", input="x")
    assert e.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="embedder", input="")
    assert e.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="large", prompt="x", max_tokens=0)
    assert e.value.body["param"] == "max_tokens"


def test_an_upstream_failure_is_a_502_in_openai_shape(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.embeddings.create(model="broken", input="x")
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_error"
