"""End-to-end: Router.route / chat / achat against an OpenAI-compatible server on 127.0.0.1."""

import json
import shutil

import pytest

from router import Decision, RequestError, Router, UpstreamError
from tests.conftest import RECEIPT_KEYS, decision_rows


def test_route_math_prompt(router):
    d = router.route("Prove that the square root of 2 is irrational")
    assert isinstance(d, Decision)
    assert d.domain == "math"
    assert RECEIPT_KEYS <= set(json.loads(d.to_json()))
    assert d.routing_ms > 0 and d.large_cost_estimate >= d.cost_estimate
    # Success probabilities for the catalogue models that have a profile.
    assert set(d.success) == {"small-math", "large"}


def test_route_uses_the_whole_conversation(router):
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Solve for x: 3x + 7 = 22"},
        {"role": "assistant", "content": "x = 5"},
        {"role": "user", "content": "and if it were 3x + 7 = 25?"},
    ]
    assert router.route(msgs).domain == "math"


def test_route_with_named_policy_and_pin(router):
    assert router.route("hello", policy="flaky").policy == "flaky"
    d = router.route("Prove Fermat's little theorem", model="small-general")
    assert d.model == "small-general" and "pinned" in d.reason
    with pytest.raises(RequestError, match="unknown policy"):
        router.route("hi", policy="nope")


def test_route_rejects_empty_and_oversized_input(router):
    with pytest.raises(RequestError):
        router.route([])
    with pytest.raises(RequestError, match="over the limit"):
        router.route("x" * (router.config.routing_text.max_input_chars + 1))
    # Image-only content has no text: routed by the hard rules and the policy default.
    img = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    d = router.route(img)
    assert d.domain is None and d.model == "large"  # only the large model accepts images


def test_route_many_batches(router):
    ds = router.route_many(["Solve for x: 3x + 5 = 20", "Write a poem about the sea"])
    assert [d.domain for d in ds][0] == "math" and len(ds) == 2


def test_route_many_of_a_string_and_bad_counts_are_request_errors(router, upstream):
    # A string is not a list of conversations: never routed one character at a time.
    with pytest.raises(RequestError, match="route_many takes a list") as e:
        router.route_many("hello")
    assert e.value.param == "messages"
    # The counts the hard rules read are checked as the proxy checks them, naming the field.
    for name, value in (("max_tokens", "abc"), ("max_tokens", 0), ("n", -1), ("n", True)):
        with pytest.raises(RequestError, match=f"{name} must be a positive integer") as e:
            router.route("hi", **{name: value})
        assert e.value.param == name
    before = len(upstream.requests)
    with pytest.raises(RequestError) as e:
        router.chat("hi", max_completion_tokens="many")
    assert e.value.param == "max_completion_tokens" and len(upstream.requests) == before
    assert router.route("hi", max_tokens=5, n=2).model


def test_chat_non_streaming(router, upstream):
    resp = router.chat([{"role": "user", "content": "What is 2 + 2?"}], temperature=0.1, seed=7)
    assert resp.choices[0].message.content == "echo: What is 2 + 2?"
    assert resp.decision.model in {"small-math", "small-general", "large"}
    assert resp.decision.attempts[-1].ok
    sent = upstream.requests[-1]
    assert sent["temperature"] == 0.1 and sent["seed"] == 7
    assert sent["model"] == resp.decision.model


