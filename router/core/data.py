"""The routing-dataset format (JSONL): rows, reading and writing, and splits by prompt text.

One JSON object a line:

    {"id": "mmlu/anatomy/12",              # optional, unique
     "prompt": "What is ...",              # or "messages": [OpenAI chat messages]
     "source": "mmlu/anatomy",             # where it came from; mapped to a domain
     "domain": "medicine",                 # optional; default: the source's domain
     "scores": {"model-a": 1.0, "model-b": 0.0},   # each model's score in [0, 1]
     "costs": {"model-a": 0.0006, ...},   # optional, USD for this prompt per model
     "cheap_models": ["model-a"]}          # optional: the models of the cheap tier

Splits are by normalised prompt text (`group_key`), never by row: MMLU repeats about 100 texts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from router.core.request import Message, message_text, routing_text


class DataError(ValueError):
    """A dataset row is invalid; the message names the file, line and field."""


@dataclass
class Example:
    """One routed prompt with every model's outcome on it."""

    prompt: str | None
    scores: dict[str, float]
    source: str = ""
    domain: str | None = None
    messages: list[Message] | None = None
    costs: dict[str, float] | None = None
    cheap_models: list[str] = field(default_factory=list)
    id: str | None = None
    # Any other fields of the row, kept as they are: the grading labels (`ground_truth`,
    # `metric`, `choices`, `task_id`) and what `router profile` adds (`answers`, `usage`,
    # `logprobs`).
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The text the router sees for this example."""
        return routing_text(self.messages if self.messages is not None else self.prompt or "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.messages is not None:
            out["messages"] = self.messages
        elif self.prompt is not None or "embedding" not in self.extra:
            out["prompt"] = self.prompt  # an embedding-only row (decision log) has neither
        out["source"] = self.source
        if self.domain is not None:
            out["domain"] = self.domain
        out["scores"] = self.scores
        if self.costs is not None:
            out["costs"] = self.costs
        if self.cheap_models:
            out["cheap_models"] = self.cheap_models
        out.update((k, v) for k, v in self.extra.items() if k not in ROW_FIELDS)
        return out


# The fields `Example` models itself; every other field of a row is kept in `Example.extra`.
ROW_FIELDS = frozenset(
    ("id", "prompt", "messages", "source", "domain", "scores", "costs", "cheap_models")
)


# ---- the domain taxonomy (a data file, not code) -------------------------------------------


@cache
def taxonomy() -> dict[str, Any]:
    """`router/resources/domains.yaml`: domains and the source → domain map."""
    text = resources.files("router").joinpath("resources/domains.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def domain_names() -> list[str]:
    return list(taxonomy()["domains"])


def domain_of(ex: Example) -> str | None:
    """The example's domain label: explicit, else its source's, else None."""
    if ex.domain is not None:
        return ex.domain
    return taxonomy()["sources"].get(ex.source)


_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalised_text(text: str) -> str:
    """`text` with case, Unicode forms, punctuation and spacing evened out, so near-duplicates
    ("What is 2+2?" / "what is 2 + 2") compare equal."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def opening_text(ex: Example) -> str:
    """The prompt, or a conversation's first user turn: the question a conversation grew from."""
    if ex.messages is None:
        return ex.prompt or ""
    first = next((m for m in ex.messages if m.get("role") == "user"), None)
    return message_text(first) if first is not None else ex.text()


# Sources named "<collection>/<task>" (the dcrouter importer's); any other source's first part
# is its task ("mmlu/anatomy" → mmlu, "gsm8k" → gsm8k).
COLLECTIONS = frozenset({"dcrouter", "routerbench"})


def task_of(source: str) -> str:
    """The task a source names, across datasets: `dcrouter/gsm8k` and `gsm8k` are both gsm8k.
    Leave-one-source-out keeps a held-out task out of every training dataset with this."""
    parts = source.split("/")
    return parts[1] if len(parts) > 1 and parts[0] in COLLECTIONS else parts[0]


