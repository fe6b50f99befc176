"""POST /v1/responses: OpenAI's Responses API, routed exactly like chat.

The body is checked and turned into chat messages (translate.py); `previous_response_id` is
resolved from the stored conversations in the shared state (`router.state`, key
`response:<id>`), each bounded to `server.responses_max_messages` messages and expiring after
`server.responses_ttl_s`. The answer is a response object, or with `stream: true` the API's
typed events (response.created ... response.completed). Receipts are the chat endpoint's
`x-router-*` headers; errors have the Responses API's shape (OpenAI's error object).
GET and DELETE /v1/responses/{id} read and forget a stored response; GET
/v1/responses/{id}/input_items lists, a page at a time, the input items of its request (stored
with it, ids included; translate/input_items.py). An `item_reference` input item names an
output item of a stored response by its id (`response_item:<item id>` holds the response's id)
and is replaced by that item, as clients that send a conversation whole do (the Vercel AI SDK
sends every earlier answer of a stored conversation so). A stored response, and so a conversation
continued from it, belongs to the API key that made it (and the admin key, which may read and
delete any): to any other key it does not exist (404).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from router.core.request import CONTEXT_LENGTH_EXCEEDED, Message, RequestError
from router.server.auth import Principal
from router.server.chat import ChatService
from router.server.endpoint import bad_request, read_json, record_for
from router.server.errors import APIError
from router.server.streaming import event_stream, typed_sse
from router.server.targets import resolve
from router.server.translate.common import Reply, field_error, new_id, nullable
from router.server.translate.input_items import (
    input_items,
    input_items_page,
    legacy_input_items,
    list_query,
)
from router.server.translate.responses import (
    RESPONSES_IGNORED,
    ResponsesBody,
    ResponsesStream,
    chat_to_response,
    is_item_reference,
    parse_responses,
    responses_to_chat,
)

KEY = "response:"
ITEM_KEY = "response_item:"  # an output item's id → the id of the stored response it is in


def _param(param: str | None) -> str | None:
    """A chat field named by routing (`messages`, `tools` ...) in Responses API terms."""
    if param and param.startswith("messages"):
        return "input"
    return param


class ResponsesService:
    def __init__(self, svc: ChatService) -> None:
        self.svc = svc

    @property
    def store(self):
        return self.svc.router.state

    async def create(self, request: Request, principal: Principal) -> Response:
        svc = self.svc
        t0 = time.perf_counter()
        data = await read_json(svc, request)
        try:
            body = parse_responses(data)
        except RequestError as e:
            raise bad_request(e) from None
        target = resolve(svc.router, principal, body.model)
        history = await self._history(body, principal) if body.previous_response_id else []
        body = await self._resolve_references(body, principal)
        try:
            call = responses_to_chat(body, history)
        except RequestError as e:
            raise bad_request(e) from None
        # What this turn adds to the stored conversation: its input (not the instructions).
        added = call.messages[len(call.messages) - call.new_messages :] if call.new_messages else []
        items = input_items(body.input) if body.store is not False else []
        stream = bool(body.stream)
        record = record_for(svc, request, principal, body.model, call.messages, stream, t0)
        result = await svc.call_router(record, target, call.messages, call.params, _param)
        decision = result.decision
        rid = new_id("resp")
        headers = svc.headers(decision, request.state.request_id, _ms(t0))
        if not stream:
            reply = Reply.of(result)
            out = chat_to_response(rid, body, decision.model, reply)
            if body.store is not False:
                await self._save(rid, body, principal, added, items, reply, out)
            record.end(200, decision, reply.usage, None)
            await record.durable()  # the whole row, before the first byte
            return JSONResponse(out, headers=headers)

        writer = ResponsesStream(rid, body, decision.model)
        on_end = record.stream_end(decision)

        async def save() -> None:  # stored before the last event, as a whole answer is
            await self._save(rid, body, principal, added, items, writer.reply(), writer.final)

        events = typed_sse(
            result, writer, on_end, svc.redact, None if body.store is False else save
        )
        await record.begin(decision)  # the write-ahead row, before the first byte
        return event_stream(events, on_end, headers)

    # ---- the stored conversations -----------------------------------------------------------

    async def _history(self, body: ResponsesBody, principal: Principal) -> list[Message]:
        """The chat messages of the conversation `previous_response_id` ends, oldest first.

        Each stored response holds only what its turn added and the id of the one before, so a
        conversation costs its own size, not its size times its turns. The walk stops at
        `responses_max_messages`; a longer conversation, or one whose older responses expired,
        continues only with `truncation: "auto"` (on its most recent part)."""
        limit = self.svc.spec.responses_max_messages
        chunks: list[list[Message]] = []
        total, rid, cut = 0, body.previous_response_id, None
        while rid:
            rec = await self._load(rid, principal)
            if rec is None:
                if not chunks:
                    raise APIError(
                        404,
                        f"previous_response_id: response {rid!r} not found "
                        "(never stored, deleted, or expired)",
                        "previous_response_id",
                        "previous_response_not_found",
                    )
                cut = "its older responses expired or were deleted"
                break
            chunks.append(list(rec["messages"]))
            total += len(rec["messages"])
            if total > limit:
                cut = f"it is longer than the {limit} messages the router keeps"
                break
            rid = rec.get("previous")
        messages = [m for chunk in reversed(chunks) for m in chunk]
        if cut is None:
            return messages
        if body.truncation != "auto":
            raise APIError(
                400,
                f"previous_response_id: this conversation cannot be continued whole ({cut}); "
                "send truncation: 'auto' to go on with its most recent part",
                "previous_response_id",
                CONTEXT_LENGTH_EXCEEDED,
            )
        # Its most recent part, starting at a user message (no orphaned tool result).
        messages = messages[-limit:]
        start = next((i for i, m in enumerate(messages) if m["role"] == "user"), len(messages))
        return messages[start:]

    async def _resolve_references(self, body: ResponsesBody, principal: Principal) -> ResponsesBody:
        """`body` with each `item_reference` input item replaced by the item it names: an output
        item of a response this caller's key stored. One that is not (never stored, deleted,
        expired, another key's) is a 404 naming it, as OpenAI answers."""
        if not isinstance(body.input, list) or not any(map(is_item_reference, body.input)):
            return body
        items: list[Any] = []
        for i, item in enumerate(body.input):
            if not is_item_reference(item):
                items.append(item)
                continue
            at = f"input[{i}].id"
            item_id = item.get("id")
            if not isinstance(item_id, str) or not 0 < len(item_id) <= 256:
                raise bad_request(field_error("required: the id of a stored output item", at))
            found = await self._output_item(item_id, principal)
            if found is None:
                raise APIError(
                    404,
                    f"{at}: item {item_id[:100]!r} not found (an output item of a stored "
                    "response: never stored, deleted, or expired)",
                    at,
                    "item_not_found",
                )
            items.append(found)
        return body.model_copy(update={"input": items})

    async def _output_item(self, item_id: str, principal: Principal) -> dict | None:
        """The output item `item_id` of a stored response of this caller's key, or None."""
        response_id = await self.store.get(ITEM_KEY + item_id)
        rec = await self._load(response_id, principal) if isinstance(response_id, str) else None
        for item in ((rec or {}).get("response") or {}).get("output") or []:
            if isinstance(item, dict) and item.get("id") == item_id:
                return copy.deepcopy(item)  # the in-process store hands out what it keeps
        return None

    async def _load(self, response_id: str | None, principal: Principal) -> dict | None:
        """A stored response of this caller's key (any key's for the admin key); None for one
        that does not exist or is another key's: both answer 404, so ids reveal nothing."""
        rec = await self.store.get(KEY + (response_id or ""))
        if not isinstance(rec, dict) or not principal.owns(rec.get("owner")):
            return None
        return rec

    async def _save(
        self,
        rid: str,
        body: ResponsesBody,
        principal: Principal,
        added: list[Message],
        items: list[dict],
        reply: Reply,
        response: dict,
    ) -> None:
        rec = {
            "owner": principal.name,
            "previous": body.previous_response_id,
            "messages": [*added, reply.message()],
            "input": items,  # as listed by GET .../input_items (none in older records)
            "response": response,
        }
        ttl = self.svc.spec.responses_ttl_s
        await self.store.set(KEY + rid, rec, ttl)
        for item in response.get("output") or []:  # what an item_reference may name
            await self.store.set(ITEM_KEY + item["id"], rid, ttl)

    async def get(self, response_id: str, principal: Principal) -> Response:
        rec = await self._load(response_id, principal)
        if rec is None:
            raise _not_found(response_id)
        return JSONResponse(rec["response"])

    async def list_input_items(
        self, response_id: str, principal: Principal, query: Mapping[str, str]
    ) -> Response:
        """GET /v1/responses/{id}/input_items: the input items of that request alone (not of
        the conversation before it), a page at a time; `order` is `desc` unless asked."""
        try:
            listed = list_query(query)  # a bad limit or order: a 400 whether it exists or not
            rec = await self._load(response_id, principal)
            if rec is None:
                raise _not_found(response_id)
            items = rec.get("input")
            if not isinstance(items, list):  # stored before input items were
                items = legacy_input_items(response_id, list(rec["messages"])[:-1])
            return JSONResponse(input_items_page(items, listed))
        except RequestError as e:
            raise bad_request(e) from None

    async def delete(self, response_id: str, principal: Principal) -> Response:
        rec = await self._load(response_id, principal)
        if rec is None:
            raise _not_found(response_id)
        await self.store.delete(KEY + response_id)
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


