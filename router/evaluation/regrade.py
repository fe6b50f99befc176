"""Grade a profile's stored answers again with the current graders: `router regrade FILE`.

One job: a profile file (`router profile` output) keeps each model's raw answer in
`answers[model]`; when a grader changes (stricter parsing, a sandbox verdict), the scores can be
recomputed from those answers without calling any model. Code rows run in the sandbox again
(only with `allow_code_exec`; otherwise their scores are kept and counted as not regraded).
The file is rewritten atomically (a temporary file, then a rename).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from router.core.data import DataError, read_many
from router.evaluation import sandbox
from router.evaluation.graders import GradingError, grade


@dataclass
class Regraded:
    """Per (model, metric): how many answers were graded again and how the scores moved."""

    n: int = 0
    changed: int = 0
    old_sum: float = 0.0
    new_sum: float = 0.0
    examples: list[tuple[str, float, float]] = field(default_factory=list)  # (id, old, new)


@dataclass
class RegradeReport:
    groups: dict[tuple[str, str], Regraded] = field(default_factory=dict)
    kept_code_rows: int = 0  # code rows left as they were (code execution not allowed)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> list[dict]:
        return [
            {
                "model": model,
                "metric": metric,
                "n": g.n,
                "changed": g.changed,
                "old_accuracy": g.old_sum / g.n if g.n else None,
                "new_accuracy": g.new_sum / g.n if g.n else None,
            }
            for (model, metric), g in sorted(self.groups.items())
        ]


def regrade(
    path: str | Path,
    out: str | Path | None = None,
    models: Sequence[str] = (),
    allow_code_exec: bool = False,
    allow_weak_sandbox: bool = False,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> RegradeReport:
    """Recompute `scores[model]` from `answers[model]` for every gradable row of `path`,
    writing the rows to `out` (default: `path` itself)."""
    from router.evaluation.profile import write_rows_atomic

    say = log or (lambda _m: None)
    path = Path(path)
    if allow_code_exec:
        say(f"code sandbox: {sandbox.describe()}")
        if why := sandbox.weak_refusal(allow_weak_sandbox):
            raise DataError(f"--allow-code-exec: {why}")
    rows = read_many([path])
    if models:
        # A misspelt name would regrade nothing and rewrite the file as it was, in silence.
        answered = {m for ex in rows if isinstance(a := ex.extra.get("answers"), dict) for m in a}
        for m in models:
            if m not in answered:
                raise DataError(
                    f"--model {m!r}: {path} has no answer of it; answers of: {sorted(answered)}"
                )
    report = RegradeReport(groups=defaultdict(Regraded))
    for ex in rows:
        metric, answers = ex.extra.get("metric"), ex.extra.get("answers") or {}
        if not metric or ex.extra.get("ground_truth") is None or not isinstance(answers, dict):
            continue
        for model, answer in answers.items():
            if (models and model not in models) or model not in ex.scores:
                continue
            if metric == "code_eval" and not allow_code_exec:
                report.kept_code_rows += 1
                continue
            prompt = ex.prompt or ex.text()
            try:
                new = round(float(grade(ex.extra, answer or "", prompt, allow_code_exec)), 4)
            except GradingError as e:
                report.errors.append(f"{ex.id or '?'} ({model}): {e}")
                continue
            old = float(ex.scores[model])
            g = report.groups[(model, metric)]
            g.n += 1
            g.old_sum += old
            g.new_sum += new
            if new != old:
                g.changed += 1
                g.examples.append((ex.id or "", old, new))
                ex.scores[model] = new
            if progress:
                progress(1)
    report.groups = dict(report.groups)
    write_rows_atomic(rows, Path(out) if out is not None else path)
    return report