def test_chat_streaming(router):
    stream = router.chat("Tell me a story about a fox", stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: Tell me a story about a fox"
    assert stream.decision.attempts[-1].ok


def test_chat_falls_back_and_receipt_says_so(router):
    resp = router.chat("hello there", policy="flaky")
    d = resp.decision
    assert [a.model for a in d.attempts] == ["keyless", "broken", "large"]
    assert "not set" in d.attempts[0].error and "500" in d.attempts[1].error
    assert d.model == "large" and "fell back to large" in d.reason
    assert resp.choices[0].message.content == "echo: hello there"


def test_streaming_falls_back_before_first_token(router):
    stream = router.chat("hello there", policy="flaky", stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == "echo: hello there"
    )
    assert stream.decision.model == "large"


def test_every_model_failing_raises_with_attempts(test_config, tmp_path):
    import shutil

    d = tmp_path / "c"
    shutil.copytree(test_config.parent, d)
    (d / "policies" / "flaky.yaml").write_text("default: [broken]\nlarge: [broken]\n")
    r = Router.from_config(d / "config.yaml")
    with pytest.raises(UpstreamError) as e:
        r.chat("hi", policy="flaky")
    assert e.value.status_code == 502
    assert [a.model for a in e.value.decision.attempts] == ["broken"]


async def test_achat_and_async_stream(router):
    resp = await router.achat("What is 2 + 2?")
    assert resp.choices[0].message.content == "echo: What is 2 + 2?"
    stream = await router.achat("hello there", policy="flaky", stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "echo: hello there" and stream.decision.model == "large"
    # Read once, as the synchronous stream and a generator are: a second loop gets nothing.
    assert [c async for c in stream] == []


def test_tools_pass_through_and_pick_a_tool_capable_model(router, upstream):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    resp = router.chat("Find the weather in Paris", tools=tools, tool_choice="auto")
    assert resp.choices[0].message.tool_calls[0].function.name == "lookup"
    assert resp.decision.model in {"small-math", "large"}
    assert upstream.requests[-1]["tool_choice"] == "auto"


def test_unprofiled_models_say_so_and_use_the_stand_in_the_config_names(router, test_config):
    from router import ConfigError, Router

    d = router.route("Translate 'good morning' into French")
    # small-general, broken and keyless have no rows in the shipped scorer and no stand-in;
    # a receipt names those its policy could pick.
    assert d.unprofiled == {"small-general": "none"}
    assert "small-general" not in d.success
    flaky = router.route("Translate 'good morning' into French", policy="flaky")
    assert flaky.unprofiled == {"broken": "none", "keyless": "none"}
    assert d.evidence["small-math"]["rows"] > 0 and "lower" in d.evidence["small-math"]

    mixtral = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    text = test_config.read_text() + f"stand_ins: {{small: {mixtral}}}\n"
    cfg = test_config.with_name("stand_in.yaml")
    cfg.write_text(text)
    # A prompt like the training data's, so the profiled model has neighbours to count.
    d = Router.from_config(cfg).route(
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?"
    )
    assert d.unprofiled == {"small-general": mixtral}
    assert d.success["small-general"] == d.success["small-math"]
    # A stand-in's estimate is borrowed: none of its evidence counts for this model.
    assert d.evidence["small-general"]["rows"] == 0
    assert d.evidence["small-math"]["neighbours"] > 0
    assert d.evidence["small-general"]["lower"] < d.evidence["small-math"]["lower"]

    cfg.write_text(test_config.read_text() + "stand_ins: {small: no-such-model}\n")
    with pytest.raises(ConfigError, match=r"stand_ins\.small: 'no-such-model' is not a model"):
        Router.from_config(cfg)


def test_the_gain_multiplies_only_success_estimates_learned_on_the_same_prompts(
    test_config, tmp_path
):
    from router import Router

    # Its own copy of the shared config: a policy left in the shared one would reach every
    # later test that loads it (test_privacy's, for one, refuses a policy with no trusted model).
    shutil.copytree(test_config.parent, tmp_path / "cfg")
    test_config = tmp_path / "cfg" / test_config.name
    (test_config.parent / "policies" / "gainy.yaml").write_text(
        "name: gainy\ndefault: [small-math]\nlarge: [large]\n"
        "escalation: {max_gain: 0.2, max_difficulty: 1.0}\n"
    )
    text = "Translate 'good morning' into French"
    # small-math stands for Mixtral, learned on GPT-4's prompts (RouteLLM): the gain blends.
    same = Router.from_config(test_config)
    head = float(same.scorer.predict(same.encoder.encode([text]), [text]).gain[0])
    assert ("large", "small-math") in same.comparable
    assert same.route(text, policy="gainy").gain != pytest.approx(head, abs=1e-4)
    # Profiled as a dcrouter model instead, which shares no prompt with GPT-4: the head alone.
    cfg = test_config.with_name("apart.yaml")
    cfg.write_text(
        test_config.read_text().replace(
            "profile: mistralai/Mixtral-8x7B-Instruct-v0.1", "profile: llama-3.1-8b-instruct"
        )
    )
    apart = Router.from_config(cfg)
    assert ("large", "small-math") not in apart.comparable
    d = apart.route(text, policy="gainy")
    assert d.gain == pytest.approx(head, abs=1e-4)


def test_a_cost_weight_policy_over_estimates_learned_apart_warns_at_load(
    test_config, tmp_path, caplog
):
    """cost_weight compares success estimates as they are: heads learned on different
    datasets compare their base rates, and loading such a policy says which models."""
    from router import Router

    shutil.copytree(test_config.parent, tmp_path / "cfg")
    test_config = tmp_path / "cfg" / test_config.name
    (test_config.parent / "policies" / "weighed.yaml").write_text(
        "name: weighed\ndefault: [small-math]\nlarge: [large]\nescalation: {cost_weight: 0.1}\n"
    )
    with caplog.at_level("WARNING", logger="router.sdk"):
        Router.from_config(test_config)  # Mixtral and GPT-4: RouteLLM's prompts, both
    assert not [r for r in caplog.records if "weighs success" in r.getMessage()]
    apart = test_config.with_name("apart.yaml")
    apart.write_text(
        test_config.read_text().replace(
            "profile: mistralai/Mixtral-8x7B-Instruct-v0.1", "profile: llama-3.1-8b-instruct"
        )
    )
    with caplog.at_level("WARNING", logger="router.sdk"):
        Router.from_config(apart)
    said = [r.getMessage() for r in caplog.records if "weighs success" in r.getMessage()]
    assert len(said) == 1 and "'weighed'" in said[0] and "small-math / large" in said[0], said


# The first achat of a process: litellm (seconds to import) was imported by the fallback chain
# on the caller's event loop, which stalled, and the first attempt's `ms` was the import's.
# Its `broken` model answers 500: the first upstream error imported the openai client and
# what litellm's error mapping imports (fastapi, a third of a second) on the loop too. Every
# module imported while the call runs is recorded with the thread that imported it.
FIRST_ACHAT = """
import asyncio, json, sys, threading, time
from router import Router

router = Router.from_config(sys.argv[1])


class Imports:
    \"\"\"A finder that finds nothing: it sees each module imported, on the loop's thread.\"\"\"

    loop_thread, on_loop = None, []

    def find_spec(self, name, path=None, target=None):
        if threading.current_thread() is self.loop_thread:
            self.on_loop.append(name)
        return None


imports = Imports()
sys.meta_path.insert(0, imports)


async def main():
    imports.loop_thread = threading.current_thread()
    gaps, done = [], []

    async def tick():
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    resp = await router.achat("hello there", policy="flaky")
    done.append(True)
    await ticker
    imports.loop_thread = None
    attempts = {a.model: a.ms for a in resp.decision.attempts}
    errors = {a.model: a.error for a in resp.decision.attempts}
    print(json.dumps({"stall": max(gaps), "attempts": attempts, "errors": errors,
                      "on_loop": imports.on_loop}))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def first_achat(test_config) -> dict:
    """FIRST_ACHAT's report, from a fresh process (nothing imported yet)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(
        [sys.executable, "-c", FIRST_ACHAT, str(test_config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_the_first_achat_imports_litellm_off_the_callers_loop(first_achat):
    seen = first_achat
    # keyless is skipped without a call: its attempt takes no time, not the import's seconds.
    assert seen["attempts"]["keyless"] < 100, seen
    assert seen["stall"] < 1.5, seen


def test_the_first_upstream_error_imports_nothing_on_the_callers_loop(first_achat):
    """Where each module was imported, not how long the loop stalled: a busy machine makes a
    threshold flaky, the thread does not change. The standard library's few (asyncio's
    thread pool, started by the first worker-thread call) are no freeze."""
    import sys

    assert "500" in first_achat["errors"]["broken"], first_achat["errors"]
    third_party = [
        m for m in first_achat["on_loop"] if m.split(".")[0] not in sys.stdlib_module_names
    ]
    assert third_party == [], third_party


async def test_a_stream_closed_after_one_chunk_or_none_completes_its_log_row(router, tmp_path):
    """The first chunk is read ahead of the log's layer, which a close then never started: its
    row stayed open (no status) for as long as the caller kept the stream."""
    import asyncio

    log = router.open_decision_log(tmp_path / "sdk.db")
    try:
        one = await asyncio.to_thread(router.chat, "Tell me a story about a fox", stream=True)
        for _ in one:
            break  # one chunk read; `one` is kept
        none = await asyncio.to_thread(router.chat, "Tell me a story about a cat", stream=True)
        none.close()
        aone = await router.achat("Tell me a story about an owl", stream=True)
        async for _ in aone:
            break
        await aone.aclose()
        anone = await router.achat("Tell me a story about a hen", stream=True)
        await anone.aclose()
        assert log.flush(60)
        rows = decision_rows(tmp_path / "sdk.db")
        for s in (one, none, aone, anone):
            row = rows[s.decision.request_id]
            assert (row["phase"], row["status"], row["error"]) == (
                "ended",
                499,
                "stream closed early",
            ), row
    finally:
        log.close()
        router.decision_log = None


@pytest.fixture
def slow_router(test_config, tmp_path, upstream):
    return build_slow_router(test_config, tmp_path / "slow", upstream)


def build_slow_router(test_config, d, upstream) -> Router:
    """The test config copied to `d` with `slow`, a model streaming one word every 0.3 s
    (policy `slow`)."""
    import yaml

    shutil.copytree(test_config.parent, d, dirs_exist_ok=True)
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["models"].append(
        {
            "name": "slow",
            "litellm_model": "openai/slow-stream",
            "api_base": upstream.base_url,
            "input_price": 0.1,
            "output_price": 0.1,
            "context_window": 8000,
        }
    )
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "policies" / "slow.yaml").write_text(
        "name: slow\ndefault: [slow]\nlarge: [large]\nescalation: {max_difficulty: 1.0}\n"
    )
    return Router.from_config(d / "config.yaml")


async def test_a_stream_dropped_unread_closes_the_models_connection(slow_router, upstream):
    """Without a `break` or close, a stream nobody reads kept its connection, and the model
    generated the whole answer (one word per 0.3 s here: 6 s)."""
    import asyncio
    import gc
    import time

    words = " ".join(["word"] * 20)

    async def ended(text: str) -> str | None:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and text not in upstream.stream_ends:
            await asyncio.sleep(0.05)
        return upstream.stream_ends.get(text)

    sync = await asyncio.to_thread(slow_router.chat, "sync " + words, policy="slow", stream=True)
    assert sync.decision.model == "slow"
    del sync
    gc.collect()
    assert await ended("echo: sync " + words) == "abandoned"
    left = await slow_router.achat("async " + words, policy="slow", stream=True)
    del left
    gc.collect()
    assert await ended("echo: async " + words) == "abandoned"


def test_a_session_of_the_wrong_type_is_a_request_error_naming_it(router, upstream):
    before = len(upstream.requests)
    for name, value in (("session", 5), ("session_scope", ["a"])):
        with pytest.raises(RequestError, match=f"{name} must be a string") as e:
            router.chat("hi", **{name: value})
        assert e.value.param == name
    assert len(upstream.requests) == before
    assert router.chat("hi", session="s-1").decision.session == "s-1"


def test_a_router_closes_what_it_holds_and_refuses_chat_after(tmp_path, test_config):
    import asyncio
    import sqlite3

    with Router.from_config(test_config) as r:
        r.open_decision_log(tmp_path / "d.db")
        assert r.chat("What is 2 + 2?").decision.model
    # The log was closed (its rows on disk), and nothing is left to write to.
    assert r.closed and r.decision_log is None
    rows = sqlite3.connect(tmp_path / "d.db").execute("SELECT count(*) FROM decisions")
    assert rows.fetchone()[0] == 1
    with pytest.raises(RuntimeError, match="closed"):
        r.chat("hello")
    assert r.route("hello").model  # routing holds nothing to release
    r.close()  # a second close does nothing

    async def run() -> Router:
        async with Router.from_config(test_config) as a:
            a.open_decision_log(tmp_path / "a.db")
            await a.achat("What is 3 + 3?")
        with pytest.raises(RuntimeError, match="closed"):
            await a.achat("hello")
        return a

    a = asyncio.run(run())
    assert a.closed and a.decision_log is None
    rows = sqlite3.connect(tmp_path / "a.db").execute("SELECT count(*) FROM decisions")
    assert rows.fetchone()[0] == 1


def test_a_profile_the_scorer_lacks_is_said_once_with_the_nearest_name(tmp_path, upstream, caplog):
    import yaml

    from tests.conftest import write_test_config

    cfg = write_test_config(tmp_path, upstream.base_url)
    data = yaml.safe_load(cfg.read_text())
    model = next(m for m in data["models"] if m.get("profile"))
    model["profile"] = model["profile"][:-1]  # a typo
    cfg.write_text(yaml.safe_dump(data))
    with caplog.at_level("WARNING", logger="router.sdk"):
        r = Router.from_config(cfg)
    said = [m for m in caplog.messages if ".profile:" in m]
    assert len(said) == 1 and "did you mean" in said[0] and model["name"] in said[0]
    assert r.unprofiled[model["name"]]  # routed on a stand-in (or none), as its receipt says


def test_a_model_joined_under_its_catalogue_name_routes_on_its_own_rows(tmp_path, caplog):
    """`router profile --model newbie` writes `scores[newbie]` and `router add-model` joins
    `newbie`; a `profile:` the scorer lacks used to hide that joined estimate behind a stand-in
    (the warning even said to run add-model). A `profile:` the scorer has still wins, said."""
    import yaml

    from router.core.config import load_config
    from router.sdk.estimates import success_columns
    from tests.conftest import write_test_config

    cfg = write_test_config(tmp_path, "http://127.0.0.1:9/v1")
    data = yaml.safe_load(cfg.read_text())
    newbie = dict(data["models"][0], name="newbie", profile="acme/newbie-7b")
    data["models"].append(newbie)
    data["stand_ins"] = {"small": "smollm2-135m"}
    cfg.write_text(yaml.safe_dump(data))
    mixtral = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    scorer_models = [mixtral, "gpt-4-1106-preview", "smollm2-135m", "newbie", "small-math"]
    with caplog.at_level("WARNING", logger="router.sdk"):
        cols, unprofiled = success_columns(load_config(cfg), scorer_models)
    assert cols["newbie"] == 3 and "newbie" not in unprofiled
    # small-math's `profile:` names Mixtral, which the scorer has: that is used, and said.
    assert cols["small-math"] == 0
    assert unprofiled == {"small-general": "smollm2-135m", "broken": "smollm2-135m",
                          "keyless": "smollm2-135m"}  # fmt: skip
    said = " ".join(caplog.messages)
    own = "models[newbie].profile: 'acme/newbie-7b' is not a model of the scorer, but its "
    assert own + "catalogue name 'newbie' is" in said, said
    named = f"models[small-math].profile: the estimate of '{mixtral}' is used, though the "
    assert named + "scorer also has one under its catalogue name 'small-math'" in said, said


def test_closing_a_router_closes_its_cache_connections(tmp_path, test_config, redis_url):
    """A cache in Redis (`cache.store`) holds connections of its own, apart from `state:`."""
    import redis
    import yaml

    cfg = yaml.safe_load(test_config.read_text())
    cfg["cache"] = {"mode": "exact", "store": redis_url}
    path = test_config.parent / "cached.yaml"
    path.write_text(yaml.safe_dump(cfg))
    probe = redis.Redis.from_url(redis_url)
    try:

        def clients() -> int:
            return sum(1 for c in probe.client_list() if c.get("cmd") != "client|list")

        before = clients()
        with Router.from_config(path) as r:
            r.chat("What is 5 + 5?")
            assert r.chat("What is 5 + 5?").decision.cache["status"] == "hit"
            assert clients() > before
        assert clients() == before
    finally:
        probe.close()
