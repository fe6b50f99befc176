"""Importers from public routing-data formats (RouteLLM, dcrouter, RouterBench) into the
routing-dataset format of `router.core.data`."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from router.core.data import DataError, Example
from router.core.request import Message

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


def _text(path: Path) -> str:
    """A file of the dataset as text; not UTF-8 is a DataError naming its line (a byte-order
    mark, Excel's "CSV UTF-8", is dropped)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 (byte {raw[e.start : e.start + 1]!r}); save the file "
            "as UTF-8"
        ) from None


def _json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """("file:line", the JSON object) for each non-blank line of a JSONL file; a line that is
    not a JSON object (a download cut short, say) is a DataError naming it."""
    for n, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object")
        yield f"{path}:{n}", obj


def _json_file(path: Path) -> Any:
    """A whole-file JSON document; invalid JSON is a DataError naming the line."""
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


@contextlib.contextmanager
def _fields_of(where: str) -> Iterator[None]:
    """A record of a public dataset missing a field, or with one of the wrong type, is a
    DataError naming the record (`where`) and the field, not a KeyError's traceback."""
    try:
        yield
    except DataError:
        raise
    except KeyError as e:
        raise DataError(f"{where}: missing field {e.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{where}: {e}") from None


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
    for where, q in _json_lines(path):
        with _fields_of(where):
            refs[q["question"].strip()] = q["answer"]
    return refs


def _routellm_csv(
    path: Path, source: str, references: dict[str, str] | None = None
) -> Iterator[Example]:
    """One CSV of bool outcomes. Where the CSV also has `<model>_response` columns (GSM8K),
    each row keeps both answers as `answers` {model: text} (what an answer verifier learns
    from), and `references` adds the GSM8K reference as `ground_truth` with `metric: GSM8K`
    (what a grader needs to score a new model on the row)."""
    with io.StringIO(_text(path), newline="") as f:
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
    for where, q in _json_lines(mt / "question.jsonl"):
        with _fields_of(where):
            questions[q["question_id"]] = (where, q)
    scores: dict[tuple[int, int], dict[str, float]] = {}
    for where, j in _json_lines(mt / "judgements.jsonl"):
        score = j.get("score", -1)
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise DataError(f"{where}: score: expected a number, got {score!r}")
        if score < 0:  # the judge failed to give a score
            continue
        with _fields_of(where):
            scores.setdefault((j["question_id"], j["turn"]), {})[j["model"]] = (score - 1) / 9
    for (qid, turn), s in sorted(scores.items()):
        where, q = questions.get(qid, (None, None))
        if q is None or len(s) < 2:
            continue
        with _fields_of(where):
            turns = [str(t) for t in q["turns"][:turn]]
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
    llm_file = root / "default_llm.json"
    llms = _json_file(llm_file)
    with _fields_of(str(llm_file)):
        # Prices: no token counts are published, so a call costs the prompt's estimated tokens.
        prices = {m: (float(v["input_price"]), float(v["output_price"])) for m, v in llms.items()}
        large = {m for m, v in llms.items() if _size_b(v.get("size", "")) >= DCROUTER_LARGE_FROM_B}
    tasks: dict[str, str] = {}
    labels: dict[str, dict[str, Any]] = {}
    for qf in sorted(root.glob("default_query_*.jsonl")):
        for where, q in _json_lines(qf):
            with _fields_of(where):
                tasks[q["query"].strip()] = q["task_name"]
                labels[q["query"].strip()] = _dcrouter_labels(q)
    files = [root / f for f in ("train.json", "test.json") if (root / f).is_file()]
    if not files:
        raise DataError(f"{root}: missing train.json")
    for f in files:
        rows = _json_file(f)
        if not isinstance(rows, list):
            raise DataError(f"{f}: expected a JSON list of rows")
        for n, row in enumerate(rows):
            with _fields_of(f"{f}: row {n}"):
                q = row["question"]
                if not isinstance(q, str):
                    raise DataError(f"{f}: row {n}: question: expected text, got {q!r}")
                task = tasks.get(q.strip())
                raw_scores = row["scores"].items()
            scores = {}
            for m, v in raw_scores:
                try:
                    scores[m] = float(v)
                except (TypeError, ValueError):
                    scores[m] = math.nan
                if not 0 <= scores[m] <= 1:
                    raise DataError(
                        f"{f}: row {n}: scores.{m}: expected a number in [0, 1], got {v!r}"
                    )
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
    # A byte-order mark (Excel's "CSV UTF-8") would otherwise be part of the first header.
    return list(csv.DictReader(io.StringIO(_text(path), newline="")))


def _routerbench_prompt(raw: Any) -> str:
    """RouterBench's prompt column holds a stringified Python list with one string; in that
    form few-shot examples (blocks before the last that share its opening word, e.g.
    "Question:") are dropped, since a user sends only the final question. A plain-text cell
    (a CSV of one's own) is the prompt as it is: its paragraphs are not few-shot examples."""
    import ast

    if isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            parsed = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed = None
        if not (isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed)):
            return raw.strip()
        text = parsed[-1]
    elif isinstance(raw, list) and raw:
        text = str(raw[-1])
    else:
        return str(raw).strip()
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


def _chat_messages(raw: Any) -> list[Message] | None:
    """A prompt cell holding OpenAI chat messages as JSON (`[{"role": "user", "content":
    ...}]`, a CSV of one's own) as those messages; None for any other cell."""
    if not isinstance(raw, str) or not raw.lstrip().startswith("[{"):
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if (
        isinstance(parsed, list)
        and parsed
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
            for m in parsed
        )
    ):
        return parsed
    return None


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
            messages = _chat_messages(row["prompt"])
            prompt = None if messages else _routerbench_prompt(row["prompt"])
            if messages:
                try:
                    text = Example(None, {}, messages=messages).text()
                except ValueError as e:
                    raise DataError(f"{path}: row {n + 2}: prompt: chat messages: {e}") from None
                if not text.strip():
                    raise DataError(f"{path}: row {n + 2}: prompt: no text content to route on")
            elif not prompt:
                raise DataError(f"{path}: row {n + 2}: prompt: empty")
            parsed.append((n, row, scores, costs, prompt, messages))
    if not parsed:
        raise DataError(f"{path}: no row has a score for any model")
    mean_cost = {
        m: float(np.mean([c[m] for _n, _r, _s, c, _p, _m in parsed if m in c] or [np.inf]))
        for m in models
    }
    by_cost = sorted(models, key=lambda m: mean_cost[m])
    cheap = sorted(by_cost[: max(1, len(models) // 2)])
    for n, row, scores, costs, prompt, messages in parsed:
        yield Example(
            id=f"routerbench/{row.get('sample_id', n)}",
            prompt=prompt,
            messages=messages,
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
