"""`router data from-log`, embedding-only training rows and `router retrain` with its gate.

The live traffic here: MMLU questions answered by the cheap model `small-general`, with shadow
outcomes from the large model. The cheap model fails every marketing question (a domain
failure the serving scorer has never seen) and answers the rest. A candidate that learns this
is promoted; one trained on the same rows with their labels shuffled is refused by the gate.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from router.cli import app
from router.core.data import Example, read_jsonl, write_jsonl
from router.core.scorer import Scorer, default_scorer_path
from router.learning.retrain import read_manifest, retrain, rollback, time_split
from router.serving.decision_log import DecisionLog
from tests.conftest import write_test_config

ROOT = Path(__file__).resolve().parents[1]
FAILING = "mmlu/marketing"
OTHERS = ("mmlu/nutrition", "mmlu/prehistory", "mmlu/high_school_biology", "mmlu/astronomy")


@pytest.fixture(scope="module")
def pools():
    rows = read_jsonl(ROOT / "data" / "routing" / "routellm.jsonl")
    rng = random.Random(0)
    failing = [ex for ex in rows if ex.source == FAILING]
    others = [ex for ex in rows if ex.source in OTHERS]
    rng.shuffle(failing)
    rng.shuffle(others)
    traffic = failing[:70] + others[:150]
    used = {ex.id for ex in traffic}
    old = [ex for ex in rows if ex.id not in used and ex.source != FAILING]
    rng.shuffle(old)
    return traffic, old[:300]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, upstream, pools, router):
    """A config whose decision log holds the traffic above with shadow outcomes."""
    d = tmp_path_factory.mktemp("retrain")
    cfg = write_test_config(d, upstream.base_url)
    traffic, old = pools
    write_jsonl(old, d / "old.jsonl")
    log = _open_log(d, router)
    order = list(range(len(traffic)))
    random.Random(1).shuffle(order)  # failing and other questions spread over time
    for t, i in enumerate(order):
        ex = traffic[i]
        rid = f"req_{i:04d}"
        d_ = router.route(ex.prompt)
        text = router.text_of(ex.prompt).strip()
        log.record(_chat_row(rid, t, text, policy=d_.policy, domain=d_.domain))
        fails = ex.source == FAILING
        log.record_outcome(rid, 0.0 if fails else 1.0, "shadow")
        log.record_outcome(rid, 1.0, "shadow", model="large", detail={"judge": "test"})
    log.close()
    return cfg


def _open_log(d: Path, router, **kw) -> DecisionLog:
    """The decision log of the config in `d`, embedding with `router`'s encoder."""
    return DecisionLog(
        d / "decisions.db",
        embed=lambda t: router.encoder.encode([t])[0],
        encoder=router.encoder.identity,
        **kw,
    )


def _chat_row(rid: str, t: int, text: str, **fields) -> dict:
    """A logged chat request `t` seconds into the traffic, answered by the small model."""
    return {
        "request_id": rid,
        "ts": 1_000_000.0 + t,
        "kind": "chat",
        "model": "small-general",
        "tier": "small",
        "policy": "balanced",
        "status": 200,
        "routing_text": text,
        **fields,
    }


def _copy(workdir: Path, dest: Path) -> Path:
    shutil.copytree(workdir.parent, dest)
    return dest / "config.yaml"


def test_from_log_exports_embedding_rows_that_train(workdir, tmp_path, router):
    out = tmp_path / "new.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "data",
            "from-log",
            str(workdir.parent / "decisions.db"),
            "--out",
            str(out),
            "-c",
            str(workdir),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "220 rows" in res.output and "220 embedding only" in res.output
    first = json.loads(out.read_text().splitlines()[0])
    assert "prompt" not in first and "messages" not in first
    assert len(first["embedding"]) == 384 and first["encoder"] == router.encoder.identity
    # Catalogue names are mapped to the scorer's: `large` profiles gpt-4-1106-preview.
    assert set(first["scores"]) == {"small-general", "gpt-4-1106-preview"}
    assert first["cheap_models"] == ["small-general"]
    rows = read_jsonl(out)  # valid routing data
    assert rows[0].prompt is None and rows[0].text() == ""
    # `router train` on embedding-only rows plus text rows: the text head skips the former.
    trained = tmp_path / "scorer"
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(out),
            str(workdir.parent / "old.jsonl"),
            "--out",
            str(trained),
            "-c",
            str(workdir),
        ],
    )
    assert res.exit_code == 0, res.output
    s = Scorer.load(trained)
    assert "success:small-general" in s.heads_
    # Rows made by another encoder are refused, naming the field.
    bad = out.read_text().replace(router.encoder.identity, "other-encoder/1")
    (tmp_path / "bad.jsonl").write_text(bad)
    res = CliRunner().invoke(
        app,
        ["train", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "x"), "-c", str(workdir)],
    )
    assert res.exit_code == 2 and "encoder" in res.output


