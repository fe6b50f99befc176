"""The privacy detectors' precision and recall on a labelled set, and what detection costs.

    python bench/privacy.py [--set data/privacy/labelled.jsonl] [--repeat 200]

The set (built by scripts/build_privacy_set.py, committed) holds prompts with the private
values they carry, hard negatives (order numbers that fail Luhn, IMEIs, IBANs with wrong
check digits, versions, dates, ISBNs, UUIDs, hashes, IPs ...) and plain prompts. A detected
value counts as right when a labelled value of the same kind overlaps it. Latency: `detect()`
over every detector, on a short prompt, a 2,000-token prompt and a 100,000-character one.
Records bench/results/privacy.json (`make bench-privacy`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import record  # noqa: E402

from router.core.privacy import KINDS, detect, find  # noqa: E402


def spans(text: str, labelled: list[dict]) -> list[tuple[str, int, int]]:
    out = []
    for s in labelled:
        at = text.find(s["value"])
        out.append((s["kind"], at, at + len(s["value"])))
    return out


def score(rows: list[dict]) -> tuple[dict, list[str]]:
    """Per kind: true positives, false positives, false negatives; and the mistakes."""
    counts = {k: {"tp": 0, "fp": 0, "fn": 0} for k in KINDS}
    mistakes = []
    for row in rows:
        truth = spans(row["text"], row["spans"])
        found = [(f.kind, f.start, f.end) for f in find(row["text"])]
        matched = set()
        for kind, s, e in found:
            hit = next(
                (i for i, (k, ts, te) in enumerate(truth) if k == kind and s < te and ts < e),
                None,
            )
            if hit is None:
                counts[kind]["fp"] += 1
                mistakes.append(
                    f"false {kind}: {row['text'][s:e]!r} in {row['id']} ({row['group']})"
                )
            else:
                counts[kind]["tp"] += 1
                matched.add(hit)
        for i, (kind, s, e) in enumerate(truth):
            if i not in matched:
                counts[kind]["fn"] += 1
                mistakes.append(f"missed {kind}: {row['text'][s:e]!r} in {row['id']}")
    return counts, mistakes


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def latency_ms(text: str, repeat: int) -> float:
    msgs = [{"role": "user", "content": text}]
    detect(msgs)  # warm: imports and compiled patterns
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        detect(msgs)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default=str(ROOT / "data/privacy/labelled.jsonl"))
    ap.add_argument("--repeat", type=int, default=200, help="timed runs per latency figure")
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.set).read_text().splitlines() if line.strip()]
    counts, mistakes = score(rows)
    table = []
    figures: dict = {"rows": len(rows)}
    total = {"tp": 0, "fp": 0, "fn": 0}
    for kind, c in counts.items():
        p, r = ratio(c["tp"], c["tp"] + c["fp"]), ratio(c["tp"], c["tp"] + c["fn"])
        table.append([kind, c["tp"] + c["fn"], c["tp"], c["fp"], c["fn"], p, r])
        figures[f"{kind}_precision"], figures[f"{kind}_recall"] = p, r
        for k in total:
            total[k] += c[k]
    figures["precision"] = ratio(total["tp"], total["tp"] + total["fp"])
    figures["recall"] = ratio(total["tp"], total["tp"] + total["fn"])
    hard = [r for r in rows if r["group"] == "hard_negative"]
    fired = sum(1 for r in hard if find(r["text"]))
    figures["hard_negatives"] = len(hard)
    figures["hard_negatives_fired"] = fired
    short = "My card 4539 1488 0343 6467 was charged twice, call me on (415) 555-2671."
    # Long prompts of real text (the shipped routing prompts: maths, code, law, numbers).
    rows_ = [json.loads(x) for x in (ROOT / "data/routing/routellm.jsonl").open()]
    shipped = [r["prompt"] for r in rows_ if "prompt" in r]
    doc = " ".join(shipped)[:8000]  # ~2,000 tokens
    big = " ".join(shipped)[:100_000]
    figures["latency_ms_short"] = latency_ms(short, args.repeat)
    figures["latency_ms_2000_tokens"] = latency_ms(doc, max(5, args.repeat // 10))
    figures["latency_ms_100k_chars"] = latency_ms(big, max(3, args.repeat // 50))
    print(f"{len(rows)} prompts, {len(hard)} hard negatives ({fired} fired)")
    print(f"{'kind':14} {'values':>6} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}")
    for row in table:
        print(
            f"{row[0]:14} {row[1]:6d} {row[2]:4d} {row[3]:4d} {row[4]:4d} {row[5]!s:>9} {row[6]!s:>7}"
        )
    print(f"all: precision {figures['precision']}, recall {figures['recall']}")
    print(
        f"detect() median: short {figures['latency_ms_short']} ms, 2,000 tokens "
        f"{figures['latency_ms_2000_tokens']} ms, 100k chars {figures['latency_ms_100k_chars']} ms"
    )
    for m in mistakes[:30]:
        print("  " + m)
    record(
        "privacy",
        title="Privacy detectors: precision and recall on the labelled set",
        command="make bench-privacy",
        figures=figures,
        tables=[
            {
                "title": "Per detector (a value counts when a labelled value of its kind overlaps it)",
                "columns": [
                    "kind",
                    "values",
                    "true pos.",
                    "false pos.",
                    "missed",
                    "precision",
                    "recall",
                ],
                "rows": table,
            }
        ],
        notes="Set: data/privacy/labelled.jsonl (scripts/build_privacy_set.py). Latency: "
        "median detect() over every detector on one machine, under whatever load it had.",
    )


if __name__ == "__main__":
    main()
