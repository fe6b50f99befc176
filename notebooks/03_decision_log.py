# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The decision log
#
# The proxy writes one SQLite row per request to its decision log (`server.decision_log` in
# `config.yaml`, `decisions.db` by default). This notebook reads it: traffic mix over time,
# escalation rate, estimated savings, score distributions, and drift of recent scores against
# the data the policy was tuned on.
#
# Set `LOG_PATH` to your proxy's log. Left at `None`, a log is produced here by replaying shipped
# prompts through the router: each prompt is routed with `Router.route_many` and recorded with the
# proxy's own `DecisionLog` and row builder, `decision_row` (no model is called, so no tokens are counted and
# costs are the decisions' estimates). The replay spreads its requests over the last
# `REPLAY_HOURS` hours so the time plots have something to show.

# %%
# Parameters
import tempfile
from pathlib import Path

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "config.yaml").is_file())
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
SEED = 0

# %%
import json
import sqlite3
import time
import uuid

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from router.core.data import read_many
from router.evaluation.train import embed_examples
from router.sdk.router import Router
from router.serving.decision_log import decision_row, open_decision_log, summarise

router = Router.from_config(CONFIG)
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## Produce the log (replay)
#
# Skipped when `LOG_PATH` is set.

# %%
if LOG_PATH is None:
    LOG_PATH = Path(tempfile.mkdtemp(prefix="decision-log-")) / "decisions.db"
    pool = read_many(REPLAY_DATA)
    replay = [pool[i] for i in rng.choice(len(pool), REPLAY_N, replace=False)]
    log = open_decision_log(LOG_PATH, encoder=router)
    now, batch = time.time(), 20
    # The drift alarm sums the replay up in one warning, if a signal went past its threshold
    # (the section at the end has the whole picture), not a warning per signal and crossing.
    with router.drift.batch():
        for start in range(0, len(replay), batch):
            chunk = replay[start : start + batch]
            msgs = [ex.messages if ex.messages is not None else ex.prompt for ex in chunk]
            for k, d in enumerate(router.route_many(msgs, policy=POLICY)):
                i = start + k
                # The row the proxy writes for a request (the same builder), minus usage.
                log.record(
                    decision_row(
                        d,
                        "req_" + uuid.uuid4().hex,
                        ts=now - REPLAY_HOURS * 3600 * (1 - i / len(replay)),
                        # stored as its int8 embedding
                        routing_text=router.text_of(msgs[k]).strip(),
                        key_name="replay",
                        requested_model="router",
                        stream=False,
                        latency_ms=d.routing_ms,
                    )
                )
    log.close()
print("decision log:", LOG_PATH)

# %% [markdown]
# ## Summary (`router stats`)

# %%
stats = summarise(LOG_PATH)
for label, value in stats.rows():
    print(f"{label:20} {value}")

# %%
with sqlite3.connect(f"file:{LOG_PATH}?mode=ro", uri=True) as con:
    log_df = pd.read_sql_query("SELECT * FROM decisions ORDER BY ts", con)
log_df["time"] = pd.to_datetime(log_df["ts"], unit="s")
log_df["gain"] = [json.loads(d).get("gain") if d else None for d in log_df["decision"]]
ok = log_df[log_df["status"].fillna(0) < 400]
print(
    f"{len(log_df)} rows, {len(ok)} answered, from {log_df['time'].min()} to {log_df['time'].max()} (UTC)"
)
log_df[
    [
        "time",
        "policy",
        "model",
        "tier",
        "domain",
        "difficulty",
        "gain",
        "escalated",
        "cost_estimate",
    ]
].tail()

# %% [markdown]
# ## Traffic mix over time

# %%
span_h = (log_df["ts"].max() - log_df["ts"].min()) / 3600
freq = "1h" if span_h <= 48 else "1D"
unit = "hour" if freq == "1h" else "day"
by_model = ok.groupby([pd.Grouper(key="time", freq=freq), "model"]).size().unstack(fill_value=0)
by_domain = (
    ok.groupby([pd.Grouper(key="time", freq=freq), ok["domain"].fillna("(none)")])
    .size()
    .unstack(fill_value=0)
)

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
plt.show()

# %% [markdown]
# ## Escalation rate and estimated savings
#
# Savings compare each request's estimated cost with its cost had the policy's large model answered (`cost_estimate` vs `large_cost_estimate`).