def _marketing_difficulty(scorer_dir: Path, router, pools) -> float:
    traffic, _ = pools
    texts = [router.text_of(ex.prompt).strip() for ex in traffic if ex.source == FAILING]
    s = Scorer.load(scorer_dir)
    return float(np.mean(s.predict(router.encoder.encode(texts), texts).difficulty))


def _shuffled(rows):
    """The new rows with their outcomes shuffled among them: nothing left to learn."""
    scores = [ex.scores for ex in rows]
    random.Random(7).shuffle(scores)
    for ex, s in zip(rows, scores, strict=True):
        ex.scores = s
    return rows


def test_retrain_promotes_a_scorer_that_learned_the_failure_then_refuses_noise(
    workdir, tmp_path, router, pools
):
    cfg = _copy(workdir, tmp_path / "w")
    old = [str(cfg.parent / "old.jsonl")]
    # The shipped scorer with another neighbour count than the default design's: a retrain
    # must keep the serving scorer's design.
    shutil.copytree(default_scorer_path(), cfg.parent / "served")
    meta = json.loads((cfg.parent / "served" / "scorer.json").read_text())
    meta["params"]["knn_k"] = 40
    (cfg.parent / "served" / "scorer.json").write_text(json.dumps(meta))
    cfg.write_text(cfg.read_text().replace("scorer: default", "scorer: served"))
    res = CliRunner().invoke(app, ["retrain", "-c", str(cfg), "--data", old[0]])
    assert res.exit_code == 0, res.output
    assert "promoted" in res.output
    root = cfg.parent / "scorers"
    man = read_manifest(root)
    assert man["current"] == "v0002"
    assert [v["status"] for v in man["versions"]] == ["initial", "promoted"]
    assert (root / "current").resolve() == (root / "v0002").resolve()
    report = json.loads((root / "v0002" / "report.json").read_text())
    assert report["promoted"] and report["n_new_test"] == 66 and report["n_new_train"] == 154
    cand, serv = report["scores"]["candidate"], report["scores"]["serving"]
    assert cand["brier"] < serv["brier"] and cand["n_two_tier"] == 66
    assert (root / "v0002" / "report.md").read_text().startswith("# Retrain v0002: promoted")
    # The config now points at scorers/current, and the comments and the rest are kept.
    text = cfg.read_text()
    assert "scorer: scorers/current" in text and "# Off: these tests" in text
    assert yaml.safe_load(text)["models"][0]["name"] == "small-general"
    # The promoted scorer expects the cheap model to fail on marketing; the old one did not.
    before = _marketing_difficulty(root / "v0001", router, pools)
    after = _marketing_difficulty(root / "current", router, pools)
    assert after > before + 0.2
    # The candidate is built as the serving scorer was: a retrain adds data, not a design.
    served, promoted = Scorer.load(root / "v0001"), Scorer.load(root / "v0002")
    assert promoted.get_params() == served.get_params() and promoted.knn_k == 40
    assert promoted.shared_stacked_ == served.shared_stacked_

    # A candidate trained on the same rows with shuffled labels is refused; nothing changes.
    report = retrain(cfg, [Path(old[0])], transform=_shuffled)
    assert not report.promoted and "worse" in report.reason
    man = read_manifest(root)
    assert man["current"] == "v0002" and man["versions"][-1]["status"] == "refused"
    assert (root / "current").resolve() == (root / "v0002").resolve()
    assert (root / "v0003" / "report.json").is_file()
    res = CliRunner().invoke(
        app, ["retrain", "-c", str(cfg), "--data", old[0], "--min-new", "1000"]
    )
    assert res.exit_code == 2 and "at least 1000" in res.output

    # Rollback serves the version before the promoted one again.
    assert rollback(cfg) == "v0001"
    assert (root / "current").resolve() == (root / "v0001").resolve()
    assert read_manifest(root)["versions"][1]["status"] == "rolled back"
    res = CliRunner().invoke(app, ["retrain", "-c", str(cfg), "--rollback"])
    assert res.exit_code == 2 and "no earlier version" in res.output


