import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
        line = text.splitlines().index("default_policy: balancd") + 1
        said = f"config.yaml: line {line}: default_policy: no policy 'balancd'"
        assert said in " ".join(r.stderr.split()), r.stderr


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


# ---- bad input to every command: one red line, exit 2, before the work it would waste ----------


def cli(*args: str):
    """`router ARGS` in-process (typer's CliRunner); the result, its output on one line."""
    from typer.testing import CliRunner

    from router.cli import app
    from router.cli.main import err

    width, err.width = err.width, 400  # the error on one line, however long its paths
    try:
        res = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        err.width = width
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    res.said = " ".join(res.output.split())
    return res


@pytest.fixture
def work(tmp_path, test_config):
    """Paths a user mistypes: a dataset, a folder, a folder that does not exist, a file."""
    from types import SimpleNamespace

    data = tmp_path / "d.jsonl"
    rows = [
        {"id": f"p{i}", "prompt": f"Say hi {i} (limits)", "source": "chat/x", "metric":
         "exact_match", "ground_truth": "hi", "scores": {"a": i % 2, "b": 1}, "answers": {"a": "x"}}
        for i in range(6)
    ]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a-file").write_text("keep me")
    (tmp_path / "folder").mkdir()
    return SimpleNamespace(
        tmp=tmp_path,
        data=data,
        folder=tmp_path / "folder",
        missing=tmp_path / "missing" / "x",
        afile=tmp_path / "a-file",
        cfg=("--config", test_config),
    )


