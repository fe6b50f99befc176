"""What a user of the SDK can count on beside routing: `Router()` built wrongly says how to build
one (`Router.from_config`); a `RequestError` carries the HTTP status the proxy answers it with;
where a model is called and with which key is the config's alone (a per-call `base_url`,
`api_key` ... is refused, never sent elsewhere with the catalogue's key); `user` reaches an
OpenAI-compatible upstream; and `asyncio.run(router.achat(...))` called again and again leaves
litellm nothing to carry from one event loop to the next."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from router import RequestError, Router
from router.core.config import ModelSpec
from router.serving.providers import call_kwargs
from tests.proxy import router_from
from tests.upstream import Upstream


def _config_with(test_config: Path, where: Path, models: list[dict], policies: dict) -> Path:
    """The test config with more catalogue models and a policy for each (name → its models)."""
    shutil.copytree(test_config.parent, where)
    path = where / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["models"] += models
    path.write_text(yaml.safe_dump(cfg))
    for name, chosen in policies.items():
        (where / "policies" / f"{name}.yaml").write_text(
            f"name: {name}\ndefault: [{chosen}]\nlarge: [{chosen}]\n"
        )
    return path


# ---- building a Router --------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("config.yaml",), (Path("configs/x.yaml"),)])
def test_router_built_without_its_parts_says_to_use_from_config(args):
    """`Router()` was a TypeError about four missing positional arguments, `Router("config.yaml")`
    an AttributeError from deep in the constructor; neither said how a Router is made."""
    with pytest.raises(TypeError, match=r"Router\.from_config\(") as e:
        Router(*args)
    if args:
        assert f"Router.from_config({str(args[0])!r})" in str(e.value)


def test_router_built_from_wrong_parts_names_the_part(router):
    with pytest.raises(TypeError, match="missing: policies, scorer, encoder") as e:
        Router(router.config)
    assert "Router.from_config(" in str(e.value)
    with pytest.raises(TypeError, match="config must be a RouterConfig, got dict"):
        Router(router.config.model_dump(), router.policies, router.scorer, router.encoder)
    with pytest.raises(TypeError, match="encoder must be an encoder, got str"):
        Router(router.config, router.policies, router.scorer, "bge-small")
    # The loaded parts still build one, by position or by name (as the proxy's tests and the
    # hot reload do).
    for r in (
        Router(router.config, router.policies, router.scorer, router.encoder),
        Router(
            config=router.config,
            policies=router.policies,
            scorer=router.scorer,
            encoder=router.encoder,
        ),
    ):
        assert r.route("What is 17 * 23?").model


# ---- a RequestError's status ----------------------------------------------------------------


def test_a_request_error_carries_the_status_the_proxy_answers(router):
    """A caller could not tell an unknown policy (the proxy's 404) from a bad request (400)
    but by the message's words; the proxy itself told them apart by the message's opening."""
    from router.server.errors import from_request_error

    with pytest.raises(RequestError) as unknown:
        router.route("hi", policy="balancd")
    with pytest.raises(RequestError) as bad:
        router.route("hi", max_tokens=0)
    assert unknown.value.status_code == 404 and unknown.value.code == "model_not_found"
    assert bad.value.status_code == 400 and bad.value.param == "max_tokens"
    for e in (unknown.value, bad.value):
        assert from_request_error(e).status == e.status_code  # one mapping, the error's own
    # Named in the body's terms with its code, as the proxy re-makes it: the same status.
    assert RequestError(str(unknown.value), "model", unknown.value.code).status_code == 404
    assert RequestError("messages: must not be empty", "messages").status_code == 400


# ---- per-call settings of the call: the catalogue's alone -----------------------------------

# Where a call goes, with which key and how: the names the proxy refuses in a body.
SETTINGS = [
    "base_url", "api_base", "api_key", "api_version", "organization", "timeout", "max_retries",
    "extra_headers", "custom_llm_provider", "mock_response", "aws_bedrock_runtime_endpoint",
    "vertex_credentials", "azure_ad_token", "drop_params",
]  # fmt: skip
# litellm's own keyword arguments: known from the litellm in use, refused by the calls that
# hand their arguments to litellm.
LITELLM_OWN = ["fallbacks", "num_retries", "ssl_verify", "stream_timeout", "region_name"]


@pytest.mark.parametrize("name", SETTINGS)
def test_a_per_call_connection_setting_is_refused_naming_the_config(router, upstream, name):
    before = len(upstream.requests)
    for call in (router.chat, router.route):
        with pytest.raises(RequestError, match="on the model in the config") as e:
            call("hello there", **{name: "http://127.0.0.1:1/v1"})
        assert e.value.param == name and e.value.status_code == 400
        assert str(e.value).startswith(f"{name}: not a per-call parameter")
    with pytest.raises(RequestError, match="on the model in the config"):
        asyncio.run(router.achat("hello there", **{name: "x"}))
    assert len(upstream.requests) == before


@pytest.mark.parametrize(
    "name, field", [("base_url", "api_base"), ("api_key", "api_key_env"), ("timeout", "timeout")]
)
def test_the_refusal_names_the_config_field_that_sets_it(router, name, field):
    with pytest.raises(RequestError, match=f"set {field} on the model in the config instead"):
        router.route("hi", **{name: "x"})


@pytest.mark.parametrize("name", LITELLM_OWN)
def test_litellm_own_arguments_are_refused_by_the_calls_that_pass_them(router, upstream, name):
    before = len(upstream.requests)
    with pytest.raises(RequestError, match="on the model in the config") as e:
        router.chat("hello there", **{name: 1})
    assert e.value.param == name
    with pytest.raises(RequestError, match="on the model in the config"):
        asyncio.run(router.achat("hello there", **{name: 1}))
    assert len(upstream.requests) == before


def test_a_per_call_base_never_sends_the_catalogues_key_elsewhere(test_config, tmp_path, router):
    """A hosted model (its provider's key in `api_key_env`, no `api_base`) called with a
    per-call `api_base`: the call went to that host, with the provider's key (a per-call
    `api_key` is overridden by the catalogue's). Now nothing goes anywhere."""
    elsewhere = Upstream().start()
    try:
        hosted = {
            "name": "hosted",
            "litellm_model": "openai/hosted",
            "api_key_env": "ROUTER_TEST_HOSTED_KEY",
            "input_price": 1,
            "output_price": 1,
            "context_window": 8000,
            "tier": "large",
        }
        cfg = _config_with(test_config, tmp_path / "cfg", [hosted], {"hosted": "hosted"})
        r = router_from(cfg, router)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ROUTER_TEST_HOSTED_KEY", "sk-provider-secret-0123456789")
            for name in ("api_base", "base_url"):
                with pytest.raises(RequestError, match="set api_base on the model"):
                    r.chat("hello there", policy="hosted", **{name: elsewhere.base_url})
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_the_sdk_refuses_what_the_proxy_refuses_by_one_rule():
    """One list, in the core: the proxy's body fields and the SDK's arguments are judged alike
    (the SDK takes `extra_body`, the openai client's extra body fields, which is no setting)."""
    from router.core import request
    from router.core.request import call_settings
    from router.server import validate
    from router.serving.providers import litellm_own_params

    for name in ("CALL_SETTINGS", "PROVIDER_PREFIXES", "SETTING_SUFFIXES", "SETTING_NAMES"):
        assert not hasattr(validate, name), f"validate.py keeps its own copy of {name}"
    own = litellm_own_params()
    names = sorted(own | request.CALL_SETTINGS | {"top_k", "reasoning_format", "user", "_x"})
    for name in names:
        try:
            validate.check_passed_fields({name: 1})
            refused = False
        except RequestError:
            refused = True
        assert (name in call_settings([name], own)) == refused, name


# ---- `user` reaches an OpenAI-compatible upstream -------------------------------------------


def test_user_reaches_an_openai_compatible_upstream(router, upstream):
    """litellm sends `user` only to the models of OpenAI's own list: an OpenAI-compatible
    endpoint never saw it, whatever the caller asked."""
    router.chat("hello there", user="alice")
    assert upstream.requests[-1]["user"] == "alice"
    for _ in router.chat("hello there", user="bob", stream=True):
        pass
    assert upstream.requests[-1]["user"] == "bob"
    asyncio.run(router.achat("hello there", user="carol", top_k=3))
    sent = upstream.requests[-1]
    assert sent["user"] == "carol" and sent["top_k"] == 3


def test_a_model_with_drop_params_leaves_user_out_and_says_so(test_config, tmp_path, router):
    """An endpoint that refuses `user` takes `drop_params: true` in the catalogue, as for any
    OpenAI parameter it does not take: the receipt names what was left out."""
    api_base = router.config.model("small-general").api_base
    strict = {
        "name": "strict",
        "litellm_model": "openai/strict",
        "api_base": api_base,
        "drop_params": True,
        "input_price": 1,
        "output_price": 1,
        "context_window": 8000,
        "tier": "large",
    }
    cfg = _config_with(test_config, tmp_path / "cfg", [strict], {"strict": "strict"})
    r = router_from(cfg, router)
    resp = r.chat("hello there", policy="strict", user="alice")
    assert resp.decision.model == "strict" and resp.decision.attempts[-1].dropped == ("user",)


def test_user_is_allowed_only_for_openai_compatible_models():
    """For other providers litellm maps `user` itself (Anthropic's metadata.user_id) or drops
    it: forcing it into their body would be refused."""
    spec = {"input_price": 1, "output_price": 1, "context_window": 8000, "api_key_env": None}
    anthropic = ModelSpec(name="a", litellm_model="anthropic/claude-x", **spec)
    compatible = ModelSpec(name="c", litellm_model="openai/c", api_base="http://h/v1", **spec)
    assert "allowed_openai_params" not in call_kwargs(anthropic, None, {"user": "u"})
    assert call_kwargs(compatible, None, {"user": "u"})["allowed_openai_params"] == ["user"]
    assert "allowed_openai_params" not in call_kwargs(compatible, None, {})


# ---- one event loop after another -----------------------------------------------------------


def test_asyncio_run_again_and_again_leaves_litellm_nothing_to_carry_over(router, upstream):
    """litellm's logging worker is bound to one event loop: a call's logging still queued when
    `asyncio.run` ended was carried to the next loop, with a warning each time ("LoggingWorker:
    event loop changed; carried 1 pending ...")."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    litellm_log = logging.getLogger("LiteLLM")
    asyncio.run(router.achat("hello there", top_k=3))  # top_k: the call goes through litellm
    litellm_log.addHandler(handler)
    try:
        for _ in range(3):
            resp = asyncio.run(router.achat("hello there", top_k=3))
            assert resp.decision.attempts[-1].ok
    finally:
        litellm_log.removeHandler(handler)
    said = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert not [m for m in said if "event loop changed" in m], said
