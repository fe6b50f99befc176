"""What sticky sessions add to a turn: the bookkeeping around route(), by conversation length.

Per turn the SDK keys the conversation (`session_ref`: a hash of the messages up to the last
reply), reads the state, applies `stick` (pure), and after the answer hashes the conversation
with its reply and writes the state. This times exactly those steps on the in-process store, for
conversations of 1 to 1000 turns with 400-character messages (routing itself is not included:
bench/route_latency.py measures it). Records bench/results/session_overhead.json.

    python bench/session_overhead.py [--repeats 200] [--turns 1 10 100 1000]
    (or: make bench-sessions)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from results import command_line, record

from router.core.config import ModelSpec, SessionRules
from router.core.decision import Decision
from router.serving.sessions import SessionState, reply_key, session_ref, stick
from router.serving.state import MemoryStore

TURNS = (1, 10, 100, 1000)
REPEATS = 200
TEXT = "lorem ipsum dolor sit amet " * 15  # 405 characters


def conversation(turns: int) -> list[dict]:
    msgs: list[dict] = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(turns):
        msgs.append({"role": "user", "content": f"{i} {TEXT}"})
        if i < turns - 1:
            msgs.append({"role": "assistant", "content": f"answer {i} {TEXT}"})
    return msgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=REPEATS, help="turns timed per length")
    ap.add_argument("--turns", type=int, nargs="+", default=list(TURNS))
    args = ap.parse_args()
    cat = {
        "small": ModelSpec(
            name="small",
            litellm_model="openai/s",
            input_price=0.1,
            output_price=0.2,
            context_window=128000,
        ),
        "large": ModelSpec(
            name="large",
            litellm_model="openai/l",
            input_price=5,
            output_price=15,
            context_window=128000,
            tier="large",
        ),
    }
    fresh = Decision("small", "small", "p", "general", 0.9, 0.2, None, {}, "r", ["large"], 0, 0)
    rules = SessionRules()
    store = MemoryStore()
    reply = {"role": "assistant", "content": "the answer " + TEXT}

    async def turn(msgs: list[dict]) -> None:
        ref = session_ref(msgs, {}, None, "key", rules)
        state = SessionState.from_json(await store.get(ref.lookup)) if ref.lookup else None
        d = stick(fresh, ref, state, None, rules, cat, set(cat), (1000, 300))
        new = SessionState(ref.id, d.model, 1, False, (), time.time())
        await store.set(reply_key(msgs, reply, "key"), new.to_json(), rules.ttl_s)

    print(f"{'turns':>6} {'chars':>9} {'p50 us':>9} {'p90 us':>9}")
    rows = []
    for n in args.turns:
        msgs = conversation(n)
        chars = sum(len(m["content"]) for m in msgs)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            asyncio.run(turn(msgs))
            times.append((time.perf_counter() - t0) * 1e6)
        # asyncio.run's own loop set-up is timed too; subtract an empty run's cost.
        empty = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            asyncio.run(asyncio.sleep(0))
            empty.append((time.perf_counter() - t0) * 1e6)
        base = statistics.median(empty)
        times = sorted(t - base for t in times)
        p50, p90 = statistics.median(times), times[int(0.9 * len(times))]
        print(f"{n:>6} {chars:>9} {p50:>9.0f} {p90:>9.0f}")
        rows.append([n, chars, p50, p90])
    record(
        "session_overhead",
        title="Sessions: what stickiness adds to a turn",
        command=command_line(),
        figures={
            "repeats": args.repeats,
            "message_chars": len(TEXT),
            # p50 µs by conversation length, for the prose: {"1": ..., "10": ...}
            "p50_us": {str(r[0]): r[2] for r in rows},
            "p90_us": {str(r[0]): r[3] for r in rows},
        },
        tables=[
            {
                "title": "session bookkeeping per turn, by conversation length",
                "columns": ["turns", "characters", "p50 µs", "p90 µs"],
                "formats": ["int", "int", ",.0f", ",.0f"],
                "rows": rows,
            }
        ],
    )


if __name__ == "__main__":
    main()
