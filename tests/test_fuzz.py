"""Fuzzing the proxy's OpenAPI schema with schemathesis: no input gives a 5xx.

Every operation of the app's own `/openapi.json` is fuzzed against the live proxy on 127.0.0.1,
with schema-valid bodies (positive) and schema-violating ones (negative, which must also be
refused with a 4xx). Hypothesis runs derandomised with a bounded number of examples, so the run
is reproducible and takes well under a minute. Positive chat bodies mostly get a known, healthy
model name, so fuzzing reaches routing and the upstream call instead of stopping at a 404.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, not_a_server_error

from router.server import create_app
from tests.proxy import Proxy, shared_server_router

EXAMPLES = {"POST": 50, "GET": 5, "DELETE": 5}  # per operation and mode: bounded time
BODY_OPS = {"/v1/chat/completions", "/v1/route"}
# The agent endpoints (router/server/agents.py): Responses, Anthropic Messages, pass-through.
BODY_OPS |= {"/v1/responses", "/v1/messages", "/v1/completions", "/v1/embeddings"}
BODY_OPS |= {"/v1/messages/count_tokens"}
BODY_OPS |= {"/v1/feedback"}  # scores a request id (router/server/feedback.py)


@pytest.fixture(scope="module")
def server_router(test_config, tmp_path_factory, upstream):
    return shared_server_router(test_config, tmp_path_factory, upstream)


@pytest.fixture(scope="module")
def proxy(server_router, tmp_path_factory):
    spec = server_router.config.server.model_copy(
        update={"decision_log": str(tmp_path_factory.mktemp("fuzz") / "d.db"), "keys_env": None}
    )
    p = Proxy(create_app(server_router, spec)).start()
    yield p
    p.stop()


# "raw": anything JSON can hold, NUL characters included (must be a 400, never a 5xx);
# "clean": no NUL, so more bodies get past validation to routing and the upstream.
PROFILES = {"raw": {}, "clean": {"generation": {"allow-x00": False}}}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def schema(proxy, request):
    config = schemathesis.Config.from_dict(PROFILES[request.param])
    return schemathesis.openapi.from_dict(proxy.app.openapi(), config=config)


def operations() -> list[tuple[str, str]]:
    """Every documented operation (test_every_route_is_fuzzed keeps this list complete)."""
    return [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/route"),
        ("POST", "/v1/feedback"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/{response_id}"),
        ("GET", "/v1/responses/{response_id}/input_items"),
        ("DELETE", "/v1/responses/{response_id}"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model_id}"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        # Not the admin routes (/admin/reload, /admin/stats): they are left out of the schema
        # (router/server/admin.py), and tests/test_auth_admin.py covers what they accept.
    ]


def test_every_route_is_fuzzed(proxy):
    documented = {(m.upper(), p) for p, ops in proxy.app.openapi()["paths"].items() for m in ops}
    assert documented == set(operations())


# Negative data only where there is input to violate (the GET operations take none).
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in operations()] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in operations() if p in BODY_OPS
]


@pytest.mark.parametrize("method, path, mode", CASES)
def test_fuzzed_requests_never_get_a_5xx(schema, proxy, method, path, mode):
    op = schema[path][method]
    # Healthy targets only: the shared catalogue also holds models that fail on purpose
    # (test_faults.py covers those); a 502 from them is an upstream fault, not bad input.
    models = ["router", "router/balanced", "router/flaky", "large", "small-general", "small-math"]
    checks = [not_a_server_error]
    if mode == GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)

    @settings(
        max_examples=EXAMPLES[method],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode), model=st.sampled_from([None, *models]))
    def run(case, model) -> None:
        if model and mode == GenerationMode.POSITIVE and isinstance(case.body, dict):
            case.body["model"] = model
        response = case.call(base_url=proxy.url, timeout=60)
        case.validate_response(response, checks=checks)

    run()
