"""`router profile`: run catalogue models over labelled prompts and grade their answers.

One job: turn (routing-data rows with a reference) × (catalogue models) into per-model
`scores`, `answers`, `usage` {input_tokens, output_tokens, latency_ms, cost} and `logprobs`
columns, merged into the rows (a new model adds its columns, others stay as they were).

Resumable: every finished (row, model) result is appended to a journal (`<out>.journal`,
one JSON line, flushed and fsynced) before it counts as done; the output file is rewritten
atomically (temporary file + rename) from the rows and the journal every few results and at
the end. Killed at any moment, a rerun reads the journal, skips what is done and finishes the
rest: nothing is redone, nothing duplicated. A failed call is retried with backoff (tenacity);
if it still fails it is journalled as an error (retried by the next run) and the run goes on.
An answer whose grading failed (the judge's call, after its retries) is journalled with the
error: the next run grades it again without calling the model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.core.config import RouterConfig, did_you_mean
from router.core.data import Example, read_many
from router.core.outputs import check_output_file
from router.evaluation import sandbox
from router.evaluation.graders import (
    GRADERS,
    GradingError,
    grade,
    judge_pairwise,
    judge_reference,
    reference_of,
)
from router.evaluation.profile_call import ModelCaller, ProfileError
from router.serving.providers import ModelUnavailable, api_key_of

# ---- how each task is asked -----------------------------------------------------------------


@dataclass(frozen=True)
class TaskFormat:
    """How a row of one metric is put to a model: the prompt, the answer budget, logprobs."""

    template: str
    max_tokens: int
    logprobs: bool = False  # short answers: keep each token's top logprobs


MC_TEMPLATE = (
    "{question}\n\nOptions:\n{options}\n\nAnswer with the letter of the correct option only."
)
SHORT_ANSWER = (
    "Answer the question with a short phrase only, no explanation.\n\nQuestion: {question}"
)
# Answer budgets are short on purpose: a letter, a phrase, or a worked solution that a 135M
# model rarely gets right past ~150 tokens; SmolLM2's profile on 2 busy cores had to fit in
# an evening. `--max-tokens` overrides them.
FORMATS: dict[str, TaskFormat] = {
    "em_mc": TaskFormat(MC_TEMPLATE, 4, logprobs=True),
    "f1_score": TaskFormat(SHORT_ANSWER, 16, logprobs=True),
    "exact_match": TaskFormat(SHORT_ANSWER, 16, logprobs=True),
    "GSM8K": TaskFormat(
        "{question}\n\nSolve the problem step by step. End with the final answer as a number "
        "on its own line, after '####'.",
        192,
    ),
    "MATH": TaskFormat(
        "{question}\n\nSolve the problem. Put the final answer in \\boxed{{}}.", 192
    ),
    "code_eval": TaskFormat("{question}", 256),
    "commongen_coverage": TaskFormat(
        "Write one or two sentences that use all of these words: {question}", 48
    ),
}
MBPP_TEMPLATE = (
    "{question}\nYour code should pass these tests:\n{tests}\n\n"
    "Reply with the Python function in a ```python code block."
)
HUMANEVAL_TEMPLATE = (
    "Complete this Python function. Reply with the whole function in a ```python code "
    "block.\n\n```python\n{question}```"
)
JUDGE_MAX_TOKENS = 256


def format_prompt(row: Example, metric: str | None) -> tuple[list[dict[str, str]], TaskFormat]:
    """The chat messages a model is sent for `row`, and the task's answer budget."""
    fmt = FORMATS.get(metric or "", TaskFormat("{question}", 512))
    if row.messages is not None:  # a conversation is sent as it is
        return [dict(m) for m in row.messages], fmt
    q = row.prompt or ""
    extra = row.extra
    if metric == "em_mc" and extra.get("choices"):
        ch = extra["choices"]
        options = "\n".join(f"{lab}. {t}" for lab, t in zip(ch["label"], ch["text"], strict=False))
        text = fmt.template.format(question=q.strip(), options=options)
    elif metric == "code_eval":
        truth = extra.get("ground_truth")
        if isinstance(truth, str) and "def check" in truth:
            text = HUMANEVAL_TEMPLATE.format(question=q)
        else:
            from router.evaluation.graders import _references

            tests = "\n".join(_references(truth))
            text = MBPP_TEMPLATE.format(question=q.strip(), tests=tests)
    else:
        text = fmt.template.format(question=q.strip())
    return [{"role": "user", "content": text}], fmt


