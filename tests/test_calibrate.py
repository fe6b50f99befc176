"""`make policies` in small: calibrate shipped-style policies on prompts the scorer did not see,
verify the written files with that scorer on other unseen prompts, and never touch the repo's
policies in CI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from router.core.config import load_config
from router.core.data import held_out, write_jsonl
from router.core.encoder import load_encoder
from router.core.scorer import Scorer
from router.evaluation.calibrate import (
    CalibrationError,
    calibrate_shipped,
    pool_rows,
    verification_half,
    verification_table,
)
from router.evaluation.train import embed_examples
from tests.conftest import ROOT
from tests.test_evaluate import make_rows

CHEAP, LARGE = "smollm2-135m", "gpt-4-1106-preview"


def rows_for_pool(n=360, seed=11):
    """Half the prompts are hard: the cheap model fails them, the large one never does."""
    rows = make_rows(n, seed=seed)
    for r in rows:
        r.scores = {CHEAP: r.scores["small"], LARGE: r.scores["big"]}
        r.costs = None
        r.cheap_models = [CHEAP]
    return rows


CATALOGUE = """
encoder: {name: minilm-int8, max_tokens: 128}
scorer: SCORER
policies_dir: POLICIES
default_policy: balanced
models:
  - {name: smollm2-135m, litellm_model: openai/smollm2, api_base: "http://127.0.0.1:9",
     input_price: 0, output_price: 0, context_window: 2048, capabilities: [streaming], tier: small}
  - {name: mini, litellm_model: openai/mini, api_base: "http://127.0.0.1:9", input_price: 0.15,
     output_price: 0.6, context_window: 128000, capabilities: [streaming], tier: small}
  - {name: gpt-4o, litellm_model: openai/gpt-4o, api_base: "http://127.0.0.1:9", input_price: 2.5,
     output_price: 10, context_window: 128000, capabilities: [streaming], tier: large,
     profile: gpt-4-1106-preview}
