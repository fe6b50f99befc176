"""The learning loop end to end, on loopback servers only:

1. the proxy serves a few hundred requests from a shifted distribution (mostly legal questions,
   which the public training data hardly has); the cheap model fails on every one of them;
2. the shadow judge (a loopback model) grades the cheap and the large answer of each request;
3. `router retrain` refuses a candidate trained on corrupted outcomes (the gate), then promotes
   one trained on the real ones, and asks the proxy to reload;
4. the proxy reloads while clients keep sending requests (none fails), and legal questions are
   now escalated while the rest still go to the cheap model. The probes come from templates
   and things the traffic never used (a near-copy would only test memory).
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from router.cli import app as cli
from router.core.data import Example, read_many
from router.core.scorer import Scorer
from router.learning.retrain import read_manifest, retrain
from tests.conftest import ROOT
from tests.learning import (
    ADMIN_KEY,
    chat,
    model,
    router_for,
    serve,
    wait_for,
    write_config,
)

CHEAP_PROFILE = "mistralai/Mixtral-8x7B-Instruct-v0.1"
LARGE_PROFILE = "gpt-4-1106-preview"

LAW = [
    "Under contract law, is an oral agreement to sell {x} enforceable?",
    "In tort law, who is liable when {x} causes an injury on a neighbour's land?",
    "Explain how the law treats a lease of {x} signed by a minor.",
    "Under criminal law, is taking {x} by mistake a theft?",
    "What does property law say about a fence around {x} built over the boundary?",
    "Under employment law, can an employer dismiss someone for refusing to move {x}?",
]
OTHER = [
    "What is {n} times {m}?",
    "Write a short poem about {x}.",
    "Write a Python function that counts the {x} in a list.",
    "Why does {x} float on water?",
    "Give me three synonyms for {x}.",
]
THINGS = [
    "a bicycle", "an old piano", "a boat", "a painting", "a garden shed", "a horse",
    "a laptop", "a vintage car", "a parcel of land", "a greenhouse", "a dog", "a tractor",
]  # fmt: skip


# Probes: templates and things the traffic never used, so a promoted scorer must generalise
# to legal questions rather than recognise near-copies of its training prompts.
LAW_PROBES = [
    "Is a verbal promise to lend {x} binding under contract law?",
    "Under the law of negligence, is a landlord liable if {x} injures a tenant?",
    "What does inheritance law say about {x} left to two heirs?",
    "Can the police seize {x} without a warrant under criminal procedure law?",
    "Under consumer protection law, may a buyer return {x} after thirty days?",
    "Does copyright law protect a photograph of {x}?",
]
OTHER_PROBES = [
    "What is {n} plus {m}?",
    "Describe {x} in three words.",
    "Write a haiku about {x}.",
    "How heavy is {x}, roughly?",
    "Sort these numbers: {n}, {m}, 7.",
]
PROBE_THINGS = [
    "a sailboat", "a violin", "a wristwatch", "a sculpture", "a barn", "a pony",
    "a camera", "a motorbike", "an orchard", "a caravan", "a cat", "a combine harvester",
]  # fmt: skip


def prompts(
    n: int, law_share: float, seed: int, law=LAW, other=OTHER, things=THINGS, suffix=True
) -> list[tuple[str, bool]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        law_q = rng.random() < law_share
        tpl = rng.choice(law if law_q else other)
        text = tpl.format(x=rng.choice(things), n=rng.randint(2, 99), m=rng.randint(2, 99))
        out.append((f"{text} (case {seed}-{i})" if suffix else text, law_q))
    return out


def probes(n: int, seed: int) -> list[tuple[str, bool]]:
    items = prompts(4 * n, 0.5, seed, LAW_PROBES, OTHER_PROBES, PROBE_THINGS, suffix=False)
    law = list(dict.fromkeys(p for p in items if p[1]))[:n]
    other = list(dict.fromkeys(p for p in items if not p[1]))[:n]
    return law + other


def test_probes_share_no_template_or_thing_with_the_traffic():
    def skeleton(text: str) -> str:
        for x in THINGS + PROBE_THINGS:
            text = text.replace(x, "{x}")
        return text.split(" (case ")[0]

    traffic = {skeleton(t) for t, _ in prompts(400, 0.6, seed=1)}
    items = probes(20, seed=2)
    assert len({t for t, _ in items}) == 40
    probe = {skeleton(t) for t, _ in items}
    assert not traffic & probe
    assert not set(THINGS) & set(PROBE_THINGS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, upstream, router):
    """A small scorer trained on 160 public rows, and a config serving it through the proxy."""
    d = tmp_path_factory.mktemp("e2e")
    rows = read_many([ROOT / "data" / "routing" / "routellm.jsonl"])
    rng = random.Random(0)
    old = [r for r in rng.sample(rows, 400) if len(r.scores) == 2][:160]
    old_path = d / "old.jsonl"
    old_path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in old))
    X = router.encoder.encode([r.text() for r in old])
    Scorer().fit(X, old, router.encoder.identity).save(d / "base", extra={"trained_on": []})
    models = [
        # Fails on legal questions: answers "I don't know." when the prompt says "law".
        model("cheap", "dunno-law", upstream.base_url, profile=CHEAP_PROFILE),
        model("large", "large", upstream.base_url, tier="large", profile=LARGE_PROFILE),
        model("judge", "judge", upstream.base_url),
    ]
    cfg = write_config(
        d,
        upstream.base_url,
        models=models,
        scorer="base",
        server={"admin_key": ADMIN_KEY, "keys_env": None},
        policies={
            "balanced": {
                "default": ["cheap"],
                "large": ["large"],
                "escalation": {"max_gain": 0.5},
            }
        },
        shadow={"rate": 1.0, "judge": "judge", "max_usd_per_day": 10.0, "workers": 4},
    )
    return cfg, old_path


def large_share(client, items) -> float:
    tiers = []
    for text, _ in items:
        r = client.post(
            "/v1/route", json={"model": "router", "messages": [{"role": "user", "content": text}]}
        )
        assert r.status_code == 200, r.text
        tiers.append(r.json()["tier"] == "large")
    return sum(tiers) / len(tiers)


def swap_tiers(rows: list[Example]) -> list[Example]:
    """An unhelpful candidate's training rows: the cheap and large outcomes swapped."""
    out = []
    for ex in rows:
        s = dict(ex.scores)
        if CHEAP_PROFILE in s and LARGE_PROFILE in s:
            s[CHEAP_PROFILE], s[LARGE_PROFILE] = s[LARGE_PROFILE], s[CHEAP_PROFILE]
        out.append(dataclasses.replace(ex, scores=s, extra=dict(ex.extra)))
    return out


