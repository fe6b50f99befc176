"""Write notebooks/*.ipynb (outputs stripped) from the cell sources below.

    python scripts/make_notebooks.py

Edit the cells here, not in Jupyter, so the notebooks in git stay reviewable and output-free.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parent.parent / "notebooks"

ROOT_LINE = (
    'ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "config.yaml").is_file())'
)

NB01 = [
    (
        "md",
        """# 01 · Routing data

What a routing dataset says before any router is trained: how much traffic each domain has,
each model's quality and cost, where the small (cheap) models fail, and the **oracle
ceiling** — per prompt, the cheapest model that scores best.

Edit the parameter cell to use your own data (the JSONL format is described in the README,
"Routing data and training").""",
    ),
    (
        "code",
        f"""# Parameters: point DATA at your own JSONL files (one model set at a time).
from pathlib import Path

{ROOT_LINE}
DATA = [ROOT / "data/routing/routellm.jsonl"]
SAMPLE = None  # keep this many random rows (None: all of them)
SEED = 0""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from router import metrics as M
from router.data import domain_of, read_many
from router.evaluate import EvalData, baselines

examples = read_many(DATA)
if SAMPLE and SAMPLE < len(examples):
    pick = np.random.default_rng(SEED).choice(len(examples), SAMPLE, replace=False)
    examples = [examples[i] for i in sorted(pick)]
data = EvalData.from_examples(examples)
print(f"{len(examples)} prompts, models: {data.models}; cheap tier: {data.cheap}")""",
    ),
    (
        "md",
        "## Traffic per domain\n\nThe domain comes from the row's `domain`, else from its `source` (`domains.yaml`).",
    ),
    (
        "code",
        """rows = pd.DataFrame(
    {
        "domain": [domain_of(ex) or "(unlabelled)" for ex in examples],
        "source": [ex.source.split("/")[0] for ex in examples],
    }
)
per_domain = rows["domain"].value_counts()
fig, ax = plt.subplots(figsize=(7, 0.35 * len(per_domain) + 1.2))
per_domain.sort_values().plot.barh(ax=ax, color="tab:blue", label="prompts")
ax.set_xlabel("prompts (count)")
ax.set_ylabel("domain")
ax.set_title(f"Traffic per domain ({len(examples)} prompts)")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
pd.crosstab(rows["domain"], rows["source"])""",
    ),
    (
        "md",
        "## Each model's quality and cost\n\nSingle-model baselines and the oracle, from `router.evaluate.baselines`. Cost is USD per 1,000 prompts.",
    ),
    (
        "code",
        """curves = {c.name: c for c in baselines(data)}
table = pd.DataFrame(
    [
        {
            "model": name.removeprefix("single:"),
            "tier": "oracle" if name == "oracle" else ("cheap" if name[7:] in data.cheap else "large"),
            "quality (mean score)": float(c.quality[0]),
            "cost (USD / 1k prompts)": float(c.cost[0]) * 1000,
        }
        for name, c in curves.items()
        if name.startswith("single:") or name == "oracle"
    ]
).set_index("model")

fig, ax = plt.subplots(figsize=(7, 4.5))
for model, r in table.iterrows():
    marker = "*" if r["tier"] == "oracle" else ("o" if r["tier"] == "cheap" else "s")
    ax.scatter(r["cost (USD / 1k prompts)"], r["quality (mean score)"], marker=marker, s=120,
               label=f"{model} ({r['tier']})", zorder=3)
ax.set_xlabel("cost (USD per 1,000 prompts)")
ax.set_ylabel("quality (mean score, 0-1)")
ax.set_title("Quality and cost of each model, and the oracle")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
table.round(4)""",
    ),
    (
        "md",
        """## Where the small models fail

Per domain: the best cheap model's mean score beside the best large model's, and the share of
prompts where some large model scores higher than every cheap model — the prompts worth
escalating.""",
    ),
    (
        "code",
        """cheap_cols = [data.models.index(m) for m in data.cheap]
large_cols = [j for j in range(len(data.models)) if j not in cheap_cols]
best_cheap = data.scores[:, cheap_cols].max(axis=1)
best_large = data.scores[:, large_cols].max(axis=1) if large_cols else best_cheap
rows["cheap quality"] = best_cheap
rows["large quality"] = best_large
rows["large beats cheap"] = best_large > best_cheap + 1e-12
fail = rows.groupby("domain")[["cheap quality", "large quality", "large beats cheap"]].mean()
fail["prompts"] = rows["domain"].value_counts()
fail = fail.sort_values("large beats cheap")

