"""The input items of a stored Responses API response (`GET /v1/responses/{id}/input_items`).

`input_items(input)` is a request's own input as the API lists it: `message` items (with
`input_text`, `input_image`, or for an assistant `output_text` and `refusal` parts),
`function_call` and `function_call_output` items, each with an id, in the order sent. They are
stored with the response, so every listing shows the same ids. `legacy_input_items` rebuilds
them from the chat messages a response stored before that kept (ids derived from the response's
id: as stable). `input_items_page` is one page of a list: `order`, `limit`, `after`, `before`.
Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from router.core.request import Message
from router.server.translate.common import field_error, new_id
from router.server.translate.responses import call_item

# Item type → the prefix of the ids given to it.
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
_TEXT_PARTS = ("input_text", "output_text", "text")
_MAX_ID = 256  # a client's own item id longer than this is replaced (it is a query cursor)


def input_items(value: Any) -> list[dict]:
    """The listed form of a request's `input` (already checked by `responses_to_chat`).
    `reasoning` items, which the router does not pass on, are not listed. An item keeps an
    `id` the client gave it (an output item sent back) unless another item has it already."""
    if value is None:
        return []
    if isinstance(value, str):
        return [_message(new_id("msg"), "user", [_text("user", value)])]
    out: list[dict] = []
    seen: set[str] = set()
    for item in value:
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in _PREFIX:
            continue
        own = item.get("id")
        ok = isinstance(own, str) and 0 < len(own) <= _MAX_ID and own not in seen
        iid = own if ok else new_id(_PREFIX[kind])
        seen.add(iid)
        if kind == "message":
            role = item["role"]
            content = item["content"]
            parts = [content] if isinstance(content, str) else content
            out.append(_message(iid, role, [_part(role, p) for p in parts]))
        elif kind == "function_call":
            call = {"id": item["call_id"], "name": item["name"], "arguments": item["arguments"]}
            out.append(call_item(iid, call))
        else:
            output = item["output"]
            if isinstance(output, list):
                output = [{"type": "input_text", "text": p.get("text") or ""} for p in output]
            out.append(_output(iid, item["call_id"], output))
    return out


def _part(role: str, p: Any) -> dict:
    if isinstance(p, str):
        return _text(role, p)
    kind = p.get("type")
    if kind == "input_image":
        detail = p.get("detail") if isinstance(p.get("detail"), str) else "auto"
        return {"type": "input_image", "image_url": p["image_url"], "detail": detail}
    if kind == "refusal":
        if role == "assistant":
            return {"type": "refusal", "refusal": p["refusal"]}
        return _text(role, p["refusal"])
    return _text(role, p["text"])


def _text(role: str, text: str) -> dict:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": []}
    return {"type": "input_text", "text": text}


def _message(iid: str, role: str, content: list[dict]) -> dict:
    return {"id": iid, "type": "message", "status": "completed", "role": role, "content": content}


def _output(iid: str, call_id: str, output: str | list[dict]) -> dict:
    return {
        "id": iid,
        "type": "function_call_output",
        "status": "completed",
        "call_id": call_id,
        "output": output,
    }


def legacy_input_items(response_id: str, added: list[Message]) -> list[dict]:
    """The input items of a response stored without them, from the chat messages its turn
    added; ids are derived from the response's id and the item's place, so they too stay the
    same from one listing to the next. (Text parts joined into one string stay joined.)"""
    out: list[dict] = []

    def iid(kind: str) -> str:
        digest = hashlib.sha256(f"{response_id}\n{len(out)}".encode()).hexdigest()[:32]
        return f"{_PREFIX[kind]}_{digest}"

    for m in added:
        role, content = m.get("role"), m.get("content")
        if role == "tool":
            out.append(_output(iid("function_call_output"), m["tool_call_id"], content or ""))
            continue
        parts = [content] if isinstance(content, str) else content or []
        listed = [_chat_part(role, p) for p in parts if not isinstance(p, str) or p]
        if listed:
            out.append(_message(iid("message"), role, listed))
        for c in m.get("tool_calls") or []:
            fn = c["function"]
            call = {"id": c["id"], "name": fn["name"], "arguments": fn["arguments"]}
            out.append(call_item(iid("function_call"), call))
    return out


def _chat_part(role: str, p: Any) -> dict:
    if isinstance(p, dict) and p.get("type") == "image_url":
        image = p["image_url"]
        return {
            "type": "input_image",
            "image_url": image["url"],
            "detail": image.get("detail") or "auto",
        }
    return _text(role, p if isinstance(p, str) else p.get("text") or "")


# ---- one page of a list ---------------------------------------------------------------------


class ListQuery(NamedTuple):
    """A list request's query, checked: `limit`, `order` and the `after` / `before` cursors."""

    limit: int
    order: str
    after: str | None
    before: str | None


def list_query(query: Mapping[str, str]) -> ListQuery:
    """`limit` (1 to 100, default 20), `order` (`asc` or `desc`, default `desc`) and the
    cursors of a list request's query; RequestError naming the parameter otherwise. `include`
    is accepted and changes nothing (what it asks for, image URLs, is always there)."""
    limit = query.get("limit", "20")
    if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= 100:
        raise field_error(f"must be an integer from 1 to 100, not {limit[:20]!r}", "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise field_error(f"must be 'asc' or 'desc', not {order[:20]!r}", "order")
    return ListQuery(int(limit), order, query.get("after"), query.get("before"))


def input_items_page(items: list[dict], query: ListQuery) -> dict:
    """One page of `items` (oldest first) as the API's list object. `after` and `before` are
    item ids of this list: the page is the items after (or just before) that one in the
    requested order; `has_more` says more lie beyond it in the same direction. An id that is
    not an item of this list is a RequestError naming the parameter."""
    limit, order = query.limit, query.order
    ordered = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in ordered]

    def place(param: str) -> int | None:
        cursor = getattr(query, param)
        if cursor is None:
            return None
        if cursor not in ids:
            raise field_error(f"{cursor[:100]!r} is not an input item of this response", param)
        return ids.index(cursor)

    after, before = place("after"), place("before")
    window = ordered[0 if after is None else after + 1 : len(ordered) if before is None else before]
    page = window[-limit:] if before is not None and after is None else window[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(window) > len(page),
    }


def openapi_input_items() -> dict[str, Any]:
    """The query parameters, documented (parsed by `input_items_page`, not by FastAPI)."""

    def param(name: str, schema: dict, description: str) -> dict:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    return {
        "parameters": [
            param("after", {"type": "string"}, "An item id: list the items after it."),
            param("before", {"type": "string"}, "An item id: list the items just before it."),
            param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                "How many items to list (1 to 100).",
            ),
            param(
                "order",
                {"enum": ["asc", "desc"], "default": "desc"},
                "asc: oldest first; desc: newest first.",
            ),
            param(
                "include",
                {"type": "array", "items": {"type": "string"}},
                "Accepted; changes nothing.",
            ),
        ]
    }
