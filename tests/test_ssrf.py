"""Server-side request forgery through media URLs: a client's image or file URL that a model
call would fetch on this machine may not reach loopback, private, link-local or other internal
addresses, through the proxy (chat, Responses, Messages) and the SDK alike; it is a 400 naming
the field before any model is called, unless `server.private_url_hosts` lists the host
(router/serving/media_urls.py).

The internal service is a loopback HTTP server counting its hits. The model is litellm's
GigaChat provider pointed at the loopback test upstream: litellm downloads a GigaChat request's
image URLs on this machine with a plain GET (not its checked fetcher), so without the check the
internal service is hit. No test resolves a name outside this machine: public names are given
to the check function with a resolver of the test's own."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import socket
import threading
import uuid

import httpx
import pytest
import yaml

from router.core.config import ServerSpec
from router.core.request import RequestError
from router.serving.media_urls import (
    at_the_call,
    check_media_urls,
    internal_address,
    media_urls,
)
from router.serving.providers import UpstreamError, load_litellm
from tests.conftest import write_test_config
from tests.proxy import Proxy

FIELD = "messages[0].content[1].image_url.url"


class _Internal(http.server.BaseHTTPRequestHandler):
    """An internal service: every GET is a hit; /redirect/<path> sends a client to <path> on
    127.0.0.1 (a public URL that redirects inside)."""

    hits: list[str]
    port: int

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            target = self.path.removeprefix("/redirect")
            self.send_header("Location", f"http://127.0.0.1:{self.port}{target}")
            self.end_headers()
            return
        body = b"\x89PNG\r\n\x1a\n" + b"secret" * 8
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _V6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@pytest.fixture(scope="module")
def internal():
    """The internal service on 127.0.0.1 and, on the same port, ::1; `hits` lists paths."""
    hits: list[str] = []
    handler = type("Handler", (_Internal,), {"hits": hits})
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)]
    handler.port = servers[0].server_address[1]
    try:
        servers.append(_V6Server(("::1", handler.port), handler))
    except OSError:
        pass  # no IPv6 loopback here: its case is skipped
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield type("Internal", (), {"port": handler.port, "hits": hits, "v6": len(servers) > 1})
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="module", autouse=True)
def gigachat_env():
    """GigaChat's token from the environment, so litellm asks no auth server on the internet."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIGACHAT_ACCESS_TOKEN", "test-token")
        mp.setenv("GIGACHAT_API_BASE", "http://127.0.0.1:9/unused")
        yield


def _config(tmp_path, upstream, **server) -> str:
    cfg = write_test_config(tmp_path, upstream.base_url)
    data = yaml.safe_load(cfg.read_text())
    data["models"].append(
        {
            "name": "giga",
            "litellm_model": "gigachat/GigaChat-Max",
            "api_base": upstream.base_url,
            "input_price": 0.1,
            "output_price": 0.2,
            "context_window": 8000,
            "capabilities": ["vision", "streaming"],
            "tier": "small",
            "retries": 0,
        }
    )
    data["default_policy"] = "giga"
    (tmp_path / "policies" / "giga.yaml").write_text("name: giga\ndefault: [giga]\nlarge: [giga]\n")
    if server:
        data["server"] = server
    cfg.write_text(yaml.safe_dump(data))
    return str(cfg)


@pytest.fixture(scope="module")
def giga_router(tmp_path_factory, upstream):
    from router import Router

    r = Router.from_config(_config(tmp_path_factory.mktemp("ssrf"), upstream))
    yield r
    r.close()


@pytest.fixture(scope="module")
def proxy(giga_router, tmp_path_factory):
    from router.server import create_app

    spec = ServerSpec(keys_env=None, decision_log=str(tmp_path_factory.mktemp("log") / "d.db"))
    p = Proxy(create_app(giga_router, spec)).start()
    yield p
    p.stop()


def _url(internal, form: str, path: str) -> str:
    if form == "ipv6" and not internal.v6:
        pytest.skip("no IPv6 loopback on this machine")
    host = {
        "ipv4": "127.0.0.1",
        "localhost": "localhost",
        "ipv6": "[::1]",
        "decimal": "2130706433",  # 127.0.0.1 as one number: the resolver reads it so
        "mapped": "[::ffff:127.0.0.1]",
        "mapped-hex": "[::ffff:7f00:1]",
    }[form]
    return f"http://{host}:{internal.port}{path}"


FORMS = ["ipv4", "localhost", "ipv6", "decimal", "mapped", "mapped-hex"]


