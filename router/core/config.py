"""Configuration: the model catalogue (`config.yaml`) and policies (`policies/*.yaml`).

Everything a user writes is validated here, once. Errors name the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Capability = Literal["tools", "json", "vision", "audio", "streaming"]
CacheMode = Literal["off", "exact", "semantic"]
PrivacyAction = Literal["off", "local", "redact", "refuse"]
PrivacyKind = Literal["email", "phone", "payment_card", "iban", "national_id", "secret"]
PRIVACY_KINDS: tuple[PrivacyKind, ...] = (
    "email",
    "phone",
    "payment_card",
    "iban",
    "national_id",
    "secret",
)
RuleName = Literal["pin", "tools", "json", "vision", "context_window"]
DEFAULT_RULES: tuple[RuleName, ...] = ("pin", "tools", "json", "vision", "context_window")


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file and the field."""

    def __init__(self, file: str | Path, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """One model in the catalogue."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-/]+$")
    # Optional for a local model: it is then called as "openai/<name>" on its own server.
    litellm_model: str = Field(min_length=1)
    api_base: str | None = None
    # A local model: a GGUF file (path relative to config.yaml, or a file inside
    # `gguf_package`), served by a llama.cpp server that the router starts itself.
    gguf: str | None = Field(default=None, min_length=1)
    gguf_package: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    api_key_env: str | None = None
    input_price: float = Field(ge=0, description="USD per million input tokens")
    output_price: float = Field(ge=0, description="USD per million output tokens")
    context_window: int = Field(gt=0)
    capabilities: frozenset[Capability] = frozenset({"streaming"})
    tier: Literal["small", "large"] = "small"
    # This model's name in the scorer's training data, when it differs (the same model).
    profile: str | None = None
    # A scorer model whose estimates stand in while this one has no rows of its own: every
    # receipt then says so (`unprofiled`). Unset: the config's `stand_ins` for its tier.
    stand_in: str | None = None
    timeout: float = Field(default=60.0, gt=0, description="seconds per upstream call")
    # Extra tries on 429/5xx before the fallback chain moves on (Retry-After is honoured).
    retries: int = Field(default=1, ge=0, le=10, description="retries on 429/5xx per call")
    # May a prompt carrying private data go to it (privacy: local)? Default: local (gguf)
    # models yes, remote ones no.
    trusted: bool = False

    @field_validator("name")
    @classmethod
    def _not_router(cls, v: str) -> str:
        if v == "router" or v.startswith("router/"):
            raise ValueError("'router' and 'router/...' are reserved for routed requests")
        return v

    @model_validator(mode="before")
    @classmethod
    def _local_defaults(cls, data: Any) -> Any:
        # A local model needs no provider prefix: it is an OpenAI-compatible server of ours.
        if isinstance(data, dict) and (data.get("gguf") or data.get("gguf_package")):
            if "litellm_model" not in data and isinstance(data.get("name"), str):
                data = {**data, "litellm_model": f"openai/{data['name']}"}
            if data.get("trusted") is None:
                data = {**data, "trusted": True}  # served by the router on this machine
        elif isinstance(data, dict) and data.get("trusted") is None:
            data = {k: v for k, v in data.items() if k != "trusted"}
        return data

    @property
    def is_local(self) -> bool:
        """Served by a llama.cpp server that the router starts (see router/serving/local.py)."""
        return bool(self.gguf or self.gguf_package)

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD for one call with these token counts."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


class EncoderSpec(_Strict):
    """Which embedding backend turns routing text into a vector."""

    name: Literal["minilm-q8", "minilm-int8", "minilm"] = "minilm-q8"
    max_tokens: int = Field(default=128, ge=16, le=256)
    cache_size: int = Field(default=4096, ge=0)
    # Threads per encoder call (ONNX backends). "auto": measured at start-up within this
    # process's share of the cores (router/core/autotune.py, docs/performance.md).
    threads: int | Literal["auto"] = "auto"

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64):
            return v
        raise ValueError(f"{v!r}: threads is 'auto' or a whole number from 1 to 64")


class RoutingTextSpec(_Strict):
    """How a conversation becomes the text the encoder sees."""

    max_chars: int = Field(default=2000, ge=64)
    context_chars: int = Field(default=500, ge=0, description="earlier turns, most recent first")
    system_chars: int = Field(default=200, ge=0)
    max_input_chars: int = Field(default=2_000_000, ge=1000, description="reject larger requests")


def _check_rate_limit(v: str | None) -> str | None:
    """A rate limit in the `limits` notation ("100/minute", "10/second;1000/hour")."""
    if v is None:
        return v
    from limits import parse_many  # imported only when a limit is set (start-up time)

    try:
        if not parse_many(v):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{v!r} is not a rate limit; write e.g. '100/minute' or '10/second;1000/hour'"
        ) from None
    return v


class APIKeySpec(_Strict):
    """One API key of the proxy; the secret is given inline or, better, by env var name."""

    name: str = Field(min_length=1, description="label for logs and metrics, never the key")
    key: str | None = Field(default=None, min_length=8)
    key_env: str | None = Field(default=None, min_length=1)
    policy: str | None = Field(default=None, description="policy for model 'router'")
    models: tuple[str, ...] | None = Field(default=None, description="allowed model names")
    # Requests this key may make, e.g. "100/minute" or "10/second;1000/hour" (the `limits`
    # notation); shared by every worker and replica when `state:` names a Redis.
    rate_limit: str | None = Field(default=None, description='e.g. "100/minute"; null: none')

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, v: str | None) -> str | None:
        return _check_rate_limit(v)

    @model_validator(mode="after")
    def _one_source(self) -> APIKeySpec:
        if (self.key is None) == (self.key_env is None):
            raise ValueError("key: give exactly one of 'key' and 'key_env'")
        return self


class ServerSpec(_Strict):
    """The `server:` section: settings of the OpenAI-compatible proxy (`router serve`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=4_000_000, gt=0, description="larger bodies get 413")
    keys: tuple[APIKeySpec, ...] = ()
    # Comma-separated extra keys (default policy, every model); auth is on when any key exists.
    keys_env: str | None = "ROUTER_API_KEYS"
    # The rate limit of each key that sets none (keys from keys_env too); with auth off, of
    # all callers together. Per key, in the `limits` notation; null: none.
    rate_limit: str | None = Field(default=None, description='e.g. "600/minute"; null: none')
    # Where the proxy writes its rows: filled in from the top-level `decision_log:` section
    # (this key of the first version is still read, and moved there).
    decision_log: str | None = Field(
        default="decisions.db",
        description="SQLite file relative to config.yaml, or postgresql:// URL; null: off",
    )
    log_prompts: bool = Field(default=False, description="store prompt text in the decision log")
    # Encode the texts of concurrent requests in one encoder call (throughput under load).
    batch_routing: bool = True
    # On SIGTERM: stop accepting, let in-flight requests (streams too) finish for this long.
    shutdown_grace_s: float = Field(default=30.0, ge=0, description="graceful shutdown, seconds")
    # Stored Responses API turns (previous_response_id), in the shared state: each kept this
    # long; a conversation longer than this many messages continues only with truncation auto.
    responses_ttl_s: float = Field(default=86400.0, gt=0, le=30 * 86400)
    responses_max_messages: int = Field(default=1000, ge=2, le=100_000)
    # POST /admin/reload takes this key (inline or, better, by env var); unset: no admin access.
    admin_key: str | None = Field(default=None, min_length=16)
    admin_key_env: str | None = "ROUTER_ADMIN_KEY"

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, v: str | None) -> str | None:
        return _check_rate_limit(v)


