"""URLs in a request's content parts that a model call fetches: refused before any model is
called when they could reach this machine or its network (server-side request forgery).

For the providers that need an image, a file or a document inline (Anthropic's `http://` images
and PDF links, Bedrock, Vertex AI and Gemini, Ollama, Snowflake, GigaChat ...), litellm
downloads the URL a client put in an `image_url`, a `file` or an Anthropic `source` on this
machine and sends the bytes on; an OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1)
fetches it itself, on its own machine, often inside the same network. Either way a client could
make the router read cloud metadata (169.254.169.254), a loopback admin port or the internal
network, and read the answer back through the model. So, for the SDK and the proxy alike
(`Router.achat`, where the Responses and Messages APIs arrive as chat messages), before
anything is routed or called:

- every URL field of a content part other than text is a `data:` URL, or an http(s) URL with a
  host (no user name, no backslash: parsers read those differently);
- its host resolves, and to no loopback, private, shared, link-local, multicast, reserved or
  unspecified address, IPv4 or IPv6 (IPv4-mapped, NAT64 and 6to4 addresses are read for the
  IPv4 address inside), nor to a cloud's internal address that counts as public
  (168.63.129.16, 192.0.0.0/24);
- unless the operator lists the host, as the URL writes it, in `server.private_url_hosts`
  (`"*"`: any host, no address checked).

A refused URL is a `RequestError` naming the field (`messages[0].content[1].image_url.url`, a
400 from the proxy). Its words are the same for a name that does not resolve and for one that
resolves inside: a client learns no more of the network than that.

The check resolves a name once, and the fetch resolves it again (DNS rebinding), or follows a
redirect. Where litellm fetches, its own fetcher closes that gap (`url_utils.safe_get`, on by
default): it resolves, checks every address, connects to the address it checked and checks each
redirect. It is told of the hosts this check let through (`user_url_allowed_hosts`; `"*"` turns
its check off), and for the provider whose download bypasses it (GigaChat: a plain GET that
follows redirects) the media is fetched through it before the call and sent as `data:` URLs
(`at_the_call`). What an OpenAI-compatible server does with a URL after the check is its own
(docs/proxy.md).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from router.core.request import Message, RequestError

# The keys of a content part that hold something a model call may fetch.
URL_FIELDS = frozenset(
    {
        "url", "image_url", "file_url", "file_id", "file_data", "video_url", "audio_url",
        "document_url",
    }
)  # fmt: skip
TEXT_PARTS = frozenset({"text", "refusal", "input_text", "output_text"})
MAX_DEPTH = 6  # a part's URL sits two or three levels down; tool results nest one more
RESOLVE_TIMEOUT_S = 5.0
RESOLVING_AT_ONCE = 8
CODE = "url_not_allowed"

# What URL parsers strip: C0 controls and spaces at the ends, tabs and newlines anywhere.
_ENDS = "".join(map(chr, range(0x21)))
_INSIDE = str.maketrans("", "", "\t\n\r")
# A URL's scheme, after what parsers strip (matched in place: a data: URL may be megabytes).
_SCHEME = re.compile(r"[\x00-\x20]*([A-Za-z][A-Za-z0-9+.\t\n\r-]{0,31}):")
# Public to `ipaddress`, internal in a cloud: Azure's wire server, the IETF protocol block.
_ALSO_INTERNAL = (ipaddress.ip_network("168.63.129.16/32"), ipaddress.ip_network("192.0.0.0/24"))
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Providers whose download of a media URL bypasses litellm's checked fetcher.
UNCHECKED_FETCHERS = frozenset({"gigachat"})

Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class MediaURL:
    """A URL a model call may fetch, and the field it came in."""

    field: str
    url: str  # as a URL parser reads it: ends stripped, tabs and newlines out


def media_urls(messages: list[Message]) -> list[MediaURL]:
    """Every URL in the messages' content parts (not text parts), in order."""
    found: list[MediaURL] = []
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") not in TEXT_PARTS:
                found.extend(_walk(part, f"messages[{i}].content[{j}]", 0))
    return found


