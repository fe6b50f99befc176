"""The semantic cache's hit rate on paraphrases and false-hit rate on questions that differ,
on pairs built from the shipped prompts; and what a lookup costs.

    python bench/cache.py [--n 300] [--similarity 0.95]

Pairs (A cached, then B asked) from data/routing/*.jsonl, through the real cache code
(`ResponseCache.lookup` on an in-process store, with the vectors a semantic lookup compares:
the cache encoder's, `cache.encoder`):

- should hit (paraphrases): case and punctuation, a polite prefix or suffix, contractions,
  instruction synonyms ("Calculate" / "Compute");
- must miss: one number changed, one name changed, a negation added or removed, a long
  prompt (> 1,000 characters) followed by another question, and one word for its opposite
  ("largest" / "smallest", "sort" / "reverse": nothing the question guard checks).

Reported at the configured similarity and a sweep, with the question guard and without it
(similarity alone), so the guard's share is visible. Then the lookup's latency against 1k, 10k
and 100k cached entries in one context. Records bench/results/cache.json (`make bench-cache`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import record  # noqa: E402

from router.core.cache_keys import cache_key  # noqa: E402
from router.core.config import CacheSpec, load_config  # noqa: E402
from router.core.encoder import load_encoder  # noqa: E402
from router.core.request import routing_text  # noqa: E402
from router.serving.cache import Hit, MemoryCacheStore, ResponseCache  # noqa: E402

SWEEP = (0.90, 0.93, 0.95, 0.97)
SYNONYMS = {
    "Calculate": "Compute",
    "Compute": "Calculate",
    "Find": "Determine",
    "Determine": "Find",
    "Explain": "Describe",
    "Describe": "Explain",
    "Write": "Compose",
    "Give": "Provide",
    "List": "Name",
}
NAMES = ["Paris", "Tokyo", "Alice", "Newton", "Python", "Spain", "Mars", "Lincoln", "Amazon"]
AUX = re.compile(r"\b(is|are|was|were|can|does|do|should|will|could|would|has|have)\b(?! not)")


def prompts() -> list[str]:
    out = []
    for f in sorted((ROOT / "data/routing").glob("*.jsonl")):
        for line in f.open():
            row = json.loads(line)
            if isinstance(row.get("prompt"), str) and row["prompt"].strip():
                out.append(row["prompt"].strip())
    return list(dict.fromkeys(out))


# ---- pair makers: each returns B for A, or None when it does not apply ---------------------


def case_punct(a: str) -> str | None:
    b = a.rstrip("?.! ")
    if b == a:
        b = a + "?"
    return b[0].lower() + b[1:] if b[:1].isupper() else b


def polite(a: str, rng: random.Random) -> str:
    return (
        rng.choice(["Please answer: ", "Quick question: ", "Hi! "])
        + a
        + rng.choice(["", " Thanks!", " Thank you."])
    )


def contraction(a: str) -> str | None:
    for x, y in (
        ("What is", "What's"),
        ("It is", "It's"),
        ("do not", "don't"),
        ("does not", "doesn't"),
        ("is not", "isn't"),
        ("cannot", "can't"),
        ("Who is", "Who's"),
        ("there is", "there's"),
    ):
        if x in a:
            return a.replace(x, y, 1)
    return None


def synonym(a: str) -> str | None:
    first = a.split(" ", 1)[0]
    if first in SYNONYMS:
        return SYNONYMS[first] + a[len(first) :]
    return None


def number(a: str, rng: random.Random) -> str | None:
    found = list(re.finditer(r"\d+", a))
    if not found:
        return None
    m = rng.choice(found)
    return a[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + a[m.end() :]


def name(a: str, rng: random.Random) -> str | None:
    cands = [
        m
        for m in re.finditer(r"(?<=[a-z,;] )[A-Z][a-z]{2,}\b", a)
        if m.group() not in ("I", "The", "A", "An")
    ]
    if not cands:
        return None
    m = rng.choice(cands)
    new = rng.choice([n for n in NAMES if n != m.group()])
    return a[: m.start()] + new + a[m.end() :]


def negation(a: str) -> str | None:
    if " not " in a:
        return a.replace(" not ", " ", 1)
    m = AUX.search(a)
    if m is None:
        return None
    return a[: m.end()] + " not" + a[m.end() :]


# A word for its opposite: nothing the question guard checks changes (no number, name,
# negation or code), so only the vectors can tell the two questions apart.
PAIRS_OF_OPPOSITES = [
    ("largest", "smallest"),
    ("maximum", "minimum"),
    ("first", "last"),
    ("increase", "decrease"),
    ("before", "after"),
    ("sum", "product"),
    ("longest", "shortest"),
    ("highest", "lowest"),
    ("most", "least"),
    ("above", "below"),
    ("more", "fewer"),
    ("sort", "reverse"),
    ("add", "remove"),
    ("odd", "even"),
]
OPPOSITES = {**dict(PAIRS_OF_OPPOSITES), **{b: a for a, b in PAIRS_OF_OPPOSITES}}
OPPOSITE = re.compile(r"\b(" + "|".join(OPPOSITES) + r")\b")


def opposite(a: str) -> str | None:
    m = OPPOSITE.search(a)
    if m is None:
        return None
    return a[: m.start()] + OPPOSITES[m.group()] + a[m.end() :]


LONG_QUESTIONS = [
    ("Summarise the text above in two sentences.", "List every number mentioned above."),
    ("What is the main argument above?", "Translate the first sentence above into German."),
]


def long_prefix(a: str, rng: random.Random) -> tuple[str, str] | None:
    if len(a) < 1000:
        return None
    q1, q2 = rng.choice(LONG_QUESTIONS)
    return a + "\n\n" + q1, a + "\n\n" + q2


def build_pairs(texts: list[str], n: int, seed: int = 7) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(seed)
    shuffled = texts[:]
    rng.shuffle(shuffled)
    groups: dict[str, list[tuple[str, str]]] = {
        "paraphrase: case, punctuation": [],
        "paraphrase: polite prefix/suffix": [],
        "paraphrase: contraction": [],
        "paraphrase: instruction synonym": [],
        "miss: one number changed": [],
        "miss: one name changed": [],
        "miss: negation added/removed": [],
        "miss: long prefix, other question": [],
        "miss: one word for its opposite": [],
    }
    makers = list(
        zip(
            groups,
            [
                case_punct,
                lambda a: polite(a, rng),
                contraction,
                synonym,
                lambda a: number(a, rng),
                lambda a: name(a, rng),
                negation,
                lambda a: long_prefix(a, rng),
                opposite,
            ],
            strict=True,
        )
    )
    for a in shuffled:
        if len(a) > 4000:
            continue
        for group, make in makers:
            if len(groups[group]) >= n:
                continue
            b = make(a)
            if b is None:
                continue
            pair = b if isinstance(b, tuple) else (a, b)
            if pair[0] != pair[1]:
                groups[group].append(pair)
        if all(len(v) >= n for v in groups.values()):
            break
    return groups


async def outcome(cache: ResponseCache, a, va, b, vb, similarity: float, guard: bool) -> bool:
    """Does B hit A's entry (in a cache holding only A)?"""
    cache.store = MemoryCacheStore(3600, 10)
    ka = cache_key([{"role": "user", "content": a}], "m", {}, None)
    kb = cache_key([{"role": "user", "content": b}], "m", {}, None)
    await cache.put(ka, va, {"question": a, "response": {}, "cost": 0.0})
    if not guard:
        entry = await cache.store.get(kb.exact)
        if entry is not None:
            return True
        return bool(await cache.store.nearest(kb.context, vb, similarity, 1))
    return isinstance(await cache.lookup(kb, vb, True, similarity), Hit)


