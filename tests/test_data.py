import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from router.core.data import (
    DataError,
    domain_of,
    group_key,
    read_jsonl,
    taxonomy,
    with_cheap_tier,
    write_jsonl,
)
from router.evaluation.importers import import_dataset
from tests.conftest import ROOT

FIX = ROOT / "tests" / "fixtures"


def test_routellm_importer_reads_mmlu_gsm8k_and_mt_bench():
    rows = import_dataset("routellm", FIX / "routellm")
    by_source = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    assert len(by_source["mmlu/anatomy"]) == 2 and len(by_source["gsm8k"]) == 2
    mix, gpt = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    assert by_source["gsm8k"][1].scores == {mix: 0.0, gpt: 1.0}
    assert by_source["mmlu/anatomy"][0].cheap_models == [mix]
    assert domain_of(by_source["mmlu/anatomy"][0]) == "medicine"
    # MT-Bench: judge score 1-10 → [0, 1]; a turn with a failed judgement (-1) is dropped.
    mt = by_source["mt_bench/writing"]
    assert len(mt) == 1 and mt[0].scores[gpt] == pytest.approx(8 / 9)
    # Costs at list price with equal tokens per call: GPT-4 is 10/0.6 times Mixtral.
    c = by_source["gsm8k"][0].costs
    assert c[gpt] / c[mix] == pytest.approx(10.0 / 0.6)


def test_dcrouter_importer_joins_task_labels_and_prices():
    rows = import_dataset("dcrouter", FIX / "dcrouter")
    assert [r.source for r in rows] == ["dcrouter/gsm8k", "dcrouter/commongen"]
    assert rows[1].scores["small-7b"] == 0.5
    assert rows[0].cheap_models == ["small-7b"]
    assert rows[0].costs["llama-3.1-nemotron-51b"] > rows[0].costs["small-7b"]


def test_unknown_format_and_missing_files():
    with pytest.raises(DataError, match="unknown format"):
        import_dataset("parquet-of-dreams", FIX)
    with pytest.raises(DataError, match="no RouteLLM files"):
        import_dataset("routellm", FIX / "dcrouter")


def test_jsonl_round_trip(tmp_path):
    rows = import_dataset("routellm", FIX / "routellm")
    write_jsonl(rows, tmp_path / "d.jsonl")
    back = read_jsonl(tmp_path / "d.jsonl")
    assert [r.to_json() for r in back] == [r.to_json() for r in rows]


def test_a_directory_or_a_missing_file_is_named_as_such(tmp_path):
    (tmp_path / "a.jsonl").write_text("")
    with pytest.raises(DataError, match=r"a directory; give the JSONL files in it \(a.jsonl\)"):
        read_jsonl(tmp_path)
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    "row, where",
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"scores": {"a": 1}}), "prompt"),
        (json.dumps({"prompt": "x", "messages": [], "scores": {"a": 1}}), "prompt"),
        (json.dumps({"prompt": "x", "scores": {"a": 1.5}}), "scores.a"),
        (json.dumps({"prompt": "x", "scores": {}}), "scores"),
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "domain": "astrology"}), "domain"),
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "costs": {"a": -1}}), "costs.a"),
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "cheap_models": ["b"]}), "cheap_models"),
        (
            json.dumps({"messages": [{"role": "tool", "content": "x"}], "scores": {"a": 1}}),
            "messages",
        ),
        # Fields of the wrong type are named, never a TypeError from hashing a list.
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "id": ["x"]}), "id"),
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "domain": ["math"]}), "domain"),
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "cheap_models": [["a"]]}), "cheap_models"),
        (json.dumps({"prompt": "x", "scores": {"a": 1}, "source": ["mmlu"]}), "source"),
        # NaN and Infinity are JSON numbers to Python's reader; a cost must be finite.
        ('{"prompt": "x", "scores": {"a": 1}, "costs": {"a": NaN}}', "costs.a"),
        ('{"prompt": "x", "scores": {"a": 1}, "costs": {"a": Infinity}}', "costs.a"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path, row, where):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"prompt": "fine", "scores": {"a": 1}}) + "\n" + row + "\n")
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    assert f"{p}:2" in str(e.value) and where in str(e.value)