def test_shadow_labels_retrain_promotes_and_reload_changes_decisions(setup, router, monkeypatch):
    cfg, old_path = setup
    proxy = serve(router_for(cfg))
    try:
        traffic = prompts(160, law_share=0.6, seed=1)
        probe = probes(20, seed=2)
        probe_law = [p for p in probe if p[1]]
        probe_other = [p for p in probe if not p[1]]
        assert len(probe_law) == len(probe_other) == 20
        with httpx.Client(base_url=proxy.url, timeout=120) as c:
            law_before = large_share(c, probe_law)
            other_before = large_share(c, probe_other)
            assert law_before <= 0.5, law_before  # the public prior does not escalate them

            # 1-2. Traffic from four clients; every answered request is shadowed and judged.
            statuses: list[int] = []

            def send(items):
                with httpx.Client(base_url=proxy.url, timeout=120) as cc:
                    for text, _ in items:
                        statuses.append(chat(cc, text).status_code)

            threads = [threading.Thread(target=send, args=(traffic[k::4],)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            assert statuses.count(200) == len(traffic)
            shadow = proxy.app.state.live.shadow
            wait_for(
                lambda: shadow.judged + shadow.failed >= len(traffic),
                timeout=180,
                what="every request judged",
            )
            assert shadow.failed == 0, shadow.last_error
            proxy.decision_log.flush()

            # 3a. A candidate trained on corrupted outcomes is refused by the gate.
            refused = retrain(cfg, [old_path], transform=swap_tiers, min_new=20)
            assert not refused.promoted and "worse" in refused.reason
            manifest = read_manifest(cfg.parent / "scorers")
            assert manifest["current"] == "v0001"  # still the scorer serving before
            assert yaml.safe_load(cfg.read_text())["scorer"] == "base"  # not pointed anywhere new

            # 3b-4. `router retrain` promotes a useful one and reloads the proxy, while
            # clients keep sending requests.
            stop = threading.Event()
            during: list[int] = []

            def keep_sending():
                with httpx.Client(base_url=proxy.url, timeout=120) as cc:
                    i = 0
                    while not stop.is_set():
                        during.append(chat(cc, f"What is {i} plus 1?").status_code)
                        i += 1

            background = [threading.Thread(target=keep_sending) for _ in range(2)]
            for t in background:
                t.start()
            before = c.get("/ready").json()["versions"]
            monkeypatch.setenv("ROUTER_ADMIN_KEY", ADMIN_KEY)
            result = CliRunner().invoke(
                cli,
                [
                    "retrain",
                    "--config",
                    str(cfg),
                    "--data",
                    str(old_path),
                    "--reload",
                    proxy.url,
                ],
            )
            assert result.exit_code == 0, result.output
            assert "promoted" in result.output and "/admin/reload: 200" in result.output
            after = c.get("/ready").json()["versions"]
            n = len(during)
            wait_for(lambda: len(during) >= n + 4, what="requests after the reload")
            stop.set()
            for t in background:
                t.join(120)
            assert during and set(during) == {200}
            assert after["scorer"]["hash"] != before["scorer"]["hash"]
            assert after["scorer"]["version"] == read_manifest(cfg.parent / "scorers")["current"]

            # Legal questions now escalate; the rest mostly still goes to the cheap model.
            law_after = large_share(c, probe_law)
            other_after = large_share(c, probe_other)
            assert law_after >= 0.8 and law_after >= law_before + 0.4, (law_before, law_after)
            assert other_after <= max(0.3, other_before + 0.1), (other_before, other_after)
    finally:
        proxy.stop()