def _image_chat(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


@pytest.mark.parametrize("form", FORMS)
def test_an_internal_image_url_is_refused_by_the_proxy(proxy, internal, upstream, form):
    path = f"/latest/meta-data/{uuid.uuid4().hex}"
    url = _url(internal, form, path)
    before = len(upstream.requests)
    body = {"model": "giga", "messages": _image_chat(url)}
    r = httpx.post(proxy.base_url + "/chat/completions", json=body, timeout=60)
    assert path not in internal.hits  # the internal service was never read
    assert len(upstream.requests) == before  # no model was called
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == FIELD and err["message"].startswith(FIELD)
    assert err["code"] == "url_not_allowed"
    assert "public address" in err["message"]


@pytest.mark.parametrize("form", FORMS)
def test_an_internal_image_url_is_refused_by_the_sdk(giga_router, internal, upstream, form):
    path = f"/admin/{uuid.uuid4().hex}"
    url = _url(internal, form, path)
    before = len(upstream.requests)
    try:
        giga_router.chat(_image_chat(url), model="giga")
    except Exception as e:  # noqa: BLE001 - which error it is comes after what was read
        refused = e
    else:
        refused = None
    assert path not in internal.hits and len(upstream.requests) == before
    assert isinstance(refused, RequestError), refused
    assert refused.param == FIELD and str(refused).startswith(FIELD)
    # The URL as a plain string, as litellm takes it too.
    plain = [{"role": "user", "content": [{"type": "image_url", "image_url": url}]}]
    with pytest.raises(RequestError) as e:
        giga_router.chat(plain, model="giga")
    assert e.value.param == "messages[0].content[0].image_url"
    assert path not in internal.hits and len(upstream.requests) == before


def test_every_face_and_part_is_checked(proxy, internal, upstream):
    """A file part's URL, the Responses API's input_image and an Anthropic image's url source
    reach the same check: each a 400 naming its field in the API's own terms."""
    base = f"http://127.0.0.1:{internal.port}"
    paths = [f"/{kind}/{uuid.uuid4().hex}" for kind in ("file", "responses", "messages")]
    before = len(upstream.requests)
    file_part = {"type": "file", "file": {"file_data": base + paths[0], "filename": "a.pdf"}}
    chat = {
        "model": "giga",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, file_part]}],
    }
    image = {"type": "input_image", "image_url": base + paths[1]}
    responses = {
        "model": "giga",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}, image]}],
    }
    block = {"type": "image", "source": {"type": "url", "url": base + paths[2]}}
    messages = {
        "model": "giga",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, block]}],
    }
    chat_r, responses_r, messages_r = (
        httpx.post(proxy.base_url + path, json=body, timeout=60)
        for path, body in (
            ("/chat/completions", chat),
            ("/responses", responses),
            ("/messages", messages),
        )
    )
    assert [p for p in paths if p in internal.hits] == []
    assert len(upstream.requests) == before
    assert chat_r.status_code == 400, chat_r.text
    assert chat_r.json()["error"]["param"] == "messages[0].content[1].file.file_data"
    assert responses_r.status_code == 400, responses_r.text
    assert responses_r.json()["error"]["param"] == "input"
    assert messages_r.status_code == 400, messages_r.text
    err = messages_r.json()
    assert err["type"] == "error" and "public address" in err["error"]["message"]