def _walk(node: dict | list, at: str, depth: int) -> Iterator[MediaURL]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        here = f"{at}.{key}" if isinstance(node, dict) else f"{at}[{key}]"
        if isinstance(value, str) and isinstance(node, dict) and key in URL_FIELDS:
            scheme = _scheme(value)
            if scheme == "data":
                yield MediaURL(here, "data:")  # fetched from nowhere: nothing more to read
            elif scheme:  # an id or a bare path is nothing a client fetches
                yield MediaURL(here, value.strip(_ENDS).translate(_INSIDE))
        elif isinstance(value, dict | list) and depth < MAX_DEPTH:
            yield from _walk(value, here, depth + 1)


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).translate(_INSIDE).lower() if match else ""


def internal_address(address: str) -> bool:
    """Whether an address is one a client's URL must not reach: anything but a public unicast
    address (an address that does not parse counts as internal)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone is no part of it
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inside = ip.ipv4_mapped or ip.sixtofour
        if inside is None and any(ip in net for net in _NAT64):
            inside = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inside is not None and internal_address(str(inside)):
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in net for net in _ALSO_INTERNAL)
    )


def canonical_host(host: str) -> str:
    """A host as `server.private_url_hosts` compares it: lower case, no trailing dot, an IPv6
    address without brackets and in its short form."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


@dataclass(frozen=True)
class _Target:
    host: str  # what the fetch connects to: IDNA-encoded, as the client resolves it
    port: int
    allowed: bool  # listed in private_url_hosts: no address is checked
    litellm_host: str  # the host as litellm's allow-list compares it


def _target(url: str, private_hosts: tuple[str, ...]) -> _Target | None:
    """Where an http(s) URL's fetch goes; None for a data: URL; ValueError (the reason) for
    anything else."""
    scheme = _scheme(url)
    if scheme == "data":
        return None
    if scheme not in ("http", "https"):
        raise ValueError(f"an image, file or audio URL is http(s) or data:, not {scheme[:16]}:")
    if "\\" in url:
        raise ValueError("a backslash in a URL is read differently by different clients")
    try:
        parsed, split = httpx.URL(url), urlsplit(url)
        port = split.port or (443 if scheme == "https" else 80)
    except (ValueError, httpx.InvalidURL):
        raise ValueError("not a valid URL") from None
    if parsed.userinfo or split.username is not None or split.password is not None:
        raise ValueError("a URL with a user name or password is not fetched")
    host = (split.hostname or "").rstrip(".")
    if not host or parsed.host.lower().rstrip(".") != host:
        raise ValueError("a URL needs a host that every client reads alike")
    allowed = "*" in private_hosts or canonical_host(host) in private_hosts
    raw = parsed.raw_host.decode("ascii").rstrip(".")
    return _Target(raw, port, allowed, f"[{host}]" if ":" in host else host)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _addresses(resolve: Resolver, host: str, port: int, gate: asyncio.Semaphore):
    """The host's addresses; none when it does not resolve in time."""
    async with gate:
        try:
            return await asyncio.wait_for(resolve(host, port), RESOLVE_TIMEOUT_S)
        except (OSError, TimeoutError, UnicodeError, ValueError):
            return []


def _refused(found: MediaURL, reason: str) -> RequestError:
    return RequestError(
        f"{found.field}: not a URL a model may be sent to fetch: {reason}", found.field, CODE
    )


INTERNAL = (
    "its host must resolve to a public address, not a loopback, private, link-local, "
    "multicast or reserved one"
)


async def guard_media_urls(messages: list[Message], private_hosts: tuple[str, ...]) -> None:
    """`check_media_urls`, then litellm's fetcher told of the hosts `private_hosts` let through
    (what `Router.achat` runs before anything is routed or called)."""
    for host in await check_media_urls(messages, private_hosts):
        _grant(host)