class DecisionLogSpec(_Strict):
    """The `decision_log:` section: where each request's row goes and what it keeps.

    `decision_log: <path or URL>` is short for `decision_log: {url: ...}`; `null` turns it off.
    """

    url: str = Field(
        default="decisions.db",
        min_length=1,
        description="SQLite file (relative to config.yaml) or postgresql://user:pw@host/db",
    )
    # The routing text of each request, for retraining on text; off: only its int8 embedding.
    store_text: bool = False
    max_rows: int | None = Field(default=1_000_000, gt=0, description="retention; null: no cap")
    max_days: float | None = Field(default=90.0, gt=0, description="retention; null: no cap")
    queue_size: int = Field(default=10_000, gt=0, description="rows buffered in an outage")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme = v.partition("://")[0] if "://" in v else None
        if scheme not in (None, "sqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"unsupported database {scheme!r}: give a file path or postgresql://")
        return v


class DriftSpec(_Strict):
    """The `drift:` section: live routing scores vs the scorer's training data (router/core/drift.py)."""

    window: int = Field(default=1000, ge=10, description="live decisions compared")
    threshold: float = Field(default=0.25, gt=0, description="PSI past which a warning is logged")
    min_samples: int = Field(default=100, ge=1, description="no PSI before this many decisions")


class ShadowSpec(_Strict):
    """The `shadow:` section: a sample of requests is also answered by the other tier in the
    background, and a judge model grades the pair (router/learning/shadow.py)."""

    rate: float = Field(gt=0, le=1, description="share of answered requests shadowed")
    judge: str = Field(min_length=1, description="catalogue model that grades the two answers")
    max_usd_per_day: float = Field(gt=0, description="estimated shadow + judge spend per UTC day")
    queue_size: int = Field(default=100, ge=1, description="samples waiting; more are dropped")
    workers: int = Field(default=2, ge=1, le=32, description="samples worked on at once")
    max_tokens: int = Field(default=512, ge=1, description="cap on the shadow answer's tokens")
    # The large model that answers cheap-routed samples; default: the policy's first large one.
    large: str | None = None


class TracingSpec(_Strict):
    """The `tracing:` section: OpenTelemetry spans for routing, each upstream attempt and the
    cascade's verdict, with the receipt's fields as attributes, sent to an OTLP/HTTP collector
    (router/serving/tracing.py). Absent or null: off, and nothing is imported or recorded."""

    exporter: Literal["otlp"] = "otlp"
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="the collector's OTLP/HTTP traces URL",
    )
    # Extra request headers (a collector's auth, say); values may name an env var as ${VAR}.
    headers: dict[str, str] = {}
    service_name: str = Field(default="smallfirst-router", min_length=1)
    sample_rate: float = Field(default=1.0, ge=0, le=1, description="share of requests traced")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="per export")

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, v: str) -> str:
        from urllib.parse import urlparse

        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v

    def __hash__(self) -> int:  # frozen, but `headers` is a dict
        return hash(self.model_dump_json())


