"""`router data import routerbench` on a CSV of one's own: prompts as chat messages, prompts that
are not English, empty score cells."""

from __future__ import annotations

import csv
import json

import pytest

from router.core.data import DataError, read_jsonl, write_jsonl
from router.evaluation.importers import import_routerbench

CHAT = [
    {"role": "system", "content": "Antworte auf Deutsch."},
    {"role": "user", "content": "Hallo, wie geht's?"},
]


def write_csv(path, prompts, small=("1", "0", "")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "sample_id",
                "prompt",
                "eval_name",
                "small",
                "small|total_cost",
                "big",
                "big|total_cost",
            ]
        )
        for i, (p, s) in enumerate(zip(prompts, small, strict=True)):
            w.writerow([f"s{i}", p, "mine", s, "0.0001" if s else "", "1", "0.01"])


def test_a_chat_messages_cell_is_imported_as_messages(tmp_path):
    path = tmp_path / "mine.csv"
    write_csv(
        path, [json.dumps(CHAT, ensure_ascii=False), "日本の首都はどこですか？", "[1, 2] sorted?"]
    )
    rows = list(import_routerbench(path))
    assert rows[0].prompt is None and rows[0].messages == CHAT
    assert "Hallo, wie geht's?" in rows[0].text() and "role" not in rows[0].text()
    assert rows[1].prompt == "日本の首都はどこですか？" and rows[1].messages is None
    # Not chat messages: the text as it is. An empty score cell is a missing label.
    assert rows[2].prompt == "[1, 2] sorted?" and rows[2].scores == {"big": 1.0}
    # Written and read back as routing data: the messages stay messages.
    out = tmp_path / "mine.jsonl"
    write_jsonl(rows, out)
    again = read_jsonl(out)
    assert again[0].messages == CHAT and again[1].prompt == rows[1].prompt


def test_chat_messages_without_text_are_named(tmp_path):
    path = tmp_path / "mine.csv"
    write_csv(path, ["ok", json.dumps([{"role": "user", "content": ""}]), "fine"])
    with pytest.raises(DataError, match=r"mine.csv: row 3: prompt"):
        list(import_routerbench(path))