def group_key(ex: Example) -> str:
    """The split group of a row: the normalised text of its opening. Duplicates and
    near-duplicates share a key, and a follow-up turn (MT-Bench turn 2) shares its first turn's,
    so a split never leaks one into the other."""
    if ex.prompt is None and ex.messages is None:
        # A decision-log row kept without its text (`embedding`): a group of its own.
        key = f"embedding:{ex.id or json.dumps(ex.extra.get('embedding'))}"
        return hashlib.sha1(key.encode("utf-8")).hexdigest()
    opening = opening_text(ex)
    # A punctuation-only or image-only opening keeps its own text rather than an empty key.
    key = normalised_text(opening) or opening.strip() or ex.text().strip()
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def prompt_hashes(examples: Iterable[Example]) -> np.ndarray:
    """64-bit hashes of the rows' group keys (uint64): what a scorer records of its training
    prompts, to recognise them later without storing any text."""
    return np.array([int(group_key(ex)[:16], 16) for ex in examples], dtype=np.uint64)


def held_out(ex: Example, share: float) -> bool:
    """Whether a row falls in the held-out `share` of any dataset: decided by its group key, so
    the split is the same in every run and file, and near-duplicates fall on the same side."""
    return int(group_key(ex)[:8], 16) < share * 16**8


def group_folds(groups: np.ndarray | Sequence[Example], k: int, seed: int = 0) -> np.ndarray:
    """A fold number per row, rows of one group in the same fold: the one definition of folds.
    `groups` is a label per row, or the Examples themselves (grouped by `group_key`)."""
    if len(groups) and isinstance(groups[0], Example):
        groups = np.array([group_key(ex) for ex in groups])
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq, rng.permutation(len(uniq)) % k, strict=True))
    return np.array([fold_of[g] for g in groups])


