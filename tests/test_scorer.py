import json

import numpy as np
import pytest

from router.core.data import Example
from router.core.scorer import Scorer, ScorerError


def synthetic(n=300, seed=0, start=0):
    """Math prompts live along axis 0, code along axis 1; difficulty follows axis 2.
    Prompts are numbered from `start`, so two calls with disjoint ranges share no prompt."""
    rng = np.random.default_rng(seed)
    X, exs = [], []
    for i in range(start, start + n):
        v = rng.normal(0, 0.3, 16)
        math = i % 2 == 0
        v[0 if math else 1] += 2.0
        hard = rng.random() < 0.5
        v[2] += 2.0 if hard else -2.0
        X.append(v / np.linalg.norm(v))
        exs.append(
            Example(
                prompt=f"{'solve the equation' if math else 'write the function'} "
                f"{'proof lemma' if hard else 'simple easy'} number {i}",
                source="gsm8k" if math else "mmlu/college_computer_science",
                scores={"small": 0.0 if hard else 1.0, "big": 1.0},
                cheap_models=["small"],
            )
        )
    return np.array(X), exs


def texts(exs):
    return [e.text() for e in exs]


@pytest.fixture(scope="module")
def fitted():
    X, exs = synthetic()
    return Scorer().fit(X, exs, "fake/16"), X, exs


def test_nothing_is_learned_before_fit():
    s = Scorer(C=2.0)
    assert s.C == 2.0 and not hasattr(s, "domain_W_")
    with pytest.raises(ScorerError, match="not fitted"):
        s.predict(np.zeros((1, 16)), ["x"])


def test_domain_and_difficulty_heads_learn_the_signal(fitted):
    s, X, exs = fitted
    b = s.predict(X, texts(exs))
    dom = [b.domains[i] for i in b.domain_probs.argmax(1)]
    truth = ["math" if e.source == "gsm8k" else "code" for e in exs]
    assert np.mean([a == t for a, t in zip(dom, truth, strict=True)]) > 0.95
    hard = np.array([e.scores["small"] == 0 for e in exs])
    assert b.difficulty[hard].mean() > 0.8 and b.difficulty[~hard].mean() < 0.2
    np.testing.assert_allclose(b.domain_probs.sum(1), 1, atol=1e-9)
    # Per-model success: "big" always succeeds, "small" fails on hard ones.
    small, big = b.models.index("small"), b.models.index("big")
    assert b.success[:, big].min() > 0.8
    assert b.success[hard, small].mean() < 0.2
    # Gain: the big model succeeds exactly where the small one fails.
    assert b.gain[hard].mean() > 0.8 and b.gain[~hard].mean() < 0.2
    assert s.heads_ == ["difficulty", "gain", "success:big", "success:small"]


def test_graded_scores_train_soft_targets():
    X, exs = synthetic(200, seed=1)
    for e in exs:
        e.scores["small"] = 0.3
    s = Scorer().fit(X, exs, "fake/16")
    assert s.predict(X, texts(exs)).difficulty.mean() == pytest.approx(0.7, abs=0.05)


def test_save_load_round_trip_and_encoder_check(fitted, tmp_path):
    s, X, exs = fitted
    s.save(tmp_path / "sc")
    assert sorted(p.name for p in (tmp_path / "sc").iterdir()) == ["scorer.json", "weights.npz"]
    t = Scorer.load(tmp_path / "sc", encoder_identity="fake/16")
    a, b = t.predict(X, texts(exs)), s.predict(X, texts(exs))
    np.testing.assert_allclose(a.difficulty, b.difficulty, atol=1e-3)
    np.testing.assert_allclose(a.success, b.success, atol=1e-3)
    np.testing.assert_allclose(a.domain_probs, b.domain_probs, atol=1e-4)
    with pytest.raises(ScorerError, match="trained with encoder 'fake/16'"):
        Scorer.load(tmp_path / "sc", encoder_identity="minilm-int8/128")


def test_a_pickled_payload_is_refused(fitted, tmp_path):
    s, _, _ = fitted
    d = s.save(tmp_path / "evil")
    # A crafted weights file holding an object array would need pickle to load.
    np.savez(d / "weights.npz", domain_W=np.array([object()], dtype=object))
    with pytest.raises(ScorerError, match="unreadable"):
        Scorer.load(d)