class BreakerSpec(_Strict):
    """The `breaker:` section: per-model circuit breakers in the fallback chain."""

    failures: int = Field(default=5, ge=0, description="faults in a row that open it; 0: off")
    cooldown_s: float = Field(default=30.0, gt=0, description="open this long, then one trial")


class StandIns(_Strict):
    """`stand_ins:` in config.yaml: a scorer model per tier that stands in for unprofiled ones."""

    small: str | None = None
    large: str | None = None


def _yaml_off(v: Any) -> Any:
    """YAML 1.1 reads a bare `off` as false: `mode: off` and `action: off` mean "off"."""
    return "off" if v is False else v


class CacheSpec(_Strict):
    """The `cache:` section: answers kept and served again (router/serving/cache.py).

    The key is the normalised conversation, the model that would answer and the parameters
    that change an answer; `semantic` also serves the nearest earlier question (same model,
    system prompt and earlier turns) at cosine >= `similarity` that passes the check that the
    two do not differ in numbers, names, negation or code (router/core/questions.py)."""

    mode: CacheMode = "off"
    similarity: float = Field(default=0.95, gt=0, le=1, description="least cosine for a hit")
    ttl_s: float = Field(default=3600.0, gt=0, description="seconds an answer is kept")
    max_entries: int = Field(default=100_000, ge=1, description="oldest dropped beyond this")
    # null: in this process; redis://...: shared by every worker and replica.
    store: str | None = None
    # Entries belong to the API key that made them; true: one cache for every key.
    share_across_keys: bool = False

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_off(cls, v: Any) -> Any:
        return _yaml_off(v)

    @field_validator("store")
    @classmethod
    def _store_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://")):
            raise ValueError(f"{v!r} is not a redis:// or rediss:// URL (or null: in process)")
        return v


