"""BENCHMARKS.md is rendered from bench/results/*.json alone (scripts/render_benchmarks.py,
bench/BENCHMARKS.md.j2), and the bench scripts write those files through bench/results.py."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "bench_results"  # short check runs of the scripts
TEMPLATE = ROOT / "bench" / "BENCHMARKS.md.j2"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render_benchmarks = _load("render_benchmarks", ROOT / "scripts" / "render_benchmarks.py")
bench_results = _load("bench_results", ROOT / "bench" / "results.py")
render = render_benchmarks.render
BenchmarkError = render_benchmarks.BenchmarkError


def section(text: str, heading: str) -> str:
    """The text under a `## ` or `### ` heading, up to the next heading of any level."""
    start = text.index(heading)
    m = re.search(r"^#{2,3} ", text[start + len(heading) :], re.M)
    return text[start : start + len(heading) + (m.start() if m else len(text))]


def fixtures(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(FIXTURES, out)
    return out


# ---- the page -------------------------------------------------------------------------------


def test_benchmarks_md_is_what_the_results_render_to():
    """Nobody edits BENCHMARKS.md by hand: it is exactly the render of bench/results/."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_benchmarks.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rendering_twice_gives_the_same_file(tmp_path):
    results = fixtures(tmp_path)
    first = render(results)
    assert render(results) == first
    assert render(ROOT / "bench" / "results") == render(ROOT / "bench" / "results")
    out = tmp_path / "B.md"
    script = [sys.executable, str(ROOT / "scripts" / "render_benchmarks.py")]
    for _ in range(2):
        subprocess.run([*script, "--results", str(results), "--out", str(out)], check=True)
        assert out.read_text() == first


def test_missing_results_render_as_not_measured_yet(tmp_path):
    text = render(tmp_path)  # an empty folder: nothing measured
    for make in (
        "make model",
        "make policies",
        "make bench",
        "make bench-proxy",
        "make bench-load",
        "make bench-scale",
        "make bench-local",
        "make bench-smollm2",
        "make bench-budget",
        "make bench-sessions",
        "make bench-decision-log",
        "make bench-cascade",
    ):
        assert f"*Not measured yet: run `{make}`.*" in text
    assert "## Other measurements" not in text


def test_every_section_renders_from_what_the_scripts_record(tmp_path):
    """The fixtures are the scripts' own output (short runs): every figure the template names
    for them exists, and each section shows its command, commit, date and load."""
    text = render(fixtures(tmp_path))
    for heading, name in (
        ("## Load and faults", "load"),
        ("## Local tier", "local_tier"),
        ("## SmolLM2-135M's own profile", "smollm2_pool"),
        ("## Budget controller", "budget"),
        ("## Sessions", "session_overhead"),
        ("## Decision log", "decision_log"),
        ("## Cascades", "cascade_latency"),
        ("### route()", "route_latency"),
        ("### Proxy overhead", "proxy_overhead"),
    ):
        part = section(text, heading)
        data = json.loads((FIXTURES / f"{name}.json").read_text())
        assert "Not measured yet" not in part, heading
        assert f"```bash\n{data['command']}\n```" in part
        assert f"at commit `{data['commit']}`" in part and data["date"] in part
        assert f"load average {data['load_average_start'][0]:.1f}" in part
        for table in data["tables"]:
            assert f"*{table['title']}*" in part
    budget = json.loads((FIXTURES / "budget.json").read_text())["figures"]
    assert f"**{budget['worst_settled_points']:.1f} points**" in section(text, "## Budget")


