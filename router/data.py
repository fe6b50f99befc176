"""The routing-dataset format (JSONL) and importers for public formats.

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

import csv
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .request import Message, message_text, routing_text


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


def tier_outcomes(examples: Sequence[Example]) -> list[tuple[float | None, float | None]]:
    """Per row: (mean score of its cheap models, score of its reference large model), None where
    the row has none. The reference large model is the row's non-cheap model with the best mean
    score over all rows (dcrouter's 70B chat-QA model scores far below the small ones)."""
    scores: dict[str, list[float]] = {}
    for ex in examples:
        for m, s in ex.scores.items():
            scores.setdefault(m, []).append(s)
    mean = {m: float(np.mean(v)) for m, v in scores.items()}
    out: list[tuple[float | None, float | None]] = []
    for ex in examples:
        cheap = float(np.mean([ex.scores[m] for m in ex.cheap_models])) if ex.cheap_models else None
        others = [m for m in ex.scores if m not in ex.cheap_models]
        large = ex.scores[max(others, key=mean.__getitem__)] if others else None
        out.append((cheap, large))
    return out


# ---- reading and writing ------------------------------------------------------------------------


def _check_row(obj: Any, where: str) -> Example:
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
    if not isinstance(scores, dict) or not scores:
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
            if not isinstance(c, int | float) or isinstance(c, bool) or c < 0:
                raise bad(f"costs.{m}", f"cost must be a non-negative number, got {c!r}")
    domain = obj.get("domain")
    if domain is not None and domain not in taxonomy()["domains"]:
        raise bad("domain", f"unknown domain {domain!r}; known: {domain_names()}")
    cheap = obj.get("cheap_models", [])
    if not isinstance(cheap, list) or any(c not in scores for c in cheap):
        raise bad("cheap_models", "must list models that appear in 'scores'")
    ex = Example(
        prompt=prompt,
        messages=messages,
        scores={m: float(s) for m, s in scores.items()},
        source=str(obj.get("source", "")),
        domain=domain,
        costs={m: float(c) for m, c in costs.items()} if costs else None,
        cheap_models=list(cheap),
        id=obj.get("id"),
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


def read_jsonl(path: str | Path) -> list[Example]:
    """Load and validate a routing dataset."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: invalid JSON: {e.msg}") from None
            rows.append(_check_row(obj, f"{path}:{n}"))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_many(paths: Iterable[str | Path]) -> list[Example]:
    """Load several datasets. A row whose `id` appeared in an earlier file is the same prompt
    with more columns (e.g. `router profile --out` of a new model): its columns join the first
    row's instead of duplicating the prompt; columns the first row has stay as they are."""
    out: list[Example] = []
    first: dict[str, Example] = {}
    for p in paths:
        later: dict[str, Example] = {}
        for ex in read_jsonl(p):
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


# ---- importers ------------------------------------------------------------------------------

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
# RouteLLM data has no token counts: a call is priced at list price with equal tokens per call
# (1,000 input tokens), so only the ratio of the two prices matters.
ROUTELLM_PRICES = {MIXTRAL: 0.60, GPT4: 10.00}
ROUTELLM_TOKENS_PER_CALL = 1000


def _truthy(v: str) -> float:
    v = v.strip().lower()
    if v in ("true", "1", "1.0"):
        return 1.0
    if v in ("false", "0", "0.0"):
        return 0.0
    raise DataError(f"expected a boolean score, got {v!r}")


def _routellm_costs() -> dict[str, float]:
    return {m: p * ROUTELLM_TOKENS_PER_CALL / 1e6 for m, p in ROUTELLM_PRICES.items()}


def import_routellm(root: str | Path) -> Iterator[Example]:
    """RouteLLM evals: `mmlu/responses/*.csv`, `gsm8k/gsm8k_responses.csv`, `mt_bench/`."""
    root = Path(root)
    if (root / "routellm").is_dir():
        root = root / "routellm"
    if (root / "evals").is_dir():
        root = root / "evals"
    csv.field_size_limit(1 << 30)
    found = False
    for f in sorted((root / "mmlu" / "responses").glob("mmlu_*.csv")):
        found = True
        subject = f.stem.removeprefix("mmlu_")
        yield from _routellm_csv(f, f"mmlu/{subject}")
    gsm = root / "gsm8k" / "gsm8k_responses.csv"
    if gsm.is_file():
        found = True
        yield from _routellm_csv(gsm, "gsm8k", _gsm8k_references(root / "gsm8k" / "test.jsonl"))
    mt = root / "mt_bench"
    if (mt / "question.jsonl").is_file() and (mt / "judgements.jsonl").is_file():
        found = True
        yield from _routellm_mt_bench(mt)
    if not found:
        raise DataError(f"{root}: no RouteLLM files (mmlu/responses/*.csv, gsm8k/, mt_bench/)")


def _gsm8k_references(path: Path) -> dict[str, str]:
    """GSM8K's reference solutions (ending in `#### <number>`) by question text; {} if absent."""
    if not path.is_file():
        return {}
    refs = {}
    for line in path.open(encoding="utf-8"):
        if line.strip():
            q = json.loads(line)
            refs[q["question"].strip()] = q["answer"]
    return refs


def _routellm_csv(
    path: Path, source: str, references: dict[str, str] | None = None
) -> Iterator[Example]:
    """One CSV of bool outcomes. Where the CSV also has `<model>_response` columns (GSM8K),
    each row keeps both answers as `answers` {model: text} (what an answer verifier learns
    from), and `references` adds the GSM8K reference as `ground_truth` with `metric: GSM8K`
    (what a grader needs to score a new model on the row)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"prompt", MIXTRAL, GPT4} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing columns {sorted(missing)}")
        answer_cols = {m: f"{m}_response" for m in (MIXTRAL, GPT4)}
        answer_cols = {m: c for m, c in answer_cols.items() if c in (reader.fieldnames or ())}
        for n, row in enumerate(reader):
            try:
                scores = {MIXTRAL: _truthy(row[MIXTRAL]), GPT4: _truthy(row[GPT4])}
            except DataError as e:
                raise DataError(f"{path}: row {n + 2}: {e}") from None
            extra: dict[str, Any] = {}
            if answer_cols:
                extra["answers"] = {m: row[c] for m, c in answer_cols.items()}
            ref = (references or {}).get(row["prompt"].strip())
            if ref is not None:
                extra.update(ground_truth=ref, metric="GSM8K")
            yield Example(
                id=f"{source}/{n}",
                prompt=row["prompt"],
                source=source,
                scores=scores,
                costs=_routellm_costs(),
                cheap_models=[MIXTRAL],
                extra=extra,
            )


def _routellm_mt_bench(mt: Path) -> Iterator[Example]:
    questions = {}
    for line in (mt / "question.jsonl").open(encoding="utf-8"):
        if line.strip():
            q = json.loads(line)
            questions[q["question_id"]] = q
    scores: dict[tuple[int, int], dict[str, float]] = {}
    for line in (mt / "judgements.jsonl").open(encoding="utf-8"):
        if not line.strip():
            continue
        j = json.loads(line)
        if j.get("score", -1) < 0:  # the judge failed to give a score
            continue
        scores.setdefault((j["question_id"], j["turn"]), {})[j["model"]] = (j["score"] - 1) / 9
    for (qid, turn), s in sorted(scores.items()):
        q = questions.get(qid)
        if q is None or len(s) < 2:
            continue
        turns = q["turns"][:turn]
        source = f"mt_bench/{q['category']}"
        common = dict(source=source, scores=s, costs=_routellm_costs(), cheap_models=[MIXTRAL])
        if turn == 1:
            yield Example(id=f"mt_bench/{qid}/1", prompt=turns[0], **common)
        else:
            # The second turn follows the model's own first answer, which differs per model;
            # routing sees the user's turns only.
            msgs: list[Message] = [{"role": "user", "content": t} for t in turns]
            yield Example(id=f"mt_bench/{qid}/{turn}", prompt=None, messages=msgs, **common)


# dcrouter's cheap tier: models under this many billion parameters (sizes in default_llm.json).
DCROUTER_LARGE_FROM_B = 30.0


def _size_b(size: str) -> float:
    try:
        return float(str(size).rstrip("Bb"))
    except ValueError:
        return 0.0


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def import_dcrouter(root: str | Path) -> Iterator[Example]:
    """LLMRouter dcrouter: `train.json` scores, task labels joined by question text, prices."""
    root = Path(root)
    if (root / "llmrouter_dcrouter").is_dir():
        root = root / "llmrouter_dcrouter"
    for name in ("default_llm.json",):
        if not (root / name).is_file():
            raise DataError(f"{root}: missing {name}")
    llms = json.loads((root / "default_llm.json").read_text(encoding="utf-8"))
    # Prices: no token counts are published, so a call costs the prompt's estimated tokens.
    prices = {m: (v["input_price"], v["output_price"]) for m, v in llms.items()}
    large = {m for m, v in llms.items() if _size_b(v.get("size", "")) >= DCROUTER_LARGE_FROM_B}
    tasks: dict[str, str] = {}
    labels: dict[str, dict[str, Any]] = {}
    for qf in sorted(root.glob("default_query_*.jsonl")):
        for line in qf.open(encoding="utf-8"):
            if line.strip():
                q = json.loads(line)
                tasks[q["query"].strip()] = q["task_name"]
                labels[q["query"].strip()] = _dcrouter_labels(q)
    files = [root / f for f in ("train.json", "test.json") if (root / f).is_file()]
    if not files:
        raise DataError(f"{root}: missing train.json")
    for f in files:
        for n, row in enumerate(json.loads(f.read_text(encoding="utf-8"))):
            q = row["question"]
            task = tasks.get(q.strip())
            scores = {m: float(s) for m, s in row["scores"].items()}
            unknown = set(scores) - set(prices)
            if unknown:
                raise DataError(f"{f}: row {n}: models {sorted(unknown)} not in default_llm.json")
            tokens = _estimate_tokens(q)
            yield Example(
                id=f"dcrouter/{f.stem}/{n}",
                prompt=q,
                source=f"dcrouter/{task}" if task else "dcrouter/unknown",
                scores=scores,
                costs={m: tokens * prices[m][0] / 1e6 for m in scores},
                cheap_models=sorted(m for m in scores if m not in large),
                extra=labels.get(q.strip(), {}),
            )


def _dcrouter_labels(q: dict[str, Any]) -> dict[str, Any]:
    """What grading a new model's answer needs: `ground_truth`, `metric`, `choices` as
    {"label": [...], "text": [...]} (published as a stringified Python list or dict),
    `task_id`. Code tasks' `choices` repeat their asserts, so they are left out."""
    import ast

    out: dict[str, Any] = {"ground_truth": q.get("ground_truth"), "metric": q.get("metric")}
    raw = q.get("choices")
    if isinstance(raw, str) and q.get("metric") != "code_eval":
        try:
            parsed = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, dict):
            text = parsed.get("text")
            label = parsed.get("label", parsed.get("labels"))
            if isinstance(text, list):
                if not isinstance(label, list) or len(label) != len(text):
                    label = [chr(65 + i) for i in range(len(text))]
                out["choices"] = {"label": [str(x) for x in label], "text": [str(t) for t in text]}
        elif isinstance(parsed, list):
            out["choices"] = {
                "label": [chr(65 + i) for i in range(len(parsed))],
                "text": [str(t) for t in parsed],
            }
    if q.get("task_id") is not None:
        out["task_id"] = q["task_id"]
    return out


def _routerbench_frame(path: Path):
    """RouterBench's wide table as a list of dict rows, from CSV or a pickled DataFrame."""
    if path.suffix.lower() in (".pkl", ".pickle"):
        # A pickle runs code when loaded: only import files you trust (RouterBench ships one).
        import pandas as pd

        return pd.read_pickle(path).to_dict("records")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _routerbench_prompt(raw: Any) -> str:
    """The prompt column holds a stringified Python list with one string; few-shot examples
    (blocks before the last that share its opening word, e.g. "Question:") are dropped, since
    a user sends only the final question."""
    import ast

    text = raw
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            parsed = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed):
            text = parsed[-1]
    elif isinstance(raw, list) and raw:
        text = raw[-1]
    text = str(text)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    if len(blocks) > 1:
        lead = blocks[-1].split(maxsplit=1)[0]
        shots = [b for b in blocks[:-1] if b.split(maxsplit=1)[0] == lead]
        if len(shots) == len(blocks) - 1:
            return blocks[-1].strip()
        # A header sentence then examples: keep the header and the final question.
        if len(shots) == len(blocks) - 2 and blocks[0].split(maxsplit=1)[0] != lead:
            return (blocks[0] + "\n\n" + blocks[-1]).strip()
    return text.strip()