def cheaper_half(mean_costs: dict[str, float]) -> list[str]:
    """The cheap tier of data whose rows name none: the cheaper half of its models by mean cost
    (at least one model), sorted by name."""
    order = sorted(mean_costs, key=lambda m: (mean_costs[m], m))
    return sorted(order[: max(1, len(order) // 2)])


def with_cheap_tier(examples: Sequence[Example]) -> tuple[list[Example], list[str] | None]:
    """The rows, each naming a cheap tier where it can: a row's own `cheap_models` as given;
    the rows that name none take `cheaper_half` of their models by mean cost over those rows
    (the tier returned, else None).

    The rows without a tier are a group of their own (a user's traffic beside the shipped
    datasets, say): their models and prices, not the named tiers, say which of them is cheap.
    Beside rows that do name a tier, they take one only when they give costs for at least two
    models, and for every model they score, since one model alone has no cheaper half;
    otherwise they train the success heads only. A DataError when no row names a tier and a
    model has no cost."""
    untiered = [i for i, ex in enumerate(examples) if not ex.cheap_models]
    if not untiered:
        return list(examples), None
    costs: dict[str, list[float]] = {}
    scored: set[str] = set()
    for i in untiered:
        ex = examples[i]
        scored.update(ex.scores)
        for m, c in (ex.costs or {}).items():
            if m in ex.scores:
                costs.setdefault(m, []).append(c)
    all_untiered = len(untiered) == len(examples)
    if all_untiered and not costs:
        raise DataError(
            "no row names its cheap_models, and none has costs to tell the cheaper models by: "
            "add cheap_models (or costs) to the rows (docs/data.md)"
        )
    # A model with no cost cannot be placed: halving the others alone could make the priciest
    # model the cheap tier.
    uncosted = sorted(scored - costs.keys())
    if all_untiered and uncosted:
        raise DataError(
            f"no row names its cheap_models, and no row gives a cost for {uncosted}: add their "
            "costs, or cheap_models, to the rows (docs/data.md)"
        )
    if not all_untiered and (len(costs) < 2 or uncosted):
        return list(examples), None
    cheap = cheaper_half({m: float(np.mean(v)) for m, v in costs.items()})
    out = list(examples)
    for i in untiered:
        # A row missing a cheap model's score (a missing label) names only those it scores;
        # one that scores none of them trains the success heads only.
        out[i] = replace(out[i], cheap_models=[m for m in cheap if m in out[i].scores])
    return out, cheap


def tier_models(examples: Sequence[Example]) -> list[tuple[tuple[str, ...], str | None]]:
    """Per row: (its cheap models, its reference large model or None). The reference large model
    is the row's non-cheap model with the best mean score over all rows (dcrouter's 70B chat-QA
    model scores far below the small ones)."""
    scores: dict[str, list[float]] = {}
    for ex in examples:
        for m, s in ex.scores.items():
            scores.setdefault(m, []).append(s)
    mean = {m: float(np.mean(v)) for m, v in scores.items()}
    out: list[tuple[tuple[str, ...], str | None]] = []
    for ex in examples:
        others = [m for m in ex.scores if m not in ex.cheap_models]
        out.append((tuple(ex.cheap_models), max(others, key=mean.__getitem__) if others else None))
    return out


def tier_outcomes(examples: Sequence[Example]) -> list[tuple[float | None, float | None]]:
    """Per row: (mean score of its cheap models, score of its reference large model), None where
    the row has none (`tier_models`)."""
    return [
        (
            float(np.mean([ex.scores[m] for m in cheap])) if cheap else None,
            None if large is None else ex.scores[large],
        )
        for ex, (cheap, large) in zip(examples, tier_models(examples), strict=True)
    ]


# ---- reading and writing ------------------------------------------------------------------------


def _check_row(obj: Any, where: str, unscored: bool = False) -> Example:
    def bad(fieldname: str, msg: str) -> DataError:
        return DataError(f"{where}: {fieldname}: {msg}")

    if not isinstance(obj, dict):
        raise bad("row", "expected a JSON object")
    prompt, messages = obj.get("prompt"), obj.get("messages")
    embedding_only = prompt is None and messages is None and "embedding" in obj
    if embedding_only:
        # A decision-log export without stored text: the routing embedding and its encoder.
        emb = obj["embedding"]
        if (
            not isinstance(emb, list)
            or not emb
            or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in emb
            )
        ):
            raise bad("embedding", "must be a non-empty list of finite numbers")
        if not isinstance(obj.get("encoder"), str) or not obj["encoder"]:
            raise bad("encoder", "an 'embedding' row must name its encoder (e.g. minilm-int8/128)")
    elif (prompt is None) == (messages is None):
        raise bad("prompt", "give exactly one of 'prompt' or 'messages' (or an 'embedding')")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise bad("prompt", "must be a non-empty string")
    if messages is not None and (not isinstance(messages, list) or not messages):
        raise bad("messages", "must be a non-empty list of chat messages")
    scores = obj.get("scores")
    if unscored and scores is None:
        scores = {}  # prompts to profile: the scores are what profiling adds
    elif not isinstance(scores, dict) or not scores:
        raise bad("scores", "must be a non-empty object of model -> score in [0, 1]")
    for m, s in scores.items():
        if isinstance(s, bool):
            s = float(s)
        if not isinstance(s, int | float) or not (0.0 <= s <= 1.0) or math.isnan(s):
            raise bad(f"scores.{m}", f"score must be a number in [0, 1], got {s!r}")
    costs = obj.get("costs")
    if costs is not None:
        if not isinstance(costs, dict):
            raise bad("costs", "must be an object of model -> USD")
        for m, c in costs.items():
            # NaN and Infinity parse as JSON numbers here, and would poison every mean cost.
            if not isinstance(c, int | float) or isinstance(c, bool) or not 0 <= c < math.inf:
                raise bad(f"costs.{m}", f"cost must be a non-negative number, got {c!r}")
    domain = obj.get("domain")
    if domain is not None and (not isinstance(domain, str) or domain not in taxonomy()["domains"]):
        raise bad("domain", f"unknown domain {domain!r}; known: {domain_names()}")
    cheap = obj.get("cheap_models", [])
    if not isinstance(cheap, list) or any(not isinstance(c, str) or c not in scores for c in cheap):
        raise bad("cheap_models", "must list models that appear in 'scores'")
    source = obj.get("source")
    if source is not None and not isinstance(source, str):
        raise bad("source", f"must be a string, got {source!r}")
    row_id = obj.get("id")
    if isinstance(row_id, int) and not isinstance(row_id, bool):
        row_id = str(row_id)
    if row_id is not None and not isinstance(row_id, str):
        # Ids key the merge of a profile's columns into its rows (read_many): text only.
        raise bad("id", f"must be a string, got {row_id!r}")
    ex = Example(
        prompt=prompt,
        messages=messages,
        scores={m: float(s) for m, s in scores.items()},
        source=source or "",
        domain=domain,
        costs={m: float(c) for m, c in costs.items()} if costs else None,
        cheap_models=list(cheap),
        id=row_id,
        extra={k: v for k, v in obj.items() if k not in ROW_FIELDS},
    )
    try:
        if not embedding_only and not ex.text().strip():
            raise bad("messages", "no text content to route on")
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise bad("messages", str(e)) from None
    return ex


def read_jsonl(path: str | Path, unscored: bool = False) -> list[Example]:
    """Load and validate a routing dataset."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.jsonl"))
        hint = f" ({', '.join(found[:5])}{', …' if len(found) > 5 else ''})" if found else ""
        raise DataError(f"{path}: a directory; give the JSONL files in it{hint}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows, bad, bad_count = [], [], 0
    # Read as bytes so that a line which is not UTF-8 is named; a byte-order mark, which
    # Windows tools write, is skipped.
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                row = _read_line(raw, f"{path}:{n}", first=n == 1, unscored=unscored)
            except DataError as e:
                # Every bad row is counted, the first few named: one run tells what to fix.
                bad_count += 1
                if len(bad) < BAD_ROWS_NAMED:
                    bad.append(str(e))
                continue
            if row is not None:
                rows.append(row)
    if bad_count == 1:
        raise DataError(bad[0])
    if bad:
        more = f"\n… and {bad_count - len(bad)} more" if bad_count > len(bad) else ""
        raise DataError(f"{path}: {bad_count} bad rows:\n" + "\n".join(bad) + more)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


# How many bad rows a dataset's error names (it counts them all).
BAD_ROWS_NAMED = 10


def _read_line(raw: bytes, where: str, first: bool, unscored: bool = False) -> Example | None:
    """One line of a dataset as a checked row; None for a blank line."""
    try:
        line = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where}: not UTF-8 (byte {e.start + 1} of the line is "
            f"{raw[e.start : e.start + 1]!r}); save the file as UTF-8"
        ) from None
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON: {e.msg}") from None
    return _check_row(obj, where, unscored)


def read_many(paths: Iterable[str | Path], unscored: bool = False) -> list[Example]:
    """Load several datasets. A row whose `id` appeared in an earlier file is the same prompt
    with more columns (e.g. `router profile --out` of a new model): its columns join the first
    row's instead of duplicating the prompt; columns the first row has stay as they are.
    `unscored`: a row may have no `scores` (prompts to profile, `router profile`)."""
    out: list[Example] = []
    first: dict[str, Example] = {}
    for p in paths:
        later: dict[str, Example] = {}
        for ex in read_jsonl(p, unscored):
            earlier = first.get(ex.id) if ex.id is not None else None
            if earlier is None:
                out.append(ex)
                if ex.id is not None:
                    later[ex.id] = ex
                continue
            if earlier.text() != ex.text():
                raise DataError(f"{p}: id {ex.id!r} is in an earlier file with another prompt")
            _merge_columns(earlier, ex)
        first.update(later)
    return out


def _merge_columns(into: Example, other: Example) -> None:
    """Add `other`'s models (scores, costs, per-model columns) to `into`, keeping `into`'s."""
    for m, s in other.scores.items():
        into.scores.setdefault(m, s)
    if other.costs:
        into.costs = {**other.costs, **(into.costs or {})}
    for k, v in other.extra.items():
        mine = into.extra.get(k)
        if isinstance(v, dict) and isinstance(mine, dict):
            into.extra[k] = {**v, **mine}
        else:
            into.extra.setdefault(k, v)


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n