def test_a_figure_the_template_names_but_a_present_file_lacks_fails_loudly(tmp_path):
    results = fixtures(tmp_path)
    path = results / "budget.json"
    data = json.loads(path.read_text())
    del data["figures"]["worst_settled_points"]
    path.write_text(json.dumps(data))
    with pytest.raises(BenchmarkError) as e:
        render(results)
    msg = str(e.value)
    assert "budget.json" in msg and "'worst_settled_points'" in msg
    assert re.search(r"BENCHMARKS\.md\.j2 names it at line \d+", msg), msg
    # From the command line: one error line, exit 2, nothing written.
    out = tmp_path / "B.md"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_benchmarks.py")]
        + ["--results", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "worst_settled_points" in res.stderr and not out.exists()


def test_a_nested_figure_or_a_table_that_is_missing_fails_loudly(tmp_path):
    results = fixtures(tmp_path)
    path = results / "load.json"
    data = json.loads(path.read_text())
    del data["figures"]["scenarios"]["fast"]["rows_missing"]
    path.write_text(json.dumps(data))
    with pytest.raises(
        BenchmarkError, match=r"load\.json has no figure 'scenarios\.fast\.rows_missing'"
    ):
        render(results)
    result = render_benchmarks.load_result(results / "decision_log.json")
    with pytest.raises(BenchmarkError, match="has no table 'nope'"):
        result.table("nope")


@pytest.mark.parametrize(
    "broken, message",
    [
        ("{", "not a results file"),
        ('{"name": "x"}', "lacks title, command, commit, date, figures, tables"),
    ],
)
def test_a_malformed_results_file_is_named(tmp_path, broken, message):
    (tmp_path / "x.json").write_text(broken)
    with pytest.raises(BenchmarkError, match=message) as e:
        render(tmp_path)
    assert "x.json" in str(e.value)


def test_a_results_file_named_otherwise_than_its_file_is_refused(tmp_path):
    data = json.loads((FIXTURES / "load.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps(data))
    with pytest.raises(BenchmarkError, match="its name is 'load', not 'other'"):
        render(tmp_path)


def test_results_no_section_names_are_shown_generically(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    bench_results.record(
        "cache",
        title="Semantic cache hits",
        command="python bench/cache.py --n 10",
        figures={"hit_rate": 0.4137, "lookups": 12345, "by_kind": {"exact": 7}},
        tables=[{"title": "hits by kind", "columns": ["kind", "hits"], "rows": [["exact", 7]]}],
    )
    part = section(render(tmp_path), "### Semantic cache hits")
    assert "python bench/cache.py --n 10" in part
    assert "| `hit_rate` | 0.414 |" in part and "| `lookups` | 12,345 |" in part
    assert "| `by_kind.exact` | 7 |" in part
    assert "*hits by kind*" in part and "| exact | 7 |" in part


# ---- routing quality: `router eval --json` as results tables ---------------------------------


def _report(models: tuple[str, ...]) -> dict:
    """A real `router eval --cv` report on a small dataset with a learnable signal."""
    from router.core.data import Example
    from router.evaluation.evaluate import EvalData, evaluate

    rng = np.random.default_rng(0)
    rows, X = [], []
    for i in range(90):
        hard = i % 2 == 1
        text = (f"Prove theorem {i} rigorously" if hard else f"What is {i} plus {i}?") + f" #{i}"
        scores = {"small": 0.0 if hard else 1.0, "big": 1.0}
        costs = {"small": 0.001, "big": 0.01}
        if "mid" in models:
            scores["mid"], costs["mid"] = float(not hard or i % 4 == 1), 0.004
        rows.append(
            Example(
                prompt=text,
                source="gsm8k",
                scores=scores,
                costs=costs,
                cheap_models=["small"],
                id=str(i),
            )
        )
        v = rng.normal(size=16) + (3.0 if hard else -3.0)
        X.append(v / np.linalg.norm(v))
    report = evaluate(EvalData.from_examples(rows), np.array(X, dtype=np.float32), cv=3)
    return json.loads(json.dumps(report.to_json()))  # as `router eval --json` writes it


@pytest.mark.parametrize("models", [("small", "big"), ("small", "mid", "big")])
def test_routing_results_render_as_tables_generically(tmp_path, monkeypatch, models):
    report = _report(models)
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    table = bench_results.eval_table(report, "3-fold CV by prompt text")
    bench_results.record(
        "routing_toy",
        title="A toy dataset",
        command="router eval toy.jsonl --cv 3 --json toy.json",
        figures=bench_results.eval_figures(report),
        tables=[table],
    )
    text = render(tmp_path)
    part = section(text, "### A toy dataset")
    assert "Not measured yet: run `make model`" not in text
    assert "router eval toy.jsonl --cv 3 --json toy.json" in part
    assert "*3-fold CV by prompt text*" in part
    router = report["results"]["router"]
    names = [row[0] for row in table["rows"]]
    assert names[:2] == ["router", "knn"] and "random" in names and "oracle" in names
    assert not any(n.startswith("single:") for n in names)
    if len(models) == 2:
        assert table["columns"][1] == "APGR"
        assert f"| router | {router['apgr']:.3f} | {100 * router['cpt_50']:.1f}% |" in part
    else:
        assert "APGR" not in table["columns"]
        q = router["quality_at_best_single_cost"]
        assert f"| router | {q:.3f} |" in part
    figures = bench_results.eval_figures(report)
    assert figures["router_aiq"] == router["aiq"] and figures["mode"] == report["mode"]


def test_eval_table_names_a_curve_the_report_lacks():
    report = {"results": {"router": {"apgr": 0.6}}}
    with pytest.raises(ValueError, match=r"no curve \['hybrid'\]"):
        bench_results.eval_table(report, "t", curves=["router", "hybrid"])


# ---- record() ---------------------------------------------------------------------------------


def test_record_checks_tables_and_writes_json_without_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="a row has 1 cells, not 2"):
        bench_results.record(
            "x",
            title="x",
            command="c",
            figures={},
            tables=[{"title": "t", "columns": ["a", "b"], "rows": [[1]]}],
        )
    with pytest.raises(ValueError, match="1 formats for 2 columns"):
        bench_results.record(
            "x",
            title="x",
            command="c",
            figures={},
            tables=[{"title": "t", "columns": ["a", "b"], "rows": [], "formats": [""]}],
        )
    with pytest.raises(ValueError, match="not a file inside the repository"):
        bench_results.record("x", title="x", command="c", figures={}, plots=["/etc/passwd"])
    path = bench_results.record(
        "x", title="x", command="c", figures={"p50": float("nan"), "n": np.int64(3)}
    )
    data = json.loads(path.read_text())  # strict JSON: NaN would not parse in other readers
    assert data["figures"] == {"p50": None, "n": 3} and path.parent == tmp_path
    assert len(data["load_average_start"]) == 3 and data["cpu_count"] == os.cpu_count()
    assert data["cpu"] == bench_results.cpu()


def test_results_name_the_cpu_and_whether_it_has_vnni(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_vnni\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_vnni\n"
    )
    assert bench_results.cpu(info) == "AMD EPYC, with VNNI"
    info.write_text("model name\t: Intel Xeon\nflags\t\t: fpu avx2 avx_vnni_int8\n")
    assert bench_results.cpu(info) == "Intel Xeon, without VNNI"
    assert bench_results.cpu(tmp_path / "absent") is None


def test_a_batch_of_benches_on_a_clean_tree_stamps_a_clean_commit(tmp_path, monkeypatch):
    """The first bench of a batch writes its results file; the second must still call the
    tree clean. Any other change to a tracked file makes the stamp `-dirty`."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    files = ["bench/results/route.json", "docs/budget_controller.png", "router/policy.py"]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("before\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base")
    monkeypatch.setattr(bench_results, "ROOT", tmp_path)
    clean = bench_results.commit()
    assert re.fullmatch(r"[0-9a-f]{7,}", clean), clean
    for f in files[:2]:  # what benches write
        (tmp_path / f).write_text("after\n")
    assert bench_results.commit() == clean
    (tmp_path / files[2]).write_text("after\n")
    assert bench_results.commit() == clean + "-dirty"


def test_a_run_that_rebuilds_an_artifact_stamps_the_commit_it_started_from(tmp_path):
    """`make model` writes the shipped scorer, then records the figures it measured on the
    commit it started from: the stamp must not be `-dirty` for the run's own artifact."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "bench").mkdir()
    shutil.copy(ROOT / "bench" / "results.py", tmp_path / "bench" / "results.py")
    artifact = tmp_path / "router" / "artifacts" / "scorer.json"
    artifact.parent.mkdir(parents=True)
    artifact.write_text("before\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base")
    run = (
        "import sys; sys.path.insert(0, 'bench'); import results; "
        "open('router/artifacts/scorer.json', 'w').write('rebuilt'); "
        "print(results.record('m', title='t', command='c', figures={}))"
    )
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path / "out")}
    subprocess.run([sys.executable, "-c", run], cwd=tmp_path, env=env, check=True)
    stamp = json.loads((tmp_path / "out" / "m.json").read_text())["commit"]
    assert re.fullmatch(r"[0-9a-f]{7,}", stamp), stamp


# ---- the bench scripts themselves (the cheap ones, for real) -------------------------------


def _run_bench(tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    name = Path(args[0]).stem
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_session_overhead_records_its_figures(tmp_path):
    data = _run_bench(tmp_path, "bench/session_overhead.py", "--repeats", "3", "--turns", "1", "10")
    assert data["command"] == "python bench/session_overhead.py --repeats 3 --turns 1 10"
    assert set(data["figures"]["p50_us"]) == {"1", "10"}
    assert [row[0] for row in data["tables"][0]["rows"]] == [1, 10]
    part = section(render(tmp_path), "## Sessions")
    assert "3 repeats per length" in part and "| 10 | 7,824 |" in part


def test_decision_log_bench_records_its_figures(tmp_path, postgres_server):
    # postgres_server: PostgreSQL's binaries are here (else skip; a failure under CI).
    data = _run_bench(tmp_path, "bench/decision_log.py", "--rows", "200", "--outage-rows", "50")
    f = data["figures"]
    assert f["outage"]["written_after"] == 50 and f["outage"]["dropped"] == 0
    assert f["sqlite"]["rows_per_s"] > 0 and f["postgresql"]["rows_per_s"] > 0
    assert "50 during the outage" in section(render(tmp_path), "## Decision log")


# ---- what the page may not contain ------------------------------------------------------------


def test_the_page_and_its_template_name_no_issue_and_no_path_outside_the_repository(tmp_path):
    for text in (
        TEMPLATE.read_text(),
        (ROOT / "BENCHMARKS.md").read_text(),
        render(fixtures(tmp_path)),
    ):
        assert not re.search(r"\bissues? #?\d+|(?<![\w&])#\d+\b", text, re.I)
        assert "../" not in text and "/work/" not in text and "/tmp/" not in text


def test_the_template_prose_types_no_figure():
    """Numbers in the page come from results files: outside Jinja expressions, code and
    comments the template holds no measured-looking number."""
    text = TEMPLATE.read_text()
    text = re.sub(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", " ", text, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    # Digits that are not part of a name (SmolLM2-135M, GPT-4, p50, llama3, 127.0.0.1 is code).
    numbers = re.findall(r"(?<![\w.\-−])\d[\d,.]*%?(?![\w\-])", text)
    assert not numbers, f"hand-typed figures in the template: {numbers}"