def _check(messages, hosts=(), names=None):
    async def resolve(host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # an address resolves to itself
        except ValueError:
            pass
        if host not in (names or {}):
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return names[host]

    return asyncio.run(check_media_urls(messages, tuple(hosts), resolve))


def _refusal(messages, **kw) -> RequestError:
    with pytest.raises(RequestError) as e:
        _check(messages, **kw)
    return e.value


def test_the_check_passes_public_urls_and_refuses_the_rest():
    public = {"images.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}
    for url in (
        "https://images.example.com/cat.png",
        "http://93.184.215.14/cat.png",
        "https://[2606:4700:4700::1111]/cat.png",
        "data:image/png;base64,iVBORw0KGgo=",
    ):
        _check(_image_chat(url), names=public)  # not refused
    # A name that resolves inside (a rebinding name at check time), or to one inside among
    # public ones, or not at all: refused in the same words.
    inside = {"evil.example": ["10.0.0.5"], "mixed.example": ["93.184.215.14", "127.0.0.1"]}
    messages = {}
    for url in ("http://evil.example/", "http://mixed.example/", "http://nowhere.example/"):
        err = _refusal(_image_chat(url), names=inside)
        assert err.param == FIELD and err.code == "url_not_allowed"
        messages[url] = str(err)
    assert len(set(messages.values())) == 1  # no oracle of what a name resolves to
    # Cloud metadata by address, and URLs that no fetcher should be given.
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://0/",
        "file:///etc/passwd",
        "gs://operator-bucket/secret.png",
        "ftp://93.184.215.14/x.png",
        "http://user:pw@93.184.215.14/x.png",
        "http://93.184.215.14\\@127.0.0.1/x.png",
        "http:///x.png",
        " \thttp://127.0.0.1/x.png",
        "ht\ttp://127.0.0.1/x.png",
        "HTTP://LOCALHOST./x.png",
    ):
        assert _refusal(_image_chat(url)).param == FIELD, url
    # Text is not fetched; an id without a scheme is nothing a client fetches.
    text = [{"role": "user", "content": [{"type": "text", "text": "see http://127.0.0.1/"}]}]
    _check(text)
    _check([{"role": "user", "content": "http://127.0.0.1/"}])
    _check([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc123"}}]}])
    # Every URL field of a part, nested ones too.
    nested = {
        "type": "tool_result",
        "content": [{"type": "image", "source": {"type": "url", "url": "http://10.1.2.3/"}}],
    }
    err = _refusal([{"role": "user", "content": [nested]}])
    assert err.param == "messages[0].content[0].content[0].source.url"
    found = media_urls(_image_chat("http://a.example/") + [{"role": "user", "content": [nested]}])
    assert [f.field for f in found] == [FIELD, "messages[1].content[0].content[0].source.url"]


def test_only_an_unchecked_fetcher_gets_its_urls_fetched_first():
    """litellm fetches through its checked fetcher for every provider but GigaChat: only a
    GigaChat call has its URLs replaced (by that fetcher's data: URLs); others go as sent."""
    messages = _image_chat("https://images.example.com/cat.png")
    for model in ("anthropic/claude-x", "vertex_ai/gemini-x", "bedrock/x", "openai/x"):
        assert asyncio.run(at_the_call(load_litellm(), messages, {"model": model})) is messages
    data = _image_chat("data:image/png;base64,iVBORw0KGgo=")
    assert asyncio.run(at_the_call(load_litellm(), data, {"model": "gigachat/x"})) == data


def test_the_allow_list_lets_listed_hosts_through():
    inside = {"images.internal": ["10.0.0.5"]}
    hosts = ["images.internal"]
    assert _check(_image_chat("http://Images.Internal./a.png"), hosts, inside) == {hosts[0]}
    # As litellm's own allow-list names them, for its check at the fetch.
    assert _check(_image_chat("http://[::1]:8080/a.png"), ["::1"]) == {"[::1]"}
    assert _check(_image_chat("http://169.254.169.254/"), ["*"]) == {"*"}
    assert _check(_image_chat("https://93.184.215.14/")) == set()
    # Only the host listed: not another name for the same address.
    assert _refusal(_image_chat("http://127.0.0.1/a.png"), hosts=["localhost"]).param == FIELD
    # Still http(s) or data:.
    assert _refusal(_image_chat("file:///etc/passwd"), hosts=["*"]).param == FIELD


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.0.1", "192.168.1.1",
        "100.64.0.1", "169.254.169.254", "168.63.129.16", "192.0.0.192", "224.0.0.1",
        "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1",
        "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "not an address",
    ],
)  # fmt: skip
def test_internal_addresses(address):
    assert internal_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address):
    assert not internal_address(address)


def test_private_url_hosts_is_validated():
    spec = ServerSpec(private_url_hosts=["Images.Internal.", "[::0001]", "10.0.0.7", "*"])
    assert spec.private_url_hosts == ("images.internal", "::1", "10.0.0.7", "*")
    for bad in ("*.example.com", "http://images.internal", "images.internal:8080", "a b"):
        with pytest.raises(ValueError, match="private_url_hosts"):
            ServerSpec(private_url_hosts=[bad])


@pytest.fixture(scope="module")
def allowing_router(tmp_path_factory, upstream):
    from router import Router
    from router.serving import media_urls

    litellm = load_litellm()
    before = (litellm.user_url_validation, list(litellm.user_url_allowed_hosts))
    path = _config(tmp_path_factory.mktemp("ssrf-allow"), upstream, private_url_hosts=["localhost"])
    r = Router.from_config(path)
    yield r
    r.close()
    # What it told litellm is for this process: not for the tests after these.
    litellm.user_url_validation, litellm.user_url_allowed_hosts = before
    media_urls._granted.clear()


def test_the_allow_list_reaches_the_fetch(allowing_router, giga_router, internal):
    """A listed host is fetched (litellm's own check at the fetch is told of it); a router that
    does not list it still refuses it; and a listed host that redirects to an address that is
    not listed is stopped at the fetch, which checks every redirect."""
    path = f"/images/{uuid.uuid4().hex}.png"
    url = f"http://localhost:{internal.port}{path}"
    allowing_router.chat(_image_chat(url), model="giga")
    assert path in internal.hits  # fetched, on this machine, as the operator allowed
    assert "localhost" in load_litellm().user_url_allowed_hosts
    with pytest.raises(RequestError):
        giga_router.chat(_image_chat(url), model="giga")
    secret = f"/secret/{uuid.uuid4().hex}"
    bounce = f"http://localhost:{internal.port}/redirect{secret}"
    with pytest.raises(UpstreamError, match="fetch image"):
        allowing_router.chat(_image_chat(bounce), model="giga")
    assert f"/redirect{secret}" in internal.hits  # the listed host was asked ...
    assert secret not in internal.hits  # ... and where it pointed was not
