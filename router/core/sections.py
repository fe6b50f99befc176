"""The sections of `config.yaml` besides the catalogue: encoder, routing text, server and API
keys, decision log and its spool, drift, shadow, tracing, breakers, stand-ins, cache and privacy;
and the words of the config's errors: the nearest valid name, what a section accepts, which
providers litellm knows.

Validated once, here and in router/core/config.py; errors name the field.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


def _takes_only_numbers(annotation: Any) -> bool:
    """Whether a field's type is a number (or an optional one), nothing else."""
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    return all(a in (int, float) for a in args)


def _env_name(v: str) -> str:
    """A field that names an environment variable holds its name, never the secret itself: a
    value pasted there would be shown wherever the variable is named ("... is not set")."""
    looks_like_a_key = len(v) >= 30 and re.search(r"[a-z]", v) and re.search(r"[0-9]", v)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) and not looks_like_a_key:
        return v
    ref = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", v)
    hint = f"; write {ref.group(1)} without '$'" if ref else ""
    # The value is not repeated: it may be the key.
    raise ValueError(
        "not an environment variable's name (letters, digits, '_'): give the name of the "
        f"variable that holds the key, not its value{hint}"
    )


# The name of an environment variable (`api_key_env`, `key_env`, ...).
EnvName = Annotated[str, AfterValidator(_env_name)]


class Strict(BaseModel):
    """A configuration model: unknown fields are errors, values are frozen, and a number is
    a finite number: not `.inf` or `.nan`, nor a YAML boolean."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # YAML 1.1 reads yes/no/on/off/true/false as booleans, and pydantic would take them as
        # 1 and 0: `max_difficulty: off` would escalate every request, `timeout: yes` be 1 s.
        if isinstance(v, bool) and _takes_only_numbers(
            cls.model_fields[info.field_name].annotation
        ):
            word = "yes/on/true" if v else "no/off/false"
            raise ValueError(f"expected a number, got {word} (a YAML boolean)")
        return v


class EncoderSpec(Strict):
    """Which embedding backend turns routing text into a vector."""

    name: Literal["minilm-l2-q8", "minilm-q8", "minilm-int8", "minilm"] = "minilm-l2-q8"
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


class RoutingTextSpec(Strict):
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


# A DNS name (labels of letters, digits and '-'), or one with "*." for its subdomains.
_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _host_entry(i: int, v: str, subdomains: bool) -> str:
    """One entry of a list of hosts, lowercased, as a Host header or a URL names it: a name or
    an address alone (an IPv6 address without its brackets, in its short form), '*' for any
    host, and with `subdomains` '*.example.com' for its subdomains."""
    host = v.strip().lower().rstrip(".")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host == "*" or (_HOST_NAME.fullmatch(host) and (subdomains or not host.startswith("*."))):
        return host
    alone = "no scheme, port or path), '*.example.com' for its subdomains"
    alone = alone if subdomains else "no scheme, port, path or wildcard)"
    raise ValueError(
        f"{v!r} (item {i}) is not a host; give a name or address alone ({alone}, or '*' for "
        "any host"
    )


class APIKeySpec(Strict):
    """One API key of the proxy; the secret is given inline or, better, by env var name."""

    name: str = Field(min_length=1, description="label for logs and metrics, never the key")
    key: str | None = Field(default=None, min_length=8)
    key_env: EnvName | None = None
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


class ServerSpec(Strict):
    """The `server:` section: settings of the OpenAI-compatible proxy (`router serve`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=4_000_000, gt=0, description="larger bodies get 413")
    keys: tuple[APIKeySpec, ...] = ()
    # Comma-separated extra keys (default policy, every model); auth is on when any key exists.
    keys_env: EnvName | None = "ROUTER_API_KEYS"
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
    # From the env var too it must have 16 characters or more (checked at start-up).
    admin_key: str | None = Field(default=None, min_length=16)
    admin_key_env: EnvName | None = "ROUTER_ADMIN_KEY"
    # With auth off, the Host names (besides loopback ones and the address a request came in
    # on) the proxy answers: a web page that rebinds its own name to 127.0.0.1 is refused.
    # "*.example.com" takes its subdomains, "*" any host (the check off).
    allowed_hosts: tuple[str, ...] = ()
    # Hosts whose URLs in a request's image, file or audio parts may resolve to an internal
    # address (loopback, private, link-local ...), which a model call then fetches on this
    # machine or in its network; "*": any host. Read by the SDK too (router/serving/media_urls.py).
    private_url_hosts: tuple[str, ...] = ()

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, v: str | None) -> str | None:
        return _check_rate_limit(v)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_host_entry(i, h, subdomains=True) for i, h in enumerate(hosts))

    @field_validator("private_url_hosts")
    @classmethod
    def _url_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_host_entry(i, h, subdomains=False) for i, h in enumerate(hosts))

    @field_validator("keys")
    @classmethod
    def _names_are_unique(cls, keys: tuple[APIKeySpec, ...]) -> tuple[APIKeySpec, ...]:
        # A key's name owns its decision-log rows, feedback, sessions, cache scope and rate
        # limit: two keys of one name would share all of them.
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k.name in seen:
                raise ValueError(f"keys[{i}].name: {k.name!r} is the name of an earlier key")
            seen.add(k.name)
        return keys


