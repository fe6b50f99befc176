"""make model's gate: a design's figures beside the shipped artifact's, and a worse one refused
(router/evaluation/gate.py, scripts/build_scorer.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from router.evaluation import gate
from tests.conftest import ROOT


def report(apgr: float | None = None, quality: float | None = None, rows: int = 100) -> dict:
    """The part of a `router eval --json` report the gate reads."""
    router = {"apgr": apgr, "cost_reduction_at_95": 0.4, "aiq": 0.7}
    if quality is not None:
        router = {"apgr": None, "quality_at_best_single_cost": quality, "aiq": 0.6}
    return {"rows": rows, "results": {"router": router, "router-no-shared": dict(router)}}


def measured(rl_cv=0.66, rl_loso=0.55, dc_cv=0.65, dc_loso=0.60) -> dict:
    return {
        "routellm": {"cv": report(apgr=rl_cv), "loso": report(apgr=rl_loso)},
        "dcrouter": {"cv": report(quality=dc_cv), "loso": report(quality=dc_loso)},
    }


def test_the_gated_figure_depends_on_the_kind_of_data():
    figures = gate.figures_of(measured())
    assert (
        figures["routellm"]["cv"]["kind"] == "two_tier"
        and figures["routellm"]["cv"]["apgr"] == 0.66
    )
    assert figures["dcrouter"]["loso"]["kind"] == "n_model"
    assert figures["dcrouter"]["loso"]["quality_at_best_single_cost"] == 0.60
    assert gate.figures_of(measured(), "no-such-curve") is None


def test_a_design_worse_on_either_mode_is_named():
    before = gate.figures_of(measured())
    assert gate.regressions(gate.figures_of(measured()), before) == []
    assert gate.regressions(gate.figures_of(measured(rl_cv=0.70)), before) == []
    worse = gate.regressions(gate.figures_of(measured(rl_loso=0.54, dc_cv=0.64)), before)
    assert worse == [
        "routellm loso: apgr 0.54 < previous 0.55",
        "dcrouter cv: quality_at_best_single_cost 0.64 < previous 0.65",
    ]
    assert gate.regressions(gate.figures_of(measured(rl_loso=0.54)), before, tolerance=0.02) == []
    assert gate.regressions(gate.figures_of(measured()), None) == []


@pytest.fixture()
def build_scorer(monkeypatch):
    spec = importlib.util.spec_from_file_location("build_scorer", ROOT / "scripts/build_scorer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    trained = []
    # No measuring and no training here: the gate's decision is what is tested.
    monkeypatch.setattr(mod, "load_encoder", lambda *a, **k: type("E", (), {"identity": "x"})())
    monkeypatch.setattr(mod, "read_jsonl", lambda path: [])
    monkeypatch.setattr(mod, "read_many", lambda paths: [])
    monkeypatch.setattr(mod, "train_and_save", lambda out, *a: trained.append((out, *a)) or 0)
    # The free-model check passes unless a test says otherwise (tests/test_free_model.py
    # measures it for real).
    monkeypatch.setattr(mod, "check_free_model", lambda *a, **k: None)
    monkeypatch.setattr(mod, "cpu", lambda: HERE)
    mod.trained = trained
    return mod


HERE = "CPU A, with VNNI"  # what build_scorer.cpu() says in these tests
# make model's design by default.
DESIGN = {"shared_dims": 8, "knn_shrink": 0.0, "source_prior": False, "difficulty": "blend"}


def ship(out, figures: dict, measured_on: str | None = HERE) -> dict:
    """A shipped artifact's scorer.json in `out`: the design, its figures and where they were
    measured (None: not said)."""
    shipped = {"params": {"shared_dims": 8, "difficulty": "blend"}, "evaluation": figures}
    if measured_on is not None:
        shipped["measured_on"] = measured_on
    out.mkdir(exist_ok=True)
    (out / "scorer.json").write_text(json.dumps(shipped))
    return shipped


def test_make_model_refuses_to_overwrite_a_better_artifact_unless_forced(
    build_scorer, monkeypatch, tmp_path, capsys
):
    out = tmp_path / "default"
    shipped = ship(out, gate.figures_of(measured()))
    monkeypatch.setattr(build_scorer.gate, "measure", lambda *a, **k: measured(dc_loso=0.58))
    assert build_scorer.main(["--out", str(out), "--no-record"]) == 1
    printed = capsys.readouterr().out
    assert "dcrouter loso: quality_at_best_single_cost 0.58 < previous 0.6" in printed
    assert "not overwriting" in printed and build_scorer.trained == []
    assert json.loads((out / "scorer.json").read_text()) == shipped
    assert build_scorer.main(["--out", str(out), "--no-record", "--force"]) == 0
    ((where, _embed, _identity, params, stacked, _figures, _free, cpu),) = build_scorer.trained
    assert cpu == HERE  # the artifact records where its figures were measured
    assert where == out and params == DESIGN and stacked


def test_the_shared_difficulty_is_stacked_only_if_the_same_fits_measure_no_worse_with_it(
    build_scorer, monkeypatch, tmp_path, capsys
):
    out = tmp_path / "default"
    runs = measured(rl_cv=0.66)
    for modes in runs.values():  # the same fits without the shared model did better on CV
        modes["cv"]["results"]["router-no-shared"]["apgr"] = 0.70
        modes["cv"]["results"]["router-no-shared"]["quality_at_best_single_cost"] = 0.70
    monkeypatch.setattr(build_scorer.gate, "measure", lambda *a, **k: runs)
    assert build_scorer.main(["--out", str(out), "--no-record"]) == 0
    printed = capsys.readouterr().out
    assert "routellm cv: apgr 0.66 < previous 0.7" in printed
    assert "shipping the stack without it" in printed
    assert "the previous design (no shared difficulty), from the same fits" in printed
    ((_out, _embed, _identity, params, stacked, figures, _free, _cpu),) = build_scorer.trained
    # The shared model still ships (shared_dims), unstacked, with the figures of that design.
    assert params == DESIGN and not stacked
    assert figures == gate.figures_of(runs, "router-no-shared")


def test_make_model_refuses_a_design_where_a_free_model_lowers_quality_unless_forced(
    build_scorer, monkeypatch, tmp_path, capsys
):
    import numpy as np

    from router.evaluation.free_model import FreeModelCheck

    out = tmp_path / "default"
    monkeypatch.setattr(build_scorer.gate, "measure", lambda *a, **k: measured())
    lost = FreeModelCheck("smollm2-135m", {}, np.linspace(0, 1, 201), [(0.5, 0.64, 0.63)])
    seen = []
    monkeypatch.setattr(
        build_scorer, "check_free_model", lambda *a, **k: seen.append(a[2:]) or lost
    )
    assert build_scorer.main(["--out", str(out), "--no-record"]) == 1
    printed = capsys.readouterr().out
    assert "a free smollm2-135m lowers the router's quality" in printed
    assert "not overwriting" in printed and build_scorer.trained == []
    # It checks the design being built, on the curve that ships (here: stacked).
    assert seen == [(DESIGN, True, 5)]
    assert build_scorer.main(["--out", str(out), "--no-record", "--force"]) == 0
    # Forced, the artifact records what the check found.
    ((*_, free, _cpu),) = build_scorer.trained
    assert free == {
        "model": "smollm2-135m",
        "budget_grid": 201,
        "budgets_worse": 1,
        "worst_drop": pytest.approx(0.01),
        "fold_seed": 0,
    }


def test_figures_recorded_on_another_cpu_are_measured_again_here(
    build_scorer, monkeypatch, tmp_path, capsys
):
    out = tmp_path / "default"
    # Recorded elsewhere, 0.01 above what this CPU measures for the same design.
    figures = gate.figures_of(measured(dc_cv=0.66))
    ship(out, figures, "CPU B, without VNNI")
    designs = []

    def measure(sets, also, embed, identity, params, *a, **k):
        designs.append(params)
        return measured(dc_cv=0.65 if params["knn_shrink"] == 0.0 else 0.64)

    monkeypatch.setattr(build_scorer.gate, "measure", measure)
    # The same design: this run's figures are the bar, not CPU B's.
    assert build_scorer.main(["--out", str(out), "--no-record"]) == 0
    printed = capsys.readouterr().out
    assert "recorded its figures on CPU B, without VNNI; this is CPU A, with VNNI" in printed
    assert "this run" in printed and len(designs) == 1
    # Another design: the shipped one is measured here too, and the new one is worse than it.
    assert build_scorer.main(["--out", str(out), "--no-record", "--knn-shrink", "10"]) == 1
    printed = capsys.readouterr().out
    assert designs[1]["knn_shrink"] == 10.0 and designs[2]["knn_shrink"] == 0.0
    assert "dcrouter cv: quality_at_best_single_cost 0.64 < previous 0.65" in printed
    # An artifact that does not say where it was measured is measured again too.
    ship(out, figures, measured_on=None)
    assert build_scorer.main(["--out", str(out), "--no-record"]) == 0
    assert "a CPU it does not name" in capsys.readouterr().out


def test_another_encoder_is_measured_beside_the_shipped_design_on_the_shipped_encoder(
    build_scorer, monkeypatch, tmp_path, capsys
):
    out = tmp_path / "default"
    shipped = ship(out, gate.figures_of(measured(rl_loso=0.61)), "CPU B, without VNNI")
    shipped["encoder"] = "minilm-l2-q8/128"
    (out / "scorer.json").write_text(json.dumps(shipped))
    monkeypatch.setattr(
        build_scorer,
        "load_encoder",
        lambda name, max_tokens=128, **k: type("E", (), {"identity": f"{name}/{max_tokens}"})(),
    )
    encoders = []

    def measure(sets, also, embed, identity, params, *a, **k):
        encoders.append(identity)
        return measured(rl_loso=0.57 if identity.startswith("minilm-l3") else 0.60)

    monkeypatch.setattr(build_scorer.gate, "measure", measure)
    argv = ["--out", str(out), "--no-record", "--encoder", "minilm-l3-q8"]
    # Shipping a scorer on an encoder its configs do not load is refused.
    assert build_scorer.main(argv) == 2
    assert "only with --measure-only" in capsys.readouterr().out and encoders == []
    # Measured: the bar is the shipped design on the shipped encoder, measured here, not this
    # run's figures (same design, another encoder).
    assert build_scorer.main([*argv, "--measure-only"]) == 1
    printed = capsys.readouterr().out
    assert encoders == ["minilm-l3-q8/128", "minilm-l2-q8/128"]
    assert "on minilm-l2-q8/128, measured here" in printed
    # The design is named for a reader (BENCHMARKS prints it), not as a Python dict.
    assert "design (shared_dims 8, knn_shrink 0.0, source_prior False, difficulty" in printed
    assert "routellm loso: apgr 0.57 < previous 0.6" in printed