def test_missing_or_inconsistent_files_are_clear_errors(fitted, tmp_path):
    with pytest.raises(ScorerError, match="not a scorer directory"):
        Scorer.load(tmp_path)
    s, _, _ = fitted
    d = s.save(tmp_path / "x")
    meta = json.loads((d / "scorer.json").read_text())
    meta["models"].append("ghost")
    meta["heads"].append("success:ghost")
    (d / "scorer.json").write_text(json.dumps(meta))
    with pytest.raises(ScorerError):
        Scorer.load(d)


def test_each_component_carries_signal_and_the_stacker_weights_them(fitted):
    s, X, exs = fitted
    # Stacker weights for [embedding, text, kNN, shared difficulty, bias]: the difficulty
    # head uses its inputs.
    assert s.stack_.shape == (4, 6)
    assert np.abs(s.stack_[0, :4]).sum() > 0.5


def test_predict_needs_one_text_per_row(fitted):
    s, X, _ = fitted
    with pytest.raises(ScorerError, match="texts for"):
        s.predict(X[:3], ["only one"])


def test_fit_rejects_too_little_data():
    X, exs = synthetic(6)
    with pytest.raises(ScorerError, match="at least 10"):
        Scorer().fit(X, exs, "fake")


def test_predictions_generalise_to_held_out_rows():
    """Trained with 15% of the difficulty labels flipped, the heads still rank prompts they
    never saw by their true outcome: above chance, not memorised."""
    from sklearn.metrics import roc_auc_score

    X, exs = synthetic(300, seed=3)
    rng = np.random.default_rng(3)
    for e in exs:
        if rng.random() < 0.15:
            e.scores["small"] = 1.0 - e.scores["small"]
    s = Scorer().fit(X, exs, "fake/16")
    Xh, held = synthetic(200, seed=4, start=1000)
    assert not {e.text() for e in held} & {e.text() for e in exs}
    b = s.predict(Xh, texts(held))
    hard = np.array([e.scores["small"] == 0 for e in held])
    assert roc_auc_score(hard, b.difficulty) > 0.9
    assert roc_auc_score(hard, b.gain) > 0.9
    assert roc_auc_score(~hard, b.success[:, b.models.index("small")]) > 0.9
    dom = [b.domains[i] for i in b.domain_probs.argmax(1)]
    truth = ["math" if e.source == "gsm8k" else "code" for e in held]
    assert np.mean([a == t for a, t in zip(dom, truth, strict=True)]) > 0.9


def test_saved_and_loaded_scorers_agree_on_held_out_rows(fitted, tmp_path):
    s, _, _ = fitted
    Xh, held = synthetic(100, seed=5, start=2000)
    t = Scorer.load(s.save(tmp_path / "sc"))
    a, b = s.predict(Xh, texts(held)), t.predict(Xh, texts(held))
    # float16 kNN memory and float32 weights on disk: equal to about three decimals.
    for name in ("difficulty", "gain", "success", "domain_probs"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=2e-3, err_msg=name)
    assert (a.domain_probs.argmax(1) == b.domain_probs.argmax(1)).all()


def test_training_prompt_hashes_recognise_seen_and_near_duplicate_prompts(fitted, tmp_path):
    s, _, exs = fitted
    _, held = synthetic(20, seed=6, start=3000)
    assert s.trained_on(exs).all()
    assert not s.trained_on(held).any()
    # Case, punctuation and spacing do not hide a training prompt.
    variant = Example(
        prompt="  " + exs[0].prompt.upper().replace(" ", " ,  ") + "?",
        scores={"small": 1.0},
    )
    assert s.trained_on([variant]).tolist() == [True]
    t = Scorer.load(s.save(tmp_path / "sc"))
    assert t.trained_on(exs + held).tolist() == [True] * len(exs) + [False] * len(held)
    # The artifact stores hashes only, never the prompts' text.
    assert exs[0].prompt not in (tmp_path / "sc" / "scorer.json").read_text()


def test_an_artifact_without_training_hashes_still_loads(fitted, tmp_path):
    s, X, exs = fitted
    d = s.save(tmp_path / "old")
    with np.load(d / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "train_hashes"}
    np.savez_compressed(d / "weights.npz", **arrays)
    t = Scorer.load(d)
    assert t.trained_on(exs) is None
    np.testing.assert_allclose(
        t.predict(X[:5], texts(exs[:5])).difficulty,
        s.predict(X[:5], texts(exs[:5])).difficulty,
        atol=2e-3,
    )