fig, ax = plt.subplots(figsize=(8, 0.45 * len(fail) + 1.5))
y = np.arange(len(fail))
ax.barh(y - 0.2, fail["cheap quality"], 0.4, label="best cheap model")
ax.barh(y + 0.2, fail["large quality"], 0.4, label="best large model")
ax.scatter(fail["large beats cheap"], y, color="k", marker="x", zorder=3,
           label="share of prompts where large beats cheap")
ax.set_yticks(y, fail.index)
ax.set_xlabel("mean score (0-1) / share of prompts")
ax.set_ylabel("domain")
ax.set_title("Where the cheap tier falls short, per domain")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
fail.round(3)""",
    ),
    (
        "md",
        "## The oracle ceiling\n\nNo router can beat the oracle on this data; the gap between the best single model and the oracle is the room a router has.",
    ),
    (
        "code",
        """choice, q_oracle, c_oracle = M.oracle(data.scores, data.costs)
q_single, c_single = data.scores.mean(axis=0), data.costs.mean(axis=0)
best = int(q_single.argmax())
oracle_large = np.isin(choice, large_cols).mean()
print(f"best single model  {data.models[best]}: quality {q_single[best]:.3f}, "
      f"cost ${c_single[best] * 1000:.2f} per 1k prompts")
print(f"oracle             quality {q_oracle:.3f}, cost ${c_oracle * 1000:.2f} per 1k prompts, "
      f"large models on {oracle_large:.1%} of prompts")
print(f"cheapest model     {data.models[int(c_single.argmin())]}: quality {q_single[c_single.argmin()]:.3f}")""",
    ),
]

NB02 = [
    (
        "md",
        """# 02 · Tune a policy

Train or load a scorer, sweep the escalation threshold, compare the router's cost-quality curve
with the baselines and the oracle, choose an operating point from a target, look at the
per-domain mix there, write the tuned policy into the `policies/` directory the proxy serves,
and route a few prompts with it.

Edit the parameter cell to use your own data, config and target.""",
    ),
    (
        "code",
        f"""# Parameters
import os
import shutil
import tempfile
from pathlib import Path

{ROOT_LINE}
DATA = [ROOT / "data/routing/routellm.jsonl"]
SAMPLE = 600  # random rows used here (None: all; more rows = slower embedding)
SEED = 0
CONFIG = ROOT / "config.yaml"  # the config the proxy serves
POLICY = "balanced"  # the policy to tune
TARGET = "large-share=0.3"  # or "quality=0.95" (share of all-large quality) or "cost-per-1k=2.50"
TUNED_NAME = "tuned"  # written as <policies_dir>/tuned.yaml
TRAIN = False  # False: the config's scorer as it is; True: train a fresh one on DATA
CV = None  # e.g. 5: evaluate with 5-fold cross-validation instead (honest, slower)
# Where the tuned policy goes: the config's own policies_dir, except in CI (env CI set), where
# config.yaml and policies/ are copied to a temporary directory so the repo is not modified.
OUT_DIR = None""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from IPython.display import Image, display

from router.calibrate import calibrate, outcome_matrix, write_policy
from router.config import load_config, load_policies
from router.data import domain_names, domain_of, read_many
from router.evaluate import EvalData, evaluate, plot
from router.router import Router
from router.train import embed_examples, train_scorer

