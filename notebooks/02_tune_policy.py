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
# # 02 · Tune a policy
#
# Train or load a scorer, sweep the escalation threshold, compare the router's cost-quality curve
# with the baselines and the oracle, choose an operating point from a target, look at the
# per-domain mix there, write the tuned policy into the `policies/` directory the proxy serves,
# and route a few prompts with it.
#
# Edit the parameter cell to use your own data, config and target.

# %%
# Parameters
import os
import shutil
import tempfile
from pathlib import Path

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "config.yaml").is_file())
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
OUT_DIR = None

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from IPython.display import Image, display

from router.core.config import load_config, load_policies
from router.core.data import domain_names, domain_of, read_many
from router.evaluation.calibrate import calibrate, measured_rows, outcome_matrix, write_policy
from router.evaluation.evaluate import EvalData, evaluate, plot
from router.evaluation.train import embed_examples, train_scorer
from router.sdk.router import Router

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
data = EvalData.from_examples(examples)  # the rows that score every model (`data.kept`)
print(f"{len(examples)} prompts, models {data.models}, encoder {router.encoder.identity}")
if note := data.dropped_note():
    print("note:", note)

# %% [markdown]
# ## Train or load a scorer
#
# With `TRAIN = False` the config's scorer is used as it is. The shipped scorer was trained on
# the shipped data, **so it has seen these prompts and the curve below is optimistic**; set
# `CV = 5` for the honest, out-of-fold figure (a fresh scorer per fold), or evaluate on data of
# your own.

# %%
if TRAIN:
    scorer = train_scorer(examples, router.encoder)
    router = Router(router.config, router.policies, scorer, router.encoder)
scorer = router.scorer
base_policy = router.policy(POLICY).policy
report = evaluate(
    data,
    X[data.kept],
    scorer=None if CV else scorer,
    encoder_identity=router.encoder.identity,
    policy=base_policy,
    cv=CV,
)
summary = report.to_json()
print("mode:", summary["mode"], "| swept parameter:", summary["sweep"])
pd.DataFrame(
    {name: {k: v for k, v in r.items() if k != "curve"} for name, r in summary["results"].items()}
).T.astype(float).round(3)

# %% [markdown]
# ## The cost-quality curve
#
# The router's sweep of its escalation threshold against every single model, random mixing, kNN and the oracle (`router.evaluation.evaluate.plot`).

# %%
png = Path(tempfile.mkdtemp()) / "curve.png"
plot(report, str(png))  # also returns the matplotlib Figure
display(Image(filename=str(png)))

# %% [markdown]
# ## Choose an operating point
#
# `router.evaluation.calibrate.calibrate` sweeps the live policy's threshold over these prompts with the
# catalogue's models and prices, and picks the point that meets `TARGET`. Quality is shown as a
# share of sending everything to the large model.

# %%
cal = calibrate(router, POLICY, examples, TARGET, X=X)
pt = cal.point
if cal.dropped:
    print(
        f"note: {cal.dropped} of {len(examples)} rows left out: each lacks the score of a "
        f"cheap model of {POLICY} that the data scores elsewhere, or of every large model"
    )
if cal.stood_in:
    print(
        f"note: the data never scores {', '.join(cal.stood_in)}: stood in for by the mean "
        "of each row's cheap models"
    )
print(
    f"{cal.field} = {pt.param:.4f}: quality {pt.quality:.3f} "
    f"({pt.quality / cal.all_large_quality:.1%} of all-large), "
    f"${pt.cost_per_1k:.2f} per 1k requests (all-large ${cal.all_large_cost_per_1k:.2f}), "
    f"large-model share {pt.large_share:.1%}"
)

share = np.array([c.large_share for c in cal.curve])
rel_q = np.array([c.quality for c in cal.curve]) / cal.all_large_quality
order = np.argsort(share)
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.plot(share[order] * 100, rel_q[order] * 100, label=f"policy '{POLICY}', {cal.field} swept")
ax.scatter(
    [pt.large_share * 100],
    [pt.quality / cal.all_large_quality * 100],
    s=120,
    c="red",
    zorder=3,
    label=f"chosen point ({TARGET})",
)
ax.axhline(100, color="grey", ls=":", label="all requests to the large model")
ax.set_xlabel("requests sent to a large model (%)")
ax.set_ylabel("quality (% of all-large quality)")
ax.set_title("Calibration sweep and the chosen operating point")
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Write the tuned policy
#
# `write_policy` writes the YAML the proxy loads from its `policies_dir`; the router below loads the policies back from there.

# %%
path = write_policy(cal, OUT_DIR / f"{TUNED_NAME}.yaml")
print(path.read_text())
# The proxy's config, with its policies loaded from disk again (the tuned one among them); the
# encoder and scorer already loaded are reused (Router.from_config(SERVE_CONFIG) loads its own).
serve_cfg = load_config(SERVE_CONFIG)
policies = load_policies(SERVE_CONFIG.parent / serve_cfg.policies_dir, serve_cfg, domain_names())
tuned_router = Router(serve_cfg, policies, router.scorer, router.encoder)
print("policies served:", sorted(tuned_router.policies))

# %% [markdown]
# ## Per-domain mix and quality at that point
#
# Every sampled prompt that calibration measured (`measured_rows`) routed with the tuned policy
# (`Router.route_many`); quality is the data's score of the chosen model (or its tier's
# stand-in, as in calibration).

# %%
rows, _, _, _ = measured_rows(tuned_router, TUNED_NAME, examples)
texts = [ex.messages if ex.messages is not None else ex.prompt for ex in rows]
# The rows go through in the data's order (grouped by source), not as live traffic: the drift
# alarm sums the batch up in one warning, if a signal went past its threshold, instead of a
# warning per signal at every crossing.
with tuned_router.drift.batch():
    decisions = tuned_router.route_many(texts, policy=TUNED_NAME)
compiled = tuned_router.policy(TUNED_NAME)
outcome = outcome_matrix(compiled, rows)
col = {m.name: k for k, m in enumerate(compiled.models)}
routed = pd.DataFrame(
    {
        "domain": [domain_of(ex) or "(unlabelled)" for ex in rows],
        "model": [d.model for d in decisions],
        "large": [d.tier == "large" for d in decisions],
        "quality": [outcome[i, col[d.model]] for i, d in enumerate(decisions)],
        "all-large quality": outcome[:, compiled.large_idx[0]],
    }
)
by_domain = (
    routed.groupby("domain")
    .agg(
        prompts=("model", "size"),
        large_share=("large", "mean"),
        quality=("quality", "mean"),
        all_large_quality=("all-large quality", "mean"),
    )
    .sort_values("large_share")
)

fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.4 * len(by_domain) + 1.8), sharey=True)
y = np.arange(len(by_domain))
a1.barh(y, by_domain["large_share"] * 100, color="tab:orange", label="large model")
a1.barh(
    y,
    100 - by_domain["large_share"] * 100,
    left=by_domain["large_share"] * 100,
    color="tab:blue",
    label="cheap model",
)
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
by_domain.round(3)

# %% [markdown]
# ## Route a few prompts with it
#
# The original policy beside the tuned one, on a few prompts (no model is called).

# %%
demo = [
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
)