def test_shrunk_neighbour_estimate_weighs_by_similarity_and_falls_back_to_the_prior():
    from router.core.heads import neighbour_estimate

    prior = np.array([0.2])
    labels = np.ones((1, 50, 1))  # every neighbour succeeded
    same = np.ones((1, 50))  # all at cosine 1: full evidence
    far = np.full((1, 50), 0.5)  # all below the floor: no evidence
    # The plain mean ignores how far the neighbours are.
    assert neighbour_estimate(far, labels, 0.0, 0.6, prior)[0, 0] == 1.0
    # Shrunk: 50 full-weight neighbours and 10 pseudo-rows at the prior.
    near_estimate = neighbour_estimate(same, labels, 10.0, 0.6, prior)[0, 0]
    assert near_estimate == pytest.approx((50 + 10 * 0.2) / 60)
    # Unrelated neighbours are no evidence at all: the prior.
    assert neighbour_estimate(far, labels, 10.0, 0.6, prior)[0, 0] == pytest.approx(0.2)
    # Half-way neighbours count half.
    half = np.full((1, 50), 0.8)
    assert neighbour_estimate(half, labels, 10.0, 0.6, prior)[0, 0] == pytest.approx((25 + 2) / 35)


def test_knn_shrink_is_saved_and_an_older_artifact_loads_with_the_plain_mean(tmp_path):
    X, exs = synthetic(200, seed=3)
    s = Scorer(knn_shrink=10.0).fit(X, exs, "fake/16")
    s.save(tmp_path / "sc")
    loaded = Scorer.load(tmp_path / "sc")
    assert loaded.knn_shrink == 10.0
    # float16 kNN memory and float32 weights on disk: equal to about three decimals.
    np.testing.assert_allclose(
        loaded.predict_heads(X[:20], texts(exs[:20])),
        s.predict_heads(X[:20], texts(exs[:20])),
        atol=2e-3,
    )
    hard = np.array([e.scores["small"] == 0 for e in exs])
    assert s.predict(X, texts(exs)).difficulty[hard].mean() > 0.8
    meta = json.loads((tmp_path / "sc" / "scorer.json").read_text())
    del meta["params"]["knn_shrink"]  # as saved before the parameter existed
    (tmp_path / "sc" / "scorer.json").write_text(json.dumps(meta))
    older = Scorer.load(tmp_path / "sc")
    assert older.knn_shrink == 0.0

    # Loaded the old way, its kNN component is the plain mean: the predictions move.
    def log_odds(scorer):
        p = scorer.predict_heads(X[:20], texts(exs[:20]))
        return np.log(p / (1 - p))

    assert np.abs(log_odds(older) - log_odds(s)).max() > 0.1


def sourced(n=900, seed=0, start=0):
    """Three sources that the embedding tells apart only roughly, and two models whose success
    rate is set by the source alone (A: 0.9 / 0.5 / 0.1, B the reverse): within a source the
    labels are coin flips, so the truth for a prompt is its source's rate."""
    rng = np.random.default_rng(seed)
    rates = {
        "gsm8k": (0.9, 0.1),
        "mmlu/abstract_algebra": (0.5, 0.5),
        "mmlu/college_computer_science": (0.1, 0.9),
    }
    X, exs, truth = [], [], []
    for i in range(start, start + n):
        name = list(rates)[i % 3]
        v = rng.normal(0, 1.0, 16)
        v[i % 3] += 2.5
        X.append(v / np.linalg.norm(v))
        pa, pb = rates[name]
        exs.append(
            Example(
                prompt=f"question number {i}",
                source=name,
                scores={"A": float(rng.random() < pa), "B": float(rng.random() < pb)},
                cheap_models=["A"],
            )
        )
        truth.append((pa, pb))
    return np.array(X), exs, np.array(truth)


