"""The shared-difficulty model (router/core/irt.py) and how the scorer uses it: one difficulty
learned from every model, a new model joining from a few dozen of its own rows, and the
evidence behind each estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from router.core.data import Example
from router.core.irt import SharedDifficulty
from router.core.scorer import Scorer, ScorerError


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y > 0.5, s))


def world(n: int = 1200, d: int = 24, models: int = 6, seed: int = 0):
    """Prompts whose difficulty is a direction of their embedding, and models that differ in
    ability (one of them better at a second skill): graded outcomes drawn from that."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    hard, skill = rng.normal(size=d), rng.normal(size=d)
    b = 4 * X @ hard / np.linalg.norm(hard)
    s = 4 * X @ skill / np.linalg.norm(skill)
    ability = np.linspace(-1.5, 1.5, models)
    Z = ability[None, :] - b[:, None]
    Z[:, -1] += s  # the last model is also good at "skill"
    P = 1 / (1 + np.exp(-Z))
    Y = (rng.random(P.shape) < P).astype(float)
    return X, Y, b, P


def test_the_shared_difficulty_is_learned_from_every_model_at_once():
    X, Y, b, P = world()
    tr, te = slice(0, 900), slice(900, None)
    m = SharedDifficulty(dims=2).fit(X[tr], Y[tr])
    # Harder prompts get a higher difficulty, on prompts it never saw.
    assert np.corrcoef(m.difficulty_logit(X[te]), b[te])[0, 1] > 0.8
    # Each model's success is ranked nearly as well as the true probabilities rank it, the
    # specialist's too (its second skill).
    for j in range(Y.shape[1]):
        assert auroc(Y[te, j], m.logits(X[te])[:, j]) > auroc(Y[te, j], P[te, j]) - 0.04, j


def test_unknown_outcomes_are_left_out_not_read_as_failures():
    X, Y, _, _ = world(seed=1)
    half = Y.copy()
    half[::2, :3] = np.nan  # half the rows lack three models' outcomes
    m = SharedDifficulty(dims=2).fit(X, half)
    base_rate = np.nanmean(half, axis=0)
    assert np.allclose(m.predict_proba(X).mean(axis=0), base_rate, atol=0.05)
    with pytest.raises(ValueError, match="no outcome"):
        SharedDifficulty().fit(X, np.full_like(Y, np.nan))


def test_a_new_model_joins_from_a_few_rows_with_the_prompt_side_frozen():
    X, Y, _, P = world(n=1500, models=7, seed=2)
    old, new = [0, 1, 2, 3, 4, 6], 5  # fit on six models; a strong one joins later
    tr, te = np.arange(1000), np.arange(1000, 1500)
    m = SharedDifficulty(dims=2).fit(X[tr], Y[np.ix_(tr, old)])
    A, w = m.A_.copy(), m.w_.copy()
    col = m.add_model(X[tr[:50]], Y[tr[:50], new])
    assert col == 6 and np.array_equal(m.A_, A) and np.array_equal(m.w_, w)
    # Its own ability, not the others' mean: calibrated to how often it is right.
    assert abs(m.predict_proba(X[te])[:, col].mean() - Y[te, new].mean()) < 0.06
    joined = auroc(Y[te, new], m.logits(X[te])[:, col])
    # Its own logistic regression on the same 50 rows knows much less.
    from sklearn.linear_model import LogisticRegression

    own = LogisticRegression(max_iter=2000).fit(X[tr[:50]], Y[tr[:50], new])
    assert joined > auroc(Y[te, new], P[te, new]) - 0.05
    assert joined > auroc(Y[te, new], own.decision_function(X[te])) + 0.05


def test_arrays_round_trip():
    X, Y, _, _ = world(n=300)
    m = SharedDifficulty(dims=3).fit(X, Y)
    again = SharedDifficulty.from_arrays(m.to_arrays())
    assert np.allclose(again.logits(X), m.logits(X), atol=1e-4)
    with pytest.raises(ValueError, match="not fitted"):
        SharedDifficulty().logits(X)


# ---- in the scorer ---------------------------------------------------------------------------

MODELS = ["m0", "m1", "m2", "m3", "m4", "m5"]


def examples_of(Y: np.ndarray) -> list[Example]:
    topics = ["algebra", "poetry", "contract law", "cell biology", "sorting lists", "tax rules"]
    return [
        Example(
            prompt=f"Question {i} about {topics[i % len(topics)]}",
            source="mmlu/college_mathematics",
            scores={m: float(Y[i, j]) for j, m in enumerate(MODELS) if not np.isnan(Y[i, j])},
            cheap_models=MODELS[:3],
            id=str(i),
        )
        for i in range(len(Y))
    ]


