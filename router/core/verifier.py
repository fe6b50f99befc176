"""Answer verifier: P(a model's answer is right) from the prompt and the answer itself.

A prompt-only scorer judges a request by "prompts like this one"; the answer says more (issue 11:
on RouteLLM GSM8K, AUROC 0.545 from the prompt alone, 0.715 with the answer). The verifier is a
logistic regression over three groups of signals:

- text: word TF-IDF (1-2 grams) of the prompt and, separately, of the answer;
- answer checks, each a small named function of (prompt, answer) in `CHECKS`: arithmetic that
  does not hold, an empty, refusing or truncated answer, its length, hedges, self-corrections,
  a final answer that is missing where the prompt asks for one, or that contradicts the work;
- token logprobs where the model returned them: mean, minimum, first-token margin.

It follows scikit-learn's estimator shape (`fit`, `predict_proba`, nothing learned before
`fit`), on `AnswerCase` inputs. A saved verifier is a directory: `verifier.json` (parameters,
vocabularies, feature names) and `weights.npz` (arrays, loaded with `allow_pickle=False`).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from router.core.data import Example, group_key
from router.core.tfidf import tfidf_vectorizer

FORMAT_VERSION = 1


class VerifierError(ValueError):
    """A verifier cannot be trained or loaded; the message says why."""


@dataclass
class AnswerCase:
    """One answer to judge.

    `logprobs`: the answer's tokens as the model returned them, in any of the shapes
    `token_logprobs` reads. `partial`: only a prefix of the answer (a streaming buffer), so the
    checks that need the whole answer (truncated, final answer missing) stay silent.
    """

    prompt: str
    answer: str
    logprobs: Any = None
    finish_reason: str | None = None
    partial: bool = False


# ---- arithmetic --------------------------------------------------------------------------------

_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def safe_eval(expr: str) -> float | None:
    """The value of a plain arithmetic expression (numbers, + - * / // % **, parentheses),
    or None for anything else. Nothing is executed: the expression is walked as a syntax tree."""
    text = expr.replace(",", "").replace("$", "").replace("^", "**").strip()
    text = re.sub(r"(?<=[\d)])\s*[x×]\s*(?=[\d(])", "*", text)
    text = text.replace("÷", "/").replace("−", "-")
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", text)
    if not text or len(text) > 200 or not re.fullmatch(r"[\d\s.+\-*/()%]+", text):
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = walk(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 12 or abs(left) > 1e6):
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        raise ValueError("not arithmetic")

    try:
        value = walk(tree)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _decimals(text: str) -> int:
    m = re.search(r"\.(\d+)\s*$", text.replace(",", "").strip().rstrip("%"))
    return len(m.group(1)) if m else 0


def equation_holds(left: str, right: str) -> bool | None:
    """Does `left = right` hold (None: one side is not arithmetic)? A result rounded to the
    decimals it shows holds ("10/3 = 3.33"), as does one within 0.5% (rounded money); a whole
    number must be exact ("5/2 = 3" does not hold)."""
    lv, rv = safe_eval(left), safe_eval(right)
    if lv is None or rv is None:
        return None
    d = _decimals(right)
    tol = max(0.5 * 10**-d if d else 0.0, 0.005 * abs(lv), 1e-9)
    if "%" in right and "%" not in left:
        # "0.25 = 25%" reads the percent sign as a unit.
        return abs(lv - rv) <= tol or abs(lv - rv * 100) <= max(tol, 0.005 * abs(lv))
    return abs(lv - rv) <= tol


_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>=]+)>>")
_NUM = r"\$?\d[\d,]*(?:\.\d+)?%?"
_OP = r"\s*(?:[-+*/×÷x^]|\*\*)\s*"
_EXPR = rf"\(?\s*{_NUM}\s*\)?(?:{_OP}\(?\s*{_NUM}\s*\)?)*"
# "a op b = r", where r may itself be an expression, and chains "a op b = c = d".
_PLAIN = re.compile(rf"(?<![\w.<=:/-])({_EXPR}(?:\s*=\s*{_EXPR})+)")


def arithmetic_claims(answer: str) -> list[tuple[str, str]]:
    """Every `left = right` the answer asserts: `<<a*b=c>>` annotations (GSM8K style) and plain
    "a op b = c" in the text (annotations are removed first so nothing is counted twice)."""
    claims = [(m.group(1), m.group(2)) for m in _ANNOTATION.finditer(answer)]
    annotated = {_plain_form(lhs) for lhs, _ in claims}
    plain = _ANNOTATION.sub(" ", answer)
    for m in _PLAIN.finditer(plain):
        sides = [s.strip() for s in m.group(1).split("=")]
        if not any(re.search(r"\d\s*(?:[-+*/×÷x^])\s*[\d($]", s) for s in sides):
            continue  # "x = 5", "2019-2020": no calculation
        for lhs, rhs in zip(sides, sides[1:], strict=False):
            if _plain_form(lhs) not in annotated:  # "a = <<a=b>>b" says it once
                claims.append((lhs, rhs))
    return claims


def _plain_form(expr: str) -> str:
    return re.sub(r"[\s$,]", "", expr).replace("x", "*").replace("×", "*")


def arithmetic_errors(case: AnswerCase) -> float:
    """How many of the answer's arithmetic claims do not hold (capped at 3)."""
    bad = sum(equation_holds(lhs, rhs) is False for lhs, rhs in arithmetic_claims(case.answer))
    return float(min(bad, 3))


def arithmetic_shown(case: AnswerCase) -> float:
    """log(1 + the number of arithmetic claims the answer makes): it shows its work."""
    return math.log1p(len(arithmetic_claims(case.answer)))


# ---- the answer's shape ----------------------------------------------------------------------

_REFUSAL = re.compile(
    r"\b(i\s*(?:'m| am)\s*(?:sorry|unable|not able)|i\s*(?:can(?:'|no)t|cannot|won't)\s+"
    r"(?:help|assist|answer|provide|do that|comply)|as an ai\b|i do not have (?:access|the ability))",
    re.IGNORECASE,
)
_HEDGES = re.compile(
    r"\b(however|but|can't|cannot|not sure|unsure|unclear|approximately|roughly|assum(?:e|ing)|"
    r"it depends|might|may be|possibly|probably|i think|i believe|seems?)\b",
    re.IGNORECASE,
)
_SELF_CORRECTION = re.compile(
    r"\b(wait|actually|oops|i made (?:a|an) (?:mistake|error)|let me (?:re|try again|correct)|"
    r"correction|mistake in)\b",
    re.IGNORECASE,
)


def empty_answer(case: AnswerCase) -> float:
    """1 when the answer has no visible text."""
    return float(not case.answer.strip())


def refusal(case: AnswerCase) -> float:
    """1 when the answer declines ("I'm sorry, but I can't help with that")."""
    return float(bool(_REFUSAL.search(case.answer[:400])))


def truncated(case: AnswerCase) -> float:
    """1 when the answer was cut off: the model stopped on its token limit, or a code block was
    left open. A partial answer (streaming buffer) is not judged on this."""
    if case.partial:
        return 0.0
    if case.finish_reason == "length":
        return 1.0
    return float(case.answer.count("```") % 2 == 1)


def answer_length(case: AnswerCase) -> float:
    """log(1 + words): very short or very long answers are often wrong."""
    return math.log1p(len(case.answer.split()))


def hedges(case: AnswerCase) -> float:
    """Hedging words per 100 words ("however", "can't", "approximately", "I think" ...)."""
    words = max(1, len(case.answer.split()))
    return min(10.0, 100.0 * len(_HEDGES.findall(case.answer)) / words)


def self_corrections(case: AnswerCase) -> float:
    """How often the answer corrects itself ("wait", "actually", "I made a mistake"), capped."""
    return float(min(3, len(_SELF_CORRECTION.findall(case.answer))))


_ASKS_NUMBER = re.compile(
    r"\b(how (?:many|much|long|far|old|fast)|what (?:is|was) the (?:total|number|sum|"
    r"difference|product|average|cost|price|value|amount)|calculate|compute|how many)\b",
    re.IGNORECASE,
)
_ASKS_CHOICE = re.compile(r"(?m)^\s*\(?[A-D][).:]\s+\S")
_ASKS_MARKER = re.compile(r"(####|\\boxed|final answer)", re.IGNORECASE)
_FINAL_NUMBER = re.compile(
    r"(?:####\s*|\\boxed\{\s*|answer(?: is|:)\s*\**\s*)(-?\$?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_answer_missing(case: AnswerCase) -> float:
    """1 when the prompt asks for a final answer (a number, a lettered choice, or a marker such
    as "####" / \\boxed / "final answer") and the end of the answer does not give one."""
    if case.partial:
        return 0.0
    tail = case.answer[-300:]
    marker = _ASKS_MARKER.search(case.prompt)
    if marker:
        wanted = marker.group(1).lower()
        return float(wanted not in case.answer.lower() and not _FINAL_NUMBER.search(tail))
    if _ASKS_CHOICE.search(case.prompt):
        return float(not re.search(r"\b[A-D]\b", tail))
    if _ASKS_NUMBER.search(case.prompt):
        return float(not _NUMBER.search(tail))
    return 0.0


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", ""))
    except ValueError:
        return None


def final_answer_inconsistent(case: AnswerCase) -> float:
    """1 when the answer declares a final number ("#### 3", "the answer is 3") that none of its
    own calculations produced, although it calculated (it gave up on its work, or rounded it
    away)."""
    found = list(_FINAL_NUMBER.finditer(case.answer))
    if not found:
        return 0.0
    m = found[-1]
    final = _number(m.group(1))
    claims = arithmetic_claims(case.answer[: m.start()])
    if final is None or not claims:
        return 0.0
    seen = [v for _, rhs in claims if (v := safe_eval(rhs)) is not None]
    return float(not any(abs(v - final) <= max(1e-6, 1e-6 * abs(final)) for v in seen))


# The answer checks, by name: each a small function of one case (feature order is this order).
CHECKS: dict[str, Callable[[AnswerCase], float]] = {
    "arithmetic_errors": arithmetic_errors,
    "arithmetic_shown": arithmetic_shown,
    "empty_answer": empty_answer,
    "refusal": refusal,
    "truncated": truncated,
    "answer_length": answer_length,
    "hedges": hedges,
    "self_corrections": self_corrections,
    "final_answer_missing": final_answer_missing,
    "final_answer_inconsistent": final_answer_inconsistent,
}


# ---- token logprobs ----------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def token_logprobs(raw: Any) -> tuple[list[float], float | None]:
    """(each token's logprob, the first token's margin over its runner-up or None).

    Reads a list of floats; `router profile`'s rows [{token, logprob, top: {token: logprob}}];
    OpenAI's `choice.logprobs` ({"content": [{token, logprob, top_logprobs: [...]}]}, a dict or
    the client's objects)."""
    if raw is None:
        return [], None
    content = _get(raw, "content") if not isinstance(raw, list) else raw
    if not content:
        return [], None
    values: list[float] = []
    margin = None
    for i, t in enumerate(content):
        if isinstance(t, int | float):
            values.append(float(t))
            continue
        lp = _get(t, "logprob")
        if lp is None:
            continue
        values.append(float(lp))
        if i == 0:
            top = _get(t, "top")
            if isinstance(top, dict):
                alts = sorted((float(v) for v in top.values()), reverse=True)
            else:
                alts = sorted(
                    (float(_get(x, "logprob")) for x in _get(t, "top_logprobs") or []), reverse=True
                )
            if len(alts) >= 2:
                margin = alts[0] - alts[1]
    return values, margin


LOGPROB_FEATURES = ("lp_present", "lp_mean", "lp_min", "lp_first_margin", "lp_low_share")


def logprob_features(case: AnswerCase) -> list[float]:
    """[present, mean, minimum, first-token margin, share of tokens below p=0.5]; zeros (with
    present 0) when the model returned none."""
    values, margin = token_logprobs(case.logprobs)
    if not values:
        return [0.0] * len(LOGPROB_FEATURES)
    v = np.maximum(np.array(values), -30.0)
    return [
        1.0,
        float(v.mean()),
        float(v.min()),
        float(min(margin, 30.0)) if margin is not None else 0.0,
        float((v < math.log(0.5)).mean()),
    ]


FEATURE_NAMES = tuple(CHECKS) + LOGPROB_FEATURES


def dense_features(cases: Sequence[AnswerCase]) -> np.ndarray:
    """(n, len(FEATURE_NAMES)): every answer check, then the logprob features."""
    return np.array(
        [[fn(c) for fn in CHECKS.values()] + logprob_features(c) for c in cases], dtype=np.float64
    ).reshape(len(cases), len(FEATURE_NAMES))


# ---- training rows -----------------------------------------------------------------------------


def verifier_cases(
    examples: Sequence[Example], models: str | Sequence[str] = "cheap"
) -> tuple[list[AnswerCase], np.ndarray, np.ndarray, list[str]]:
    """Rows with a model's answer and score → (cases, scores, group keys, model per case).

    `models`: "cheap" (each row's cheap models: what a cascade verifies), "all", or names.
    Answers come from `answers` {model: text}; logprobs from `logprobs` {model: [...]} and a
    finish reason from `usage` {model: {finish_reason}} where the row has them."""
    cases, ys, groups, who = [], [], [], []
    for ex in examples:
        answers = ex.extra.get("answers") or {}
        if not isinstance(answers, dict):
            continue
        if models == "cheap":
            names = ex.cheap_models
        elif models == "all":
            names = list(ex.scores)
        else:
            names = list(models)
        logprobs = ex.extra.get("logprobs") or {}
        usage = ex.extra.get("usage") or {}
        for m in names:
            text = answers.get(m)
            if m not in ex.scores or not isinstance(text, str):
                continue
            u = usage.get(m) if isinstance(usage, dict) else None
            cases.append(
                AnswerCase(
                    prompt=ex.text(),
                    answer=text,
                    logprobs=logprobs.get(m) if isinstance(logprobs, dict) else None,
                    finish_reason=u.get("finish_reason") if isinstance(u, dict) else None,
                )
            )
            ys.append(ex.scores[m])
            groups.append(group_key(ex))
            who.append(m)
    return cases, np.array(ys, dtype=np.float64), np.array(groups), who


# ---- the estimator -----------------------------------------------------------------------------


class AnswerVerifier:
    """P(answer right | prompt, answer): logistic regression on TF-IDF + checks + logprobs."""

    def __init__(
        self,
        C: float = 0.5,
        max_features: int = 20000,
        use_text: bool = True,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.max_features = max_features
        self.use_text = use_text
        self.random_state = random_state

    def _design(self, cases: Sequence[AnswerCase]):
        import scipy.sparse as sp

        D = (dense_features(cases) - self.mean_) / self.scale_
        blocks = [sp.csr_matrix(D)]
        if self.use_text:
            blocks.append(self._prompt_vec.transform([c.prompt for c in cases]))
            blocks.append(self._answer_vec.transform([c.answer for c in cases]))
        return sp.hstack(blocks).tocsr()

    def fit(self, cases: Sequence[AnswerCase], y: Sequence[float]) -> AnswerVerifier:
        """Learn from answers and their scores in [0, 1] (graded scores weight both classes)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=np.float64)
        if len(cases) != len(y):
            raise VerifierError(f"{len(cases)} answers for {len(y)} scores")
        if len(cases) < 10:
            raise VerifierError("need at least 10 answers with scores to train a verifier")
        if y.min() == y.max():
            raise VerifierError("every answer has the same score: nothing to learn")
        D = dense_features(cases)
        self.mean_ = D.mean(axis=0)
        self.scale_ = np.where(D.std(axis=0) > 1e-9, D.std(axis=0), 1.0)
        if self.use_text:
            self._prompt_vec = tfidf_vectorizer(self.max_features).fit([c.prompt for c in cases])
            self._answer_vec = tfidf_vectorizer(self.max_features).fit([c.answer for c in cases])
            self.prompt_vocabulary_ = dict(self._prompt_vec.vocabulary_)
            self.answer_vocabulary_ = dict(self._answer_vec.vocabulary_)
        X = self._design(cases)
        # Each row twice, weighted y and 1 - y: graded scores (F1, judge marks) train as such.
        import scipy.sparse as sp

        n = len(y)
        X2, y2, w2 = sp.vstack([X, X]).tocsr(), np.r_[np.ones(n), np.zeros(n)], np.r_[y, 1 - y]
        keep = w2 > 0
        lr = LogisticRegression(C=self.C, max_iter=5000)
        lr.fit(X2[keep], y2[keep], sample_weight=w2[keep])
        self.coef_ = lr.coef_[0].astype(np.float64)
        self.intercept_ = float(lr.intercept_[0])
        self.n_train_ = n
        self.base_rate_ = float(y.mean())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise VerifierError("this AnswerVerifier is not fitted yet; call fit() or load()")

    def decision_function(self, cases: Sequence[AnswerCase]) -> np.ndarray:
        self._check_fitted()
        if not len(cases):
            return np.zeros(0)
        return np.asarray(self._design(cases) @ self.coef_).ravel() + self.intercept_

    def predict_proba(self, cases: Sequence[AnswerCase]) -> np.ndarray:
        """(n, 2): P(wrong), P(right), as scikit-learn classifiers do."""
        z = np.clip(self.decision_function(cases), -40, 40)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1 - p, p])

    def probability(self, case: AnswerCase) -> float:
        """P(right) for one answer."""
        return float(self.predict_proba([case])[0, 1])

    def explain(self, case: AnswerCase) -> dict[str, float]:
        """Each check's and logprob feature's value for one answer (for receipts and debugging)."""
        return {
            k: round(float(v), 4)
            for k, v in zip(FEATURE_NAMES, dense_features([case])[0], strict=True)
        }

    # ---- persistence -------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `verifier.json` and `weights.npz` into directory `path`."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {
            "coef": self.coef_,
            "mean": self.mean_,
            "scale": self.scale_,
        }
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "kind": "answer-verifier",
            "params": {"C": self.C, "max_features": self.max_features, "use_text": self.use_text},
            "features": list(FEATURE_NAMES),
            "intercept": self.intercept_,
            "n_train": self.n_train_,
            "base_rate": self.base_rate_,
            **(extra or {}),
        }
        if self.use_text:
            arrays["prompt_idf"] = self._prompt_vec.idf_.astype(np.float64)
            arrays["answer_idf"] = self._answer_vec.idf_.astype(np.float64)
            meta["prompt_vocabulary"] = sorted(
                self.prompt_vocabulary_, key=self.prompt_vocabulary_.get
            )
            meta["answer_vocabulary"] = sorted(
                self.answer_vocabulary_, key=self.answer_vocabulary_.get
            )
        np.savez_compressed(path / "weights.npz", **arrays)
        (path / "verifier.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> AnswerVerifier:
        """Load a saved verifier (no code runs: JSON and plain arrays)."""
        path = Path(path)
        meta_file, weights_file = path / "verifier.json", path / "weights.npz"
        if not meta_file.is_file() or not weights_file.is_file():
            raise VerifierError(
                f"{path}: not a verifier directory (needs verifier.json and weights.npz)"
            )
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            with np.load(weights_file, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise VerifierError(f"{path}: unreadable verifier files: {e}") from None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise VerifierError(
                f"{path}/verifier.json: not a format {FORMAT_VERSION} verifier; retrain with "
                "`router train-verifier`"
            )
        if meta.get("features") != list(FEATURE_NAMES):
            raise VerifierError(
                f"{path}/verifier.json: trained on features {meta.get('features')}, this version "
                f"computes {list(FEATURE_NAMES)}; retrain with `router train-verifier`"
            )
        try:
            self = cls(**meta["params"])
            self.coef_ = arrays["coef"].astype(np.float64)
            self.mean_ = arrays["mean"].astype(np.float64)
            self.scale_ = arrays["scale"].astype(np.float64)
            self.intercept_ = float(meta["intercept"])
            self.n_train_ = int(meta.get("n_train", 0))
            self.base_rate_ = float(meta.get("base_rate", 0.5))
            width = len(FEATURE_NAMES)
            if self.use_text:
                pv = {t: i for i, t in enumerate(meta["prompt_vocabulary"])}
                av = {t: i for i, t in enumerate(meta["answer_vocabulary"])}
                self._prompt_vec = tfidf_vectorizer(self.max_features, pv)
                self._prompt_vec.idf_ = arrays["prompt_idf"]
                self._answer_vec = tfidf_vectorizer(self.max_features, av)
                self._answer_vec.idf_ = arrays["answer_idf"]
                self.prompt_vocabulary_, self.answer_vocabulary_ = pv, av
                width += len(pv) + len(av)
            self.meta_ = {k: v for k, v in meta.items() if not k.endswith("_vocabulary")}
        except (KeyError, TypeError, ValueError) as e:
            raise VerifierError(f"{path}: incomplete verifier files (missing or bad {e})") from None
        if len(self.coef_) != width or len(self.mean_) != len(FEATURE_NAMES):
            raise VerifierError(f"{path}: weights do not match verifier.json")
        return self


def default_verifier_path() -> Path:
    """The verifier shipped inside the package (`make verifier` rebuilds it)."""
    return Path(str(resources.files("router").joinpath("artifacts/verifier")))


def load_verifier(spec: str, base_dir: Path | None = None) -> AnswerVerifier:
    """ "default" (the shipped verifier) or a directory, relative to `base_dir`."""
    if spec == "default":
        return AnswerVerifier.load(default_verifier_path())
    p = Path(spec)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return AnswerVerifier.load(p)


# ---- training from routing data ----------------------------------------------------------------


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve of P(right) against right (score ≥ 0.5); None with one class."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(y) >= 0.5
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, p))


def cross_val_proba(
    cases: Sequence[AnswerCase],
    y: np.ndarray,
    folds: np.ndarray,
    make: Callable[[], AnswerVerifier] = AnswerVerifier,
) -> np.ndarray:
    """Out-of-fold P(right) for every case, one fold held out at a time."""
    p = np.full(len(y), np.nan)
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        v = make().fit([cases[i] for i in tr], y[tr])
        p[te] = v.predict_proba([cases[i] for i in te])[:, 1]
    return p


def train_verifier(
    examples: Sequence[Example],
    out: str | Path | None = None,
    models: str | Sequence[str] = "cheap",
    cv: int = 5,
    C: float = 0.5,
    log: Callable[[str], None] | None = None,
) -> tuple[AnswerVerifier, dict[str, Any]]:
    """Train a verifier on every row with a model's answer and score; measure it first with
    `cv`-fold CV grouped by prompt text (0: no measurement). Saves it to `out` when given."""
    from router.core.data import group_folds

    say = log or (lambda _m: None)
    cases, y, groups, who = verifier_cases(examples, models)
    if not cases:
        raise VerifierError(
            "no row has an answer with a score: a verifier learns from rows with `answers` "
            "{model: text} (RouteLLM GSM8K, or `router profile` output)"
        )
    by_model = {m: int(sum(w == m for w in who)) for m in sorted(set(who))}
    say(f"{len(cases)} answers ({', '.join(f'{m}: {n}' for m, n in by_model.items())})")
    report: dict[str, Any] = {
        "answers": len(cases),
        "by_model": by_model,
        "right_rate": round(float((y >= 0.5).mean()), 4),
        "with_logprobs": int(sum(bool(token_logprobs(c.logprobs)[0]) for c in cases)),
    }
    if cv and cv > 1:
        folds = group_folds(groups, cv)
        p = cross_val_proba(cases, y, folds, lambda: AnswerVerifier(C=C))
        report["cv"] = cv
        report["cv_auroc"] = auroc(y, p)
        report["cv_auroc_by_model"] = {
            m: auroc(y[np.array(who) == m], p[np.array(who) == m]) for m in by_model
        }
        say(f"{cv}-fold CV AUROC {report['cv_auroc']}")
    verifier = AnswerVerifier(C=C).fit(cases, y)
    if out is not None:
        verifier.save(out, extra={"trained_on": report})
        report["out"] = str(out)
    return verifier, report