def test_gate_refuses_with_too_few_outcomes():
    from router.learning.retrain import Scores, gate

    few = Scores(brier=0.1, apgr=None, n_targets=3, n_two_tier=0)
    assert not gate(few, Scores(0.3, None, 3, 0)).promoted
    ok = Scores(brier=0.1, apgr=0.7, n_targets=50, n_two_tier=20)
    assert gate(ok, Scores(0.2, 0.6, 50, 20)).promoted
    assert not gate(ok, Scores(0.2, 0.75, 50, 20)).promoted  # better Brier, worse APGR
    assert gate(ok, Scores(0.2, 0.75, 50, 20), tolerance=0.06).promoted


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"embedding": "0.1,0.2", "encoder": "e/1"}, "embedding"),
        ({"embedding": [], "encoder": "e/1"}, "embedding"),
        ({"embedding": [0.1, None], "encoder": "e/1"}, "embedding"),
        ({"embedding": [0.1, True], "encoder": "e/1"}, "embedding"),
        ({"embedding": [0.1, 0.2]}, "encoder"),
        ({"embedding": [0.1, 0.2], "encoder": ""}, "encoder"),
        ({}, "prompt"),
    ],
)
def test_embedding_rows_are_validated_naming_the_field(tmp_path, row, field):
    from router.core.data import DataError

    path = tmp_path / "rows.jsonl"
    base = {"scores": {"a": 1.0}, "cheap_models": ["a"]}
    path.write_text(json.dumps({**base, **row}) + "\n")
    with pytest.raises(DataError, match=rf":1: {field}:"):
        read_jsonl(path)


def test_time_split_keeps_every_row_of_a_prompt_on_one_side():
    """A prompt asked again later lands wholly on the side of its newest row: the gate never
    judges the candidate on a prompt it was trained on."""
    rng = random.Random(3)
    rows = []
    for t in range(200):
        text = f"prompt {rng.randrange(60)}"  # repeats, interleaved in time
        rows.append(Example(prompt=text, scores={"m": 1.0}, extra={"ts": float(t)}))
    train, test = time_split(rows, test_share=0.3)
    assert len(train) + len(test) == 200 and len(test) >= 60
    assert not {ex.text() for ex in train} & {ex.text() for ex in test}
    # Still a split by time: each held-out prompt was last asked after every training prompt.
    last = {}
    for ex in rows:
        last[ex.text()] = ex.extra["ts"]
    assert min(last[ex.text()] for ex in test) > max(last[ex.text()] for ex in train)
    assert [ex.extra["ts"] for ex in test] == sorted(ex.extra["ts"] for ex in test)


def test_time_split_groups_embedding_only_rows_by_their_embedding():
    """A log that keeps no text: rows group by embedding, not all into one empty-text group."""
    rows = []
    for t in range(100):
        ex = Example(prompt=None, scores={"m": 1.0}, extra={"ts": float(t)})
        ex.extra["embedding"] = [float(t % 40), 1.0]  # 40 distinct prompts, repeated
        rows.append(ex)
    train, test = time_split(rows, test_share=0.3)
    assert 30 <= len(test) < 60 and len(train) + len(test) == 100
    key = lambda ex: tuple(ex.extra["embedding"])  # noqa: E731
    assert not {key(ex) for ex in train} & {key(ex) for ex in test}


class _Heads:
    """A scorer's prediction, fixed: its gain head ranks the rows backwards, its success heads
    know each row's outcome (for the models it has heads for)."""

    def __init__(self, models, gain, success, comparable=None):
        self.models_, self._gain, self._success = models, gain, success
        self.comparable = comparable

    def predict(self, X, texts):
        from router.core.scorer import ScoreBatch

        n = len(texts)
        return ScoreBatch(
            ["d"],
            self.models_,
            np.ones((n, 1)),
            np.full(n, 0.5),
            self._gain,
            self._success,
            comparable=self.comparable,
        )


def test_the_gate_ranks_by_the_gain_the_policy_compares():
    from router.learning.retrain import judge_scorer

    rng = np.random.default_rng(0)
    cheap_right = rng.random(60) < 0.5
    rows = [
        Example(
            id=str(i),
            prompt=f"q{i}",
            scores={"c": float(ok), "g": 1.0},
            cheap_models=["c"],
        )
        for i, ok in enumerate(cheap_right)
    ]
    gain = np.where(cheap_right, 0.6, 0.4)  # backwards: high where escalating gains nothing
    p_cheap = np.where(cheap_right, 0.95, 0.05)
    knows = _Heads(["c", "g"], gain, np.column_stack([p_cheap, np.full(60, 0.9)]))
    X = np.zeros((60, 4))
    blend = judge_scorer(knows, X, rows, "blend").apgr
    head = judge_scorer(knows, X, rows, "gain").apgr
    # A perfect ranking scores 1 - w/2 here (w: the share of rows the cheap model fails), a
    # backwards one w/2.
    assert head < 0.3 and blend > 0.7
    # A scorer without a head for the rows' large model: the blend is the gain head alone.
    lacks = _Heads(["c", "x"], gain, np.column_stack([p_cheap, np.full(60, 0.9)]))
    assert judge_scorer(lacks, X, rows, "blend").apgr == pytest.approx(head)
    # Nor where its two heads learned different prompts (`ScoreBatch.comparable`).
    knows.comparable = np.eye(2, dtype=bool)
    assert judge_scorer(knows, X, rows, "blend").apgr == pytest.approx(head)