# %%
per_t = ok.groupby(pd.Grouper(key="time", freq=freq)).agg(
    requests=("model", "size"),
    escalated=("escalated", "mean"),
    cost=("cost_estimate", "sum"),
    large_cost=("large_cost_estimate", "sum"),
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
plt.show()

# %% [markdown]
# ## Score distributions

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, col, label in zip(
    axes,
    ["difficulty", "gain", "domain_confidence"],
    [
        "difficulty (P(cheap model fails))",
        "gain (predicted benefit of escalating)",
        "domain confidence (top domain probability)",
    ],
    strict=True,
):
    for esc, part in ok.groupby("escalated"):
        ax.hist(
            part[col].dropna(),
            bins=20,
            range=(0, 1),
            alpha=0.6,
            label="escalated" if esc else "not escalated",
        )
    ax.set_xlabel(label)
    ax.set_ylabel("requests (count)")
    ax.set_title(col.replace("_", " "))
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Drift: recent scores against the tuning data
#
# The reference is the scorer's predictions on a sample of `REFERENCE_DATA`; "today" is the
# log's last `RECENT_HOURS` hours. Two statistics per score: the Kolmogorov–Smirnov distance
# (with its p-value) and the population stability index over the reference's deciles (rule of
# thumb: below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 a shift worth re-tuning for).

# %%
ref = read_many(REFERENCE_DATA)
ref = [
    ref[i]
    for i in sorted(
        np.random.default_rng(SEED).choice(len(ref), min(REFERENCE_SAMPLE, len(ref)), replace=False)
    )
]
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
for ax, name, reference in zip(
    axes, ["difficulty", "gain"], [ref_batch.difficulty, ref_batch.gain], strict=True
):
    current = recent[name].dropna().to_numpy()
    ks = ks_2samp(reference, current)
    drift.append(
        {
            "score": name,
            "reference mean": reference.mean(),
            "recent mean": current.mean(),
            "KS": ks.statistic,
            "KS p-value": ks.pvalue,
            "PSI": psi(reference, current),
        }
    )
    for values, label in (
        (reference, f"reference ({len(reference)} prompts)"),
        (current, f"recent ({len(current)} requests)"),
    ):
        ax.hist(values, bins=25, range=(0, 1), density=True, histtype="step", lw=2, label=label)
    ax.set_xlabel(f"{name} (0-1)")
    ax.set_ylabel("density")
    ax.set_title(f"{name}: KS {ks.statistic:.2f}, PSI {drift[-1]['PSI']:.2f}")
    ax.legend(fontsize=8)
fig.suptitle("Score drift: recent traffic vs the tuning data")
fig.tight_layout()
plt.show()
pd.DataFrame(drift).set_index("score").round(4)

# %% [markdown]
# ## Drift alarm: PSI of the log against the scorer's training data
#
# The proxy's drift alarm (`router/core/drift.py`, `drift:` in `config.yaml`) compares the last
# `drift.window` decisions with the distributions the scorer recorded when it was trained
# (domain shares; difficulty and gain over the training deciles) by the population stability
# index, and logs a warning past `drift.threshold`; `/metrics` shows `router_drift_psi`. Here the
# same computation runs over the log: PSI of each sliding window of rows, per signal. A scorer
# saved before it recorded its training distributions has none: the reference then comes from
# its predictions on the tuning sample above (the same binning).
#
# PSI over n requests has a noise floor of roughly (bins − 1) / n even without any shift (about
# 0.1 for 100 requests over 10 bins, 0.01 for 1,000): the alarm's window should be large
# enough for that to sit well below its threshold. The line printed first sums the windows up:
# which signals went past the threshold, in which windows, by how much (a log shorter than the
# window is one window of all its rows).

# %%
from router.core.drift import DriftMonitor, reference_distributions, summarise_windows

training = getattr(router.scorer, "training_distributions_", None)
if training is None:
    print(
        "this scorer recorded no training distributions (retrain it); reference: the tuning sample"
    )
    training = reference_distributions(
        router.scorer.domains_,
        ref_batch.domain_probs.argmax(axis=1),
        ref_batch.difficulty,
        ref_batch.gain,
    )
window = min(router.config.drift.window, max(100, len(ok) // 2), len(ok))
step = max(1, window // 5)
rows = ok.reset_index(drop=True)
series = []
for end in range(window, len(rows) + 1, step):
    # One monitor per window, never checked (no warnings here): only its PSI is read.
    mon = DriftMonitor(training, window=window, min_samples=1, check_every=10**9)
    for r in rows.iloc[end - window : end].itertuples():
        mon.observe(r.domain, r.difficulty, r.gain)
    series.append({"time": rows["time"].iloc[end - 1], **mon.scores()})
psi_df = pd.DataFrame(series).set_index("time")
ends = [f"the window ending {t:%Y-%m-%d %H:%M}" for t in psi_df.index]
windows = zip(ends, psi_df.to_dict("records"), strict=True)
print(
    f"drift alarm over windows of {window} requests:",
    summarise_windows(windows, router.config.drift.threshold),
)

fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4), width_ratios=[3, 2])
for signal in ("domain", "difficulty", "gain"):
    a1.plot(psi_df.index, psi_df[signal], marker=".", label=signal)
a1.axhline(router.config.drift.threshold, color="red", ls="--", label="warning threshold")
a1.set_ylabel(f"PSI over the last {window} requests")
a1.set_xlabel("time (UTC)")
a1.set_title("Drift of live scores vs the training data")
a1.tick_params(axis="x", rotation=30)
a1.legend(fontsize=8)
labels = training["domain"]["labels"]
train_share = np.array(training["domain"]["counts"]) / sum(training["domain"]["counts"])
live_share = rows["domain"].value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
xs = np.arange(len(labels))
a2.bar(xs - 0.2, train_share, 0.4, label="training data")
a2.bar(xs + 0.2, live_share, 0.4, label="log")
a2.set_xticks(xs, labels, rotation=60, fontsize=8)
a2.set_ylabel("share of requests")
a2.set_title("Predicted domains")
a2.legend(fontsize=8)
fig.tight_layout()
plt.show()
psi_df.tail().round(3)