def _routerbench_source(eval_name: str) -> str:
    name = str(eval_name).strip()
    if name.startswith("mmlu-"):
        return "mmlu/" + name.removeprefix("mmlu-").replace("-", "_")
    return f"routerbench/{name}"


def _cell(value: Any) -> float | None:
    """A RouterBench cell as a number; None when empty (blank, NaN, None): a missing label."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    v = float(value)
    return None if math.isnan(v) else v


def import_routerbench(path: str | Path) -> Iterator[Example]:
    """RouterBench wide format: `prompt`, `eval_name`, a score column per model and
    `<model>|total_cost` (USD for that prompt). The cheaper half of the models (by mean cost)
    is the cheap tier. An empty score or cost cell is a missing label for that model on that
    row (the row is kept with the other models' scores); a row with no label at all is skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = _routerbench_frame(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    cols = list(rows[0])
    for need in ("prompt", "eval_name"):
        if need not in cols:
            raise DataError(f"{path}: missing column {need!r}")
    models = [c.removesuffix("|total_cost") for c in cols if c.endswith("|total_cost")]
    missing = [m for m in models if m not in cols]
    if not models or missing:
        raise DataError(f"{path}: need a score column and '<model>|total_cost' for each model")
    parsed = []
    for n, row in enumerate(rows):
        scores, costs = {}, {}
        for m in models:
            try:
                s, c = _cell(row[m]), _cell(row[f"{m}|total_cost"])
            except (TypeError, ValueError) as e:
                raise DataError(f"{path}: row {n + 2}: {m}: {e}") from None
            if s is None or c is None:
                continue
            if not 0 <= s <= 1:
                raise DataError(f"{path}: row {n + 2}: {m}: score {s} is not in [0, 1]")
            if c < 0:
                raise DataError(f"{path}: row {n + 2}: {m}|total_cost: negative cost {c}")
            scores[m], costs[m] = s, c
        if scores:
            parsed.append((n, row, scores, costs))
    if not parsed:
        raise DataError(f"{path}: no row has a score for any model")
    mean_cost = {
        m: float(np.mean([c[m] for *_, c in parsed if m in c] or [np.inf])) for m in models
    }
    by_cost = sorted(models, key=lambda m: mean_cost[m])
    cheap = sorted(by_cost[: max(1, len(models) // 2)])
    for n, row, scores, costs in parsed:
        yield Example(
            id=f"routerbench/{row.get('sample_id', n)}",
            prompt=_routerbench_prompt(row["prompt"]),
            source=_routerbench_source(row["eval_name"]),
            scores=scores,
            costs=costs,
            cheap_models=[m for m in cheap if m in scores],
        )


IMPORTERS = {
    "routellm": import_routellm,
    "dcrouter": import_dcrouter,
    "routerbench": import_routerbench,
}


def import_dataset(fmt: str, path: str | Path) -> list[Example]:
    try:
        importer = IMPORTERS[fmt]
    except KeyError:
        raise DataError(f"unknown format {fmt!r}; choose one of {sorted(IMPORTERS)}") from None
    return list(importer(path))