def _not_found(response_id: str) -> APIError:
    return APIError(
        404, f"response {response_id[:100]!r} not found", "response_id", "response_not_found"
    )


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


# ---- OpenAPI documentation of the body (for docs and schema fuzzing; not used to parse) ------
# Exactly as permissive as parse_responses where fuzzing can reach: a body this schema refuses,
# the endpoint refuses too (schemathesis checks both ways).

_TEXT = {"type": "string", "minLength": 1, "pattern": "\\S"}
_INPUT_TEXT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "input_text"}, "text": _TEXT},
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "type": {"const": "message"},
        "role": {"enum": ["user", "assistant", "system", "developer"]},
        "content": {"anyOf": [_TEXT, {"type": "array", "items": _INPUT_TEXT, "minItems": 1}]},
    },
}
_TOOL = {
    "type": "object",
    "required": ["type", "name"],
    "properties": {
        "type": {"const": "function"},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "description": {"type": "string"},
        "parameters": {"type": "object"},
    },
}
_STRING = {"type": "string"}


def openapi_responses() -> dict[str, Any]:
    props: dict[str, Any] = {
        "instructions": _STRING,
        "previous_response_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "tools": {"type": "array", "items": _TOOL},
        "tool_choice": {"enum": ["none", "auto", "required"]},
        "parallel_tool_calls": {"type": "boolean"},
        "stream": {"type": "boolean"},
        "store": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_output_tokens": {"type": "integer", "minimum": 1},
        "metadata": {"type": "object", "additionalProperties": _STRING},
        "user": {"type": "string", "maxLength": 256},
        "truncation": {"enum": ["auto", "disabled"]},
        "include": {"type": "array", "items": _STRING},
        "service_tier": _STRING,
        "prompt_cache_key": _STRING,
        "safety_identifier": _STRING,
        "background": {"const": False},
        **{k: {} for k in RESPONSES_IGNORED if k not in ("reasoning", "stream_options")},
        "reasoning": {"type": "object"},
        "stream_options": {"type": "object"},
    }
    schema = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["router"]},
            "input": {"anyOf": [_TEXT, {"type": "array", "items": _MESSAGE, "minItems": 1}]},
            **{k: nullable(v) for k, v in props.items()},
        },
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