if OUT_DIR is None and os.environ.get("CI"):
    serve_dir = Path(tempfile.mkdtemp(prefix="tuned-config-"))
    shutil.copy(CONFIG, serve_dir / "config.yaml")
    shutil.copytree(CONFIG.parent / load_config(CONFIG).policies_dir, serve_dir / "policies")
    cfg = yaml.safe_load((serve_dir / "config.yaml").read_text())
    cfg["policies_dir"] = "policies"
    if cfg.get("scorer", "default") != "default":  # keep a relative scorer path working
        cfg["scorer"] = str((CONFIG.parent / cfg["scorer"]).resolve())
    (serve_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    SERVE_CONFIG, OUT_DIR = serve_dir / "config.yaml", serve_dir / "policies"
else:
    OUT_DIR = Path(OUT_DIR or CONFIG.parent / load_config(CONFIG).policies_dir)
    SERVE_CONFIG = CONFIG
print("tuned policy will be written to", OUT_DIR)

examples = read_many(DATA)
if SAMPLE and SAMPLE < len(examples):
    pick = np.random.default_rng(SEED).choice(len(examples), SAMPLE, replace=False)
    examples = [examples[i] for i in sorted(pick)]
router = Router.from_config(CONFIG)
X = embed_examples(router.encoder, examples)  # cached on disk ($ROUTER_CACHE_DIR)
data = EvalData.from_examples(examples)
print(f"{len(examples)} prompts, models {data.models}, encoder {router.encoder.identity}")""",
    ),
    (
        "md",
        """## Train or load a scorer

With `TRAIN = False` the config's scorer is used as it is. The shipped scorer was trained on
the shipped data, **so it has seen these prompts and the curve below is optimistic**; set
`CV = 5` for the honest, out-of-fold figure (a fresh scorer per fold), or evaluate on data of
your own.""",
    ),
    (
        "code",
        """if TRAIN:
    scorer = train_scorer(examples, router.encoder)
    router = Router(router.config, router.policies, scorer, router.encoder)
scorer = router.scorer
base_policy = router.policy(POLICY).policy
report = evaluate(data, X, scorer=None if CV else scorer, encoder_identity=router.encoder.identity,
                  policy=base_policy, cv=CV)
summary = report.to_json()
print("mode:", summary["mode"], "| swept parameter:", summary["sweep"])
pd.DataFrame({name: {k: v for k, v in r.items() if k != "curve"}
              for name, r in summary["results"].items()}).T.astype(float).round(3)""",
    ),
    (
        "md",
        "## The cost-quality curve\n\nThe router's sweep of its escalation threshold against every single model, random mixing, kNN and the oracle (`router.evaluate.plot`).",
    ),
    (
        "code",
        """png = Path(tempfile.mkdtemp()) / "curve.png"
plot(report, str(png))  # also returns the matplotlib Figure
display(Image(filename=str(png)))""",
    ),
    (
        "md",
        """## Choose an operating point

`router.calibrate.calibrate` sweeps the live policy's threshold over these prompts with the
catalogue's models and prices, and picks the point that meets `TARGET`. Quality is shown as a
share of sending everything to the large model.""",
    ),
    (
        "code",
        """cal = calibrate(router, POLICY, examples, TARGET, X=X)
pt = cal.point
print(f"{cal.field} = {pt.param:.4f}: quality {pt.quality:.3f} "
      f"({pt.quality / cal.all_large_quality:.1%} of all-large), "
      f"${pt.cost_per_1k:.2f} per 1k requests (all-large ${cal.all_large_cost_per_1k:.2f}), "
      f"large-model share {pt.large_share:.1%}")

share = np.array([c.large_share for c in cal.curve])
rel_q = np.array([c.quality for c in cal.curve]) / cal.all_large_quality
order = np.argsort(share)
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.plot(share[order] * 100, rel_q[order] * 100, label=f"policy '{POLICY}', {cal.field} swept")
ax.scatter([pt.large_share * 100], [pt.quality / cal.all_large_quality * 100], s=120, c="red",
           zorder=3, label=f"chosen point ({TARGET})")
ax.axhline(100, color="grey", ls=":", label="all requests to the large model")
ax.set_xlabel("requests sent to a large model (%)")
ax.set_ylabel("quality (% of all-large quality)")
ax.set_title("Calibration sweep and the chosen operating point")
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()""",
    ),
    (
        "md",
        "## Write the tuned policy\n\n`write_policy` writes the YAML the proxy loads from its `policies_dir`; the router below loads the policies back from there.",
    ),
    (
        "code",
        """path = write_policy(cal, OUT_DIR / f"{TUNED_NAME}.yaml")
print(path.read_text())
# The proxy's config, with its policies loaded from disk again (the tuned one among them); the
# encoder and scorer already loaded are reused (Router.from_config(SERVE_CONFIG) loads its own).
serve_cfg = load_config(SERVE_CONFIG)
policies = load_policies(SERVE_CONFIG.parent / serve_cfg.policies_dir, serve_cfg, domain_names())
tuned_router = Router(serve_cfg, policies, router.scorer, router.encoder)
print("policies served:", sorted(tuned_router.policies))""",
    ),
    (
        "md",
        """## Per-domain mix and quality at that point

Every sampled prompt routed with the tuned policy (`Router.route_many`); quality is the data's
score of the chosen model (or its tier's stand-in, as in calibration).""",
    ),
    (
        "code",
        """texts = [ex.messages if ex.messages is not None else ex.prompt for ex in examples]
decisions = tuned_router.route_many(texts, policy=TUNED_NAME)
compiled = tuned_router.policy(TUNED_NAME)
outcome = outcome_matrix(compiled, examples)
col = {m.name: k for k, m in enumerate(compiled.models)}
routed = pd.DataFrame(
    {
        "domain": [domain_of(ex) or "(unlabelled)" for ex in examples],
        "model": [d.model for d in decisions],
        "large": [d.tier == "large" for d in decisions],
        "quality": [outcome[i, col[d.model]] for i, d in enumerate(decisions)],
        "all-large quality": outcome[:, compiled.large_idx[0]],
    }
)
by_domain = routed.groupby("domain").agg(
    prompts=("model", "size"), large_share=("large", "mean"),
    quality=("quality", "mean"), all_large_quality=("all-large quality", "mean"),
).sort_values("large_share")

fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.4 * len(by_domain) + 1.8), sharey=True)
y = np.arange(len(by_domain))
a1.barh(y, by_domain["large_share"] * 100, color="tab:orange", label="large model")
a1.barh(y, 100 - by_domain["large_share"] * 100, left=by_domain["large_share"] * 100,
        color="tab:blue", label="cheap model")
a1.set_yticks(y, by_domain.index)
a1.set_xlabel("requests (%)")
a1.set_ylabel("domain")
a1.set_title(f"Model mix per domain, policy '{TUNED_NAME}'")
a1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
a2.barh(y - 0.2, by_domain["quality"], 0.4, label=f"'{TUNED_NAME}'")
a2.barh(y + 0.2, by_domain["all_large_quality"], 0.4, label="all to large model")
a2.set_xlabel("quality (mean score, 0-1)")
a2.set_title("Quality per domain")
a2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
fig.tight_layout()
plt.show()
by_domain.round(3)""",
    ),
    (
        "md",
        "## Route a few prompts with it\n\nThe original policy beside the tuned one, on a few prompts (no model is called).",
    ),
    (
        "code",
        """demo = [
    "What is the capital of France?",
    "Prove that there are infinitely many primes of the form 4k + 3.",
    "Write a Python function that merges two sorted lists.",
    "A train leaves at 3 pm at 60 km/h; another at 4 pm at 80 km/h. When does the second catch up?",
    "Summarise the causes of the French Revolution in three sentences.",
]
before = tuned_router.route_many(demo, policy=POLICY)
after = tuned_router.route_many(demo, policy=TUNED_NAME)
pd.DataFrame(
    {
        "prompt": [p[:60] for p in demo],
        "domain": [d.domain for d in after],
        "difficulty": [round(d.difficulty, 3) for d in after],
        "gain": [round(d.gain, 3) for d in after],
        f"{POLICY}: model": [d.model for d in before],
        f"{TUNED_NAME}: model": [d.model for d in after],
        f"{TUNED_NAME}: reason": [d.reason for d in after],
    }
)""",
    ),
]