class CacheRules(_Strict):
    """A policy's `cache:`: its own mode or similarity, and what it lets the cache keep."""

    mode: CacheMode | None = None
    similarity: float | None = Field(default=None, gt=0, le=1)
    # Never cached unless listed: sampled answers (temperature > 0), tool calls, n > 1.
    allow: tuple[Literal["temperature", "tools", "n"], ...] = ()

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_off(cls, v: Any) -> Any:
        return _yaml_off(v)


class PrivacySpec(_Strict):
    """The `privacy:` section (a policy may give its own): what happens to a prompt that
    carries private data (router/core/privacy.py detects it)."""

    # local: only trusted models answer; redact: values replaced by typed placeholders before
    # the request leaves; refuse: 400 naming the rule.
    action: PrivacyAction = "off"
    detect: tuple[PrivacyKind, ...] = Field(default=PRIVACY_KINDS, min_length=1)

    @field_validator("action", mode="before")
    @classmethod
    def _action_off(cls, v: Any) -> Any:
        return _yaml_off(v)

    @field_validator("detect")
    @classmethod
    def _no_repeats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a detector is listed twice")
        return v


class RouterConfig(_Strict):
    """`config.yaml`: the catalogue, the encoder, the scorer and where policies live."""

    models: list[ModelSpec] = Field(min_length=1)
    encoder: EncoderSpec = EncoderSpec()
    scorer: str = "default"
    policies_dir: str = "policies"
    default_policy: str = "balanced"
    routing_text: RoutingTextSpec = RoutingTextSpec()
    expected_output_tokens: int = Field(default=300, gt=0)
    server: ServerSpec = ServerSpec()
    breaker: BreakerSpec = BreakerSpec()
    decision_log: DecisionLogSpec | None = DecisionLogSpec()
    drift: DriftSpec = DriftSpec()
    shadow: ShadowSpec | None = None
    # Stand-ins for catalogue models the scorer has no rows for, by tier (a model's own
    # `stand_in` wins). Every receipt names the stand-in a model used (`unprofiled`).
    stand_ins: StandIns = StandIns()
    # OpenTelemetry traces (router/serving/tracing.py); null: off.
    tracing: TracingSpec | None = None
    # Shared state of workers and replicas (breakers, budgets, rate limits, sessions):
    # redis:// or rediss:// URL; null keeps it in process (docs/scaling.md).
    state: str | None = None
    cache: CacheSpec = CacheSpec()
    privacy: PrivacySpec = PrivacySpec()

    @field_validator("state")
    @classmethod
    def _state_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://")):
            raise ValueError(f"{v!r} is not a redis:// or rediss:// URL (or null)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _decision_log_section(cls, data: Any) -> Any:
        """`decision_log: <path or URL>` shorthand; the first version's `server.decision_log`
        moves here; the server's location then follows this section."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        server = data.get("server")
        if isinstance(server, dict) and "decision_log" in server:
            if "decision_log" in data:
                raise ValueError(
                    "server.decision_log: moved to the top-level 'decision_log' section; "
                    "give it only there"
                )
            data["decision_log"] = server["decision_log"]
        section = data.get("decision_log", {})
        if isinstance(section, str):
            section = data["decision_log"] = {"url": section}
        if isinstance(server, dict | None) and (section is None or isinstance(section, dict)):
            url = None if section is None else section.get("url", "decisions.db")
            data["server"] = {**(server or {}), "decision_log": url}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> RouterConfig:
        seen: set[str] = set()
        for i, m in enumerate(self.models):
            if m.name in seen:
                raise ValueError(f"models[{i}].name: duplicate model name {m.name!r}")
            seen.add(m.name)
            # A local model is served by the router itself: no remote endpoint, no key.
            if m.is_local and m.api_base:
                raise ValueError(
                    f"models[{i}].api_base: a model with 'gguf'/'gguf_package' is served by the "
                    "router; give a GGUF file or the api_base of a running server, not both"
                )
            if m.is_local and m.api_key_env:
                raise ValueError(f"models[{i}].api_key_env: a local (gguf) model needs no key")
        if self.privacy.action == "local" and not any(m.trusted for m in self.models):
            raise ValueError(
                "privacy.action: 'local' needs a trusted model; mark one with 'trusted: true' "
                "(local gguf models are trusted by default)"
            )
        if self.shadow is not None:
            for field in ("judge", "large"):
                name = getattr(self.shadow, field)
                if name is not None and name not in seen:
                    raise ValueError(
                        f"shadow.{field}: unknown model {name!r}; the catalogue has {sorted(seen)}"
                    )
        return self

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


class Escalation(_Strict):
    """When the cheap choice is not trusted and the request goes to a large model."""

    min_domain_confidence: float = Field(default=0.0, ge=0, le=1)
    max_difficulty: float = Field(default=1.0, ge=0, le=1)
    # Escalate when the predicted gain (large succeeds where cheap fails) is above this.
    max_gain: float | None = Field(default=None, ge=0, le=1)
    # With per-model success probabilities: escalate when no cheap model reaches this.
    min_success: float | None = Field(default=None, ge=0, le=1)
    # With per-model success probabilities for N models: pick the model that maximises
    # p(success) - cost_weight * cost / cost of the first large model (thresholds then unused).
    cost_weight: float | None = Field(default=None, ge=0)
    # Success estimates are compared by a pessimistic bound, p − pessimism × its standard
    # error: an estimate resting on few similar labelled prompts is not preferred on hope
    # (router/core/policy.py, `lower_bound`). 0 compares the point estimates.
    pessimism: float = Field(default=1.0, ge=0, le=5)


class SessionRules(_Strict):
    """A policy's `session:`: how a conversation keeps its model across turns (router/serving/sessions.py).

    A tool loop always continues on the model that issued the call, whatever these say."""

    sticky: bool = Field(default=True, description="keep a conversation on its model")
    # A later turn may always move up (to a larger model); moving down only when allowed.
    allow_downgrade: bool = False
    ttl_s: float = Field(default=3600.0, gt=0, le=30 * 86400, description="idle seconds kept")
    # No explicit session id: the request's `user` names the session (all of that user's turns).
    key_from_user: bool = True
    # Nor a user: a conversation is known by its messages up to the router's last reply.
    key_from_prefix: bool = True


class Budget(_Strict):
    """A policy's `budget:`: hold a large-model share or a spend rate by moving the escalation
    threshold (router/serving/budget.py). Exactly one target."""

    large_share: float | None = Field(default=None, gt=0, lt=1, description="share of requests")
    usd_per_hour: float | None = Field(default=None, gt=0, description="estimated spend, USD/h")
    window_s: float = Field(default=600.0, ge=10, description="sliding window, seconds")
    # Share points of error that start a correction (it stops at half of it).
    hysteresis: float = Field(default=0.01, ge=0, lt=0.5)
    sync_s: float = Field(default=1.0, gt=0, le=60, description="shared-state sync, seconds")

    @model_validator(mode="after")
    def _one_target(self) -> Budget:
        if (self.large_share is None) == (self.usd_per_hour is None):
            raise ValueError("give exactly one of 'large_share' and 'usd_per_hour'")
        return self


class Cascade(_Strict):
    """A policy's `cascade:` (docs/cascades.md): a cheap model answers first, a verifier judges
    the answer, and a large model answers instead when it looks wrong.

    Hybrid with the prompt scorer when `band` is set: a request whose prompt-only estimate of
    P(cheap answer right) is at least `threshold + band` takes the cheap answer unchecked, one at
    most `threshold - band` goes straight to the large model, and the band between is cascaded.
    Without `band` every request with text is cascaded.
    """

    # Who answers first, in preference order (first eligible); default: the policy's cheap choice.
    models: tuple[str, ...] | None = Field(default=None, min_length=1)
    # "default" (shipped), a directory from `router train-verifier` (relative to the policy
    # file), or "llm": the catalogue model `judge` is asked whether the answer is right.
    verifier: str = Field(default="default", min_length=1)
    judge: str | None = Field(default=None, description="catalogue model of the LLM verifier")
    threshold: float = Field(default=0.5, ge=0, le=1, description="accept when P(right) >= this")
    band: float | None = Field(default=None, ge=0, le=1, description="hybrid band half-width")
    # Streaming: hold up to this many tokens before judging (the whole answer when the
    # request's max_tokens is at most this); nothing reaches the client before the verdict.
    buffer_tokens: int = Field(default=64, ge=1, le=8192)
    # Start the large model's call once this many tokens of the cheap answer are in and the
    # verifier, on them, is already below the threshold; the call is cancelled (its cost
    # counted) when the verdict keeps the cheap answer. null: the large model waits for the
    # verdict. Not with `verifier: llm` (a judge call per prefix would cost more than it saves).
    speculate_tokens: int | None = Field(default=16, ge=1, le=8192)
    # Ask the first model for token logprobs (the verifier uses them when trained with them).
    logprobs: bool = False
    # A tool-call answer carries no text to judge: pass it through, or let the large model answer.
    tool_calls: Literal["accept", "escalate"] = "accept"
    # JSON mode: an answer that does not parse as JSON is escalated (or accepted unjudged).
    invalid_json: Literal["escalate", "accept"] = "escalate"

    @model_validator(mode="after")
    def _judge_for_llm(self) -> Cascade:
        if self.verifier == "llm" and self.judge is None:
            raise ValueError("judge: verifier 'llm' needs a judge model from the catalogue")
        if self.verifier != "llm" and self.judge is not None:
            raise ValueError("judge: only used with verifier: llm")
        return self


class Policy(_Strict):
    """`policies/<name>.yaml`: hard rules, domain specialists, escalation thresholds."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    rules: tuple[RuleName, ...] = DEFAULT_RULES
    default: tuple[str, ...] = Field(min_length=1, description="cheap models, in preference order")
    domains: dict[str, tuple[str, ...]] = {}
    large: tuple[str, ...] = Field(min_length=1, description="escalation targets, in order")
    escalation: Escalation = Escalation()
    fallbacks: tuple[str, ...] | None = Field(
        default=None, description="explicit fallback order; default: large models, then cheap"
    )
    budget: Budget | None = None

    @model_validator(mode="after")
    def _budget_needs_a_threshold(self) -> Policy:
        if self.budget is not None and self.escalation.cost_weight is not None:
            raise ValueError(
                "budget: a budget moves the escalation threshold (max_gain or max_difficulty); "
                "it cannot steer a cost_weight policy"
            )
        return self

    # Sticky conversations; None: the defaults of SessionRules (kept out of dumped policies).
    session: SessionRules | None = None
    # Cheap answer first, judged, escalated when it looks wrong (router/serving/cascade.py).
    cascade: Cascade | None = None
    # This policy's own cache settings and privacy rule (else config.yaml's sections).
    cache: CacheRules | None = None
    privacy: PrivacySpec | None = None

    @field_validator("rules")
    @classmethod
    def _no_repeats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a rule is listed twice")
        return v

    def model_names(self) -> list[str]:
        names = list(self.default) + list(self.large) + list(self.fallbacks or ())
        for ms in self.domains.values():
            names.extend(ms)
        if self.cascade is not None and self.cascade.models:
            names.extend(self.cascade.models)
        return list(dict.fromkeys(names))


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "", f"cannot read: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(path, "", f"invalid YAML: {e}") from None


def _validate(cls: type[BaseModel], data: Any, path: Path) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(path, "", "expected a mapping at the top level")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"]
        field = _format_loc(err["loc"])
        # Errors raised by a model validator carry the field in the message.
        if not field and ": " in msg and msg.startswith("Value error, "):
            field, _, msg = msg.removeprefix("Value error, ").partition(": ")
        msg = msg.removeprefix("Value error, ")  # a nested section's own check
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ConfigError(path, field, msg + more) from None


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate `config.yaml`."""
    path = Path(path)
    return _validate(RouterConfig, _read_yaml(path), path)


def load_policy(path: str | Path, catalogue: RouterConfig, domains: list[str]) -> Policy:
    """Read one policy and check every model and domain it names."""
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    policy: Policy = _validate(Policy, data, path)
    if policy.name != path.stem:
        raise ConfigError(
            path, "name", f"{policy.name!r} does not match the file name {path.stem!r}"
        )
    known = {m.name for m in catalogue.models}
    fields: list[tuple[str, tuple[str, ...]]] = [
        ("default", policy.default),
        ("large", policy.large),
    ]
    fields += [(f"domains.{d}", ms) for d, ms in policy.domains.items()]
    fields += [("fallbacks", policy.fallbacks or ())]
    if policy.cascade is not None:
        fields += [("cascade.models", policy.cascade.models or ())]
        if policy.cascade.judge is not None and policy.cascade.judge not in known:
            raise ConfigError(
                path,
                "cascade.judge",
                f"unknown model {policy.cascade.judge!r}; the catalogue has {sorted(known)}",
            )
        policy = _resolve_verifier(policy, path)
    for field, names in fields:
        for i, n in enumerate(names):
            if n not in known:
                raise ConfigError(
                    path, f"{field}[{i}]", f"unknown model {n!r}; the catalogue has {sorted(known)}"
                )
    for d in policy.domains:
        if d not in domains:
            raise ConfigError(path, f"domains.{d}", f"unknown domain; known domains: {domains}")
    return policy


def _resolve_verifier(policy: Policy, path: Path) -> Policy:
    """A verifier directory relative to the policy file becomes absolute; it must exist."""
    spec = policy.cascade.verifier if policy.cascade is not None else "default"
    if spec in ("default", "llm"):
        return policy
    where = Path(spec) if Path(spec).is_absolute() else path.resolve().parent / spec
    if not (where / "verifier.json").is_file():
        raise ConfigError(
            path,
            "cascade.verifier",
            f"{where} is not a verifier directory (train one with `router train-verifier`), "
            "or use 'default' or 'llm'",
        )
    cascade = policy.cascade.model_copy(update={"verifier": str(where)})
    return policy.model_copy(update={"cascade": cascade})


def _check_privacy(policy: Policy, catalogue: RouterConfig, path: Path) -> None:
    """Under `privacy.action: local` a policy must name a trusted model to answer with."""
    rule = policy.privacy or catalogue.privacy
    if rule.action != "local":
        return
    trusted = {m.name for m in catalogue.models if m.trusted}
    if not trusted & set(policy.model_names()):
        where = "its privacy section" if policy.privacy else "config.yaml's privacy section"
        raise ConfigError(
            path,
            "privacy.action",
            f"'local' (from {where}) needs a trusted model in this policy; trusted models in "
            f"the catalogue: {sorted(trusted)}",
        )


def load_policies(directory: str | Path, catalogue: RouterConfig, domains: list[str]) -> dict:
    """All `*.yaml` policies in a directory, by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(directory, "policies_dir", "not a directory")
    policies = {}
    for p in sorted(directory.glob("*.yaml")):
        pol = load_policy(p, catalogue, domains)
        _check_privacy(pol, catalogue, p)
        policies[pol.name] = pol
    if not policies:
        raise ConfigError(directory, "policies_dir", "no *.yaml policy files found")
    return policies


def dump_policy(policy: Policy, path: str | Path) -> None:
    """Write a policy back to YAML in the same shape users write by hand."""
    data = policy.model_dump(mode="json", exclude_none=True)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=1000)
    Path(path).write_text(text, encoding="utf-8")
