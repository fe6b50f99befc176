"""The notebooks on a practitioner's own data, not the shipped files: their own model names, rows
missing a model's score (a model scored on only a handful of rows), chat messages and prompts
that are not English, with their own config. Each notebook runs headless with its parameter
cell followed by a cell that points it at that data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from router.core.data import Example
from router.evaluation.eval_data import EvalData

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

PROMPTS = [
    "What is 2+2?",
    "Explain quicksort in detail.",
    "Prove that the square root of 2 is irrational.",
    "Write a Python function that reverses a list.",
    "¿Cuál es la capital de Francia?",
    "Erkläre mir die Relativitätstheorie.",
    "日本の首都はどこですか？",
    "Объясни, что такое рекурсия.",
]
PRICES = {"acme-small": 0.0001, "acme-mid": 0.001, "acme-rare": 0.005, "acme-big": 0.01}


def own_rows(n: int = 96) -> list[dict]:
    """acme-mid misses a score on every 7th row; acme-rare is scored on every 20th row only."""
    rng = random.Random(1)
    rows = []
    for i in range(1, n + 1):
        text = f"{PROMPTS[i % len(PROMPTS)]} (case {i})"
        scores = {
            "acme-small": float(rng.random() < 0.5),
            "acme-mid": float(rng.random() < 0.7),
            "acme-big": float(rng.random() < 0.9),
        }
        if i % 7 == 0:
            del scores["acme-mid"]
        if i % 20 == 0:
            scores["acme-rare"] = 1.0
        row = {
            "id": f"r{i}",
            "source": "mytraffic",
            "scores": scores,
            "costs": {m: PRICES[m] for m in scores},
        }
        if i % 5 == 0:
            row["messages"] = [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": text},
            ]
        else:
            row["prompt"] = text
        rows.append(row)
    return rows


def write_own_data(tmp_path: Path) -> Path:
    path = tmp_path / "mine.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in own_rows()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_own_config(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    models = [
        ("acme-small", "small", 0.1),
        ("acme-mid", "small", 1.0),
        ("acme-rare", "large", 5.0),
        ("acme-big", "large", 10.0),
    ]
    cfg = {
        "encoder": {"name": "minilm-l2-q8", "max_tokens": 128},
        "scorer": "default",
        "policies_dir": "policies",
        "default_policy": "balanced",
        "models": [
            {
                "name": name,
                "litellm_model": f"openai/{name}",
                "input_price": price,
                "output_price": price,
                "context_window": 8000,
                "capabilities": ["streaming"],
                "tier": tier,
            }
            for name, tier, price in models
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
    (tmp_path / "policies" / "balanced.yaml").write_text(
        "name: balanced\n"
        "rules: [pin, tools, json, vision, context_window]\n"
        "default: [acme-small, acme-mid]\n"
        "large: [acme-big]\n"
        "escalation: {min_domain_confidence: 0.2, max_difficulty: 1.0, max_gain: 0.15}\n",
        encoding="utf-8",
    )
    return path


def test_eval_data_names_the_models_the_left_out_rows_lack():
    rows = own_rows()
    examples = [
        Example(r.get("prompt"), r["scores"], r["source"], costs=r["costs"], id=r["id"])
        for r in rows
    ]
    data = EvalData.from_examples(examples)
    # Only the rows that score all four models are kept: every 20th row that is not a 7th.
    kept = [i for i, r in enumerate(rows) if len(r["scores"]) == 4]
    assert data.kept == kept and len(data.examples) == len(kept) == 4
    assert [ex.id for ex in data.examples] == [rows[i]["id"] for i in kept]
    assert data.dropped == 92
    assert data.missing == {"acme-rare": 92, "acme-mid": 13}
    note = data.dropped_note()
    assert note.startswith("92 of 96 rows lack a score for some model")
    assert "acme-rare on 4 of 96" in note and "acme-mid on 83 of 96" in note
    whole = EvalData.from_examples([ex for ex in examples if len(ex.scores) == 4])
    assert whole.dropped == 0 and whole.dropped_note() is None and whole.missing == {}


nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def run_notebook(name: str, override: str, monkeypatch) -> list[str]:
    """Run notebooks/<name> with `override` as a cell after its parameter cell; the text of
    every stream and result, in order."""
    monkeypatch.setenv("CI", "1")  # notebook 02 writes into a copy of the config's policies
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(override))
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
            elif "text/plain" in o.get("data", {}):
                out.append(o.data["text/plain"])
    return out


def test_notebook_01_on_own_data_with_missing_scores(tmp_path, monkeypatch):
    data = write_own_data(tmp_path)
    text = "\n".join(
        run_notebook("01_routing_data.ipynb", f"DATA = [Path({str(data)!r})]", monkeypatch)
    )
    assert "96 prompts" in text
    assert "note: 92 of 96 rows lack a score for some model" in text
    assert "acme-rare on 4 of 96" in text


def test_notebook_02_tunes_a_policy_on_own_data_with_missing_scores(tmp_path, monkeypatch):
    data = write_own_data(tmp_path)
    config = write_own_config(tmp_path)
    override = (
        f"DATA = [Path({str(data)!r})]\nCONFIG = Path({str(config)!r})\n"
        "SAMPLE = None\nTARGET = 'quality=0.95'\n"
    )
    text = "\n".join(run_notebook("02_tune_policy.ipynb", override, monkeypatch))
    assert "note: 92 of 96 rows lack a score for some model" in text
    assert "policies served: ['balanced', 'tuned']" in text
    assert "name: tuned" in text
    # Calibration left out the rows missing acme-mid, a cheap model of the policy, and said so.
    assert "note: 13 of 96 rows left out" in text
    # The user's own config and policies were copied, not written to (CI mode).
    assert sorted(p.name for p in (tmp_path / "policies").iterdir()) == ["balanced.yaml"]