NB03 = [
    (
        "md",
        """# 03 · The decision log

The proxy writes one SQLite row per request to its decision log (`server.decision_log` in
`config.yaml`, `decisions.db` by default). This notebook reads it: traffic mix over time,
escalation rate, estimated savings, score distributions, and drift of recent scores against
the data the policy was tuned on.

Set `LOG_PATH` to your proxy's log. Left at `None`, a log is produced here by replaying shipped
prompts through the router: each prompt is routed with `Router.route_many` and recorded with the
proxy's own `DecisionLog` class and row fields (no model is called, so no tokens are counted and
costs are the decisions' estimates). The replay spreads its requests over the last
`REPLAY_HOURS` hours so the time plots have something to show.""",
    ),
    (
        "code",
        f"""# Parameters
import os
import tempfile
from pathlib import Path

{ROOT_LINE}
LOG_PATH = None  # your proxy's decisions.db; None: replay shipped prompts into a temporary log
CONFIG = ROOT / "config.yaml"
POLICY = None  # policy for the replay (None: the config's default_policy)
REPLAY_DATA = [ROOT / "data/routing/routellm.jsonl", ROOT / "data/routing/dcrouter.jsonl"]
REPLAY_N = 200
REPLAY_HOURS = 24
# The reference for drift: a sample of the data the policy was tuned on (as in notebook 02).
REFERENCE_DATA = [ROOT / "data/routing/routellm.jsonl"]
REFERENCE_SAMPLE = 600
RECENT_HOURS = 24  # "today": rows this recent are compared with the reference
SEED = 0""",
    ),
    (
        "code",
        """import json
import sqlite3
import time
import uuid

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from router.data import read_many
from router.decision_log import DecisionLog, summarise
from router.router import Router
from router.train import embed_examples

router = Router.from_config(CONFIG)
rng = np.random.default_rng(SEED)""",
    ),
    ("md", "## Produce the log (replay)\n\nSkipped when `LOG_PATH` is set."),
    (
        "code",
        """if LOG_PATH is None:
    LOG_PATH = Path(tempfile.mkdtemp(prefix="decision-log-")) / "decisions.db"
    pool = read_many(REPLAY_DATA)
    replay = [pool[i] for i in rng.choice(len(pool), REPLAY_N, replace=False)]
    log = DecisionLog(LOG_PATH)
    now, batch = time.time(), 20
    for start in range(0, len(replay), batch):
        chunk = replay[start : start + batch]
        msgs = [ex.messages if ex.messages is not None else ex.prompt for ex in chunk]
        for k, d in enumerate(router.route_many(msgs, policy=POLICY)):
            i = start + k
            # The row the proxy writes for a request (router/server/chat.py), minus usage.
            log.record({
                "request_id": uuid.uuid4().hex,
                "ts": now - REPLAY_HOURS * 3600 * (1 - i / len(replay)),
                "key_name": "replay", "requested_model": "router", "status": 200, "stream": False,
                "policy": d.policy, "model": d.model, "tier": d.tier, "domain": d.domain,
                "domain_confidence": d.domain_confidence, "difficulty": d.difficulty,
                "reason": d.reason, "escalated": d.escalated, "fell_back": False,
                "attempts": [], "routing_ms": d.routing_ms, "latency_ms": d.routing_ms,
                "cost_estimate": d.cost_estimate, "large_cost_estimate": d.large_cost_estimate,
                "decision": d.to_dict(),
            })
    log.close()
print("decision log:", LOG_PATH)""",
    ),
    ("md", "## Summary (`router stats`)"),
    (
        "code",
        """stats = summarise(LOG_PATH)
for label, value in stats.rows():
    print(f"{label:20} {value}")""",
    ),
    (
        "code",
        """with sqlite3.connect(f"file:{LOG_PATH}?mode=ro", uri=True) as con:
    log_df = pd.read_sql_query("SELECT * FROM decisions ORDER BY ts", con)
log_df["time"] = pd.to_datetime(log_df["ts"], unit="s")
log_df["gain"] = [json.loads(d).get("gain") if d else None for d in log_df["decision"]]
ok = log_df[log_df["status"].fillna(0) < 400]
print(f"{len(log_df)} rows, {len(ok)} answered, from {log_df['time'].min()} to {log_df['time'].max()} (UTC)")
log_df[["time", "policy", "model", "tier", "domain", "difficulty", "gain", "escalated", "cost_estimate"]].tail()""",
    ),
    ("md", "## Traffic mix over time"),
    (
        "code",
        """span_h = (log_df["ts"].max() - log_df["ts"].min()) / 3600
freq = "1h" if span_h <= 48 else "1D"
unit = "hour" if freq == "1h" else "day"
by_model = ok.groupby([pd.Grouper(key="time", freq=freq), "model"]).size().unstack(fill_value=0)
by_domain = ok.groupby([pd.Grouper(key="time", freq=freq), ok["domain"].fillna("(none)")]).size().unstack(fill_value=0)

fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
by_model.plot.area(ax=a1, linewidth=0)
a1.set_ylabel(f"requests per {unit}")
a1.set_title("Requests per answering model")
a1.legend(title="model", fontsize=8, loc="upper left")
by_domain.plot.area(ax=a2, linewidth=0, cmap="tab20")
a2.set_ylabel(f"requests per {unit}")
a2.set_xlabel("time (UTC)")
a2.set_title("Requests per domain")
a2.legend(title="domain", fontsize=7, loc="upper left", ncol=3)
fig.tight_layout()
plt.show()""",
    ),
    (
        "md",
        "## Escalation rate and estimated savings\n\nSavings compare each request's estimated cost with its cost had the policy's large model answered (`cost_estimate` vs `large_cost_estimate`).",
    ),
    (
        "code",
        """per_t = ok.groupby(pd.Grouper(key="time", freq=freq)).agg(
    requests=("model", "size"), escalated=("escalated", "mean"),
    cost=("cost_estimate", "sum"), large_cost=("large_cost_estimate", "sum"),
)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
a1.plot(per_t.index, per_t["escalated"] * 100, marker="o", label=f"escalation rate per {unit}")
a1.axhline(stats.escalation_rate * 100, color="grey", ls=":", label="overall")
a1.set_ylabel("requests escalated (%)")
a1.set_xlabel("time (UTC)")
a1.set_title("Escalation rate")
a1.legend()
a2.plot(per_t.index, per_t["large_cost"].cumsum(), label="all to the large model")
a2.plot(per_t.index, per_t["cost"].cumsum(), label="as routed")
a2.set_ylabel("cumulative estimated cost (USD)")
a2.set_xlabel("time (UTC)")
a2.set_title(f"Estimated savings: {stats.savings:.1%}")
a2.legend()
for a in (a1, a2):
    a.tick_params(axis="x", rotation=30)
fig.tight_layout()
plt.show()""",
    ),
    ("md", "## Score distributions"),
    (
        "code",
        """fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, col, label in zip(axes, ["difficulty", "gain", "domain_confidence"],
                          ["difficulty (P(cheap model fails))", "gain (predicted benefit of escalating)",
                           "domain confidence (top domain probability)"]):
    for esc, part in ok.groupby("escalated"):
        ax.hist(part[col].dropna(), bins=20, range=(0, 1), alpha=0.6,
                label="escalated" if esc else "not escalated")
    ax.set_xlabel(label)
    ax.set_ylabel("requests (count)")
    ax.set_title(col.replace("_", " "))
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """## Drift: recent scores against the tuning data

The reference is the scorer's predictions on a sample of `REFERENCE_DATA`; "today" is the
log's last `RECENT_HOURS` hours. Two statistics per score: the Kolmogorov–Smirnov distance
(with its p-value) and the population stability index over the reference's deciles (rule of
thumb: below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 a shift worth re-tuning for).""",
    ),
    (
        "code",
        """ref = read_many(REFERENCE_DATA)
ref = [ref[i] for i in sorted(np.random.default_rng(SEED).choice(len(ref), min(REFERENCE_SAMPLE, len(ref)), replace=False))]
X_ref = embed_examples(router.encoder, ref)  # cached on disk: notebook 02 embedded the same sample
ref_batch = router.scorer.predict(X_ref, [ex.text() for ex in ref])
recent = ok[ok["ts"] >= ok["ts"].max() - RECENT_HOURS * 3600]


def psi(reference, current, bins=10):
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(reference, edges)[0] / len(reference) + 1e-4
    q = np.histogram(current, edges)[0] / len(current) + 1e-4
    return float(np.sum((q - p) * np.log(q / p)))


drift = []
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, name, reference in zip(axes, ["difficulty", "gain"], [ref_batch.difficulty, ref_batch.gain]):
    current = recent[name].dropna().to_numpy()
    ks = ks_2samp(reference, current)
    drift.append({"score": name, "reference mean": reference.mean(), "recent mean": current.mean(),
                  "KS": ks.statistic, "KS p-value": ks.pvalue, "PSI": psi(reference, current)})
    for values, label in ((reference, f"reference ({len(reference)} prompts)"), (current, f"recent ({len(current)} requests)")):
        ax.hist(values, bins=25, range=(0, 1), density=True, histtype="step", lw=2, label=label)
    ax.set_xlabel(f"{name} (0-1)")
    ax.set_ylabel("density")
    ax.set_title(f"{name}: KS {ks.statistic:.2f}, PSI {drift[-1]['PSI']:.2f}")
    ax.legend(fontsize=8)
fig.suptitle("Score drift: recent traffic vs the tuning data")
fig.tight_layout()
plt.show()
pd.DataFrame(drift).set_index("score").round(4)""",
    ),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[new_markdown_cell(s) if k == "md" else new_code_cell(s) for k, s in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, cells in (
        ("01_routing_data.ipynb", NB01),
        ("02_tune_policy.ipynb", NB02),
        ("03_decision_log.ipynb", NB03),
    ):
        nbformat.write(build(cells), OUT / name)
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
