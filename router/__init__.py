"""A small-model-first LLM router: embed, score domain and difficulty, decide by policy."""

from router.core.config import ConfigError, ModelSpec, Policy, RouterConfig, load_config
from router.core.data import DataError, Example, read_jsonl
from router.core.decision import Attempt, Decision
from router.core.encoder import Encoder, load_encoder
from router.core.request import RequestError, RequestFacts, routing_text
from router.core.scorer import ScoreBatch, Scorer, ScorerError
from router.sdk.router import Router
from router.serving.providers import ModelUnavailable, UpstreamError

__all__ = [
    "Attempt",
    "ConfigError",
    "DataError",
    "Decision",
    "Encoder",
    "Example",
    "ModelSpec",
    "ModelUnavailable",
    "Policy",
    "RequestError",
    "RequestFacts",
    "Router",
    "RouterConfig",
    "ScoreBatch",
    "Scorer",
    "ScorerError",
    "UpstreamError",
    "load_config",
    "load_encoder",
    "read_jsonl",
    "routing_text",
]
__version__ = "0.1.0"