@pytest.mark.parametrize(
    ("escalation", "signal"),
    [
        ("{max_gain: 0.2}", "blend"),
        ("{max_gain: 0.2, gain_estimate: head}", "gain"),
        ("{max_difficulty: 0.6}", "difficulty"),
    ],
)
def test_the_gate_escalates_on_the_default_policys_signal(tmp_path, escalation, signal):
    from router.core.config import load_config
    from router.learning.retrain import escalation_signal

    cfg = write_test_config(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "policies" / "balanced.yaml").write_text(
        f"name: balanced\ndefault: [small-general]\nlarge: [large]\nescalation: {escalation}\n"
    )
    assert escalation_signal(cfg, load_config(cfg)) == signal


def _one_prompt_log(d: Path, router, n: int = 30) -> Path:
    """A config whose log holds `n` requests with outcomes, all of one prompt."""
    cfg = write_test_config(d, "http://127.0.0.1:9")
    log = _open_log(d, router)
    for t in range(n):
        rid = f"req_{t:04d}"
        log.record(_chat_row(rid, t, "Is my order late?"))
        log.record_outcome(rid, 0.0, "feedback")
    log.close()
    return cfg


def test_retrain_refuses_when_every_new_row_is_held_out(tmp_path, router):
    # One prompt asked 30 times: the split keeps it whole, on the held-out side. A candidate
    # would then be the old data alone, judged as if it had learned from the log.
    from router.core.data import DataError

    cfg = _one_prompt_log(tmp_path, router)
    old = tmp_path / "old.jsonl"
    write_jsonl(read_jsonl(ROOT / "data" / "routing" / "routellm.jsonl")[:200], old)
    before = sorted(p.name for p in (tmp_path / "scorers").glob("v*"))
    with pytest.raises(DataError, match="none is left to train on"):
        retrain(cfg, [old])
    assert sorted(p.name for p in (tmp_path / "scorers").glob("v*")) == before == []
    assert "scorers/current" not in cfg.read_text()


def test_retrain_names_a_log_or_scorer_it_cannot_use(workdir, tmp_path):
    import sqlite3

    # A decisions table but no outcomes table: a log of another version (or not a log).
    other = tmp_path / "other"
    other.mkdir()
    cfg = write_test_config(other, "http://127.0.0.1:9")
    with sqlite3.connect(other / "decisions.db") as con:
        con.execute("create table decisions (request_id text, ts real)")
    res = CliRunner().invoke(app, ["retrain", "-c", str(cfg)])
    assert res.exit_code == 2, res.output
    assert "cannot read its outcomes" in res.output and "Traceback" not in res.output
    # `router data from-log` reads it the same way (one definition: read_outcomes).
    out = tmp_path / "rows.jsonl"
    args = ["data", "from-log", str(other / "decisions.db"), "--out", str(out), "-c", str(cfg)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "cannot read its outcomes" in res.output and not out.exists()
    # A scorer directory whose scorer.json is not a scorer's.
    cfg = _copy(workdir, tmp_path / "w")
    (cfg.parent / "broken").mkdir()
    (cfg.parent / "broken" / "scorer.json").write_text("{not json")
    cfg.write_text(cfg.read_text().replace("scorer: default", "scorer: broken"))
    res = CliRunner().invoke(app, ["retrain", "-c", str(cfg)])
    assert res.exit_code == 2, res.output
    assert "not a scorer directory" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["retrain", "-c", str(cfg), "--test-share", "1.5"])
    assert res.exit_code == 2 and "--test-share" in res.output


