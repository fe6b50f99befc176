"""A small-model-first LLM router: embed, score domain and difficulty, decide by policy."""

from .config import ConfigError, ModelSpec, Policy, RouterConfig, load_config
from .data import DataError, Example, read_jsonl
from .encoder import Encoder, load_encoder
from .policy import Attempt, Decision
from .request import RequestError, RequestFacts, routing_text
from .router import ModelUnavailable, Router, UpstreamError
from .scorer import ScoreBatch, Scorer, ScorerError

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
