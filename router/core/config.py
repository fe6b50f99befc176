"""Configuration: the model catalogue (`config.yaml`) and policies (`policies/*.yaml`).

Everything a user writes is validated here, once. Errors name the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

# The sections besides the catalogue live in router/core/sections.py; importable from here too.
from router.core.sections import (  # noqa: F401 - re-exported
    PRIVACY_KINDS,
    APIKeySpec,
    BreakerSpec,
    CacheMode,
    CacheRules,
    CacheSpec,
    DecisionLogSpec,
    DriftSpec,
    EncoderSpec,
    EnvName,
    PrivacyAction,
    PrivacyKind,
    PrivacySpec,
    RoutingTextSpec,
    ServerSpec,
    ShadowSpec,
    SpoolSpec,
    StandIns,
    Strict,
    TracingSpec,
    did_you_mean,
    litellm_provider_problem,
    not_a_section,
    unknown_field,
)
from router.core.yaml_lines import line_of

Capability = Literal["tools", "json", "vision", "audio", "streaming"]
RuleName = Literal["pin", "tools", "json", "vision", "context_window"]
DEFAULT_RULES: tuple[RuleName, ...] = ("pin", "tools", "json", "vision", "context_window")


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file, the line where the field
    is written (when the file has it) and the field."""

    def __init__(self, file: str | Path, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        self.line = line_of(file, field)
        where = f"line {self.line}: " if self.line is not None else ""
        super().__init__(f"{file}: {where}{field}: {message}" if field else f"{file}: {message}")


_Strict = Strict


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
    api_key_env: EnvName | None = None
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
    # Leave out the OpenAI parameters this model does not take (by litellm's map of its
    # provider; `verbosity` sent to a model without it, say) instead of failing the request
    # with 400. The receipt names what was left out (x-router-dropped-params).
    drop_params: bool = False

    @field_validator("name")
    @classmethod
    def _not_router(cls, v: str) -> str:
        if v == "router" or v.startswith("router/"):
            raise ValueError("'router' and 'router/...' are reserved for routed requests")
        return v

    @field_validator("api_base")
    @classmethod
    def _api_base_url(cls, v: str | None) -> str | None:
        # Without a scheme ("localhost:8000/v1") litellm fails only when the model is called.
        u = urlparse(v) if v is not None else None
        if u is not None and (u.scheme not in ("http", "https") or not u.netloc):
            hint = f"; write 'http://{v}'" if "://" not in v else ""
            raise ValueError(f"{v!r} is not an http:// or https:// URL{hint}")
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
    # The file it was read from (load_config); errors found later name it.
    _file: str | None = PrivateAttr(default=None)

    @property
    def file(self) -> str | None:
        """The file this config was read from; None for one built in code."""
        return self._file

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
        for i, key in enumerate(self.server.keys):
            for j, name in enumerate(key.models or ()):
                # "router/<policy>" is checked with the policies (check_default_policy).
                if name in seen or name == "router" or name.startswith("router/"):
                    continue
                raise ValueError(
                    f"server.keys[{i}].models[{j}]: key {key.name!r}: unknown model {name!r}"
                    f"{did_you_mean(name, seen)}; a key's models are catalogue models, "
                    f"'router' or 'router/<policy>' (the catalogue has {sorted(seen)})"
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
    # The gain compared with max_gain. "blend": the scorer's gain head averaged (in log-odds)
    # with the same probability from the success heads of this request's cheap and large
    # candidates, p_large × (1 − p_cheap), where both have one; "head": the gain head alone.
    # The blend ranked better under CV and leaving a source out (docs/evaluation.md).
    gain_estimate: Literal["blend", "head"] = "blend"
    # With per-model success probabilities: escalate when no cheap model reaches this.
    min_success: float | None = Field(default=None, ge=0, le=1)
    # With per-model success probabilities for N models: pick the model that maximises
    # p(success) - cost_weight * cost / cost of the first large model (thresholds then unused).
    cost_weight: float | None = Field(default=None, ge=0)
    # Success estimates are compared by a pessimistic bound, p − pessimism × its standard
    # error: an estimate resting on few similar labelled prompts is not preferred on hope
    # (router/core/policy.py, `lower_bound`). 0 compares the point estimates.
    pessimism: float = Field(default=1.0, ge=0, le=5)
    # With cost_weight: the request starts at the priciest candidate, and a cheaper one takes it
    # over only when its utility is ahead by more than this many standard errors of the two
    # estimates' comparison (the one ahead counting its error in full, the other no more than
    # that), walking down the price list. A cheaper model then replaces a likely stronger one
    # only when ahead beyond the noise, not on the luck of its estimate, and a model that takes
    # no request moves none between the others (docs/policies.md, "Ties go to the priciest").
    # 0: the argmax.
    tie_se: float = Field(default=2.0, ge=0, le=5)


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


POLICY_NAME = r"^[A-Za-z0-9_.\-]+$"


def check_policy_file_name(path: str | Path) -> None:
    """A policy's name is its file name: refuse a file whose stem cannot be one, in words a
    user who never wrote a `name:` understands."""
    stem = Path(path).stem
    if not re.fullmatch(POLICY_NAME, stem):
        raise ConfigError(
            path,
            "name",
            f"the file name {stem!r} is the policy's name: use letters, digits, '_', '.', '-'",
        )


class Policy(_Strict):
    """`policies/<name>.yaml`: hard rules, domain specialists, escalation thresholds."""

    name: str = Field(min_length=1, pattern=POLICY_NAME)
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
        raw = path.read_bytes()
    except FileNotFoundError:
        # A relative path names where it was looked for: the working directory is often the
        # surprise (a command run outside the project).
        where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
        raise ConfigError(path, "", f"file not found{where}") from None
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            path, "", f"line {line}: not UTF-8 (byte 0x{raw[e.start]:02x}); save it as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as e:
        raise ConfigError(path, "", _yaml_problem(e, text)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: by
    itself the last one wins, and a second `escalation:` or `models:` silently replaces the
    first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:  # as written: keys a `<<:` merge brings may be replaced
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{key!r} is given twice (first at line {seen[key]}); the second would "
                    "replace the first",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """PyYAML's error in one line, starting with where it is ("line 7, column 3: ...")."""
    if isinstance(e, yaml.reader.ReaderError):  # a control character, say
        line = text.count("\n", 0, e.position) + 1
        return f"line {line}: invalid YAML: unacceptable character #x{e.character:04x}"
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if "\\t" in problem or "\t" in problem:
        problem += "; indent with spaces, not tabs"
    context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and context_mark is not None and mark is not None:
        if context_mark.line != mark.line:
            problem += f" ({context} from line {context_mark.line + 1})"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}invalid YAML: {problem}"


def _validate(cls: type[BaseModel], data: Any, path: Path) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(path, "", "expected a mapping at the top level")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        (field, msg), *others = [_field_and_message(err, cls) for err in e.errors()]
        # Every mistake at once, each with its field: fixing one to meet the next is slow.
        shown = [f"{f}: {m}" if f else m for f, m in others[:MORE_ERRORS]]
        if len(others) > MORE_ERRORS:
            shown.append(f"{len(others) - MORE_ERRORS} more")
        more = f" (also {'; '.join(shown)})" if shown else ""
        raise ConfigError(path, field, msg + more) from None


# How many more validation errors a ConfigError names after the first.
MORE_ERRORS = 4


def _field_and_message(err: Any, cls: type[BaseModel]) -> tuple[str, str]:
    """A pydantic error as (the field's dotted path, the message)."""
    msg = err["msg"]
    field = _format_loc(err["loc"])
    if err["type"] == "extra_forbidden":  # a typo, most often: the nearest name it takes
        msg = unknown_field(cls, err["loc"])
    if err["type"] == "model_type":  # a section given a scalar: not a word of pydantic's classes
        msg = not_a_section(field, err["ctx"]["class_name"], err["input"])
    # Errors raised by a model validator carry the field in the message.
    if not field and ": " in msg and msg.startswith("Value error, "):
        field, _, msg = msg.removeprefix("Value error, ").partition(": ")
    return field, msg.removeprefix("Value error, ")  # a nested section's own check


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate `config.yaml`, and check that litellm knows each model's provider."""
    path = Path(path)
    config: RouterConfig = _validate(RouterConfig, _read_yaml(path), path)
    config._file = str(path)
    check_providers(config, path)
    return config


def read_yaml(path: str | Path) -> Any:
    """A YAML file read as the config files are: UTF-8, no key given twice, and a mistake is
    one ConfigError naming the file, its line and column."""
    return _read_yaml(Path(path))


def validate_policy(data: Any, path: str | Path) -> Policy:
    """The contents of the policy file `path` checked on their own (fields, types, values;
    the models they name are checked against a catalogue by `load_policy`)."""
    path = Path(path)
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": path.stem}
    return _validate(Policy, data, path)


def check_providers(config: RouterConfig, path: str | Path) -> None:
    """Each model's litellm provider (the prefix of `litellm_model`, else the model litellm
    knows by name) must be one litellm knows: otherwise the model fails only when called."""
    for i, m in enumerate(config.models):
        problem = litellm_provider_problem(m.litellm_model, None if m.is_local else m.api_base)
        if problem:
            raise ConfigError(path, f"models[{i}].litellm_model", f"model {m.name!r}: {problem}")


def load_policy(path: str | Path, catalogue: RouterConfig, domains: list[str]) -> Policy:
    """Read one policy and check every model and domain it names."""
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, dict):
        if "name" not in data:
            check_policy_file_name(path)
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
    for p in sorted(directory.glob("*.yml")):
        # Read only as *.yaml: a .yml file, skipped in silence, would be a policy that quietly
        # does not exist.
        raise ConfigError(p, "", f"policy files end in .yaml: rename it to {p.stem}.yaml")
    policies = {}
    for p in sorted(directory.glob("*.yaml")):
        pol = load_policy(p, catalogue, domains)
        _check_privacy(pol, catalogue, p)
        policies[pol.name] = pol
    if not policies:
        raise ConfigError(directory, "policies_dir", "no *.yaml policy files found")
    return policies


def check_default_policy(config_file: str | Path, config: RouterConfig, policies: dict) -> None:
    """The config's `default_policy`, and the policies its API keys name (`policy`, and
    `router/<policy>` among their `models`), must be loaded policies."""
    named = [("default_policy", config.default_policy, "")]
    for i, key in enumerate(config.server.keys):
        who = f"key {key.name!r}: "
        if key.policy is not None:
            named.append((f"server.keys[{i}].policy", key.policy, who))
        for j, name in enumerate(key.models or ()):
            if name.startswith("router/"):
                named.append((f"server.keys[{i}].models[{j}]", name.removeprefix("router/"), who))
    for field, name, who in named:
        if name not in policies:
            raise ConfigError(
                config_file,
                field,
                f"{who}no policy {name!r} in {config.policies_dir}{did_you_mean(name, policies)}; "
                f"it has {sorted(policies)}",
            )


def dump_policy(policy: Policy, path: str | Path) -> None:
    """Write a policy back to YAML in the same shape users write by hand."""
    data = policy.model_dump(mode="json", exclude_none=True)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=1000)
    Path(path).write_text(text, encoding="utf-8")
