"""The agent-facing endpoints.

`install_agents(app, svc, caller)` adds the OpenAI Responses API (`/v1/responses`, responses.py),
Anthropic's Messages API (`/v1/messages`, messages.py) and the pass-through endpoints
(`/v1/completions`, `/v1/embeddings`, passthrough.py). Each is a thin face: its body is turned
into a chat request (translate/) and routed by `Router.achat` exactly like chat, with the same
receipts, sessions, records and metrics (endpoint.py).
"""

# No `from __future__ import annotations`: FastAPI must see the endpoints' `Caller` type (a
# local Annotated dependency) as an object, not as a string it cannot resolve.

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from router.server import errors
from router.server.auth import Principal
from router.server.chat import ChatService
from router.server.messages import (
    MessagesService,
    anthropic_error_body,
    openapi_count_tokens,
    openapi_messages,
)
from router.server.passthrough import PassThrough, openapi_completions, openapi_embeddings
from router.server.responses import ResponsesService, openapi_responses
from router.server.translate.input_items import openapi_input_items


def install_agents(
    app: FastAPI, svc: ChatService, caller: Callable, owner_or_admin: Callable
) -> None:
    """Register the agent-facing endpoints on the proxy app. `owner_or_admin` authenticates
    where a key's stored data is read or deleted (the admin key may do so for every key)."""

    Caller = Annotated[Principal, Depends(caller)]
    Owner = Annotated[Principal, Depends(owner_or_admin)]
    responses = ResponsesService(svc)
    messages = MessagesService(svc)
    passthrough = PassThrough(svc)
    errors.SHAPES["/v1/messages"] = anthropic_error_body

    @app.post("/v1/responses", openapi_extra=openapi_responses())
    async def create_response(request: Request, principal: Caller) -> Response:
        return await responses.create(request, principal)

    @app.get("/v1/responses/{response_id}")
    async def get_response(response_id: str, principal: Owner) -> Response:
        return await responses.get(response_id, principal)

    @app.get("/v1/responses/{response_id}/input_items", openapi_extra=openapi_input_items())
    async def list_input_items(response_id: str, request: Request, principal: Owner) -> Response:
        return await responses.list_input_items(response_id, principal, request.query_params)

    @app.delete("/v1/responses/{response_id}")
    async def delete_response(response_id: str, principal: Owner) -> Response:
        return await responses.delete(response_id, principal)

    @app.post("/v1/messages", openapi_extra=openapi_messages())
    async def create_message(request: Request, principal: Caller) -> Response:
        return await messages.create(request, principal)

    @app.post("/v1/messages/count_tokens", openapi_extra=openapi_count_tokens())
    async def count_tokens(request: Request, principal: Caller) -> Response:
        return await messages.count_tokens(request, principal)

    @app.post("/v1/completions", openapi_extra=openapi_completions())
    async def completions(request: Request, principal: Caller) -> Response:
        return await passthrough.completions(request, principal)

    @app.post("/v1/embeddings", openapi_extra=openapi_embeddings())
    async def embeddings(request: Request, principal: Caller) -> Response:
        return await passthrough.embeddings(request, principal)