def test_every_bad_row_is_counted_and_the_first_ten_named(tmp_path):
    """One run tells what to fix: not the first bad row only."""
    p = tmp_path / "d.jsonl"
    good = json.dumps({"prompt": "fine", "scores": {"a": 1}})
    bad = [json.dumps({"prompt": f"q{i}", "scores": {"a": 2}}) for i in range(12)]
    p.write_text("\n".join([good, *bad, "{not json", good]) + "\n")
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    lines = str(e.value).splitlines()
    assert lines[0] == f"{p}: 13 bad rows:"
    assert [ln.split(": ")[0] for ln in lines[1:11]] == [f"{p}:{n}" for n in range(2, 12)]
    assert lines[-1] == "… and 3 more"


def test_a_byte_order_mark_and_windows_line_ends_are_read(tmp_path):
    """What Windows tools write (PowerShell, Excel's "UTF-8 CSV" habits): a BOM and CRLF."""
    rows = [{"prompt": "héllo", "scores": {"a": 1}}, {"prompt": "two", "scores": {"a": 0}}]
    p = tmp_path / "d.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in rows))
    back = read_jsonl(p)
    assert [(r.prompt, r.scores) for r in back] == [("héllo", {"a": 1}), ("two", {"a": 0})]


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    p = tmp_path / "d.jsonl"
    good = json.dumps({"prompt": "fine", "scores": {"a": 1}}).encode()
    p.write_bytes(good + b"\n" + '{"prompt": "café", "scores": {"a": 1}}'.encode("latin-1"))
    with pytest.raises(DataError, match=rf"{p}:2: not UTF-8 \(byte 16 of the line is b'\\xe9'\)"):
        read_jsonl(p)


def test_group_key_is_by_text_not_row():
    rows = import_dataset("routellm", FIX / "routellm")
    a, b = rows[0], rows[0].__class__(**{**rows[0].__dict__, "id": "other"})
    assert group_key(a) == group_key(b) != group_key(rows[1])


def test_near_duplicates_and_follow_up_turns_share_a_group_and_a_fold():
    import numpy as np

    from router.core.data import Example, group_folds

    def row(prompt=None, messages=None):
        return Example(prompt=prompt, messages=messages, scores={"a": 1.0})

    q1 = "What is the capital of France?"
    t1 = "Write a haiku about autumn."
    rows = [
        row(q1),
        row("  what is the CAPITAL of france  "),  # case, spacing, punctuation
        row("What is the capital of Spain?"),
        row(t1),
        # MT-Bench turn 2: the user's two turns; it grew from turn 1 and must not be split off.
        row(
            messages=[
                {"role": "user", "content": t1},
                {"role": "user", "content": "Now a limerick."},
            ]
        ),
        row("?!"),
        row("??"),  # punctuation-only prompts keep distinct keys, not one empty key
    ]
    keys = [group_key(r) for r in rows]
    assert keys[0] == keys[1] != keys[2]
    assert keys[3] == keys[4] != keys[0]
    assert keys[5] != keys[6]
    for seed in range(5):
        folds = group_folds(rows, 3, seed)
        assert folds[0] == folds[1] and folds[3] == folds[4]
        # The same folds from the keys themselves: one definition.
        assert (folds == group_folds(np.array(keys), 3, seed)).all()


def test_taxonomy_has_eight_to_twelve_domains_and_maps_every_source():
    tax = taxonomy()
    assert 8 <= len(tax["domains"]) <= 12
    assert all(d is None or d in tax["domains"] for d in tax["sources"].values())


def test_routerbench_importer_drops_few_shot_and_reads_costs():
    rows = import_dataset("routerbench", FIX / "routerbench" / "routerbench_sample.csv")
    assert len(rows) == 2
    a, b = rows
    assert a.source == "mmlu/anatomy" and domain_of(a) == "medicine"
    assert a.prompt.startswith("The following are multiple choice questions about anatomy.")
    assert "Which bone protects the brain?" in a.prompt and "Which organ" not in a.prompt
    assert a.scores == {"gpt-4": 1.0, "mistral-7b": 0.0}
    assert a.costs == {"gpt-4": 0.003, "mistral-7b": 0.0001}
    assert a.cheap_models == ["mistral-7b"]
    assert b.source == "routerbench/hellaswag" and b.prompt == "A man is mowing the lawn. He"