@pytest.fixture(scope="module")
def fitted():
    X, Y, _, _ = world(n=600, seed=4)
    X = np.hstack([X, np.zeros((len(X), 8))])  # a 32-dimensional "embedding"
    rows = examples_of(Y)
    return Scorer(shared_dims=2, knn_k=20).fit(X, rows, "test-encoder"), X, Y, rows


def test_the_scorer_stacks_the_shared_model_and_keeps_it_through_save_and_load(fitted, tmp_path):
    scorer, X, _, rows = fitted
    # The stacker gave the shared model weight where it helps.
    assert np.abs(scorer.stack_[2:, 3]).max() > 0.1
    texts = [r.text() for r in rows[:20]]
    batch = scorer.predict(X[:20], texts)
    again = Scorer.load(scorer.save(tmp_path / "s"))
    assert again.shared_ is not None and again.cheap_models_ == MODELS[:3]
    batch2 = again.predict(X[:20], texts)
    assert np.allclose(batch.success, batch2.success, atol=2e-3)
    assert np.allclose(batch.evidence, batch2.evidence, atol=0.05)


def test_success_estimates_carry_their_evidence(fitted):
    scorer, X, _, rows = fitted
    batch = scorer.predict(X[:5], [r.text() for r in rows[:5]])
    assert batch.rows.tolist() == [600] * len(MODELS)
    # A training prompt has itself and its near neighbours as evidence; one unlike every
    # training prompt (orthogonal to them all) has none.
    far = np.zeros((1, X.shape[1]))
    far[0, -1] = 1.0
    assert (batch.evidence > 0.9).all()
    assert scorer.predict(far, ["?"]).evidence.max() < 0.5 < batch.evidence.min()


def test_a_model_joins_the_scorer_and_says_how_little_it_knows(fitted):
    scorer, X, _, rows = fitted
    import copy

    sc = copy.deepcopy(scorer)
    new_rows = [
        Example(prompt=r.prompt, source=r.source, scores={"newbie": r.scores["m4"]}, id=r.id)
        for r in rows[:40]
    ]
    sc.add_model("newbie", X[:40], new_rows)
    assert sc.models_[-1] == "newbie" and sc.heads_[-1] == "success:newbie"
    batch = sc.predict(X[40:200], [r.text() for r in rows[40:200]])
    j = sc.models_.index("newbie")
    truth = np.array([r.scores["m4"] for r in rows[40:200]])
    assert auroc(truth, batch.success[:, j]) > 0.7
    # 40 rows, not 600: its evidence is thinner than a fitted model's.
    assert batch.rows[j] == 40 and batch.evidence[:, j].mean() < batch.evidence[:, 0].mean()
    with pytest.raises(ScorerError, match="already has"):
        sc.add_model("newbie", X[:40], new_rows)
    plain = Scorer(shared_dims=None, knn_k=20).fit(X, rows, "test-encoder")
    with pytest.raises(ScorerError, match="no shared-difficulty"):
        plain.add_model("newbie", X[:40], new_rows)


def test_a_joining_model_unlike_the_fitted_ones_learns_its_own_part_from_its_rows(fitted):
    """A model whose successes follow a direction no fitted model's do (a tiny model guessing
    on multiple choice): its ability on the shared difficulty cannot express that, its rows
    can, through the regression around that estimate."""
    scorer, X, _, rows = fitted
    import copy

    sc = copy.deepcopy(scorer)
    rng = np.random.default_rng(7)
    odd = rng.normal(size=X.shape[1])
    odd[24:] = 0.0  # within the prompts' own dimensions
    p = 1 / (1 + np.exp(-6 * X @ odd / np.linalg.norm(odd)))
    y = (rng.random(len(X)) < p).astype(float)
    new_rows = [
        Example(prompt=r.prompt, source=r.source, scores={"oddball": float(v)}, id=r.id)
        for r, v in zip(rows[:400], y[:400], strict=True)
    ]
    sc.add_model("oddball", X[:400], new_rows)
    j = sc.models_.index("oddball")
    joined = auroc(y[400:], sc.predict(X[400:], [r.text() for r in rows[400:]]).success[:, j])
    shared_alone = auroc(y[400:], sc.shared_.logits(X[400:])[:, j])
    assert joined > 0.75 and joined > shared_alone + 0.1, (joined, shared_alone)
    # The correction is as strong as the rows score best (held-out log loss), not the weakest
    # strength within a standard error of that (1.0 here), which ranks these unseen rows worse
    # (AUROC 0.780 against 0.791).
    assert sc.join_C_["oddball"] == 3.0