async def check_media_urls(
    messages: list[Message], private_hosts: tuple[str, ...] = (), resolve: Resolver | None = None
) -> set[str]:
    """Refuse (RequestError naming the field) the first URL of a content part that a model call
    must not fetch (see the module docstring). `private_hosts`: `server.private_url_hosts`.
    `resolve(host, port)` → addresses (default: the system resolver, off the event loop).
    Returns the hosts `private_hosts` let through, as litellm's allow-list names them ("*": any)."""
    found = media_urls(messages)
    if not found:
        return set()
    targets: list[tuple[MediaURL, _Target | None]] = []
    for f in found:
        try:
            targets.append((f, _target(f.url, private_hosts)))
        except ValueError as e:
            raise _refused(f, str(e)) from None
    checked = {(t.host, t.port) for _, t in targets if t is not None and not t.allowed}
    if checked:
        gate = asyncio.Semaphore(RESOLVING_AT_ONCE)
        keys = sorted(checked)
        lookups = [_addresses(resolve or _getaddrinfo, h, p, gate) for h, p in keys]
        resolved = dict(zip(keys, await asyncio.gather(*lookups), strict=True))
        for f, t in targets:
            if t is not None and not t.allowed:
                addresses = resolved[t.host, t.port]
                if not addresses or any(internal_address(a) for a in addresses):
                    raise _refused(f, INTERNAL)
    every = "*" in private_hosts
    return {"*" if every else t.litellm_host for _, t in targets if t is not None and t.allowed}


# ---- litellm's own check at the fetch ---------------------------------------------------------

# The hosts some router's `private_url_hosts` let through, for litellm's allow-list (global in
# litellm, as it is for the process: a router that does not list a host still refuses it).
_granted: set[str] = set()


def _grant(host: str) -> None:
    if host not in _granted:
        _granted.add(host)
        litellm = sys.modules.get("litellm")
        if litellm is not None:
            tell_litellm(litellm)


def tell_litellm(litellm: Any) -> None:
    """Let litellm's fetcher take the hosts the check let through ("*": its check off)."""
    if not _granted:
        return
    if "*" in _granted:
        litellm.user_url_validation = False
    known = list(getattr(litellm, "user_url_allowed_hosts", None) or [])
    missing = sorted(h for h in _granted - set(known) if h != "*")
    if missing:
        litellm.user_url_allowed_hosts = known + missing


async def at_the_call(litellm: Any, messages: list[Message], kwargs: dict[str, Any]) -> list:
    """The messages litellm is given for this call: for a provider whose own download bypasses
    litellm's checked fetcher, each http(s) image or file URL fetched through it (resolved,
    checked, connected to the checked address, every redirect checked) and sent as a data: URL."""
    tell_litellm(litellm)
    model = str(kwargs.get("model") or "")
    provider = kwargs.get("custom_llm_provider") or model.split("/", 1)[0]
    if provider not in UNCHECKED_FETCHERS or not media_urls(messages):
        return messages
    from litellm.litellm_core_utils.prompt_templates.image_handling import (
        async_convert_url_to_base64,
    )

    out = copy.deepcopy(messages)
    for m in out:
        for part in m.get("content") if isinstance(m.get("content"), list) else ():
            if not isinstance(part, dict):
                continue
            for holder, key in _fetched_fields(part):
                url = holder.get(key)
                if isinstance(url, str) and _scheme(url) in ("http", "https"):
                    url = url.strip(_ENDS).translate(_INSIDE)  # as the check read it
                    timeout = kwargs.get("timeout")
                    holder[key] = await async_convert_url_to_base64(url, timeout=timeout)
    return out


def _fetched_fields(part: dict) -> list[tuple[dict, str]]:
    """Where GigaChat reads a URL it downloads: an image_url (a string or its `url`), a file's
    `file_data`."""
    image, file = part.get("image_url"), part.get("file")
    if part.get("type") == "image_url":
        return [(image, "url")] if isinstance(image, dict) else [(part, "image_url")]
    if part.get("type") == "file" and isinstance(file, dict) and "file_data" in file:
        return [(file, "file_data")]
    return []