def test_the_source_prior_is_stacked_on_success_heads_and_steadies_them():
    from router.core.scorer import SOURCE

    X, exs, _ = sourced()
    Xt, test, truth = sourced(300, seed=1, start=900)
    with_prior = Scorer(source_prior=True).fit(X, exs, "fake/16")
    without = Scorer().fit(X, exs, "fake/16")
    heads = with_prior.heads_
    success = [h for h, name in enumerate(heads) if name.startswith("success:")]
    # Thresholded heads compare nothing across models: no source prior there.
    assert np.all(with_prior.stack_[:2, SOURCE] == 0)
    assert np.all(with_prior.stack_[success, SOURCE] > 0.2)
    assert np.all(without.stack_[:, SOURCE] == 0)

    def error(scorer):
        b = scorer.predict(Xt, texts(test))
        cols = [scorer.models_.index(m) for m in ("A", "B")]
        return np.abs(b.success[:, cols] - truth).mean()

    # Closer to each prompt's true rate than the same scorer without it.
    assert error(with_prior) < 0.95 * error(without)


def test_the_source_prior_is_saved_and_a_format_3_artifact_loads_without_it(tmp_path):
    from router.core.scorer import SOURCE

    X, exs, _ = sourced(300)
    s = Scorer(source_prior=True).fit(X, exs, "fake/16")
    s.save(tmp_path / "sc")
    loaded = Scorer.load(tmp_path / "sc")
    assert loaded.source_prior and loaded.knn_S_ is not None
    np.testing.assert_allclose(
        loaded.predict_heads(X[:30], texts(exs[:30])),
        s.predict_heads(X[:30], texts(exs[:30])),
        atol=2e-3,
    )
    # As format 3 saved it: no knn_S, a five-column stack, no source_prior parameter.
    with np.load(tmp_path / "sc" / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "knn_S"}
    arrays["stack"] = np.delete(arrays["stack"], SOURCE, axis=1)
    np.savez_compressed(tmp_path / "sc" / "weights.npz", **arrays)
    meta = json.loads((tmp_path / "sc" / "scorer.json").read_text())
    meta["format_version"] = 3
    del meta["params"]["source_prior"]
    (tmp_path / "sc" / "scorer.json").write_text(json.dumps(meta))
    older = Scorer.load(tmp_path / "sc")
    assert not older.source_prior and older.knn_S_ is None
    assert older.stack_.shape == s.stack_.shape and not older.stack_[:, SOURCE].any()
    # Without its source prior, the success estimates move.
    moved = older.predict_heads(X[:30], texts(exs[:30])) - s.predict_heads(X[:30], texts(exs[:30]))
    assert np.abs(moved[:, 2:]).max() > 0.01


def test_source_means_start_from_the_head_mean():
    from router.core.heads import source_means

    Y = np.array([[1.0, np.nan], [1.0, 0.0], [0.0, 1.0], [0.0, np.nan]])
    S = source_means(Y, np.array(["a", "a", "b", "b"]), shrink=2.0)
    # Head 0: mean 0.5; source a has two 1s → (2 + 2 × 0.5) / (2 + 2).
    assert S[0, 0] == pytest.approx(0.75) and S[2, 0] == pytest.approx(0.25)
    assert np.isnan(S[0, 1]) and np.isnan(S[3, 1])
    assert S[1, 1] == pytest.approx((0 + 2 * 0.5) / 3) and S[2, 1] == pytest.approx(2 / 3)


def two_datasets():
    """A scorer fitted on two datasets of other prompts and other models: `synthetic`'s small
    and big, and tiny and huge; with the first dataset's embeddings and rows."""
    X1, one = synthetic(200)
    X2, two = synthetic(200, seed=1, start=200)
    for ex in two:
        ex.scores = {"tiny": ex.scores["small"], "huge": ex.scores["big"]}
        ex.cheap_models = ["tiny"]
    return Scorer().fit(np.vstack([X1, X2]), one + two, "fake/16"), X1, one


def test_success_heads_are_comparable_only_when_learned_on_the_same_prompts(tmp_path):
    s, _, _ = two_datasets()
    col = {m: i for i, m in enumerate(s.models_)}
    ok = s.success_comparable_
    assert ok[col["small"], col["big"]] and ok[col["tiny"], col["huge"]]
    assert not ok[col["small"], col["huge"]] and not ok[col["tiny"], col["big"]]
    s.save(tmp_path / "s")
    loaded = Scorer.load(tmp_path / "s", encoder_identity="fake/16")
    assert np.array_equal(loaded.success_comparable_, ok)