def test_the_design_without_the_shared_stack_keeps_it_for_models_that_join(fitted, tmp_path):
    """make model ships the stack without the shared model when that design measured better;
    the shared model stays (unstacked) so a new model can still join from its profile."""
    scorer, X, _, rows = fitted
    texts = [r.text() for r in rows[:30]]
    without = scorer.ablated().predict(X[:30], texts)
    kept = Scorer.load(scorer.ablated(keep_shared=True).save(tmp_path / "kept"))
    # Only the difficulty head takes the shared model in the design without its stack.
    assert kept.shared_ is not None and np.allclose(kept.stack_[1:, 3], 0.0)
    # The profiled models' estimates are exactly those of the design without it.
    assert np.allclose(kept.predict(X[:30], texts).success, without.success, atol=2e-3)
    new_rows = [
        Example(prompt=r.prompt, source=r.source, scores={"newbie": r.scores["m4"]}, id=r.id)
        for r in rows[:40]
    ]
    kept.add_model("newbie", X[:40], new_rows)
    batch = kept.predict(X[40:200], [r.text() for r in rows[40:200]])
    truth = np.array([r.scores["m4"] for r in rows[40:200]])
    assert auroc(truth, batch.success[:, kept.models_.index("newbie")]) > 0.7


def test_a_model_joining_the_design_without_the_shared_stack_leaves_the_full_one_alone(fitted):
    """`ablated` gives a scorer of its own: a model joining it (as `make model` ships it) adds
    nothing to the scorer it came from, whose heads, models and estimates stay as they were."""
    import copy

    scorer, X, _, rows = fitted
    full = copy.deepcopy(scorer)
    texts = [r.text() for r in rows[:30]]
    before = full.predict(X[:30], texts)
    heads, models, join_c = list(full.heads_), list(full.models_), dict(full.join_C_)
    new_rows = [
        Example(prompt=r.prompt, source=r.source, scores={"newbie": r.scores["m4"]}, id=r.id)
        for r in rows[:40]
    ]
    kept = full.ablated(keep_shared=True).add_model("newbie", X[:40], new_rows)
    assert "newbie" in kept.models_ and "success:newbie" in kept.heads_
    assert full.heads_ == heads and full.models_ == models and full.join_C_ == join_c
    after = full.predict(X[:30], texts)
    assert np.array_equal(after.success, before.success) and after.success.shape[1] == len(models)


def test_a_joining_model_changes_no_other_estimate_and_is_remembered_as_joined(fitted, tmp_path):
    """The scorer cannot know a joining model's tier: the gain it stacked from the shared model
    (large tier right, cheap tier wrong) stays over the models it was fitted with. Joining a
    model, and saving and loading the scorer, moves no difficulty, gain or other success."""
    scorer, X, _, rows = fitted
    import copy

    assert np.abs(scorer.stack_[1, 3]) > 0.0  # the gain head does stack the shared model
    sc = copy.deepcopy(scorer)
    texts = [r.text() for r in rows[:50]]
    before = sc.predict(X[:50], texts)
    new_rows = [
        Example(prompt=r.prompt, source=r.source, scores={"ace": 1.0}, id=r.id) for r in rows[:60]
    ]
    plain = Scorer.load(sc.save(tmp_path / "plain"))
    sc.add_model("ace", X[:60], new_rows)
    again = Scorer.load(sc.save(tmp_path / "joined"))
    assert again.added_models_ == ["ace"] and set(again.join_C_) == {"ace"}
    # Saved before corrections existed: the joined models are known, with no correction.
    meta = json.loads((tmp_path / "joined" / "scorer.json").read_text())
    del meta["join_C"]
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "scorer.json").write_text(json.dumps(meta))
    (tmp_path / "older" / "weights.npz").write_bytes(
        (tmp_path / "joined" / "weights.npz").read_bytes()
    )
    older = Scorer.load(tmp_path / "older")
    assert older.added_models_ == ["ace"] and older.join_C_ == {"ace": 0.0}
    # In memory, and as saved (against the same scorer saved before the join: both stored in
    # the same reduced precision).
    for joined, unjoined in ((sc, before), (again, plain.predict(X[:50], texts))):
        after = joined.predict(X[:50], texts)
        assert np.allclose(after.difficulty, unjoined.difficulty, atol=1e-6)
        assert np.allclose(after.gain, unjoined.gain, atol=1e-6)
        assert np.allclose(after.success[:, : len(MODELS)], unjoined.success, atol=1e-6)