# ---- the run --------------------------------------------------------------------------------


def row_key(ex: Example) -> str:
    """A row's identity across files and runs: its id, else a hash of its routing text."""
    return ex.id or "sha1:" + hashlib.sha1(ex.text().encode("utf-8")).hexdigest()


def from_sources(rows: Sequence[Example], sources: Sequence[str] = ()) -> list[Example]:
    """The rows whose source starts with one of `sources` (every row when none is given)."""
    if not sources:
        return list(rows)
    return [r for r in rows if any(r.source.startswith(s) for s in sources)]


def select_rows(
    rows: Sequence[Example],
    per_source: int | None = None,
    limit: int | None = None,
    sources: Sequence[str] = (),
) -> list[Example]:
    """The rows to profile: optionally only some sources, at most `per_source` of each
    (a fixed pseudo-random sample: rows ordered by a hash of their key), then `limit`."""
    rows = from_sources(rows, sources)
    if per_source is not None:
        by_source: dict[str, list[Example]] = defaultdict(list)
        for r in rows:
            by_source[r.source].append(r)
        keep = set()
        for group in by_source.values():
            group = sorted(group, key=lambda r: hashlib.sha1(row_key(r).encode()).hexdigest())
            keep.update(id(r) for r in group[:per_source])
        rows = [r for r in rows if id(r) in keep]
    # Sources take turns, so a run stopped part-way has profiled every source about equally.
    queues: dict[str, list[Example]] = defaultdict(list)
    for r in rows:
        queues[r.source].append(r)
    mixed: list[Example] = []
    for i in range(max((len(q) for q in queues.values()), default=0)):
        mixed.extend(q[i] for q in queues.values() if i < len(q))
    if limit is not None:
        mixed = mixed[:limit]
    return mixed


@dataclass
class Result:
    """One (row, model) outcome, as journalled."""

    key: str
    model: str
    score: float | None = None
    answer: str | None = None
    usage: dict[str, Any] | None = None
    logprobs: list | None = None
    error: str | None = None
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @property
    def ungraded(self) -> bool:
        """An answer kept whose grading failed: the next run grades it, the model not called."""
        return self.error is not None and self.answer is not None

    @property
    def rank(self) -> int:
        """Which of two results of one (row, model) the journal keeps: a score, else a kept
        answer, else an error; of equals, the later."""
        return 2 if self.error is None else 1 if self.answer is not None else 0