"""

POLICY = """name: {name}
description: a shipped-style policy
# A comment that calibration keeps.
default: [{default}]
large: [gpt-4o]
escalation: {{min_domain_confidence: 0.0, max_difficulty: 1.0, max_gain: 0.5}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project laid out like the shipped one: config.yaml + policies/ (SmolLM2 alone) and
    configs/pool.yaml + configs/policies/ (SmolLM2 and a model the data never scores)."""
    root = tmp_path_factory.mktemp("project")
    rows = rows_for_pool()
    write_jsonl(rows, root / "data.jsonl")
    enc = load_encoder("minilm-int8", 128, cache_size=0)
    train = [r for r in rows if not held_out(r, 0.5)]
    Scorer().fit(embed_examples(enc, train), train, enc.identity).save(root / "scorer")
    (root / "policies").mkdir()
    (root / "configs" / "policies").mkdir(parents=True)
    (root / "config.yaml").write_text(
        CATALOGUE.replace("SCORER", "scorer").replace("POLICIES", "policies")
    )
    (root / "configs" / "pool.yaml").write_text(
        CATALOGUE.replace("SCORER", "../scorer").replace("POLICIES", "policies")
    )
    for name in ("balanced", "cost-saver"):
        (root / "policies" / f"{name}.yaml").write_text(POLICY.format(name=name, default=CHEAP))
        (root / "configs" / "policies" / f"{name}.yaml").write_text(
            POLICY.format(name=name, default=f"mini, {CHEAP}")
        )
    return root, rows, train


TARGETS = {"balanced": "quality=0.9", "cost-saver": "large-share=0.3"}


def test_shipped_policies_are_calibrated_and_verified_on_unseen_prompts(project):
    root, rows, train = project
    results = calibrate_shipped(
        root, [root / "data.jsonl"], ("config.yaml", "configs/pool.yaml"), TARGETS
    )
    assert [(r.config, r.policy) for r in results] == [
        ("config.yaml", "balanced"),
        ("config.yaml", "cost-saver"),
        ("configs/pool.yaml", "balanced"),
        ("configs/pool.yaml", "cost-saver"),
    ]
    unseen = [r for r in rows if held_out(r, 0.5)]
    n_ver = sum(verification_half(r) for r in unseen)
    for r in results:
        # Calibration and verification use disjoint halves of the prompts the scorer never saw.
        assert r.calibration_rows == len(unseen) - n_ver and r.verified.rows == n_ver
        assert r.field == "max_gain" and r.threshold != 0.5
        text = r.written.read_text()
        assert "# A comment that calibration keeps." in text and f"max_gain: {r.threshold}" in text
    by = {(r.config, r.policy): r for r in results}
    # Half the prompts are hard and SmolLM2 fails them: 90% of all-large quality needs the large
    # model on most hard prompts, and cost-saver keeps to about 30% (measured on other prompts).
    bal = by["config.yaml", "balanced"].verified
    assert bal.quality_vs_all_large > 0.8 and 0.3 < bal.point.large_share < 0.8
    saver = by["config.yaml", "cost-saver"].verified
    assert saver.point.large_share < 0.45 and saver.point.quality < bal.point.quality
    # The pool's "mini" has no outcome in the data: it is stood in for, and the table says so.
    assert by["configs/pool.yaml", "balanced"].stood_in == ["mini"]
    assert by["config.yaml", "balanced"].stood_in == []
    table = verification_table(results)
    assert table[0][:3] == ["pool", "policy", "target"] and table[3][-1] == "mini"

    # --verify-only measures the files as written, without moving any threshold.
    again = calibrate_shipped(
        root, [root / "data.jsonl"], ("config.yaml",), TARGETS, recalibrate=False
    )
    assert [a.threshold for a in again] == [r.threshold for r in results[:2]]
    assert again[0].verified.point == results[0].verified.point and again[0].expected is None


def test_a_scorer_that_saw_everything_or_recorded_nothing_is_refused(project, tmp_path):
    root, rows, _ = project
    enc = load_encoder("minilm-int8", 128, cache_size=0)
    Scorer().fit(embed_examples(enc, rows), rows, enc.identity).save(tmp_path / "all")
    with pytest.raises(CalibrationError, match="need 10 each"):
        calibrate_shipped(
            root,
            [root / "data.jsonl"],
            ("config.yaml",),
            TARGETS,
            scorer=tmp_path / "all",
            out_dir=tmp_path / "out",
        )
    with np.load(tmp_path / "all" / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "train_hashes"}
    np.savez_compressed(tmp_path / "all" / "weights.npz", **arrays)
    with pytest.raises(CalibrationError, match="recorded no training prompts"):
        calibrate_shipped(
            root,
            [root / "data.jsonl"],
            ("config.yaml",),
            TARGETS,
            scorer=tmp_path / "all",
            out_dir=tmp_path / "out",
        )


def test_pool_rows_need_the_cheap_models_own_outcomes(project):
    from router import Router

    root, rows, _ = project
    router = Router.from_config(root / "configs" / "pool.yaml")
    mixed = rows[:4]
    mixed[1] = mixed[1].__class__(
        **{**mixed[1].__dict__, "scores": {"x": 1.0, LARGE: 1.0}, "cheap_models": ["x"]}
    )
    mask, stood_in = pool_rows(router.policy("balanced"), mixed)
    # Row 2 has no SmolLM2 outcome: SmolLM2 is scored elsewhere, so that row cannot measure it.
    assert mask.tolist() == [True, False, True, True] and stood_in == ["mini"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_make_policies_in_ci_leaves_the_shipped_policies_alone(project, tmp_path):
    """The script on the real shipped configs (tiny data, a scorer that saw half of it): in CI
    it writes elsewhere, and prints the verification table."""
    root, rows, train = project
    data = tmp_path / "d.jsonl"
    write_jsonl(rows, data)
    # The shipped configs' encoder: the scorer must read the vectors they make.
    spec = load_config(ROOT / "config.yaml").encoder
    enc = load_encoder(spec.name, spec.max_tokens, cache_size=0)
    Scorer().fit(embed_examples(enc, train), train, enc.identity).save(tmp_path / "scorer")
    before = {d: _digest(ROOT / d) for d in ("policies", "configs/policies")}
    results = tmp_path / "results"  # --record: the table for BENCHMARKS.md, not in bench/results
    env = {
        **os.environ,
        "CI": "1",
        "HF_HUB_OFFLINE": "1",
        "ROUTER_CACHE_DIR": str(tmp_path),
        "BENCH_RESULTS_DIR": str(results),
    }
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "calibrate_policies.py"),
            "--data",
            str(data),
            "--scorer",
            str(tmp_path / "scorer"),
            "--markdown",
            str(tmp_path / "t.md"),
            "--record",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CI: writing the policies to" in r.stdout
    assert "Verified with the shipped scorer" in r.stdout
    md = (tmp_path / "t.md").read_text()
    assert md.startswith("| pool | policy |") and "configs/pool.yaml" in md
    assert {d: _digest(ROOT / d) for d in ("policies", "configs/policies")} == before
    assert textwrap.dedent(md).count("\n") == 2 + 6  # header, rule, 3 policies x 2 pools
    recorded = json.loads((results / "policies.json").read_text())
    table = recorded["tables"][0]
    assert table["columns"][:2] == ["pool", "policy"] and len(table["rows"]) == 6
    assert recorded["command"].startswith("python scripts/calibrate_policies.py --data")
    page = tmp_path / "B.md"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_benchmarks.py")]
        + ["--results", str(results), "--out", str(page)],
        check=True,
        timeout=120,
    )
    shipped = page.read_text().split("### Shipped policies")[1].split("\n## ")[0]
    assert "Not measured yet" not in shipped and "| configs/pool.yaml | balanced |" in shipped


def test_rows_naming_no_tier_take_the_catalogues_small_models_else_the_cheaper_half():
    from router.core.config import ModelSpec
    from router.core.data import Example
    from router.evaluation.calibrate import with_catalogue_tier

    def spec(name, tier, profile=None):
        return ModelSpec(
            name=name, litellm_model=f"openai/{name}", input_price=1, output_price=1,
            context_window=1000, tier=tier, profile=profile,
        )  # fmt: skip

    costs = {"a": 0.01, "b": 0.001, "c": 0.005}
    rows = [Example(prompt="p", scores={"a": 1.0, "b": 0.0, "c": 1.0}, costs=costs)]
    # By profile: the catalogue's small model profiled as "a", though "a" costs the most.
    cat = [spec("small-one", "small", profile="a"), spec("c", "large")]
    assert with_catalogue_tier(cat, rows)[0].cheap_models == ["a"]
    # The catalogue knows none of the data's models: the cheaper half by cost.
    assert with_catalogue_tier([spec("x", "small")], rows)[0].cheap_models == ["b"]
    # Rows that name their tier keep it.
    named = [Example(prompt="p", scores={"a": 1.0, "b": 0.0}, costs=costs, cheap_models=["a"])]
    assert with_catalogue_tier([spec("b", "small")], named)[0].cheap_models == ["a"]
    # Beside them, the rows that name none still take the catalogue's small models.
    both = with_catalogue_tier(cat, named + rows)
    assert [ex.cheap_models for ex in both] == [["a"], ["a"]]
    both = with_catalogue_tier([spec("b", "small")], named + rows)
    assert [ex.cheap_models for ex in both] == [["a"], ["b"]]


def test_calibrate_leaves_out_rows_missing_a_label_it_needs(project):
    """A user's data with missing labels: a row without the large model's score, or without
    the cheap model's (which the data scores elsewhere), is left out and counted, as `router
    eval` leaves such rows out. Before, the first such row failed the whole calibration."""
    from dataclasses import replace

    from router import Router
    from router.evaluation.calibrate import calibrate

    root, rows, _ = project
    router = Router.from_config(root / "config.yaml")
    some = rows[:120]
    no_large = replace(some[3], scores={CHEAP: some[3].scores[CHEAP]})
    no_cheap = replace(some[5], scores={LARGE: some[5].scores[LARGE]}, cheap_models=[])
    data = [*some[:3], no_large, some[4], no_cheap, *some[6:]]
    cal = calibrate(router, "balanced", data, "quality=0.9")
    assert (cal.rows, cal.dropped, cal.stood_in) == (118, 2, [])
    # The same as calibrating on the complete rows alone.
    whole = calibrate(
        router, "balanced", [r for r in data if r not in (no_large, no_cheap)], "quality=0.9"
    )
    assert cal.point == whole.point and whole.dropped == 0
    # Nothing left to measure: an error that names the policy's cheap models.
    with pytest.raises(CalibrationError, match=r"policy 'balanced' \(smollm2-135m"):
        calibrate(router, "balanced", [no_large, no_cheap], "quality=0.9")