class SpoolSpec(Strict):
    """`decision_log.spool`: each process's write-ahead journal on local disk
    (docs/reliability.md). Every row is in it before the answer's first byte leaves."""

    # Default: `<file>.spool/` beside a SQLite log; for a database URL, `decisions-<hash of
    # the URL>.spool/` beside config.yaml. Relative paths start at config.yaml's folder. It
    # must be on a local disk, shared by the workers (and replicas) of one machine.
    dir: str | None = Field(default=None, min_length=1, description="spool directory")
    # always: fsync before each answer begins (a power loss loses nothing answered; costs an
    # fsync per request); interval: every fsync_interval_s; off: when the kernel writes back.
    # A killed process loses nothing under any of them.
    fsync: Literal["always", "interval", "off"] = "interval"
    fsync_interval_s: float = Field(default=1.0, gt=0, le=60)


class DecisionLogSpec(Strict):
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
    # Without a spool: rows held in memory during an outage (more are dropped and counted).
    # With one (rows wait on disk): how many unwritten request ids feedback can still find.
    queue_size: int = Field(default=10_000, gt=0, description="rows buffered in an outage")
    # The write-ahead spool; null: off (rows then wait in memory and a killed process loses
    # the ones not yet written).
    spool: SpoolSpec | None = SpoolSpec()

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme = v.partition("://")[0] if "://" in v else None
        if scheme not in (None, "sqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"unsupported database {scheme!r}: give a file path or postgresql://")
        return v


class DriftSpec(Strict):
    """The `drift:` section: live routing scores vs the scorer's training data (router/core/drift.py)."""

    window: int = Field(default=1000, ge=10, description="live decisions compared")
    threshold: float = Field(default=0.25, gt=0, description="PSI past which a warning is logged")
    min_samples: int = Field(default=100, ge=1, description="no PSI before this many decisions")


class ShadowSpec(Strict):
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


class TracingSpec(Strict):
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


class BreakerSpec(Strict):
    """The `breaker:` section: per-model circuit breakers in the fallback chain."""

    failures: int = Field(default=5, ge=0, description="faults in a row that open it; 0: off")
    cooldown_s: float = Field(default=30.0, gt=0, description="open this long, then one trial")


class StandIns(Strict):
    """`stand_ins:` in config.yaml: a scorer model per tier that stands in for unprofiled ones."""

    small: str | None = None
    large: str | None = None


def _yaml_off(v: Any) -> Any:
    """YAML 1.1 reads a bare `off` as false: `mode: off` and `action: off` mean "off"."""
    return "off" if v is False else v


class CacheSpec(Strict):
    """The `cache:` section: answers kept and served again (router/serving/cache.py).

    The key is the normalised conversation, the model that would answer and the parameters
    that change an answer; `semantic` also serves the nearest earlier question (same model,
    system prompt and earlier turns) at cosine >= `similarity` that passes the check that the
    two do not differ in numbers, names, negation or code (router/core/questions.py)."""

    mode: CacheMode = "off"
    similarity: float = Field(default=0.95, gt=0, le=1, description="least cosine for a hit")
    # Whose vectors a semantic lookup compares. The routing encoder (layer 2 of MiniLM) keeps
    # too little of the meaning: "How do I sort a list in Python?" and "... reverse a list ..."
    # are at cosine 0.96 there, 0.55 with all six layers. "routing" reuses the routing vector
    # (no second embedding) and trusts the question guard alone.
    encoder: Literal["minilm-q8", "minilm-int8", "minilm", "routing"] = "minilm-q8"
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


class CacheRules(Strict):
    """A policy's `cache:`: its own mode or similarity, and what it lets the cache keep."""

    mode: CacheMode | None = None
    similarity: float | None = Field(default=None, gt=0, le=1)
    # Never cached unless listed: sampled answers (temperature > 0), tool calls, n > 1.
    allow: tuple[Literal["temperature", "tools", "n"], ...] = ()

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_off(cls, v: Any) -> Any:
        return _yaml_off(v)


class PrivacySpec(Strict):
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


def did_you_mean(name: str, choices: Any) -> str:
    """ " (did you mean 'x'?)" with the nearest of `choices` to a mistyped name, or ""."""
    near = difflib.get_close_matches(name, sorted(map(str, choices)), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def unknown_field(cls: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The message for a field no section has (pydantic's "Extra inputs are not permitted"):
    the nearest name the section at `loc` does take, or the names it takes."""
    section = _section_at(cls, loc[:-1])
    if section is None:
        return "unknown field"
    names = [f.alias or n for n, f in section.model_fields.items()]
    hint = did_you_mean(str(loc[-1]), names)
    return "unknown field" + (hint or f" (it takes: {', '.join(sorted(names))})")


def _section_at(cls: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model a field path leads to inside `cls` (lists, tuples, dicts and optional
    unions looked through), or None where it leads elsewhere."""
    for part in loc:
        if isinstance(part, int) or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            continue  # a list's index: the item's model is the one already found
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        cls = _model_in(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation (`X | None`, `list[X]`, `dict[str, X]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# How a section given as `off` is turned off, by its class, and whether off is its default.
_HOW_OFF = {
    "CacheSpec": ("{mode: off}", True),
    "CacheRules": ("{mode: off}", False),  # a policy's own: unset, it follows config.yaml's
    "PrivacySpec": ("{action: off}", True),
    "DecisionLogSpec": ("null", False),
    "SpoolSpec": ("null", False),
    "TracingSpec": ("null", True),
    "ShadowSpec": ("null", True),
}


def not_a_section(field: str, class_name: str, value: Any) -> str:
    """What a section given a scalar (`cache: off`) accepts, in the config's words, not in
    the name of the class pydantic gives."""
    classes, cls = [Strict], None
    while classes and cls is None:
        c = classes.pop()
        cls = c if c.__name__ == class_name else None
        classes.extend(c.__subclasses__())
    fields = f" ({', '.join(cls.model_fields)})" if cls is not None else ""
    got = f"{'yes/on/true' if value else 'no/off/false'} (a YAML boolean)"
    got = got if isinstance(value, bool) else repr(value)
    msg = f"expected a section, a mapping of its fields{fields}; got {got}"
    name = field.rpartition(".")[2] or field
    if class_name in _HOW_OFF and (value is False or value == "off"):
        how, default = _HOW_OFF[class_name]
        msg += f". To turn it off write `{name}: {how}`"
        msg += f", or leave `{name}:` out (off is the default)" if default else ""
    return msg


# litellm's provider list and model map, read from its files: router/core may not import
# litellm (the import contract), and the import takes seconds where reading takes milliseconds.
def _litellm_file(*parts: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("litellm")  # a top-level package: found, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0], *parts)


@functools.cache
def litellm_providers_from_files() -> frozenset[str]:
    """The provider prefixes litellm takes: its `LlmProviders` enum (`litellm.provider_list`)
    and the OpenAI-compatible providers of its providers.json. Empty when unreadable."""
    enum, extra = _litellm_file("types", "utils.py"), _litellm_file("llms", "openai_like")
    try:
        source = enum.read_text(encoding="utf-8") if enum else ""
        more = json.loads((extra / "providers.json").read_bytes()) if extra else {}
    except (OSError, ValueError):
        return frozenset()
    body = re.search(r"^class LlmProviders\(str, Enum\):\n((?:[ \t]+\S.*\n|\s*\n)+)", source, re.M)
    names = re.findall(r'^[ \t]+[A-Z0-9_]+ = "([^"]+)"', body.group(1), re.M) if body else []
    return frozenset(names) | frozenset(more if isinstance(more, dict) else ())


@functools.cache
def litellm_models_from_files() -> frozenset[str]:
    """The model names of litellm's model map (its local copy, which litellm reads with
    LITELLM_LOCAL_MODEL_COST_MAP=True, as the router runs it). Empty when unreadable."""
    where = _litellm_file("model_prices_and_context_window_backup.json")
    try:
        names = json.loads(where.read_bytes()) if where else {}
    except (OSError, ValueError):
        return frozenset()
    return frozenset(names if isinstance(names, dict) else ())


def _private_host(url: str) -> bool:
    """A loopback, private or single-label host: none of the public endpoints litellm knows."""
    host = urlparse(url).hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host
    return ip.is_private or ip.is_loopback or ip.is_link_local


def litellm_provider_problem(litellm_model: str, api_base: str | None) -> str | None:
    """Why litellm will not know which provider to call `litellm_model` with (at
    `api_base`); None when it will, or when litellm's files cannot be read."""
    providers = litellm_providers_from_files()
    prefix, slash, _ = litellm_model.partition("/")
    if not providers or (slash and prefix in providers):
        return None
    if slash:
        return (
            f"unknown provider {prefix!r} in {litellm_model!r}{did_you_mean(prefix, providers)}; "
            "litellm's providers: https://docs.litellm.ai/docs/providers"
        )
    # No prefix: litellm knows the model by name (its model map; an OpenAI fine-tune), or
    # by the public endpoint it is called at (api.groq.com ...). A local server it does not.
    models = litellm_models_from_files()
    if litellm_model in models or litellm_model.startswith(("ft:", "gpt-image")) or not models:
        return None
    if api_base is not None and not _private_host(api_base):
        return None
    at = " at api_base" if api_base else ""
    return (
        f"{litellm_model!r} has no provider prefix and is not a model litellm knows by name"
        f"{did_you_mean(litellm_model, models)}: write '<provider>/<model>', e.g. "
        f"'openai/{litellm_model}' for an OpenAI-compatible server{at}"
    )
