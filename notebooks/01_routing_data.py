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
# # 01 · Routing data
#
# What a routing dataset says before any router is trained: how much traffic each domain has,
# each model's quality and cost, where the small (cheap) models fail, and the **oracle
# ceiling** — per prompt, the cheapest model that scores best.
#
# Edit the parameter cell to use your own data (the JSONL format is described in the README,
# "Routing data and training").

# %%
# Parameters: point DATA at your own JSONL files (one model set at a time).
from pathlib import Path

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "config.yaml").is_file())
DATA = [ROOT / "data/routing/routellm.jsonl"]
SAMPLE = None  # keep this many random rows (None: all of them)
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from router.core.data import domain_of, read_many
from router.evaluation import metrics as M
from router.evaluation.evaluate import EvalData, baselines

examples = read_many(DATA)
if SAMPLE and SAMPLE < len(examples):
    pick = np.random.default_rng(SEED).choice(len(examples), SAMPLE, replace=False)
    examples = [examples[i] for i in sorted(pick)]
data = EvalData.from_examples(examples)
print(f"{len(examples)} prompts, models: {data.models}; cheap tier: {data.cheap}")
# Quality and cost compare the models on the rows that score every one of them (`data.kept`).
if note := data.dropped_note():
    print("note:", note)

# %% [markdown]
# ## Traffic per domain
#
# The domain comes from the row's `domain`, else from its `source` (`domains.yaml`).

# %%
rows = pd.DataFrame(
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
pd.crosstab(rows["domain"], rows["source"])

# %% [markdown]
# ## Each model's quality and cost
#
# Single-model baselines and the oracle, from `router.evaluation.evaluate.baselines`. Cost is USD per 1,000 prompts.

# %%
curves = {c.name: c for c in baselines(data)}
table = pd.DataFrame(
    [
        {
            "model": name.removeprefix("single:"),
            "tier": (
                "oracle" if name == "oracle" else ("cheap" if name[7:] in data.cheap else "large")
            ),
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
    ax.scatter(
        r["cost (USD / 1k prompts)"],
        r["quality (mean score)"],
        marker=marker,
        s=120,
        label=f"{model} ({r['tier']})",
        zorder=3,
    )
ax.set_xlabel("cost (USD per 1,000 prompts)")
ax.set_ylabel("quality (mean score, 0-1)")
ax.set_title("Quality and cost of each model, and the oracle")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
table.round(4)

# %% [markdown]
# ## Where the small models fail
#
# Per domain: the best cheap model's mean score beside the best large model's, and the share of
# prompts where some large model scores higher than every cheap model — the prompts worth
# escalating.

# %%
cheap_cols = [data.models.index(m) for m in data.cheap]
large_cols = [j for j in range(len(data.models)) if j not in cheap_cols]
best_cheap = data.scores[:, cheap_cols].max(axis=1)
best_large = data.scores[:, large_cols].max(axis=1) if large_cols else best_cheap
scored = rows.iloc[data.kept].copy()  # the rows that score every model
scored["cheap quality"] = best_cheap
scored["large quality"] = best_large
scored["large beats cheap"] = best_large > best_cheap + 1e-12
fail = scored.groupby("domain")[["cheap quality", "large quality", "large beats cheap"]].mean()
fail["prompts"] = scored["domain"].value_counts()
fail = fail.sort_values("large beats cheap")

fig, ax = plt.subplots(figsize=(8, 0.45 * len(fail) + 1.5))
y = np.arange(len(fail))
ax.barh(y - 0.2, fail["cheap quality"], 0.4, label="best cheap model")
ax.barh(y + 0.2, fail["large quality"], 0.4, label="best large model")
ax.scatter(
    fail["large beats cheap"],
    y,
    color="k",
    marker="x",
    zorder=3,
    label="share of prompts where large beats cheap",
)
ax.set_yticks(y, fail.index)
ax.set_xlabel("mean score (0-1) / share of prompts")
ax.set_ylabel("domain")
ax.set_title("Where the cheap tier falls short, per domain")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
fail.round(3)

# %% [markdown]
# ## The oracle ceiling
#
# No router can beat the oracle on this data; the gap between the best single model and the oracle is the room a router has.

# %%
choice, q_oracle, c_oracle = M.oracle(data.scores, data.costs)
q_single, c_single = data.scores.mean(axis=0), data.costs.mean(axis=0)
best = int(q_single.argmax())
oracle_large = np.isin(choice, large_cols).mean()
print(
    f"best single model  {data.models[best]}: quality {q_single[best]:.3f}, "
    f"cost ${c_single[best] * 1000:.2f} per 1k prompts"
)
print(
    f"oracle             quality {q_oracle:.3f}, cost ${c_oracle * 1000:.2f} per 1k prompts, "
    f"large models on {oracle_large:.1%} of prompts"
)
print(
    f"cheapest model     {data.models[int(c_single.argmin())]}: quality {q_single[c_single.argmin()]:.3f}"
)
