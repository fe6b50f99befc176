import json
import os
import shutil
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, write_test_config

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def run(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_route_json_on_shipped_config():
    r = run("route", "Prove that the square root of 2 is irrational", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["domain"] == "math" and d["policy"] == "balanced"


def test_route_readable_with_policy():
    r = run("route", "Write a haiku about autumn", "--policy", "cost-saver")
    assert r.returncode == 0, r.stderr
    assert "cost-saver" in r.stdout and "reason" in r.stdout and "escalation gain" in r.stdout


def test_models_and_policies_list_the_catalogue():
    r = run("models")
    assert r.returncode == 0 and "gpt-4o-mini" in r.stdout
    r = run("policies")
    assert r.returncode == 0 and "quality-first" in r.stdout and "balanced (default)" in r.stdout
    # The shipped policies escalate on the gain threshold that `make policies` wrote.
    import yaml

    shipped = yaml.safe_load((ROOT / "policies" / "balanced.yaml").read_text())
    assert f"gain>{shipped['escalation']['max_gain']}" in r.stdout


def test_policies_summarise_a_cost_weight_policy_with_its_walk(tmp_path):
    # A cost_weight policy is not a plain argmax: a cheaper model takes a request only when
    # ahead beyond tie_se standard errors (docs/policies.md); the summary says so.
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    (tmp_path / "policies" / "weighed.yaml").write_text(
        "name: weighed\ndefault: [smollm2-135m]\nlarge: [gpt-4o]\n"
        "escalation: {cost_weight: 0.4, tie_se: 1.5}\n"
    )
    r = run("policies", "--config", str(tmp_path / "config.yaml"))
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.replace("│", " ").split())  # the table's cells, unwrapped
    assert "weighed smollm2-135m gpt-4o best p(success) − 0.4 × relative cost" in text, text
    assert "a cheaper model only > 1.5 s.e. ahead" in text, text


def test_help_rewraps_docstrings_to_the_terminal():
    # A docstring's line breaks are source layout, not the help's: at 200 columns the demo's
    # summary runs on one line rather than breaking where its source line did.
    r = run("--help")
    assert r.returncode == 0, r.stderr
    assert "each shipped config and show each decision, the share kept" in r.stdout


def test_errors_are_one_line_not_tracebacks(tmp_path):
    r = run("route", "hi", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr
    r = run("route", "hi", "--policy", "nope")
    assert r.returncode == 2 and "unknown policy" in r.stderr


def test_import_train_and_route_with_the_new_scorer(tmp_path):
    out = tmp_path / "rl.jsonl"
    r = run("data", "import", "routellm", str(ROOT / "tests/fixtures/routellm"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    # Enough rows to train: repeat the fixture with small variations.
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    more = []
    for i in range(8):
        for row in rows:
            row = dict(row)
            if "prompt" in row:
                row["prompt"] = f"{row['prompt']} (variant {i})"
            more.append(row)
    out.write_text("\n".join(json.dumps(x) for x in more) + "\n")
    cfg = write_test_config(tmp_path / "cfg", "http://127.0.0.1:9/v1", scorer="../scorer")
    r = run("train", str(out), "--out", str(tmp_path / "scorer"), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "scorer" / "weights.npz").is_file()
    r = run("route", "How many apples?", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"] in {"small-general", "small-math", "large"}


def test_add_model_joins_a_profiled_model_to_the_shipped_scorer(tmp_path):
    """`router add-model`, end to end: a model profiled on 60 prompts joins the shipped scorer
    (nothing else retrains), the command says how, and the written scorer knows the model."""
    rows = []
    with open(ROOT / "data" / "routing" / "smollm2.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            r["scores"] = {"my-model": r["scores"]["smollm2-135m"]}
            r.pop("answers", None)
            r.pop("costs", None)
            r["cheap_models"] = []
            rows.append(r)
    data = tmp_path / "my-model.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[::37][:60]), encoding="utf-8")
    out = tmp_path / "my-scorer"
    r = run("add-model", str(data), "--model", "my-model", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "my-model joined from 60 profiled rows" in r.stdout
    meta = json.loads((out / "scorer.json").read_text(encoding="utf-8"))
    assert meta["added_models"] == ["my-model"] and "my-model" in meta["join_C"]

    from router.core.scorer import Scorer

    scorer = Scorer.load(out)
    assert scorer.models_[-1] == "my-model"
    batch = scorer.predict(np.zeros((1, scorer.emb_W_.shape[1])) + 0.05, ["What is 2 + 2?"])
    assert 0 < batch.success[0, -1] < 1 and batch.rows[-1] == 60

    r = run("add-model", str(data), "--model", "nobody", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "no row" in r.stderr and "'nobody'" in r.stderr
    assert "Traceback" not in r.stderr


def test_train_and_add_model_name_what_they_cannot_train_before_a_traceback(tmp_path):
    """`--out` naming a file, a verifier's directory, and data with no model outside the cheap
    tier (a scorer whose escalation gain would be NaN) are errors that say so."""
    data = tmp_path / "one.jsonl"
    rows = [
        {"prompt": f"What is {i} plus {i + 3}?", "scores": {"big": i % 2}, "costs": {"big": 0.01}}
        for i in range(12)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a-file").write_text("keep me")
    verifier = tmp_path / "verifier"
    verifier.mkdir()
    (verifier / "weights.npz").write_bytes(b"a verifier's")
    for args in (
        ("train", str(data), "--out", str(tmp_path / "a-file")),
        ("add-model", str(data), "--model", "big", "--out", str(tmp_path / "a-file")),
    ):
        r = run(*args)
        assert r.returncode == 2 and "a file; a scorer is written as a directory" in r.stderr
    r = run("train", str(data), "--out", str(verifier))
    assert r.returncode == 2 and "another artifact's weights.npz" in r.stderr, r.stderr
    assert (tmp_path / "a-file").read_text() == "keep me"
    assert (verifier / "weights.npz").read_bytes() == b"a verifier's"
    r = run("train", str(data), "--out", str(tmp_path / "scorer"))
    assert r.returncode == 2 and "escalation gain cannot be learned" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "scorer").exists()


def test_an_error_naming_a_field_in_brackets_keeps_them(tmp_path):
    # Rich would read "[ab]" in a message as markup and drop it: the field path must survive.
    r = run("route", "hi", "--policy", "[ab]")
    assert r.returncode == 2 and "unknown policy '[ab]'" in r.stderr, r.stderr


def test_a_default_policy_without_a_file_names_the_config_and_field(tmp_path):
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    text = (
        (ROOT / "config.yaml")
        .read_text()
        .replace("default_policy: balanced", "default_policy: balancd")
    )
    (tmp_path / "config.yaml").write_text(text)
    for cmd in (("policies",), ("route", "hi")):
        r = run(*cmd, "--config", str(tmp_path / "config.yaml"))
        assert r.returncode == 2, r.stdout
        assert "config.yaml: default_policy: no policy 'balancd'" in r.stderr, r.stderr


def test_train_on_a_users_rows_with_missing_labels_and_some_domains(tmp_path):
    """A user's own rows, no tiers: some miss the cheap model's score (they train the other
    heads, not a KeyError), and a domain on only some rows, all in one domain, is warned of:
    the head would put every prompt in that domain."""
    rows = []
    for i in range(40):
        row = {
            "id": f"r{i}",
            "prompt": f"Question {i}: how many {['apples', 'poems', 'laws', 'genes'][i % 4]}?",
            "scores": {"acme-mini": i % 2, "acme-pro": (i % 3 > 0) * 1.0, "acme-max": 1.0},
            "costs": {"acme-mini": 0.0001, "acme-pro": 0.001, "acme-max": 0.01},
        }
        if i % 5 == 0:
            del row["scores"]["acme-mini"]  # a missing label
        if i < 10:
            row["domain"] = "math"
        rows.append(row)
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run("train", str(data), "--out", str(tmp_path / "scorer"))
    assert r.returncode == 0, r.stderr
    assert "cheap tier acme-mini" in r.stdout and "1 of 11 domains learned (math)" in r.stdout
    assert "only 10 of 40 rows have a domain" in r.stderr, r.stderr
    # Every row labelled, or none: no warning.
    for row in rows:
        row.pop("domain", None)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run("train", str(data), "--out", str(tmp_path / "scorer"))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