@pytest.mark.parametrize("outcome", [0.0, 1.0])
def test_a_model_whose_rows_all_agree_is_confident_but_never_certain(fitted, outcome):
    """Fifty profiled rows that all fail (or all succeed) say the model is bad (or good), not
    that it fails every prompt there is: an estimate of exactly 0 or 1 would carry a standard
    error of 0, and the pessimistic bound could not discount it."""
    scorer, X, _, rows = fitted
    import copy

    from router.core.policy import standard_error

    sc = copy.deepcopy(scorer)
    new_rows = [
        Example(prompt=r.prompt, source=r.source, scores={"uniform": outcome}, id=r.id)
        for r in rows[:50]
    ]
    sc.add_model("uniform", X[:50], new_rows)
    batch = sc.predict(X[100:300], [r.text() for r in rows[100:300]])
    p = batch.success[:, -1]
    # Confident in the direction the rows say...
    assert (np.abs(p - outcome) < 0.2).mean() > 0.9, p
    # ...but never certain: every estimate keeps a standard error to be discounted by.
    assert (np.minimum(p, 1 - p) > 1e-4).all(), np.minimum(p, 1 - p).min()
    assert (standard_error(p, batch.evidence[:, -1]) > 1e-4).all()


def test_the_difficulty_head_can_be_the_shared_difficulty_calibrated(fitted, tmp_path):
    """`difficulty="shared"`: the difficulty head ranks prompts exactly as the shared model's
    difficulty (which transfers better to tasks the scorer never saw); the default blends it
    with the stack of every other component, and an artifact saved before the choice existed
    loads as the stack it was fitted with."""
    from scipy.stats import spearmanr

    _, X, Y, rows = fitted
    scorer = Scorer(shared_dims=2, knn_k=20, difficulty="shared").fit(X, rows, "test-encoder")
    texts = [r.text() for r in rows[:200]]
    assert np.flatnonzero(scorer.stack_[0, :5]).tolist() == [3]  # the shared component alone
    shared_rank = spearmanr(
        scorer.predict(X[:200], texts).difficulty, scorer.shared_.difficulty_logit(X[:200])
    )[0]
    assert shared_rank > 0.999
    # Calibrated: the predicted difficulty follows the cheap tier's failures on average.
    cheap_fail = 1 - np.nanmean(Y[:, :3], axis=1)
    assert (
        abs(scorer.predict(X, [r.text() for r in rows]).difficulty.mean() - cheap_fail.mean())
        < 0.05
    )
    stacked = fitted[0]
    assert stacked.difficulty == "blend" and np.count_nonzero(stacked.stack_[0, :5]) > 1
    assert (
        spearmanr(
            stacked.predict(X[:200], texts).difficulty, stacked.shared_.difficulty_logit(X[:200])
        )[0]
        < 0.999
    )
    path = scorer.save(tmp_path / "s")
    assert Scorer.load(path).difficulty == "shared"
    meta = json.loads((path / "scorer.json").read_text())
    del meta["params"]["difficulty"]  # as saved before the choice existed
    (path / "scorer.json").write_text(json.dumps(meta))
    assert Scorer.load(path).difficulty == "stack"
    with pytest.raises(ScorerError, match="difficulty must be"):
        Scorer(difficulty="vibes")


def test_the_blended_difficulty_is_the_log_odds_mean_of_the_stack_and_the_shared_difficulty(
    fitted, tmp_path
):
    """`difficulty="blend"` (the shipped scorer's): the stack without the shared model and the
    shared difficulty, each calibrated as its own design calibrates it, averaged in log-odds;
    in both designs (`ablated`), on disk too, and no other head moves."""
    from router.core.heads import logit

    _, X, _, rows = fitted
    texts = [r.text() for r in rows[:200]]

    def fit(difficulty: str) -> Scorer:
        return Scorer(shared_dims=2, knn_k=20, difficulty=difficulty).fit(X, rows, "test-encoder")

    blend, stack, shared = fit("blend"), fit("stack"), fit("shared")
    expected = (
        logit(stack.ablated().predict(X[:200], texts).difficulty)
        + logit(shared.predict(X[:200], texts).difficulty)
    ) / 2
    for scorer in (blend, blend.ablated()):
        assert np.allclose(logit(scorer.predict(X[:200], texts).difficulty), expected, atol=1e-6)
    # Saved in float32, as every head: a neighbour search can then swap a near tie, which
    # moves the stack alone by up to 0.01 here.
    saved = Scorer.load(blend.save(tmp_path / "b"))
    assert saved.difficulty == "blend"
    assert np.allclose(
        saved.predict(X[:200], texts).difficulty,
        blend.predict(X[:200], texts).difficulty,
        atol=0.01,
    )
    # Unlike either half alone.
    assert not np.allclose(expected, logit(shared.predict(X[:200], texts).difficulty), atol=0.05)
    # Only the difficulty is blended.
    ours, theirs = blend.ablated().predict(X[:200], texts), stack.ablated().predict(X[:200], texts)
    assert np.allclose(ours.gain, theirs.gain) and np.allclose(ours.success, theirs.success)