def test_the_stacker_converges_where_one_component_separates_the_outcomes():
    """A component that splits the outcomes almost perfectly once made Newton's full steps run
    its weight to thousands and every estimate to 0; the stacker must still find the fit."""
    from router.core.heads import fit_stacker, sigmoid

    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.5).astype(float)
    z = np.where(y == 1, -2.95, -4.3) + rng.normal(0, 0.2, 300)  # apart by 1.35, noise 0.2
    w = fit_stacker(z[:, None], y)
    p = sigmoid(z * w[0] + w[1])
    assert p[y == 1].mean() > 0.9 and p[y == 0].mean() < 0.1, w
    assert abs(w[0]) < 100


def users_own_rows(n=300):
    """A user's rows as they often come: prompts, scores and costs, with no source, domain or
    cheap tier; vectors of the shipped encoder's width (384)."""
    X, exs = synthetic(n)
    X = np.hstack([X, np.zeros((len(X), 384 - X.shape[1]))])
    costs = {"small": 0.001, "mid": 0.004, "big": 0.01}
    rows = [
        Example(prompt=e.prompt, scores={**e.scores, "mid": 1.0 - e.scores["small"]}, costs=costs)
        for e in exs
    ]
    return X, rows


def test_rows_without_domain_or_tier_train_on_the_shipped_domain_head_and_the_cheaper_half(
    tmp_path,
):
    from router.core.scorer import default_scorer_path

    X, rows = users_own_rows()
    scorer = Scorer().fit(X, rows, "minilm-l2-q8/128")
    shipped = Scorer.load(default_scorer_path())
    # The cheap tier: the cheaper half of the three models by cost.
    assert scorer.cheap_models_ == ["small"]
    difficulty = scorer.predict(X, texts(rows)).difficulty
    hard = np.array([r.scores["small"] == 0.0 for r in rows])
    assert difficulty[hard].mean() > difficulty[~hard].mean() + 0.5
    # The domain head is the shipped scorer's, and the scorer says so, saved and loaded.
    assert scorer.domains_ == shipped.domains_
    np.testing.assert_allclose(
        scorer.predict_domain_proba(X[:20]), shipped.predict_domain_proba(X[:20]), atol=1e-6
    )
    loaded = Scorer.load(scorer.save(tmp_path / "own"))
    assert loaded.domain_head_from_ == "shipped scorer"
    # Rows that carry their domains learn their own head.
    assert (
        Scorer.load(
            Scorer().fit(*synthetic(), "fake/16").save(tmp_path / "labelled")
        ).domain_head_from_
        is None
    )


def test_own_rows_without_a_tier_beside_tiered_rows_still_teach_the_difficulty():
    """A user's tierless rows trained with the shipped datasets: their difficulty (here along
    an axis the tiered rows never vary) is learned from their own cheaper model."""
    X, tiered = synthetic(300)
    rng = np.random.default_rng(1)
    Xo, own = [], []
    for i in range(300):
        v = rng.normal(0, 0.3, 16)
        v[3] += 2.0
        hard = i % 2 == 0
        v[4] += 2.0 if hard else -2.0
        Xo.append(v / np.linalg.norm(v))
        own.append(
            Example(
                prompt=f"my own question {'tricky' if hard else 'plain'} {i}",
                scores={"u-small": 0.0 if hard else 1.0, "u-big": 1.0},
                costs={"u-small": 0.0001, "u-big": 0.002},
            )
        )
    Xo = np.array(Xo)
    scorer = Scorer().fit(np.vstack([X, Xo]), tiered + own, "fake/16")
    assert scorer.cheap_models_ == ["small", "u-small"]
    difficulty = scorer.predict(Xo, texts(own)).difficulty
    hard = np.array([r.scores["u-small"] == 0.0 for r in own])
    assert difficulty[hard].mean() > difficulty[~hard].mean() + 0.3


def test_rows_without_a_tier_or_costs_or_with_another_encoder_are_clear_errors():
    from router.core.data import DataError

    X, rows = users_own_rows()
    no_costs = [Example(prompt=r.prompt, scores=r.scores) for r in rows]
    with pytest.raises(DataError, match="no row names its cheap_models, and none has costs"):
        Scorer().fit(X, no_costs, "minilm-l2-q8/128")
    with pytest.raises(ScorerError, match="no row has a domain label.*not 'other/128'"):
        Scorer().fit(X, rows, "other/128")