def test_routerbench_missing_columns(tmp_path):
    p = tmp_path / "rb.csv"
    p.write_text("prompt,eval_name,gpt-4\n\"['x']\",hellaswag,1\n")
    with pytest.raises(DataError, match="total_cost"):
        import_dataset("routerbench", p)


def test_routerbench_empty_score_cells_are_missing_labels_not_errors(tmp_path):
    """Real RouterBench arc_challenge rows have empty score cells: that model's label is
    missing on that row; the row and the other models' scores are kept."""
    p = tmp_path / "rb.csv"
    p.write_text(
        "sample_id,prompt,eval_name,gpt-4,mistral-7b,llama-70b,"
        "gpt-4|total_cost,mistral-7b|total_cost,llama-70b|total_cost\n"
        "arc.1,['Which gas do plants absorb?'],arc-challenge,1.0,,1.0,0.003,,0.0009\n"
        "arc.2,['What melts ice?'],arc-challenge,1.0,0.0,,0.003,0.0001,0.0009\n"
        "arc.3,['Why is the sky blue?'],arc-challenge,,,,,,\n"
        "arc.4,['Name a mammal.'],arc-challenge,1.0,1.0,1.0,0.003,0.0001,0.0009\n"
    )
    rows = import_dataset("routerbench", p)
    assert [r.id for r in rows] == ["routerbench/arc.1", "routerbench/arc.2", "routerbench/arc.4"]
    a, b, d = rows
    assert a.scores == {"gpt-4": 1.0, "llama-70b": 1.0} and set(a.costs) == set(a.scores)
    assert a.cheap_models == []  # its cheap model's cell is empty
    assert b.scores == {"gpt-4": 1.0, "mistral-7b": 0.0} and b.cheap_models == ["mistral-7b"]
    assert d.cheap_models == ["mistral-7b"] and len(d.scores) == 3
    # The rows survive a JSONL round trip (the format the rest of the router reads).
    write_jsonl(rows, tmp_path / "rb.jsonl")
    assert [r.scores for r in read_jsonl(tmp_path / "rb.jsonl")] == [r.scores for r in rows]
    # A bad number is still an error naming the row and model.
    p.write_text(
        p.read_text().replace(
            "arc.4,['Name a mammal.'],arc-challenge,1.0", "arc.4,['x'],arc-challenge,yes"
        )
    )
    with pytest.raises(DataError, match="row 5: gpt-4"):
        import_dataset("routerbench", p)


def test_rows_naming_no_tier_take_the_cheaper_half_of_their_own_models():
    from router.core.data import Example

    named = Example(prompt="p", scores={"m": 1.0, "g": 1.0}, cheap_models=["m"])
    costs = {"a": 0.01, "b": 0.001, "c": 0.005, "d": 0.002}
    own = Example(prompt="q", scores={"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}, costs=costs)
    # Alone: the cheaper half by mean cost.
    rows, tier = with_cheap_tier([own])
    assert tier == ["b", "d"] and rows[0].cheap_models == ["b", "d"]
    # Beside rows that name a tier (the shipped datasets, say), from their own models only.
    rows, tier = with_cheap_tier([named, own])
    assert tier == ["b", "d"]
    assert [r.cheap_models for r in rows] == [["m"], ["b", "d"]]
    # There, one model alone, or no costs, has no cheaper half: the rows stay without a tier.
    single = Example(prompt="r", scores={"a": 1.0}, costs={"a": 0.01})
    bare = Example(prompt="s", scores={"a": 1.0, "b": 0.0})
    for extra in (single, bare):
        rows, tier = with_cheap_tier([named, extra])
        assert tier is None and rows[1].cheap_models == []
    # Alone without costs: a clear error.
    with pytest.raises(DataError, match="no row names its cheap_models"):
        with_cheap_tier([bare])
    # A model with no cost anywhere cannot be placed: never halve the others without it (the
    # priciest model would be the cheap tier), alone an error naming it, beside named rows none.
    half = Example(prompt="t", scores={"big": 1.0, "small": 0.0}, costs={"big": 0.01})
    with pytest.raises(DataError, match=r"no row gives a cost for \['small'\]"):
        with_cheap_tier([half])
    rows, tier = with_cheap_tier([named, half, own])
    assert tier is None and [r.cheap_models for r in rows] == [["m"], [], []]


def test_a_numeric_id_is_read_as_text(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"id": 7, "prompt": "x", "scores": {"a": 1}, "source": None}) + "\n")
    (row,) = read_jsonl(p)
    assert row.id == "7" and row.source == ""


