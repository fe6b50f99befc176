"""Calibrate every shipped policy for its pool, then verify what ships.

    python scripts/calibrate_policies.py            (or: make policies)
    python scripts/calibrate_policies.py --verify-only
    python scripts/calibrate_policies.py --record   (make policies: also bench/results/policies.json)

For config.yaml (policies/) and configs/pool.yaml (configs/policies/): calibrates each policy's
threshold with the shipped scorer on prompts it did not train on, writes it into the policy file,
then measures the written policy with the shipped scorer on other unseen prompts and prints the
verification table (router.evaluation.calibrate.calibrate_shipped holds the logic).

With CI set in the environment and no --out-dir, the policies are written to a temporary
directory: a CI run leaves policies/ and configs/policies/ as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import command_line, record  # noqa: E402  (bench/results.py: stamped before this run)

from router.core.config import ConfigError  # noqa: E402
from router.core.data import DataError  # noqa: E402
from router.core.scorer import ScorerError  # noqa: E402
from router.evaluation.calibrate import (  # noqa: E402
    SHIPPED_CONFIGS,
    CalibrationError,
    calibrate_shipped,
    verification_table,
)


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="project folder holding the configs")
    ap.add_argument("--config", action="append", help="config(s) under --root (default: shipped)")
    ap.add_argument("--data", action="append", type=Path, help="routing data (default: shipped)")
    ap.add_argument("--scorer", type=Path, help="scorer directory (default: each config's)")
    ap.add_argument("--out-dir", type=Path, help="write policies here, not in place")
    ap.add_argument("--verify-only", action="store_true", help="verify the policies as they are")
    ap.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    ap.add_argument(
        "--record",
        action="store_true",
        help="also record the table in bench/results/policies.json (make benchmarks shows it)",
    )
    args = ap.parse_args(argv)
    data = args.data or sorted((args.root / "data" / "routing").glob("*.jsonl"))
    out_dir = args.out_dir
    if out_dir is None and os.environ.get("CI") and not args.verify_only:
        out_dir = Path(tempfile.mkdtemp(prefix="policies-"))
        print(f"CI: writing the policies to {out_dir}, not in place")
    try:
        results = calibrate_shipped(
            args.root,
            data,
            configs=args.config or SHIPPED_CONFIGS,
            scorer=args.scorer,
            out_dir=out_dir,
            recalibrate=not args.verify_only,
            log=print,
        )
    except (CalibrationError, ConfigError, DataError, ScorerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = verification_table(results)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print("\nVerified with the shipped scorer on held-out prompts it did not train on:")
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    for r in results:
        if r.expected is not None:
            e = r.expected
            print(
                f"{r.config} {r.policy}: calibration expected quality {e.quality:.3f}, "
                f"large share {e.large_share:.1%}; verified {r.verified.point.quality:.3f}, "
                f"{r.verified.point.large_share:.1%}"
            )
    if args.markdown:
        args.markdown.write_text(markdown(table) + "\n", encoding="utf-8")
        print(f"wrote {args.markdown}")
    if args.record:
        record(
            "policies",
            title="Shipped policies: verified on prompts the shipped scorer did not see",
            command=command_line(),
            figures={
                "policies": len(results),
                "recalibrated": not args.verify_only,
                "verification_rows": {f"{r.config}:{r.policy}": r.verified.rows for r in results},
            },
            tables=[
                {
                    "title": "verified with the shipped scorer on held-out prompts",
                    "columns": table[0],
                    "rows": table[1:],
                }
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
