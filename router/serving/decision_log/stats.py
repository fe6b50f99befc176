"""`router stats`: the headline figures of a window of the decision log (`read_figures`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.serving.decision_log.figures import read_figures


@dataclass
class Stats:
    """What `router stats` prints: the headline figures of a window of the log."""

    requests: int = 0
    errors: int = 0
    client_left: int = 0  # requests whose client went before the answer was whole (499)
    refused: int = 0  # other 4xx: refused for what the request asked (privacy, too long)
    share: dict[str, float] = field(default_factory=dict)  # answering model → share of OK calls
    escalation_rate: float = 0.0
    fallback_rate: float = 0.0
    cost: float = 0.0
    large_cost: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50 / p90 / p99
    routing_ms: dict[str, float] = field(default_factory=dict)
    cache_hits: int = 0  # answered from the response cache
    cache_saved: float = 0.0  # what those hits would have cost, USD

    @classmethod
    def of(cls, figures: dict[str, Any]) -> Stats:
        def pct(d: dict[str, Any]) -> dict[str, float]:
            return {k: v for k, v in d.items() if k != "of"}

        return cls(
            requests=figures["requests"],
            errors=figures["errors"],
            client_left=figures["client_left"],
            refused=figures["refused"],
            share={m["model"]: m["share"] for m in figures["models"]},
            escalation_rate=figures["escalation_rate"] or 0.0,
            fallback_rate=figures["fallback_rate"] or 0.0,
            cost=figures["cost_usd"],
            large_cost=figures["large_cost_usd"],
            latency_ms=pct(figures["latency_ms"]),
            routing_ms=pct(figures["routing_ms"]),
            cache_hits=figures["cache"]["hits"],
            cache_saved=figures["cache"]["saved_usd"],
        )

    @property
    def savings(self) -> float:
        """Estimated cost saved against sending every request to the large model (fraction)."""
        return 1 - self.cost / self.large_cost if self.large_cost > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "savings": self.savings}

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines for a printed summary."""
        out = [
            (
                "requests",
                f"{self.requests} ({self.errors} errors, {self.refused} refused, "
                f"{self.client_left} left by their clients)",
            )
        ]
        out += [(f"share {m}", f"{v:.1%}") for m, v in self.share.items()]
        out += [
            ("escalation rate", f"{self.escalation_rate:.1%}"),
            ("fallback rate", f"{self.fallback_rate:.1%}"),
            ("estimated cost", f"${self.cost:.6f}"),
            ("all-large cost", f"${self.large_cost:.6f}"),
            ("estimated savings", f"{self.savings:.1%}"),
        ]
        if self.cache_hits:
            share = self.cache_hits / self.requests if self.requests else 0.0
            out.append(
                ("cache hits", f"{self.cache_hits} ({share:.1%}), saved ${self.cache_saved:.6f}")
            )
        for name, pct in (("latency", self.latency_ms), ("routing", self.routing_ms)):
            if pct:
                out.append((f"{name} ms", "  ".join(f"{k} {v:.1f}" for k, v in pct.items())))
        return out


# The CLI reads a log once: percentiles over up to this many of the window's rows.
SUMMARY_SAMPLE = 1_000_000


def summarise(path: str | Path, since_s: float | None = None) -> Stats:
    """Share per model, escalation rate, estimated savings and latency percentiles of a log
    (a SQLite path or a database URL), over the last `since_s` seconds or all of it. Rows of
    POST /v1/route (no model called) are left out."""
    return Stats.of(read_figures(path, since_s, sample=SUMMARY_SAMPLE))
