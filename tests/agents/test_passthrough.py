"""Pass-through /v1/embeddings and /v1/completions: the catalogue model named answers, unrouted,
through the official openai client."""

from __future__ import annotations

import httpx
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


def _metrics(proxy) -> dict[str, float]:
    """The pass-through samples of /metrics, by their line's name and labels."""
    out = {}
    for line in httpx.get(proxy.url + "/metrics").text.splitlines():
        if line.startswith("router_passthrough_") and "_total{" in line:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_pass_through_is_counted_and_costed_in_metrics(client, agent_proxy):
    """A pass-through answer spends money too: /metrics counts it (apart from the routed
    requests), with the tokens its upstream reported and their price, and a failure is counted
    and carries the receipt's model."""
    before = _metrics(agent_proxy)
    c = client.completions.create(model="large", prompt="count me")
    e = client.embeddings.create(model="embedder", input=["alpha", "beta"])
    with pytest.raises(openai.InternalServerError) as failed:
        client.completions.create(model="broken", prompt="x")
    after = _metrics(agent_proxy)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    ok = 'router_passthrough_requests_total{endpoint="%s",model="%s",status="%s"}'
    assert delta(ok % ("completions", "large", "200")) == 1
    assert delta(ok % ("embeddings", "embedder", "200")) == 1
    assert delta(ok % ("completions", "broken", "502")) == 1
    tokens = 'router_passthrough_tokens_total{kind="%s",model="%s"}'
    assert delta(tokens % ("prompt", "large")) == c.usage.prompt_tokens
    assert delta(tokens % ("completion", "large")) == c.usage.completion_tokens
    assert delta(tokens % ("prompt", "embedder")) == e.usage.prompt_tokens
    cost = 'router_passthrough_cost_usd_total{endpoint="%s",model="%s"}'
    # Catalogue prices (tests/agents/conftest.py): large 5 in / 10 out, embedder 0.01 in, per 1M.
    large = (c.usage.prompt_tokens * 5.0 + c.usage.completion_tokens * 10.0) / 1e6
    assert delta(cost % ("completions", "large")) == pytest.approx(large)
    assert delta(cost % ("embeddings", "embedder")) == pytest.approx(
        e.usage.prompt_tokens * 0.01 / 1e6
    )
    assert delta(cost % ("completions", "broken")) == 0
    # The failure's receipt names the model that failed, as a chat failure's does.
    headers = failed.value.response.headers
    assert headers["x-router-model"] == "broken"
    assert headers["x-router-reason"].startswith("pass-through")
    assert headers["x-request-id"].startswith("req_")