class Journal:
    """Append-only, fsynced record of finished results; a torn last line is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[tuple[str, str], Result]:
        """The last result per (row, model); a success is never replaced by an error, nor a
        kept answer by an error without one."""
        out: dict[tuple[str, str], Result] = {}
        if not self.path.is_file():
            return out
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                    r = Result(**obj)
                except (json.JSONDecodeError, TypeError):
                    continue  # a line cut by a kill mid-write
                k = (r.key, r.model)
                if k not in out or r.rank >= out[k].rank:
                    out[k] = r
        return out

    def append(self, r: Result) -> None:
        line = json.dumps(r.to_json(), ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            # A previous kill may have left a torn line without its newline: start afresh.
            if f.tell() > 0:
                with self.path.open("rb") as rf:
                    rf.seek(-1, os.SEEK_END)
                    if rf.read(1) != b"\n":
                        f.write("\n")
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def merge_result(ex: Example, r: Result) -> None:
    """Add one model's result columns to a row (other models' columns untouched)."""
    if r.score is None:
        return
    ex.scores[r.model] = r.score
    for name, value in (("answers", r.answer), ("usage", r.usage), ("logprobs", r.logprobs)):
        if value is not None:
            col = ex.extra.get(name)
            col = dict(col) if isinstance(col, dict) else {}
            col[r.model] = value
            ex.extra[name] = col
    if r.usage is not None and "cost" in r.usage:
        ex.costs = {**(ex.costs or {}), r.model: r.usage["cost"]}


def _result_in_row(ex: Example, model: str) -> Result | None:
    """A result already merged into `out` (its journal may be gone, as in a fresh clone)."""
    if model not in ex.scores or model not in (ex.extra.get("answers") or {}):
        return None
    usage = (ex.extra.get("usage") or {}).get(model)
    return Result(
        key=row_key(ex),
        model=model,
        score=ex.scores[model],
        answer=ex.extra["answers"][model],
        usage=usage,
        logprobs=(ex.extra.get("logprobs") or {}).get(model),
        source=ex.source,
    )


def write_rows_atomic(rows: Sequence[Example], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ex in rows:
            f.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class ProfileReport:
    """What a run did: results per model and source, for the summary table."""

    results: list[Result] = field(default_factory=list)
    skipped_no_reference: int = 0
    skipped_code: int = 0  # code rows without --allow-code-exec: they could not be graded
    already_done: int = 0
    failed: int = 0
    ungraded: int = 0  # of the failed: answers kept whose grading failed (a rerun grades them)
    wall_s: float = 0.0
    judge_cost: float = 0.0

    def summary(self) -> list[dict[str, Any]]:
        """One row per (model, source): n, accuracy, tokens/s, $ (of every answer, graded or
        not) and failures."""
        groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
        for r in self.results:
            groups[(r.model, r.source)].append(r)
        out = []
        for (model, source), rs in sorted(groups.items()):
            ok = [r for r in rs if r.score is not None]
            out_tok = sum(r.usage.get("output_tokens", 0) for r in ok if r.usage)
            ms = sum(r.usage.get("latency_ms", 0.0) for r in ok if r.usage)
            out.append(
                {
                    "model": model,
                    "source": source,
                    "n": len(ok),
                    "accuracy": sum(r.score for r in ok) / len(ok) if ok else None,
                    "tokens_per_s": out_tok / (ms / 1000) if ms else None,
                    "prompts_per_min": 60000 * len(ok) / ms if ms else None,
                    # Paid for answers awaiting grading too (kept in the journal).
                    "cost": sum(r.usage.get("cost", 0.0) for r in rs if r.usage),
                    "failed": len(rs) - len(ok),
                }
            )
        return out


Progress = Callable[[int], None]


def profile(
    data: Sequence[str | Path],
    models: Sequence[str],
    out: str | Path,
    config: RouterConfig,
    base_dir: Path,
    *,
    limit: int | None = None,
    per_source: int | None = None,
    sources: Sequence[str] = (),
    concurrency: int = 1,
    allow_code_exec: bool = False,
    allow_weak_sandbox: bool = False,
    judge: str | None = None,
    judge_against: str | None = None,
    retries: int = 3,
    timeout: float | None = None,
    max_tokens: int | None = None,
    threads: int = 1,
    save_every: int = 20,
    on_total: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    caller: ModelCaller | None = None,
) -> ProfileReport:
    """Profile `models` on the labelled rows of `data`, merging columns into `out`."""
    say = log or (lambda _m: None)
    models = list(dict.fromkeys(models))  # `--model m --model m`: one call a row, not two paid
    known = {m.name for m in config.models}
    for m in [*models, *([judge] if judge else [])]:
        if m not in known:
            raise ProfileError(
                f"--model {m!r}: not in the catalogue{did_you_mean(m, known)}; known: "
                f"{sorted(known)}"
            )
    if judge_against and not judge:
        raise ProfileError("--judge-against needs --judge MODEL")
    for m in [*models, *([judge] if judge else [])]:
        # A hosted model without its key would fail every row, each journalled as a failure.
        try:
            api_key_of(config.model(m))
        except ModelUnavailable as e:
            raise ProfileError(f"--model {m!r}: {e}") from None
    if allow_code_exec:
        say(f"code sandbox: {sandbox.describe()}")
        if why := sandbox.weak_refusal(allow_weak_sandbox):
            raise ProfileError(f"--allow-code-exec: {why}")
    out = Path(out)
    # Before any model is paid for: the output must be writable where it is asked for.
    # Written by a rename beside it, the journal beside it too: the folder must be writable.
    example = f"a file name (e.g. {out}/profile.jsonl)"
    check_output_file(out, "--out", ProfileError, renamed=True, give=example)
    journal = Journal(out.with_name(out.name + ".journal"))
    # The output's rows: what is already in `out` (kept as it is), plus each selected row once
    # a profiled model has a result on it (a run stopped part-way writes only finished rows).
    by_key: dict[str, Example] = {}
    order: list[str] = []
    # An earlier run whose every result failed (an outage) wrote an `out` without rows.
    if out.is_file() and _has_rows(out):
        for ex in read_many([out]):
            k = row_key(ex)
            if k not in by_key:
                order.append(k)
            by_key[k] = ex
    kept = set(order)
    # Rows need no scores: a user's own labelled prompts (metric, ground_truth) are profiled
    # from nothing. Each is taken as the output has it, if there, with the journal's results:
    # the answer a judge grades against may be one profiled earlier.
    read = read_many(data, unscored=True)
    candidates = [by_key.setdefault(row_key(ex), ex) for ex in from_sources(read, sources)]
    if missed := [s for s in sources if not from_sources(read, [s])]:
        # A prefix of the whole source (`dcrouter/mmlu`, not `mmlu`), or a typo.
        have = sorted({ex.source for ex in read})
        what = f"no row's source starts with --source {', '.join(map(repr, missed))}"
        if not candidates:
            raise ProfileError(f"no rows to profile: {what}; the data's sources: {have[:30]}")
        say(f"{what}: it selects nothing")
    done = journal.read()
    finished_keys: set[str] = set()
    for (k, _m), r in done.items():
        if r.error is None and k in by_key:
            merge_result(by_key[k], r)
            finished_keys.add(k)
    report = ProfileReport()
    # Rows that cannot be graded are set aside before the sample and the limit are taken, so
    # that `--per-source` and `--limit` count the rows profiled (not ones skipped after).
    gradable: list[Example] = []
    for ex in candidates:
        if not _gradable(ex, judge, judge_against):
            report.skipped_no_reference += 1
        elif ex.extra.get("metric") == "code_eval" and not allow_code_exec:
            # Its answer could only be run to be graded: calling the model would be paid for
            # and end as a grading failure, again on every rerun.
            report.skipped_code += 1
        else:
            gradable.append(ex)
    todo_rows = select_rows(gradable, per_source, limit)
    if not todo_rows:
        # Said before anything is written: an empty `out` would only fail the next step.
        why = []
        if n := report.skipped_no_reference:
            why.append(f"{n} rows have no metric and ground_truth (nor a judge to grade them)")
        if n := report.skipped_code:
            why.append(f"{n} code rows are graded only with --allow-code-exec")
        raise ProfileError(f"no rows to profile: {'; '.join(why) or 'the data has none'}")
    check_metrics(todo_rows, data)
    listed = set(order)  # a row not in `out` yet is written in the order of the selection
    for ex in todo_rows:
        if (k := row_key(ex)) not in listed:
            listed.add(k)
            order.append(k)

    # (row, model, the answer kept from a run whose grading of it failed, if any)
    tasks: list[tuple[Example, str, Result | None]] = []
    for ex in todo_rows:
        for m in models:
            prev = done.get((row_key(ex), m)) or _result_in_row(ex, m)
            if prev is not None and prev.error is None:
                report.already_done += 1
                report.results.append(prev)
                continue
            tasks.append((ex, m, prev if prev is not None and prev.ungraded else None))
    if report.skipped_no_reference:
        say(
            f"{report.skipped_no_reference} rows have no metric and ground_truth "
            f"(nor a judge to grade them): skipped"
        )
    if report.skipped_code:
        say(
            f"{report.skipped_code} code rows skipped: grading them runs the answers "
            "(--allow-code-exec)"
        )
    if on_total:
        on_total(len(tasks))
    caller = caller or ModelCaller(
        config, base_dir, retries=retries, timeout=timeout, threads=threads
    )
    regrading = sum(kept is not None for *_, kept in tasks)
    if regrading:
        say(f"{regrading} answers kept from an earlier run are graded again, the model not called")
    needs_judge = judge is not None and any(not ex.extra.get("metric") for ex, *_ in tasks)
    # Only the models still to be called: an answer kept needs its grader, not its model.
    calling = {m for _, m, kept in tasks if kept is None}
    started_here = caller.local is None
    if started_here:
        caller.start(list({*calling, *([judge] if needs_judge else [])}))
    save_lock = threading.Lock()
    finished = 0
    t0 = time.monotonic()

    def save() -> None:
        with save_lock:
            write_rows_atomic([by_key[k] for k in order if k in kept or k in finished_keys], out)

    async def one(sem: asyncio.Semaphore, ex: Example, model: str, kept: Result | None) -> None:
        nonlocal finished
        async with sem:
            r = await _profile_one(
                caller, config, ex, model, allow_code_exec, judge, judge_against, max_tokens, kept
            )
        journal.append(r)
        report.results.append(r)
        if r.error is None:
            merge_result(ex, r)
            finished_keys.add(r.key)
            report.judge_cost += (r.usage or {}).get("judge_cost", 0.0)
        else:
            report.failed += 1
            report.ungraded += r.ungraded
            kept_note = " (its answer is kept: a rerun grades it, the model not called)"
            say(f"{model} on {r.key}: {r.error}{kept_note if r.ungraded else ''}")
        finished += 1
        if progress:
            progress(1)
        if finished % save_every == 0:
            await asyncio.to_thread(save)

    async def run_all() -> None:
        sem = asyncio.Semaphore(max(1, concurrency))
        await asyncio.gather(*(one(sem, *task) for task in tasks))

    # SIGTERM (`kill`, and a background job, which ignores Ctrl-C) stops the run like Ctrl-C:
    # the output is written and the local servers stopped before it exits.
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if tasks:
            asyncio.run(run_all())
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
        # An interruption can fall between journalling a result and merging it: the journal
        # is the record, so merge from it once more before the last write.
        for (k, m), r in journal.read().items():
            if r.error is None and k in by_key and m not in (by_key[k].extra.get("answers") or {}):
                merge_result(by_key[k], r)
                finished_keys.add(k)
        save()
        report.wall_s = time.monotonic() - t0
        if started_here:
            caller.stop()
    return report


def _has_rows(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        return any(line.strip() for line in f)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def check_metrics(rows: Sequence[Example], data: Sequence[str | Path]) -> None:
    """Every row's `metric` is one a grader knows, before any model is called: a misspelt
    one would have each answer paid for, then kept ungraded."""
    bad = [ex for ex in rows if ex.extra.get("metric") and ex.extra["metric"] not in GRADERS]
    if bad:
        ex, files = bad[0], ", ".join(str(d) for d in data)
        more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
        raise ProfileError(
            f"{files}: row {ex.id or row_key(ex)!r}: metric: unknown metric "
            f"{ex.extra['metric']!r}{more}; known: {sorted(GRADERS)}"
        )


def _gradable(ex: Example, judge: str | None, judge_against: str | None) -> bool:
    if ex.extra.get("metric") and ex.extra.get("ground_truth") is not None:
        return True
    if judge is None:
        return False
    if ex.extra.get("ground_truth") is not None:
        return True
    answers = ex.extra.get("answers") or {}
    return judge_against is not None and judge_against in answers


async def _profile_one(
    caller: ModelCaller,
    config: RouterConfig,
    ex: Example,
    model: str,
    allow_code_exec: bool,
    judge: str | None,
    judge_against: str | None,
    max_tokens: int | None,
    kept: Result | None = None,
) -> Result:
    """Ask, grade and price one (row, model); any failure becomes an error result. `kept`: an
    answer from an earlier run whose grading failed, graded again without calling the model.
    An answer whose grading fails is kept in the error result (it was paid for)."""
    key, spec = row_key(ex), config.model(model)
    metric = ex.extra.get("metric")
    if kept is not None and kept.answer is not None:
        text, logprobs = kept.answer, kept.logprobs
        usage = {k: v for k, v in (kept.usage or {}).items() if k not in ("judge", "judge_cost")}
    else:
        messages, fmt = format_prompt(ex, metric)
        budget = max_tokens or fmt.max_tokens
        try:
            call = await caller.complete(spec, messages, budget, fmt.logprobs)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            return Result(key, model, error=f"call failed: {_said(e)}", source=ex.source)
        if why := call.no_answer(budget):  # the reply's failure, not the model's wrong answer
            return Result(key, model, error=why, source=ex.source)
        text, logprobs = call.text, call.logprobs
        usage = {
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "latency_ms": call.latency_ms,
            "cost": round(spec.cost(call.input_tokens, call.output_tokens), 10),
        }
    answered = {"answer": text, "usage": usage, "logprobs": logprobs, "source": ex.source}
    try:
        if metric:
            prompt = ex.prompt or ex.text()
            score = await asyncio.to_thread(grade, ex.extra, text, prompt, allow_code_exec)
        else:
            score = await _judge(caller, config, ex, text, judge, judge_against, usage)
    except GradingError as e:
        return Result(key, model, error=f"grading: {e}", **answered)
    except Exception as e:  # noqa: BLE001 - the judge's call failed (after its retries)
        what = "grading failed" if metric else f"judge {judge} call failed"
        return Result(key, model, error=f"{what}: {_said(e)}", **answered)
    if score is None:
        return Result(key, model, error="the judge gave no verdict", **answered)
    return Result(key, model, score=round(float(score), 4), **answered)


def _said(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:300]}"


async def _judge(
    caller: ModelCaller,
    config: RouterConfig,
    ex: Example,
    answer: str,
    judge: str | None,
    judge_against: str | None,
    usage: dict[str, Any],
) -> float | None:
    """Grade by an LLM judge; the judge's calls are priced into usage['judge_cost']."""
    if judge is None:
        raise GradingError("the row has no metric; grade it with --judge MODEL")
    spec = config.model(judge)
    loop = asyncio.get_running_loop()

    def call(messages: list[dict[str, str]]) -> tuple[str, float]:
        r = asyncio.run_coroutine_threadsafe(
            caller.complete(spec, messages, JUDGE_MAX_TOKENS, False), loop
        ).result()
        return r.text, spec.cost(r.input_tokens, r.output_tokens)

    question = ex.text()
    truth = ex.extra.get("ground_truth")
    if truth is not None:
        j = await asyncio.to_thread(judge_reference, question, answer, str(truth), call)
    else:
        large = (ex.extra.get("answers") or {}).get(judge_against)
        j = await asyncio.to_thread(judge_pairwise, question, answer, str(large), call)
    usage["judge_cost"] = round(j.cost, 10)
    usage["judge"] = judge
    return j.score


__all__ = [
    "FORMATS",
    "ModelCaller",
    "ProfileError",
    "ProfileReport",
    "Result",
    "format_prompt",
    "profile",
    "reference_of",
    "row_key",
    "select_rows",
]
