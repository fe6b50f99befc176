"""A model joining the scorer from its profile (`Scorer.add_model`, `router add-model`): its
estimates compare with those of the models that learned the same prompts, by the project's
prompt identity (`data.group_key`), not by the rows of the neighbour memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from router.core.data import Example
from router.core.scorer import Scorer
from tests.conftest import ROOT
from tests.test_scorer import synthetic, two_datasets


def joining(rows: list[Example], name: str) -> list[Example]:
    """The rows as a profile of `name` gives them: the same prompts, its own scores."""
    return [
        Example(prompt=r.prompt, source=r.source, scores={name: r.scores["small"]}, id=r.id)
        for r in rows
    ]


@pytest.fixture(scope="module")
def fitted():
    return two_datasets()


def comparable_with(sc: Scorer, model: str) -> set[str]:
    j = sc.models_.index(model)
    return {m for i, m in enumerate(sc.models_) if i != j and sc.success_comparable_[j, i]}


def test_a_model_profiled_on_the_prompts_the_scorer_learned_compares_with_their_models(
    fitted, tmp_path
):
    """The issue: a model profiled on the very prompts `small` and `big` learned was judged
    "learned on different prompts" from every model, because its rows joined the neighbour
    memory as rows of their own, which no other head labels. Its prompts are the same ones."""
    import copy

    scorer, X1, one = fitted
    sc = copy.deepcopy(scorer)
    memory = len(sc.knn_X_)
    sc.add_model("newbie", X1[:60], joining(one[:60], "newbie"))
    assert comparable_with(sc, "newbie") == {"small", "big"}  # not tiny / huge: other prompts
    # Its labels sit on the rows of its prompts: the memory holds each prompt once.
    assert len(sc.knn_X_) == memory
    batch = sc.predict(X1[:5], [r.text() for r in one[:5]])
    assert batch.rows[sc.models_.index("newbie")] == 60
    again = Scorer.load(sc.save(tmp_path / "s"), encoder_identity="fake/16")
    assert np.array_equal(again.success_comparable_, sc.success_comparable_)


def test_a_model_profiled_on_other_prompts_is_still_told_apart(fitted):
    import copy

    scorer, X1, one = fitted
    X3, three = synthetic(60, seed=5, start=1000)  # prompts no model of the scorer learned
    sc = copy.deepcopy(scorer)
    memory = len(sc.knn_X_)
    sc.add_model("stranger", X3, joining(three, "stranger"))
    assert comparable_with(sc, "stranger") == set() and len(sc.knn_X_) == memory + 60
    # 20 learned prompts of 60 are too few (under half): apart still.
    sc = copy.deepcopy(scorer)
    rows = joining(one[:20], "mixed") + joining(three[:40], "mixed")
    sc.add_model("mixed", np.vstack([X1[:20], X3[:40]]), rows)
    assert comparable_with(sc, "mixed") == set() and len(sc.knn_X_) == memory + 40
    # A prompt the scorer learned, but embedded otherwise (another encoder's rounding, or a
    # near-duplicate's text): a row of its own, never another prompt's row.
    sc = copy.deepcopy(scorer)
    moved = X1[:60] + np.where(np.arange(X1.shape[1]) == 15, 0.2, 0.0)
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    sc.add_model("moved", moved, joining(one[:60], "moved"))
    assert len(sc.knn_X_) == memory + 60


# ---- router add-model, end to end ------------------------------------------------------------

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def profile_file(path: Path, rows: list[dict], model: str, like: str, suffix: str = "") -> Path:
    """A `router profile` output for `model` on `rows` (scored as `like` was), the prompts
    changed by `suffix` if given."""
    out = []
    for r in rows:
        r = dict(r, scores={model: r["scores"][like]}, cheap_models=[])
        if suffix:
            r["prompt"] += suffix
            r["id"] += suffix
        out.append(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    return path


def test_add_model_says_the_overlap_and_warns_only_when_the_prompts_are_others(tmp_path):
    """`router add-model` on prompts the shipped scorer learned: no warning at the join, nor
    when a cost_weight policy weighs it against a model of the same data; on other prompts a
    warning that says how few of them the scorer learned."""
    with open(ROOT / "data" / "routing" / "dcrouter.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][::90][:60]
    same = profile_file(tmp_path / "same.jsonl", rows, "my-model", "qwen2.5-7b-instruct")
    r = run("add-model", str(same), "--model", "my-model", "--out", str(tmp_path / "sc"))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    # The shipped scorer held out a fifth of the prompts (held_out_share 0.2).
    assert " of 60 prompts are ones the scorer learned" in said, said
    learned = int(said.split(" of 60 prompts")[0].split()[-1])
    assert 30 <= learned < 60
    assert "compare with those of" in said and "llama-3.3-nemotron-super-49b-v1" in said
    assert "gpt-4-1106-preview" not in said.split("compare with")[1]  # RouteLLM's prompts
    assert "warning" not in r.stderr and "different prompts" not in r.stderr, r.stderr

    # Routing with it: a cost_weight policy weighing it against a dcrouter model is quiet.
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "weighed.yaml").write_text(
        "name: weighed\ndefault: [mine]\nlarge: [big]\nescalation: {cost_weight: 0.4}\n"
    )
    model = {
        "litellm_model": "openai/x",
        "api_base": "http://127.0.0.1:9/v1",
        "context_window": 8000,
    }
    cfg = {
        "scorer": str(tmp_path / "sc"),
        "default_policy": "weighed",
        "models": [
            {**model, "name": "mine", "profile": "my-model", "tier": "small",
             "input_price": 0.1, "output_price": 0.2},
            {**model, "name": "big", "profile": "llama-3.3-nemotron-super-49b-v1",
             "tier": "large", "input_price": 2, "output_price": 8},
        ],
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run("route", "What is 12 times 7?", "--json", "--config", str(tmp_path / "config.yaml"))
    assert r.returncode == 0, r.stderr
    assert "different prompts" not in r.stderr, r.stderr

    other = profile_file(tmp_path / "other.jsonl", rows, "new-model", "qwen2.5-7b-instruct",
                         " Answer in French, please.")  # fmt: skip
    r = run("add-model", str(other), "--model", "new-model", "--out", str(tmp_path / "sc2"))
    assert r.returncode == 0, r.stderr
    warned = " ".join(r.stderr.split())
    assert "warning: new-model learned on different prompts" in warned, warned
    assert "0 of 60 prompts are ones the scorer learned" in warned, warned


def test_a_learned_prompt_takes_its_own_memory_row_the_most_labelled_of_a_tie():
    from router.core.heads import memory_rows

    v, w = np.eye(4)[0], np.eye(4)[1]
    memory = np.array([v, v, w, 0.995 * w + 0.0999 * np.eye(4)[2]])
    nan = np.nan
    labels = np.array([[1, nan, nan], [1, 0, 1], [0, 0, nan], [1, 1, 1]])
    # v is in two datasets (rows 0 and 1): the row labelled for more heads, then the other;
    # w's nearest row, not the near one labelled for more; a prompt not learned: none.
    X = np.array([v, v, v, w, w])
    at = memory_rows(memory, labels, X, np.array([True, True, True, True, False]))
    assert at.tolist() == [1, 0, -1, 2, -1]


def test_a_model_the_scorer_has_is_refused_before_its_rows_are_embedded(tmp_path, monkeypatch):
    """Embedding a profile takes minutes: a name the scorer already has is said first."""
    from typer.testing import CliRunner

    from router.cli import app as cli
    from router.evaluation import train

    def embedded(*_a, **_k):
        raise AssertionError("the rows were embedded before the name was checked")

    monkeypatch.setattr(train, "embed_examples", embedded)
    with open(ROOT / "data" / "routing" / "dcrouter.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:5]
    data = profile_file(tmp_path / "p.jsonl", rows, "qwen2.5-7b-instruct", "qwen2.5-7b-instruct")
    args = ["add-model", str(data), "--model", "qwen2.5-7b-instruct", "--out", str(tmp_path / "sc")]
    r = CliRunner().invoke(cli, [*args, "--config", str(ROOT / "config.yaml")])
    assert r.exit_code != 0
    said = " ".join(r.output.split())
    assert "'qwen2.5-7b-instruct' already has a success head" in said, said
    assert "--scorer" in said and not (tmp_path / "sc").exists()


def test_add_model_says_what_stands_between_the_joined_model_and_routing(tmp_path):
    """After `router add-model` the new model's estimate did not appear, silently, when the
    config still named another scorer, had no such model, or a `profile:` naming another
    model's estimate; joining again said only "extend the scorer it joined (--scorer)", which
    `--scorer default` could not name; a typo and a profile without rows said too little."""
    from tests.conftest import write_test_config
    from tests.test_cli import cli

    with open(ROOT / "data" / "routing" / "dcrouter.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][::150][:30]
    data = profile_file(tmp_path / "newbie.jsonl", rows, "newbie", "qwen2.5-7b-instruct")
    cfg = write_test_config(tmp_path / "cfg", "http://127.0.0.1:9/v1")  # scorer: default
    conf = yaml.safe_load(cfg.read_text())
    conf["models"].append(dict(conf["models"][0], name="newbie", profile="qwen2.5-7b-instruct"))
    cfg.write_text(yaml.safe_dump(conf))
    # Its profile's journal: two calls failed for good, one failed and then succeeded.
    journal = [{"key": k, "model": "newbie", "error": "call failed: 503"} for k in "abc"]
    journal.append({"key": "c", "model": "newbie", "score": 1.0, "answer": "B"})
    (tmp_path / "newbie.jsonl.journal").write_text("".join(json.dumps(j) + "\n" for j in journal))
    sc = tmp_path / "sc"
    res = cli("add-model", data, "--model", "newbie", "--out", sc, "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "newbie joined from 30 profiled rows" in res.said, res.said
    assert "note: 2 of newbie's calls failed in router profile and are not in its rows" in res.said
    still = f"still routes with `scorer: default`, not this one: set `scorer: {sc}` to route "
    assert still + "with newbie's estimate" in res.said, res.said
    named = "models[newbie].profile: 'qwen2.5-7b-instruct' routes it on that model's estimate, "
    assert named + "not its own: remove `profile:`" in res.said, res.said

    # The config routes with the new scorer, and has no model of that name.
    conf["models"].pop()
    conf["scorer"] = str(sc)
    cfg.write_text(yaml.safe_dump(conf))
    res = cli("add-model", data, "--model", "newbie", "--out", tmp_path / "sc2", "--config", cfg)
    assert res.exit_code == 2 and not (tmp_path / "sc2").exists()
    again = f"'newbie' already has a success head in {sc} (joined by router add-model): to join "
    assert again + "it again from new rows, extend the scorer it was added to" in res.said, res.said
    args = ("add-model", data, "--model", "newbie", "--out", tmp_path / "sc2", "--config", cfg)
    res = cli(*args, "--scorer", "default")  # as the config's `scorer: default` reads
    assert res.exit_code == 0, res.output
    assert "no model of" in res.said and "catalogue is 'newbie'" in res.said, res.said
    assert "still routes with" in res.said  # the config's scorer is sc, not sc2

    res = cli("add-model", data, "--model", "newbee", "--out", tmp_path / "sc3", "--config", cfg)
    assert res.exit_code == 2 and "'newbee' (did you mean 'newbie'?)" in res.said, res.said

    # A profile whose every call failed so far: its output has no rows, its journal says why.
    empty = tmp_path / "down.jsonl"
    empty.write_text("")
    failed = [{"key": k, "model": "down", "error": "call failed: 503"} for k in ("a", "b", "a")]
    (tmp_path / "down.jsonl.journal").write_text("".join(json.dumps(f) + "\n" for f in failed))
    res = cli("add-model", empty, "--model", "down", "--out", tmp_path / "sc4", "--config", cfg)
    assert res.exit_code == 2, res.output
    assert f"{empty}: no rows: router profile has no result in it yet" in res.said, res.said
    assert "holds 2 failures); run the same router profile command again" in res.said, res.said
