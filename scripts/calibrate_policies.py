"""Tune the shipped policies' escalation thresholds without tuning on data the scorer saw.

    python scripts/calibrate_policies.py      (or: make policies)

The shipped scorer is trained on every row of data/routing/, so its own predictions on those
rows are optimistic (kNN even finds each row itself). This script trains a scorer on 80% of the
prompts (split by text), calibrates each policy on the other 20% with `router.calibrate`, and
writes the thresholds into policies/*.yaml.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router import Router  # noqa: E402
from router.calibrate import calibrate, write_policy  # noqa: E402
from router.data import read_many  # noqa: E402
from router.encoder import load_encoder  # noqa: E402
from router.scorer import Scorer  # noqa: E402
from router.train import embed_examples  # noqa: E402

TARGETS = {
    "balanced": "quality=0.95",  # 95% of the all-large quality, as cheaply as possible
    "cost-saver": "large-share=0.15",  # at most 15% of calls to the large model
    "quality-first": "quality=0.99",
}


def held_out(text: str) -> bool:
    return int(hashlib.sha1(text.strip().encode()).hexdigest(), 16) % 5 == 0


def main() -> None:
    rows = read_many(sorted((ROOT / "data" / "routing").glob("*.jsonl")))
    train = [r for r in rows if not held_out(r.text())]
    test = [r for r in rows if held_out(r.text())]
    router = Router.from_config(ROOT / "config.yaml")
    enc = load_encoder(router.config.encoder.name, router.config.encoder.max_tokens, 0, threads=2)
    print(f"training a scorer on {len(train)} rows; calibrating on {len(test)} held-out rows")
    scorer = Scorer().fit(embed_examples(enc, train), train, enc.identity)
    router = Router(router.config, router.policies, scorer, router.encoder)
    X = embed_examples(enc, test)
    for name, target in TARGETS.items():
        cal = calibrate(router, name, test, target, X=X)
        p = cal.point
        write_policy(cal, ROOT / router.config.policies_dir / f"{name}.yaml")
        print(
            f"{name:14} {target:18} {cal.field}={p.param:.4f}  quality {p.quality:.4f} "
            f"({p.quality / cal.all_large_quality:.1%} of all-large), "
            f"${p.cost_per_1k:.3f}/1k requests (all-large ${cal.all_large_cost_per_1k:.3f}), "
            f"large share {p.large_share:.1%}"
        )


if __name__ == "__main__":
    main()