def test_a_reload_that_fails_after_a_rollback_is_one_clear_error(tmp_path):
    import socket

    from router.learning.retrain import MANIFEST, point_current

    cfg = write_test_config(tmp_path, "http://127.0.0.1:9")
    root = tmp_path / "scorers"
    root.mkdir()
    for v in ("v0001", "v0002"):
        shutil.copytree(default_scorer_path(), root / v)
    versions = [
        {"version": "v0001", "status": "initial"},
        {"version": "v0002", "status": "promoted", "previous": "v0001"},
    ]
    (root / MANIFEST).write_text(json.dumps({"current": "v0002", "versions": versions}))
    point_current(root, "v0002")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = CliRunner().invoke(
        app, ["retrain", "-c", str(cfg), "--rollback", "--reload", f"http://127.0.0.1:{port}"]
    )
    assert res.exit_code == 2, res.output
    assert "reload failed" in res.output and "/admin/reload" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert (root / "current").resolve() == (root / "v0001").resolve()  # the rollback stands


def test_the_gate_never_judges_on_prompts_the_serving_scorer_trained_on(
    tmp_path, router, monkeypatch
):
    """The newest logged prompts include some the serving scorer (the shipped one) was trained
    on: they are moved to the training side, never judged on, and the report counts them."""
    import router.learning.retrain as rt

    serving = Scorer.load(default_scorer_path())
    rows = [
        ex
        for ex in read_jsonl(ROOT / "data" / "routing" / "routellm.jsonl")
        if ex.source in OTHERS and isinstance(ex.prompt, str)
    ]
    seen_mask = serving.trained_on(rows)
    trained = [ex for ex, s in zip(rows, seen_mask, strict=True) if s]
    fresh = [ex for ex, s in zip(rows, seen_mask, strict=True) if not s]
    rng = random.Random(5)
    rng.shuffle(trained)
    rng.shuffle(fresh)
    # 60 requests, oldest first: 30 fresh prompts, then the newest 30 (20 fresh, 10 trained on).
    newest = fresh[30:50] + trained[:10]
    rng.shuffle(newest)
    traffic = fresh[:30] + newest
    cfg = write_test_config(tmp_path, "http://127.0.0.1:9")
    log = _open_log(tmp_path, router, store_text=True)
    for t, ex in enumerate(traffic):
        rid = f"req_{t:04d}"
        log.record(_chat_row(rid, t, ex.prompt))
        log.record_outcome(rid, float(t % 3 != 0), "shadow")
        log.record_outcome(rid, 1.0, "shadow", model="large", detail={"judge": "test"})
    log.close()
    old = tmp_path / "old.jsonl"
    write_jsonl(trained[10:110], old)
    judged: list[list[str]] = []
    said: list[str] = []

    def spy(scorer, X, examples, signal="blend"):
        judged.append([ex.text() for ex in examples])
        return judge_scorer(scorer, X, examples, signal)

    judge_scorer = rt.judge_scorer
    monkeypatch.setattr(rt, "judge_scorer", spy)
    report = retrain(cfg, [old], test_share=0.5, new_weight=1, say=said.append)
    memorised = {ex.prompt for ex in trained[:10]}
    assert len(judged) == 2 and judged[0] == judged[1]
    assert not memorised & set(judged[0])
    assert set(judged[0]) == {ex.prompt for ex in fresh[30:50]}
    assert report.n_test_set_aside == 10 and report.n_new_test == 20
    assert report.n_new_train == 40  # the 10 set aside are trained on instead
    assert "10 of the newest rows not judged on" in report.to_markdown()
    saved = json.loads((tmp_path / "scorers" / report.version / "report.json").read_text())
    assert saved["n_test_set_aside"] == 10
    assert any("10 more set aside" in m for m in said)


def test_set_aside_also_checks_the_old_training_data():
    """A serving scorer that recorded no training prompts: the old data still names them; with
    every held-out prompt set aside, the gate refuses for too few outcomes."""
    from router.learning.retrain import Scores, gate, set_aside_trained

    class NoHashes:
        def trained_on(self, examples):
            return None

    rows = [
        Example(prompt=f"question {i}", scores={"m": 1.0}, extra={"ts": float(i)}) for i in range(6)
    ]
    old = [
        Example(prompt="Question 4 ", scores={"m": 0.0}),
        Example(prompt="question 5", scores={}),
    ]
    train, test, n = set_aside_trained(rows[:3], rows[3:], NoHashes(), old)
    assert n == 2 and [ex.prompt for ex in test] == ["question 3"]
    assert [ex.extra["ts"] for ex in train] == [0.0, 1.0, 2.0, 4.0, 5.0]
    train, test, n = set_aside_trained(rows[:3], rows[4:], NoHashes(), old)
    assert test == [] and n == 2
    assert (
        "too few held-out outcomes"
        in gate(Scores(None, None, 0, 0), Scores(None, None, 0, 0)).reason
    )