def test_a_row_missing_a_cheap_models_score_names_only_the_cheap_models_it_scores():
    """A user's rows without tiers, some missing a model's score (a missing label): the tier is
    the cheaper half by cost, and each row names only those of it that it scores. Before,
    every row named the whole tier and `router train` died on a KeyError."""
    from router.core.data import Example, tier_outcomes
    from router.core.heads import head_targets

    costs = {"mini": 0.0001, "pro": 0.001, "max": 0.01, "ultra": 0.02}
    full = Example(prompt="a", scores={"mini": 0.0, "pro": 1.0, "max": 1.0, "ultra": 1.0})
    no_mini = Example(prompt="b", scores={"pro": 0.25, "max": 1.0, "ultra": 1.0})
    no_cheap = Example(prompt="c", scores={"max": 1.0, "ultra": 0.0})
    rows = [replace(r, costs=costs) for r in (full, no_mini, no_cheap)]
    tiered, tier = with_cheap_tier(rows)
    assert tier == ["mini", "pro"]
    assert [r.cheap_models for r in tiered] == [["mini", "pro"], ["pro"], []]
    assert tier_outcomes(tiered) == [(0.5, 1.0), (0.25, 1.0), (None, 1.0)]
    _, models, Y = head_targets(tiered)
    # The row without a cheap score teaches no difficulty or gain, only the success heads.
    assert np.isnan(Y[2, :2]).all() and Y[2, 2 + models.index("max")] == 1.0
    assert Y[1, 0] == 0.75 and Y[1, 1] == 0.75


COST_COLUMNS = ["mini|total_cost", "max|total_cost"]


def test_routerbench_csv_of_ones_own_keeps_plain_prompts_whole(tmp_path):
    """A CSV of one's own data in RouterBench's wide form: plain-text prompts are kept as they
    are (paragraphs opening alike are not few-shot examples), Excel's byte-order mark is read,
    and a file not in UTF-8 or an empty prompt is named, not a traceback."""
    email = "Summarise this email.\n\nHi Bob, the meeting moved.\n\nHi again, bring the slides."
    code = "The code fails with a KeyError:\n\nThe dict is built from a CSV.\n\nThe fix?"
    p = tmp_path / "mine.csv"
    with p.open("w", encoding="utf-8-sig", newline="") as f:  # Excel's "CSV UTF-8"
        w = csv.writer(f)
        w.writerow(["prompt", "sample_id", "eval_name", "mini", "max"] + COST_COLUMNS)
        w.writerow([email, "1", "email", 1, 1, 0.0001, 0.01])
        w.writerow([code, "2", "code", 0, 1, 0.0001, 0.01])
    assert p.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = import_dataset("routerbench", p)
    assert [r.prompt for r in rows] == [email, code]
    assert rows[1].scores == {"mini": 0.0, "max": 1.0} and rows[1].cheap_models == ["mini"]
    p.write_bytes(b"prompt,eval_name,a,b,a|total_cost,b|total_cost\nCaf\xe9?,x,1,0,0.1,0.01\n")
    with pytest.raises(DataError, match=r"mine.csv:2: not UTF-8"):
        import_dataset("routerbench", p)
    p.write_text('prompt,eval_name,a,a|total_cost\nok,x,1,0.1\n"",x,1,0.1\n', encoding="utf-8")
    with pytest.raises(DataError, match="row 3: prompt: empty"):
        import_dataset("routerbench", p)
