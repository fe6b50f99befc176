"""What errors must not tell: a provider key added by a hot reload (hidden like the ones the
proxy started with), and, to an API key limited to some models (`server.keys[].models`), the
names of the models and policies it may not use."""

from __future__ import annotations

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.learning import ADMIN_KEY, model, router_for, serve, write_config
from tests.proxy import Proxy

NEW_KEY = "sk-added-by-the-reload-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _leaky_app() -> Starlette:
    """An upstream whose every error quotes the key it was sent (as some providers do)."""

    async def leak(request: Request) -> JSONResponse:
        said = request.headers.get("authorization")
        return JSONResponse({"error": {"message": f"invalid credentials {said}"}}, 500)

    paths = ("/v1/completions", "/v1/embeddings")  # the pass-through endpoints' errors
    return Starlette(routes=[Route(p, leak, methods=["POST"]) for p in paths])


@pytest.fixture(scope="module")
def leaky_upstream():
    p = Proxy(_leaky_app()).start()
    yield p
    p.stop()


def test_a_provider_key_added_by_a_reload_is_hidden_in_errors(
    tmp_path, upstream, router, leaky_upstream, monkeypatch
):
    monkeypatch.setenv("ROUTER_TEST_RELOADED_KEY", NEW_KEY)  # set, but no model uses it yet
    server = {"keys_env": None, "admin_key": ADMIN_KEY}
    cfg = write_config(tmp_path, upstream.base_url, server=server)
    proxy = serve(router_for(cfg, like=router))
    try:
        body = yaml.safe_load(cfg.read_text())
        body["models"].append(
            model(
                "newcomer",
                "leak",
                leaky_upstream.base_url,
                api_key_env="ROUTER_TEST_RELOADED_KEY",
            )
        )
        cfg.write_text(yaml.safe_dump(body, sort_keys=False))
        r = httpx.post(proxy.url + "/admin/reload", headers=ADMIN, timeout=60)
        assert r.status_code == 200, r.text
        for path, payload in (
            ("/v1/completions", {"model": "newcomer", "prompt": "hi"}),
            ("/v1/embeddings", {"model": "newcomer", "input": "hi"}),
        ):
            r = httpx.post(proxy.url + path, json=payload, timeout=60)
            assert r.status_code >= 500, (path, r.text)
            assert "invalid credentials" in r.text, (path, r.text)  # the bait was taken
            assert NEW_KEY not in r.text + str(r.headers), (path, r.text)
    finally:
        proxy.stop()


# ---- a key limited to some models ---------------------------------------------------------

NARROW_KEY = "sk-narrow-key-0123456789"
WIDE_KEY = "sk-wide-key-0123456789ab"
KEYS = [
    {"name": "narrow", "key": NARROW_KEY, "models": ["router", "open"]},
    {"name": "wide", "key": WIDE_KEY},
]
IMAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ],
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory, upstream, router):
    """A catalogue of two models without vision, one of them the narrow key's; a second
    policy it may not use."""
    base = upstream.base_url
    cfg = write_config(
        tmp_path_factory.mktemp("limited"),
        base,
        models=[model("open", "cheap", base), model("secret-model", "large", base, tier="large")],
        policies={
            "balanced": {"default": ["open"], "large": ["secret-model"]},
            "hush": {"default": ["secret-model"], "large": ["secret-model"]},
        },
        server={"keys": KEYS, "keys_env": None},
    )
    proxy = serve(router_for(cfg, like=router))
    yield proxy
    proxy.stop()


def post(proxy, key: str, path: str, body: dict) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(proxy.url + path, json=body, headers=headers, timeout=60)


def test_errors_to_a_limited_key_list_only_its_models(limited):
    feedback = {"request_id": "req_0", "score": 1, "model": "nope"}
    chat = {"model": "router", "messages": [IMAGE]}
    for path, body in (("/v1/feedback", feedback), ("/v1/chat/completions", chat)):
        r = post(limited, NARROW_KEY, path, body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert "'open'" in message, message  # its own model is still named
        assert "secret-model" not in message and "hush" not in message, message
        # The same error to a key limited to nothing names the whole catalogue.
        wide = post(limited, WIDE_KEY, path, body).json()["error"]["message"]
        assert "'secret-model'" in wide, wide


def test_names_are_left_out_of_lists_and_hidden_alone():
    from router.server.errors import without_names

    hidden = {"secret-model", "hush", "router/hush"}
    text = "unknown policy 'x' (did you mean 'hush'?); configured: ['balanced', 'hush']"
    assert without_names(text, hidden) == (
        "unknown policy 'x' (did you mean '[hidden]'?); configured: ['balanced']"
    )
    text = "no model in policy 'balanced' accepts images; candidates were ['open', 'secret-model']"
    assert without_names(text, hidden).endswith("candidates were ['open']")
    # Lists of other things and words that merely contain a name are left as they are.
    text = "role must be one of ['system', 'user'], got 'secret-modeller'"
    assert without_names(text, hidden) == text
    assert without_names(text, set()) == text
