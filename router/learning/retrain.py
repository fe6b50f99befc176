"""Retraining from the decision log, behind a gate: `router retrain --config C`.

1. **Export** the log's rows with outcomes (feedback, shadow judgements) as routing data
   (`decision_log.export_examples`), catalogue names mapped to the scorer's (a model's
   `profile`), so new outcomes add labels to the heads the old data trained.
2. **Split by time, grouped by prompt**: the newest `test_share` of those rows are held out,
   every row of a prompt on the side of its newest one; a random split would let the candidate
   see the future it is judged on, and a repeated prompt on both sides would test memory. A
   held-out row whose prompt the serving scorer or the old data was trained on is moved to the
   training side (`set_aside_trained`): judged on it, a scorer would be tested on memory.
3. **Train** a candidate on the old training data plus the older new rows.
4. **Gate**: the candidate and the serving scorer predict the held-out rows; the candidate is
   promoted only if it is not worse: Brier score of the difficulty and gain heads (lower is
   better), and APGR on the rows whose cheap and large outcomes are both known (higher is
   better), escalating by the signal the default policy compares (`escalation_signal`).
5. **Version**: every candidate is written to `scorers/vNNNN/` with `report.json` and
   `report.md`; `scorers/current` is a symlink to the serving version, flipped atomically, and the
   config's `scorer:` points at it (set once, by an atomic rewrite of that line). The previous
   version stays on disk: `router retrain --rollback` flips back.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from router.core.config import Escalation, RouterConfig, load_config
from router.core.data import (
    DataError,
    Example,
    prompt_hashes,
    read_many,
    tier_models,
    tier_outcomes,
)
from router.core.policy import blended_gain
from router.core.scorer import ScoreBatch, Scorer, configured_scorer_path
from router.serving.decision_log import export_examples

CURRENT = "current"  # the symlink in scorers/ that the config points at
MANIFEST = "versions.json"
Say = Callable[[str], None]


# ---- where things are ---------------------------------------------------------------------


def log_location(config_path: Path, cfg: RouterConfig) -> str:
    """The configured decision log: a URL, or a SQLite path relative to the config."""
    if cfg.decision_log is None:
        raise DataError(f"{config_path}: decision_log: the decision log is off; nothing to learn")
    url = cfg.decision_log.url
    if "://" in url or Path(url).is_absolute():
        return url
    return str(config_path.resolve().parent / url)


def scorers_dir(config_path: Path) -> Path:
    return config_path.resolve().parent / "scorers"


def old_training_data(config_path: Path, serving: Path, data: Sequence[Path]) -> list[Path]:
    """The old data: given, or the files the serving scorer names in `trained_on`, looked up in
    data/routing/ beside the config and in the working directory."""
    if data:
        return list(data)
    try:
        meta = json.loads((serving / "scorer.json").read_text(encoding="utf-8"))
        names = meta.get("retrain_data") or meta.get("trained_on") or []
    except (OSError, ValueError, AttributeError) as e:
        raise DataError(
            f"{serving}: not a scorer directory ({e}); check the config's scorer:"
        ) from None
    found = []
    for name in names:
        for base in (config_path.resolve().parent, Path.cwd()):
            for cand in (base / name, base / "data" / "routing" / Path(name).name):
                if cand.is_file():
                    found.append(cand.resolve())
                    break
            else:
                continue
            break
    if not found:
        raise DataError(
            f"{serving}: cannot find the data it was trained on ({names or 'not recorded'}); "
            "give the old training data with --data"
        )
    return list(dict.fromkeys(found))


# ---- the data -----------------------------------------------------------------------------


def logged_examples(location: str | Path, cfg: RouterConfig) -> list[Example]:
    """Rows of the log with outcomes, oldest first, model names as the scorer knows them (a
    catalogue model's `profile`, else its name) and the catalogue's small tier as cheap."""
    to_scorer = {m.name: m.profile or m.name for m in cfg.models}
    cheap = [m.name for m in cfg.models if m.tier == "small"]
    rows = export_examples(location, cheap_models=cheap)  # DecisionLogError names the log
    for ex in rows:
        ex.scores = {to_scorer.get(m, m): s for m, s in ex.scores.items()}
        ex.cheap_models = sorted({to_scorer.get(m, m) for m in ex.cheap_models})
    return rows


def time_split(
    rows: Sequence[Example], test_share: float = 0.3, min_test: int = 10
) -> tuple[list[Example], list[Example]]:
    """(older rows to train on, newest rows to judge on), by the rows' logged time, grouped by
    prompt: every row of a prompt falls on the side of its newest row, so the candidate is never
    judged on a prompt it was trained on (a repeated request would otherwise be on both)."""
    groups: dict[object, list[Example]] = {}
    for ex in sorted(rows, key=lambda ex: ex.extra.get("ts", 0.0)):
        groups.setdefault(_prompt_key(ex), []).append(ex)
    # Newest prompts first (dicts keep insertion order: a group's place is its first row's).
    newest_first = sorted(groups.values(), key=lambda g: g[-1].extra.get("ts", 0.0), reverse=True)
    n_test = min(max(min_test, int(round(len(rows) * test_share))), len(rows))
    test: list[Example] = []
    taken = 0
    for group in newest_first:
        if taken >= n_test:
            break
        test.extend(group)
        taken += len(group)
    held = {id(ex) for ex in test}
    train = [ex for g in groups.values() for ex in g if id(ex) not in held]
    by_time = lambda ex: ex.extra.get("ts", 0.0)  # noqa: E731
    return sorted(train, key=by_time), sorted(test, key=by_time)


def set_aside_trained(
    train: Sequence[Example],
    test: Sequence[Example],
    serving: Scorer,
    old: Sequence[Example] = (),
) -> tuple[list[Example], list[Example], int]:
    """Move the held-out rows whose prompt the serving scorer was trained on (its original data
    or an earlier retrain's), or that the old training data holds, to the training side; returns
    (train, test, how many moved). Judged on those, the serving scorer would be tested on
    prompts it memorised (and the candidate on prompts its old data gave it), which favours the
    serving one. Prompts are recognised by the one definition `router eval --held-out` uses:
    the scorer's recorded hashes (`Scorer.trained_on`) and `data.prompt_hashes`. A serving
    scorer that recorded no hashes is checked against the old data alone."""
    if not test:
        return list(train), [], 0
    seen = serving.trained_on(test)
    seen = np.zeros(len(test), dtype=bool) if seen is None else np.asarray(seen, dtype=bool)
    if old:
        seen = seen | np.isin(prompt_hashes(test), prompt_hashes(old))
    if not seen.any():
        return list(train), list(test), 0
    moved = [ex for ex, s in zip(test, seen, strict=True) if s]
    kept = [ex for ex, s in zip(test, seen, strict=True) if not s]
    by_time = lambda ex: ex.extra.get("ts", 0.0)  # noqa: E731
    return sorted([*train, *moved], key=by_time), kept, len(moved)


def _prompt_key(ex: Example) -> object:
    """What identifies a logged prompt: its routing text, else (a log that keeps only
    embeddings) its embedding, which is the same for the same text, else the request."""
    if ex.prompt is not None or ex.messages is not None:
        return ("text", ex.text())
    if ex.extra.get("embedding") is not None:
        return ("embedding", tuple(ex.extra["embedding"]))
    return ("id", ex.id or id(ex))


# ---- the gate -----------------------------------------------------------------------------


@dataclass
class Scores:
    """How one scorer predicts the held-out rows."""

    brier: float | None  # difficulty and gain heads, over their labelled targets
    apgr: float | None  # rows with both tiers' outcomes, escalating by the policy's signal
    n_targets: int
    n_two_tier: int


def judge_scorer(
    scorer: Scorer, X: np.ndarray, examples: Sequence[Example], signal: str = "blend"
) -> Scores:
    """Brier score of difficulty and gain on their targets, and APGR where both tiers are known,
    escalating the rows with the highest `signal` first: "blend" (the gain the policy compares,
    `gain_estimate: blend`), "gain" (the gain head) or "difficulty"."""
    from router.evaluation.metrics import apgr

    batch = scorer.predict(X, [ex.text() for ex in examples])
    outcomes = tier_outcomes(examples)
    cheap = [c for c, _ in outcomes]
    large = [g for _, g in outcomes]
    diff_t = np.array([np.nan if c is None else 1.0 - c for c in cheap])
    gain_t = np.array(
        [
            np.nan if c is None or g is None else g * (1.0 - c)
            for c, g in zip(cheap, large, strict=True)
        ]
    )
    errs = []
    for pred, target in ((batch.difficulty, diff_t), (batch.gain, gain_t)):
        ok = ~np.isnan(target)
        errs.extend(((pred[ok] - target[ok]) ** 2).tolist())
    brier = float(np.mean(errs)) if errs else None
    both = [
        i
        for i, (c, g) in enumerate(zip(cheap, large, strict=True))
        if c is not None and g is not None
    ]
    value = None
    if len(both) >= 10:
        c = np.array([cheap[i] for i in both])
        g = np.array([large[i] for i in both])
        ranked = {
            "blend": lambda: blended_gain(batch.gain, *tier_success(batch, examples)),
            "gain": lambda: batch.gain,
            "difficulty": lambda: batch.difficulty,
        }[signal]()
        order = np.argsort(-ranked[both], kind="stable")
        share, quality = [], []
        for k in range(len(both) + 1):
            up = np.zeros(len(both), dtype=bool)
            up[order[:k]] = True
            share.append(k / len(both))
            quality.append(float(np.where(up, g, c).mean()))
        if abs(g.mean() - c.mean()) > 1e-9:
            value = apgr(np.array(share), np.array(quality), float(c.mean()), float(g.mean()))
    return Scores(brier, value, len(errs), len(both))


def tier_success(batch: ScoreBatch, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the batch's success estimates for the models `tier_outcomes` scores: its
    reference large model and the mean over its cheap models. NaN where the scorer has no head
    for one of them, or the heads learned different prompts (`ScoreBatch.comparable`): the
    blend falls back to the gain head there."""
    col = {m: i for i, m in enumerate(batch.models)}
    p_large = np.full(len(examples), np.nan)
    p_cheap = np.full(len(examples), np.nan)
    for r, (cheap, large) in enumerate(tier_models(examples)):
        if large not in col or not cheap or any(m not in col for m in cheap):
            continue
        paired = batch.comparable is None or batch.comparable[col[large], [col[m] for m in cheap]]
        if np.all(paired):
            p_large[r] = batch.success[r, col[large]]
            p_cheap[r] = float(np.mean([batch.success[r, col[m]] for m in cheap]))
    return p_large, p_cheap


def escalation_signal(config_path: Path, cfg: RouterConfig) -> str:
    """The score the default policy escalates on: with max_gain, the gain it compares ("blend"
    or the "gain" head, its `gain_estimate`); else "difficulty" (max_difficulty)."""
    from router.core.config import load_policy
    from router.core.data import domain_names

    path = config_path.resolve().parent / cfg.policies_dir / f"{cfg.default_policy}.yaml"
    try:
        esc = load_policy(path, cfg, domain_names()).escalation
    except Exception:  # noqa: BLE001 - the gate still judges, on the default gain estimate
        esc = Escalation()
    if esc.max_gain is None and esc.max_difficulty < 1.0:
        return "difficulty"
    return "blend" if esc.gain_estimate == "blend" else "gain"


@dataclass
class Gate:
    promoted: bool
    reason: str
    candidate: Scores
    serving: Scores
    tolerance: float


def gate(candidate: Scores, serving: Scores, tolerance: float = 0.0, min_targets: int = 10) -> Gate:
    """Promote only if the candidate is not worse than the serving scorer on either measure."""
    if candidate.brier is None or candidate.n_targets < min_targets:
        return Gate(
            False,
            f"too few held-out outcomes to judge ({candidate.n_targets} < {min_targets})",
            candidate,
            serving,
            tolerance,
        )
    worse = []
    if serving.brier is not None and candidate.brier > serving.brier + tolerance:
        worse.append(f"Brier {candidate.brier:.4f} > serving {serving.brier:.4f}")
    if candidate.apgr is not None and serving.apgr is not None:
        if candidate.apgr < serving.apgr - tolerance:
            worse.append(f"APGR {candidate.apgr:.3f} < serving {serving.apgr:.3f}")
    if worse:
        return Gate(False, "candidate is worse: " + "; ".join(worse), candidate, serving, tolerance)
    better = f"Brier {candidate.brier:.4f} vs serving {serving.brier:.4f}"
    if candidate.apgr is not None and serving.apgr is not None:
        better += f", APGR {candidate.apgr:.3f} vs {serving.apgr:.3f}"
    return Gate(True, "not worse than serving: " + better, candidate, serving, tolerance)


# ---- versions -----------------------------------------------------------------------------


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"current": None, "versions": []}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    _write_atomic(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def next_version(root: Path) -> str:
    taken = [int(p.name[1:]) for p in root.glob("v[0-9][0-9][0-9][0-9]") if p.is_dir()]
    return f"v{max(taken, default=0) + 1:04d}"


def point_current(root: Path, version: str) -> None:
    """`scorers/current` → `version`, atomically (a new symlink renamed over the old one)."""
    tmp = root / f".{CURRENT}.tmp{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version, tmp)
    os.replace(tmp, root / CURRENT)


_SCORER_LINE = re.compile(r"^scorer:.*$", re.MULTILINE)


def point_config(config_path: Path) -> bool:
    """Make the config's `scorer:` read `scorers/current` (one line rewritten, atomically;
    comments and the rest of the file kept). Returns whether the file changed."""
    want = f"scorer: scorers/{CURRENT}"
    text = config_path.read_text(encoding="utf-8")
    if _SCORER_LINE.search(text):
        new = _SCORER_LINE.sub(want, text, count=1)
    else:
        new = want + "\n" + text
    if new == text:
        return False
    load_config_text_check(config_path, new)
    _write_atomic(config_path, new)
    return True


def load_config_text_check(config_path: Path, text: str) -> None:
    """Validate a rewritten config before it replaces the old one."""
    tmp = config_path.with_name(f".{config_path.name}.check{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_config(tmp)
    finally:
        tmp.unlink()


# ---- the whole run ------------------------------------------------------------------------


@dataclass
class Report:
    """What `router retrain` did, written beside the candidate as report.json / report.md."""

    version: str
    promoted: bool
    reason: str
    created: float
    config: str
    decision_log: str
    serving: str
    old_data: list[str]
    n_old: int
    n_new_train: int
    n_new_test: int
    test_from_ts: float | None
    scores: dict[str, Any] = field(default_factory=dict)
    new_weight: int = 1
    # Newest rows not judged on: the serving scorer or the old data had their prompts (trained).
    n_test_set_aside: int = 0
    reloaded: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def to_markdown(self) -> str:
        s = self.scores
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.created))

        def f(v, fmt):
            return "n/a" if v is None else format(v, fmt)

        lines = [
            f"# Retrain {self.version}: {'promoted' if self.promoted else 'refused'}",
            "",
            f"{when}. {self.reason}.",
            "",
            f"- config: `{self.config}`; serving scorer before: `{self.serving}`",
            f"- decision log: `{self.decision_log}`",
            f"- old data: {self.n_old} rows from {', '.join(f'`{p}`' for p in self.old_data)}",
            f"- new rows with outcomes: {self.n_new_train} trained on (each counted "
            f"{self.new_weight}×), {self.n_new_test} held out (the newest)",
        ]
        if self.n_test_set_aside:
            lines.append(
                f"- {self.n_test_set_aside} of the newest rows not judged on (trained on "
                "instead): the serving scorer or the old data was trained on their prompts"
            )
        lines += [
            "",
            "| held-out rows | Brier (difficulty, gain; lower is better) | APGR (higher is better) |"
            " targets | two-tier rows |",
            "|---|---|---|---|---|",
        ]
        for name in ("candidate", "serving"):
            m = s.get(name, {})
            lines.append(
                f"| {name} | {f(m.get('brier'), '.4f')} | {f(m.get('apgr'), '.3f')} | "
                f"{m.get('n_targets', 0)} | {m.get('n_two_tier', 0)} |"
            )
        if self.reloaded:
            lines += ["", f"Reload: {self.reloaded}"]
        return "\n".join(lines) + "\n"


def _one_at_a_time(fn):
    """Serialise runs on one scorers/ folder (a lock file): two retrains, or a retrain and a
    rollback, must not pick the same version number or judge against a stale current."""

    @functools.wraps(fn)
    def locked(config_path, *args, **kwargs):
        import fcntl

        # A config that is missing or invalid is said as such, before scorers/ is made next
        # to it (and before --rollback reports "no earlier version" for a mistyped path).
        load_config(Path(config_path))
        root = scorers_dir(Path(config_path))
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                return fn(config_path, *args, **kwargs)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    return locked


@_one_at_a_time
def retrain(
    config_path: str | Path,
    data: Sequence[Path] = (),
    test_share: float = 0.3,
    tolerance: float = 0.0,
    min_new: int = 20,
    C: float | None = None,
    new_weight: int = 5,
    say: Say | None = None,
    transform: Callable[[list[Example]], list[Example]] | None = None,
) -> Report:
    """Export, split by time, train, gate, version; promote if the gate lets it through.

    Each new row counts `new_weight` times (repeated; one group, so never split across
    calibration folds): a few hundred outcomes of your own traffic must be able to move heads
    that thousands of public rows trained. `transform` edits the new training rows before
    fitting (tests corrupt them with it)."""
    from router.core.encoder import load_encoder
    from router.evaluation.train import embed_examples

    say = say or (lambda _m: None)
    # The options first: a value out of range is said before the log is read.
    if not 0 < test_share < 1:
        raise DataError(f"--test-share {test_share}: a share in (0, 1)")
    if new_weight < 1:
        raise DataError(f"--new-weight {new_weight}: a whole number >= 1")
    config_path = Path(config_path)
    cfg = load_config(config_path)
    serving_path = configured_scorer_path(cfg.scorer, config_path.resolve().parent)
    root = scorers_dir(config_path)
    root.mkdir(parents=True, exist_ok=True)

    new = logged_examples(log_location(config_path, cfg), cfg)
    if len(new) < min_new:
        raise DataError(
            f"{log_location(config_path, cfg)}: {len(new)} requests with outcomes; "
            f"at least {min_new} are needed to retrain (--min-new)"
        )
    new_train, new_test = time_split(new, test_share)
    if not new_train:
        # Every prompt fell on the held-out side (one prompt asked again and again): a candidate
        # would be the old data alone, judged as if it had learned from the log.
        raise DataError(
            f"{_safe(log_location(config_path, cfg))}: the {len(new)} requests with outcomes "
            f"hold {len({_prompt_key(ex) for ex in new})} distinct prompt(s), all held out to "
            "judge on; none is left to train on (more varied traffic is needed)"
        )
    old_paths = old_training_data(config_path, serving_path, data)
    old = read_many(old_paths)

    enc = load_encoder(cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0)
    serving = Scorer.load(serving_path, encoder_identity=enc.identity)
    new_train, new_test, n_seen = set_aside_trained(new_train, new_test, serving, old)
    if transform is not None:
        new_train = transform(list(new_train))
    say(
        f"{len(old)} old rows, {len(new_train)} new rows to train on, {len(new_test)} held out"
        + (
            f" ({n_seen} more set aside: the serving scorer or old data has their prompts)"
            if n_seen
            else ""
        )
    )
    train_rows = old + list(new_train) * new_weight
    say(f"embedding ({enc.identity})")
    X_train = embed_examples(enc, train_rows)
    X_test = embed_examples(enc, new_test) if new_test else None
    say("fitting the candidate")
    # The serving scorer's design: a retrain adds data, it does not change how the heads are
    # built (`C` alone may be set: None keeps the serving one's).
    design = serving.get_params() | ({} if C is None else {"C": C})
    candidate = Scorer(**design).fit(X_train, train_rows, enc.identity, progress=say)
    if candidate.shared_ is not None and not serving.shared_stacked_:
        candidate = candidate.ablated(keep_shared=True)

    signal = escalation_signal(config_path, cfg)
    # Nothing left to judge on (every held-out prompt set aside): the gate refuses, too few.
    verdict = gate(
        judge_scorer(candidate, X_test, new_test, signal) if new_test else Scores(None, None, 0, 0),
        judge_scorer(serving, X_test, new_test, signal) if new_test else Scores(None, None, 0, 0),
        tolerance,
    )
    manifest = read_manifest(root)
    if manifest["current"] is None:
        # The scorer serving before the first retrain becomes a version too: rollback target.
        first = next_version(root)
        shutil.copytree(serving_path, root / first, symlinks=False)
        manifest["versions"].append(
            {
                "version": first,
                "status": "initial",
                "created": time.time(),
                "from": str(serving_path),
            }
        )
        manifest["current"] = first
        point_current(root, first)
    version = next_version(root)
    out = root / version
    candidate.save(
        out,
        extra={
            "trained_on": [p.name for p in old_paths] + ["decision log"],
            "retrain_data": [str(p) for p in old_paths],
            "version": version,
        },
    )
    report = Report(
        version=version,
        promoted=verdict.promoted,
        reason=verdict.reason,
        created=time.time(),
        config=str(config_path),
        decision_log=_safe(log_location(config_path, cfg)),
        serving=str(serving_path),
        old_data=[str(p) for p in old_paths],
        n_old=len(old),
        n_new_train=len(new_train),
        new_weight=new_weight,
        n_new_test=len(new_test),
        n_test_set_aside=n_seen,
        test_from_ts=new_test[0].extra.get("ts") if new_test else None,
        scores={
            "candidate": asdict(verdict.candidate),
            "serving": asdict(verdict.serving),
            "tolerance": tolerance,
            "apgr_ranks_by": signal,
        },
    )
    (out / "report.json").write_text(report.to_json(), encoding="utf-8")
    (out / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    manifest["versions"].append(
        {
            "version": version,
            "status": "promoted" if verdict.promoted else "refused",
            "created": report.created,
            "reason": verdict.reason,
            "previous": manifest["current"],
        }
    )
    if verdict.promoted:
        manifest["current"] = version
        point_current(root, version)
    _write_manifest(root, manifest)
    if verdict.promoted:
        point_config(config_path)
    return report


@_one_at_a_time
def rollback(config_path: str | Path) -> str:
    """Serve the version that served before the current one again; returns its name."""
    config_path = Path(config_path)
    root = scorers_dir(config_path)
    manifest = read_manifest(root)
    current = manifest.get("current")
    entry = next((v for v in manifest["versions"] if v["version"] == current), None)
    previous = entry.get("previous") if entry else None
    if not previous:
        raise DataError(f"{root}: no earlier version to roll back to (current: {current})")
    entry["status"] = "rolled back"
    manifest["current"] = previous
    point_current(root, previous)
    _write_manifest(root, manifest)
    point_config(config_path)
    return previous


def reload_server(url: str, admin_key: str | None, timeout: float = 60.0) -> str:
    """Ask a running proxy to reload its config and scorer (POST /admin/reload)."""
    import httpx

    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    try:
        r = httpx.post(url.rstrip("/") + "/admin/reload", headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise RuntimeError(f"{url}/admin/reload: no answer ({e})") from None
    if r.status_code >= 400:
        raise RuntimeError(f"{url}/admin/reload answered {r.status_code}: {r.text[:300]}")
    return f"{url}/admin/reload: {r.status_code}"


def _safe(url: str) -> str:
    from router.serving.decision_log import safe_url

    return safe_url(url) if "://" in url else url
