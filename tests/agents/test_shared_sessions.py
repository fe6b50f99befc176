"""Sessions and stored responses shared by two replicas through a real (throwaway) Redis: a
conversation started on one proxy keeps its model, its tool loop and its Responses chain on
the other."""

from __future__ import annotations

import openai
import pytest

from router.server import create_app
from router.serving.state import RedisStore
from tests.agents.conftest import write_agent_config
from tests.proxy import Proxy, router_from

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
RTOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


@pytest.fixture
def replicas(redis_url, agent_upstream, router, tmp_path):
    """Two proxies over two Routers, one Redis."""
    cfg = write_agent_config(tmp_path / "cfg", agent_upstream.base_url)
    proxies = []
    for _ in range(2):
        r = router_from(cfg, router)
        r.state = RedisStore(redis_url)
        spec = r.config.server.model_copy(update={"decision_log": None, "keys_env": None})
        proxies.append(Proxy(create_app(r, spec)).start())
    clients = [openai.OpenAI(base_url=p.base_url, api_key="x", max_retries=0) for p in proxies]
    yield clients
    for p in proxies:
        p.stop()


def test_a_session_moves_between_replicas(replicas):
    chat = [c.chat.completions.with_raw_response for c in replicas]
    msgs = [{"role": "user", "content": "replica question"}]
    raw = chat[0].create(model="router/sticky", messages=msgs, tools=[TOOL], tool_choice="none")
    assert raw.headers["x-router-model"] == "large"
    msgs += [{"role": "assistant", "content": raw.parse().choices[0].message.content}]
    msgs += [{"role": "user", "content": "and on the other replica?"}]
    raw = chat[1].create(model="router/sticky", messages=msgs)
    assert raw.headers["x-router-model"] == "large" and raw.headers["x-router-sticky"] == "true"


def test_a_tool_loop_and_a_responses_chain_continue_on_the_other_replica(replicas):
    a, b = replicas
    r1 = a.responses.create(model="large", input="shared loop", tools=[RTOOL])
    [call] = [o for o in r1.output if o.type == "function_call"]
    out = [{"type": "function_call_output", "call_id": call.call_id, "output": "42"}]
    raw = b.responses.with_raw_response.create(
        model="router/nosession", previous_response_id=r1.id, input=out, tools=[RTOOL]
    )
    assert raw.parse().output_text == "done: 42"
    assert raw.headers["x-router-model"] == "large" and raw.headers["x-router-sticky"] == "true"