def lookup_latency(entries: int, dim: int, repeat: int) -> float:
    rng = np.random.default_rng(0)
    store = MemoryCacheStore(3600, entries + 1)
    cache = ResponseCache(CacheSpec(mode="semantic"), store)
    vecs = rng.standard_normal((entries, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

    async def fill():
        for i in range(entries):
            k = cache_key([{"role": "user", "content": f"question {i}"}], "m", {}, None)
            await store.put(k, vecs[i], {"question": f"question {i}"})

    asyncio.run(fill())
    q = cache_key([{"role": "user", "content": "question 0?"}], "m", {}, None)
    probe = vecs[0] + 0.05 * rng.standard_normal(dim).astype(np.float32)
    probe /= np.linalg.norm(probe)

    async def timed() -> list[float]:
        out = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            await cache.lookup(q, probe, True, 0.95)
            out.append((time.perf_counter() - t0) * 1000)
        return out

    return round(statistics.median(asyncio.run(timed())), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="pairs per group")
    ap.add_argument("--similarity", type=float, default=CacheSpec().similarity)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--repeat", type=int, default=200, help="timed lookups per latency figure")
    args = ap.parse_args()
    cfg = load_config(args.config)
    # The vectors a semantic lookup compares: the cache encoder's (cache.encoder), or the
    # routing encoder's when it is "routing" (router/sdk/caching.py).
    name = cfg.cache.encoder if cfg.cache.encoder != "routing" else cfg.encoder.name
    enc = load_encoder(name, cfg.encoder.max_tokens, 0, threads=cfg.encoder.threads)
    print(f"vectors: {enc.identity} (cache.encoder: {cfg.cache.encoder})")
    rt = cfg.routing_text
    groups = build_pairs(prompts(), args.n)
    texts = sorted({t for pairs in groups.values() for p in pairs for t in p})
    t0 = time.perf_counter()
    routed = [routing_text(t, rt.max_chars, rt.context_chars, rt.system_chars) for t in texts]
    vec = dict(zip(texts, enc.encode(routed, batch_size=32), strict=True))
    print(
        f"{sum(map(len, groups.values()))} pairs, {len(texts)} texts embedded in {time.perf_counter() - t0:.0f} s"
    )
    cache = ResponseCache(CacheSpec(mode="semantic"))
    thresholds = sorted({*SWEEP, args.similarity})
    rates: dict[str, dict[str, float]] = {}
    for group, pairs in groups.items():
        rates[group] = {}
        for sim in thresholds:
            for guard in (True, False):
                hits = sum(
                    asyncio.run(outcome(cache, a, vec[a], b, vec[b], sim, guard)) for a, b in pairs
                )
                rates[group][f"{sim:g}{'' if guard else ' no guard'}"] = round(
                    hits / max(1, len(pairs)), 4
                )
    at = f"{args.similarity:g}"
    should = [g for g in groups if g.startswith("paraphrase")]
    must = [g for g in groups if g.startswith("miss")]

    def pooled(gs: list[str], col: str) -> float:
        total = sum(len(groups[g]) for g in gs)
        return round(sum(rates[g][col] * len(groups[g]) for g in gs) / max(1, total), 4)

    figures = {
        "similarity": args.similarity,
        "pairs_per_group": args.n,
        "hit_rate_paraphrases": pooled(should, at),
        "false_hit_rate": pooled(must, at),
        "false_hit_rate_without_guard": pooled(must, f"{at} no guard"),
        "hit_rate_paraphrases_without_guard": pooled(should, f"{at} no guard"),
    }
    for g in groups:
        key = re.sub(r"[^a-z]+", "_", g.lower()).strip("_")
        figures[f"{key}_rate"] = rates[g][at]
        figures[f"{key}_pairs"] = len(groups[g])
    for entries in (1_000, 10_000, 100_000):
        figures[f"lookup_ms_{entries}"] = lookup_latency(entries, enc.dim, args.repeat)
    columns = (
        ["pair group", "pairs"]
        + [f"hit rate @ {s:g}" for s in thresholds]
        + [f"@ {s:g} no guard" for s in thresholds]
    )
    table = [
        [g, len(groups[g])]
        + [rates[g][f"{s:g}"] for s in thresholds]
        + [rates[g][f"{s:g} no guard"] for s in thresholds]
        for g in groups
    ]
    print(
        f"{'group':36} {'pairs':>5} " + " ".join(f"{s:>6g}" for s in thresholds) + "   (no guard)"
    )
    for row in table:
        k = len(thresholds)
        print(
            f"{row[0]:36} {row[1]:5d} "
            + " ".join(f"{x:6.3f}" for x in row[2 : 2 + k])
            + "   "
            + " ".join(f"{x:6.3f}" for x in row[2 + k :])
        )
    print(
        f"at {at}: paraphrase hit rate {figures['hit_rate_paraphrases']}, false-hit rate "
        f"{figures['false_hit_rate']} (without the guard {figures['false_hit_rate_without_guard']})"
    )
    print(
        "lookup ms (median): "
        + ", ".join(f"{e} entries {figures[f'lookup_ms_{e}']}" for e in (1_000, 10_000, 100_000))
    )
    record(
        "cache",
        title="Semantic cache: hit rate on paraphrases, false-hit rate on questions that differ",
        command="make bench-cache",
        figures=figures,
        tables=[
            {
                "title": "Pairs from the shipped prompts: share of B served A's cached answer",
                "columns": columns,
                "rows": table,
            }
        ],
        notes=f"A hit needs cosine >= similarity on the cache encoder's vectors ({enc.identity}) and, "
        "with the guard, router/core/questions.py finding no difference. Lookup latency: one "
        "context holding that many entries, median of in-process lookups.",
    )


if __name__ == "__main__":
    main()