# id → (the command's arguments, what its error says), each from the `work` paths.
OUTPUT_CASES = {
    "import-out-a-directory": (
        lambda w: ("data", "import", "routellm", ROOT / "tests/fixtures/routellm", "--out", w.folder),
        lambda w: f"--out {w.folder}: a directory",
    ),
    "stats-html-a-directory": (
        lambda w: ("stats", "--db", w.tmp / "nope.db", "--html", w.folder),
        lambda w: f"--html {w.folder}: a directory",
    ),
    "stats-html-in-no-directory": (
        lambda w: ("stats", "--db", w.tmp / "nope.db", "--html", w.missing),
        lambda w: f"--html {w.missing}: the directory {w.missing.parent} does not exist",
    ),
    "eval-json-a-directory": (
        lambda w: ("eval", w.data, "--json", w.folder, *w.cfg),
        lambda w: f"--json {w.folder}: a directory",
    ),
    "eval-plot-in-no-directory": (
        lambda w: ("eval", w.data, "--plot", w.missing, *w.cfg),
        lambda w: f"--plot {w.missing}: the directory",
    ),
    "regrade-out-a-directory": (
        lambda w: ("regrade", w.data, "--out", w.folder),
        lambda w: f"--out {w.folder}: a directory",
    ),
    "regrade-data-a-directory": (
        lambda w: ("regrade", w.folder),
        lambda w: f"{w.folder}: a directory; give the profile file",
    ),
    "train-out-under-a-file": (
        lambda w: ("train", w.data, "--out", w.afile / "scorer", *w.cfg),
        lambda w: f"--out {w.afile / 'scorer'}: {w.afile} is a file, not a directory",
    ),
    "calibrate-out-not-yaml": (
        lambda w: ("calibrate", "--policy", "balanced", "--data", w.data, "--target",
                   "quality=0.9", "--out", w.tmp / "tuned.txt", *w.cfg),
        lambda w: f"--out {w.tmp / 'tuned.txt'}: a policy file's name ends in .yaml",
    ),
    "calibrate-cascade-without-one": (
        lambda w: ("calibrate", "--policy", "balanced", "--data", w.missing, "--target",
                   "quality=0.9", "--cascade", *w.cfg),
        lambda w: "policy 'balanced' has no cascade: section to calibrate",
    ),  # said before the data is read (here it is missing), let alone embedded
    # Options that were ignored in silence, or read as Python slices (--limit -1 profiled
    # every row but the last): usage errors.
    "stats-json-and-html": (
        lambda w: ("stats", "--db", w.tmp / "x.db", "--json", "--html", w.tmp / "r.html"),
        lambda w: "use either --html or --json, not both",
    ),
    "eval-band-without-cascade": (
        lambda w: ("eval", w.data, "--band", "0.3", *w.cfg),
        lambda w: "--band and --verifier are the cascade's: use them with --cascade",
    ),
    "eval-band-negative": (
        lambda w: ("eval", w.data, "--cascade", "--band", "-1", *w.cfg),
        lambda w: "Invalid value for '--band'",
    ),
    **{
        f"profile-{opt[2:]}-{value}": (
            lambda w, opt=opt, value=value: (
                "profile", w.data, "--model", "small-general", "--out", w.tmp / "p.jsonl",
                opt, value, *w.cfg,
            ),
            lambda w, opt=opt: f"Invalid value for '{opt}'",
        )
        for opt, value in (
            ("--limit", "-1"), ("--per-source", "-2"), ("--concurrency", "0"),
            ("--max-tokens", "0"), ("--retries", "-1"),
        )
    },
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_bad_paths_and_options_are_refused_before_any_work(work, upstream, case):
    """A directory, a folder that does not exist or is a file, an option out of range or
    beside one it conflicts with: named before the data is embedded, the log read or a model
    called, where they were tracebacks, errors after the work, or ignored."""
    args, says = OUTPUT_CASES[case]
    res = cli(*args(work))
    assert res.exit_code == 2 and says(work) in res.said, res.output
    assert "embedding" not in res.output and "wrote" not in res.output, res.output
    assert list(work.folder.iterdir()) == [] and not work.missing.parent.exists()
    assert not (work.tmp / "folder.tmp").exists() and not (work.tmp / "tuned.txt").exists()
    assert not (work.tmp / "p.jsonl").exists()
    assert not any("(limits)" in str(r) for r in upstream.requests)


@pytest.mark.parametrize("command", ["stats", "train", "add-model", "from-log"])
def test_a_folder_that_may_not_be_written_is_refused_before_any_work(work, monkeypatch, command):
    """As root every folder may be written: os.access answers as it would a plain user."""
    import router.core.outputs as outputs

    real, folder = outputs.os.access, work.folder
    monkeypatch.setattr(outputs.os, "access", lambda p, m: Path(p) != folder and real(p, m))
    args = {
        "stats": ("stats", "--db", work.tmp / "nope.db", "--html", folder / "r.html"),
        "train": ("train", work.data, "--out", folder / "scorer", *work.cfg),
        "add-model": ("add-model", work.data, "--model", "a", "--out", folder / "s", *work.cfg),
        "from-log": ("data", "from-log", work.tmp / "no.db", "--out", folder / "x", *work.cfg),
    }[command]
    res = cli(*args)
    assert res.exit_code == 2 and f"{folder} is not writable" in res.said, res.output
    assert "embedding" not in res.output


def test_train_verifier_refuses_a_scorers_directory_before_measuring(tmp_path):
    """`--out` at a scorer's directory: with --force, the verifier's weights.npz replaced the
    scorer's (train --out at a verifier's was refused; the other way round was not)."""
    rows = []
    with open(ROOT / "data" / "routing" / "smollm2.jsonl", encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n % 18 == 0:
                r = json.loads(line)
                r.pop("logprobs", None)
                rows.append(r)
    data = tmp_path / "answered.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:125]), encoding="utf-8")
    scorer = tmp_path / "scorer"
    scorer.mkdir()
    (scorer / "scorer.json").write_text("{}")
    (scorer / "weights.npz").write_bytes(b"the scorer's")
    args = ("train-verifier", data, "--models", "smollm2-135m", "--cv", "2", "--force")
    res = cli(*args, "--out", scorer)
    assert res.exit_code == 2, res.output
    assert f"--out {scorer}: holds another artifact's weights.npz, not a verifier's" in res.said
    assert (scorer / "weights.npz").read_bytes() == b"the scorer's"
    assert not (scorer / "verifier.json").exists() and "measuring" not in res.output
    # A regularisation strength sklearn refuses: said before the embedding, not its traceback.
    for cmd in (args, ("train", data)):
        for c in ("0", "-1", "nan"):
            res = cli(*cmd, "--out", tmp_path / "new", "--C", c)
            assert res.exit_code == 2 and f"--C {c}: a positive number" in res.said, res.output


@pytest.mark.parametrize(
    "fmt, source, file, text, says",
    [
        ("routellm", "routellm", "mt_bench/judgements.jsonl", '{"question_id": 81, "score": \n',
         "mt_bench/judgements.jsonl:1: invalid JSON"),
        ("routellm", "routellm", "gsm8k/test.jsonl", '{"answer": "#### 4"}\n',
         "gsm8k/test.jsonl:1: missing field 'question'"),
        ("routellm", "routellm", "mmlu/responses/mmlu_anatomy.csv", b"prompt,x\n\xe9\n",
         "mmlu/responses/mmlu_anatomy.csv:2: not UTF-8"),
        ("dcrouter", "dcrouter", "train.json", '[{"question": "x", "scores": \n',
         "train.json:2: invalid JSON"),
        ("dcrouter", "dcrouter", "train.json", '[{"question": "x"}]',
         "train.json: row 0: missing field 'scores'"),
        ("dcrouter", "dcrouter", "train.json", '[{"question": "x", "scores": {"small-7b": "hi"}}]',
         "train.json: row 0: scores.small-7b: expected a number in [0, 1], got 'hi'"),
        ("dcrouter", "dcrouter", "default_llm.json", b'{"a": \xff}',
         "default_llm.json:1: not UTF-8"),
        ("dcrouter", "dcrouter", "default_query_train.jsonl", '{"query": "x"\n',
         "default_query_train.jsonl:1: invalid JSON"),
    ],
)  # fmt: skip
def test_a_broken_public_dataset_is_named_by_file_and_line(tmp_path, fmt, source, file, text, says):
    """A download cut short, a field missing or of the wrong type, bytes that are not UTF-8:
    one line naming the file and where in it, where each was a traceback."""
    root = tmp_path / source
    shutil.copytree(ROOT / "tests" / "fixtures" / source, root)
    path = root / file
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    res = cli("data", "import", fmt, root, "--out", tmp_path / "out.jsonl")
    assert res.exit_code == 2 and f"{root}/{says}" in res.said, res.output
    assert not (tmp_path / "out.jsonl").exists()


def test_stats_on_a_file_that_is_not_a_decision_log(tmp_path):
    """A JSONL given as --db: an UnboundLocalError's traceback, now one line naming it."""
    not_a_log = tmp_path / "rows.jsonl"
    not_a_log.write_text('{"prompt": "hi"}\n' * 200)
    res = cli("stats", "--db", not_a_log)
    assert res.exit_code == 2 and f"{not_a_log}: file is not a database" in res.said, res.output


def test_a_misspelt_metric_or_model_name_is_refused_before_the_work(
    tmp_path, test_config, upstream
):
    """profile: a row's unknown metric had every answer paid for, then left ungraded; regrade:
    an unknown --model regraded nothing and said nothing."""
    rows = [
        {"id": f"m{i}", "prompt": f"Say bye {i} (metric)", "source": "chat/x",
         "metric": "exactmatch", "ground_truth": "bye"}
        for i in range(3)
    ]  # fmt: skip
    data = tmp_path / "typo.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "profile.jsonl"
    res = cli("profile", data, "--model", "small-general", "--out", out, "--config", test_config)
    assert res.exit_code == 2, res.output
    assert f"{data}: row 'm0': metric: unknown metric 'exactmatch' (and 2 more rows)" in res.said
    assert not any("(metric)" in str(r) for r in upstream.requests)
    profiled = tmp_path / "profiled.jsonl"
    row = {**rows[0], "metric": "exact_match", "scores": {"small": 0.0}, "answers": {"small": "x"}}
    profiled.write_text(json.dumps(row) + "\n")
    res = cli("regrade", profiled, "--model", "smal")
    assert res.exit_code == 2, res.output
    assert f"--model 'smal': {profiled} has no answer of it; answers of: ['small']" in res.said


def test_retrain_with_a_mistyped_config_says_so_and_makes_nothing(tmp_path, monkeypatch):
    """It made scorers/ beside the missing file, and --rollback said "no earlier version"."""
    monkeypatch.chdir(tmp_path)
    for extra in ((), ("--rollback",)):
        res = cli("retrain", "--config", "conf/config.yml", *extra)
        assert res.exit_code == 2 and "conf/config.yml: file not found" in res.said, res.output
    assert list(tmp_path.iterdir()) == []
    # An option out of range is said before the decision log is looked for.
    cfg = write_test_config(tmp_path / "cfg", "http://127.0.0.1:9/v1")
    res = cli("retrain", "--config", cfg, "--test-share", "1.5")
    assert res.exit_code == 2 and "--test-share 1.5: a share in (0, 1)" in res.said, res.output


def test_ctrl_c_is_one_line_and_exit_130_not_a_traceback(monkeypatch, test_config):
    """Ctrl-C in any command (profile says how to resume, tests/test_profile_resume.py)."""
    import router.cli.routing as routing

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(routing, "load_config", interrupted)
    res = cli("models", "--config", test_config)
    assert res.exit_code == 130 and res.said == "stopped (Ctrl-C)", res.output


def test_the_readable_route_says_which_estimates_are_a_stand_ins(tmp_path):
    """`router route` (the table) printed a stand-in's estimate as the model's own: only
    `--json` said `unprofiled`. Now each estimate says what it rests on, and a model with no
    estimate at all is listed as such."""
    cfg = write_test_config(tmp_path, "http://127.0.0.1:9/v1")
    text = "What is the capital of France?"
    res = cli("route", text, "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "p(success) small-general none: unprofiled, and no stand-in" in res.said, res.said
    assert "p(success) large " in res.said and " rows, " in res.said.split("p(success) large")[1]
    cfg.write_text(cfg.read_text() + "stand_ins: {small: smollm2-135m}\n")
    res = cli("route", text, "--config", cfg)
    assert res.exit_code == 0, res.output
    said = res.said.split("p(success) small-general")[1]
    assert said.split()[1:4] == ["stand-in", "smollm2-135m's", "estimate"], res.said
    assert "(unprofiled: no rows of its own)" in said, res.said


# Of the 10 rows measured, not of the 40 read (the shipped scorer held a fifth of them out).
OF_THE_10_ROWS = r"warning: \d+ of 10 rows \(\d+\.\d%\) are prompts the scorer was trained on"


def test_eval_and_calibrate_warn_about_the_rows_they_measure_and_a_new_models_estimate(tmp_path):
    """A new model's profile beside the data it was profiled on: `eval` and `calibrate` keep
    only the rows every model scores, yet warned about (and calibrate embedded) every row read;
    neither said that the scorer had no estimate of the new model, or only a stand-in's."""
    import yaml

    with open(ROOT / "data" / "routing" / "dcrouter.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][::100][:40]
    src = tmp_path / "dc.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prof = [
        dict(r, scores={"newbie": float(i % 2)}, costs={"newbie": 1e-5}, cheap_models=[])
        for i, r in enumerate(rows)
    ]
    new = tmp_path / "newbie.jsonl"
    new.write_text("".join(json.dumps(r) + "\n" for r in prof[:10]))
    cfg = write_test_config(tmp_path / "cfg", "http://127.0.0.1:9/v1")
    conf = yaml.safe_load(cfg.read_text())
    conf["models"].append(dict(conf["models"][0], name="newbie"))
    conf["stand_ins"] = {"small": "smollm2-135m"}
    cfg.write_text(yaml.safe_dump(conf))
    (cfg.parent / "policies" / "newpol.yaml").write_text(
        "name: newpol\ndefault: [newbie]\nlarge: [large]\n"
        "escalation: {min_domain_confidence: 0.0, max_gain: 0.3}\n"
    )

    res = cli("eval", src, new, "--config", cfg)
    assert res.exit_code == 0, res.output
    assert re.search(OF_THE_10_ROWS, res.said), res.said
    never = "note: the scorer has no success estimate of newbie, so the router never picks it"
    assert never in res.said, res.said

    out = tmp_path / "tuned.yaml"
    args = ("calibrate", "--policy", "newpol", "--data", src, "--data", new)
    res = cli(*args, "--target", "quality=0.9", "--out", out, "--config", cfg)
    assert res.exit_code == 0, res.output
    assert re.search(OF_THE_10_ROWS, res.said), res.said
    assert "embedding (minilm-l2-q8/128) " in res.said and " 10/10 " in res.said, res.said
    assert "note: 30 of 40 rows left out" in res.said, res.said
    stand_in = "note: newpol's unprofiled models are estimated by a stand-in (newbie by smollm2"
    assert stand_in in res.said, res.said
    assert "expected on 10 prompts" in res.said and out.is_file()
