"""The policy-tuning notebooks run top to bottom on the shipped data, are stored stripped, and
agree with their paired percent-format `.py` sources (jupytext), which are what reviewers read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.name for p in NOTEBOOKS]
POLICIES = ROOT / "policies"


def test_notebooks_exist():
    assert {"01_routing_data.ipynb", "02_tune_policy.ipynb", "03_decision_log.ipynb"} <= set(NAMES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs; strip them"
            assert cell.execution_count is None, f"{path.name}: execution_count is set"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_agrees_with_its_py_source(path):
    jupytext = pytest.importorskip("jupytext")
    source = path.with_suffix(".py")
    assert source.is_file(), f"{path.name} has no paired {source.name}: run `make notebooks`"
    nb = nbformat.read(path, as_version=4)
    py = jupytext.read(source)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", path.name
    pairs = list(zip(nb.cells, py.cells, strict=False))
    assert len(nb.cells) == len(py.cells), (
        f"{path.name} has {len(nb.cells)} cells, {source.name} {len(py.cells)}: `make notebooks`"
    )
    for i, (a, b) in enumerate(pairs):
        assert (a.cell_type, a.source) == (b.cell_type, b.source), (
            f"{path.name} cell {i} differs from {source.name}: edit the .py, then `make notebooks`"
        )


def test_every_py_source_has_its_notebook():
    sources = sorted((ROOT / "notebooks").glob("*.py"))
    assert sources, "no notebook sources"
    assert [p.with_suffix(".ipynb").name for p in sources] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_runs(path, monkeypatch):
    # CI mode: notebooks write tuned policies and logs to temporary directories, not the repo.
    # The kernel inherits this environment (and the session's ROUTER_CACHE_DIR from conftest,
    # so notebook 03 reuses the embeddings notebook 02 cached).
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    before = sorted(POLICIES.iterdir())
    nb = nbformat.read(path, as_version=4)
    # "python3" resolves to the interpreter running the tests (jupyter_client swaps a bare
    # "python" in the kernelspec for sys.executable), so the kernel sees this venv's packages.
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError when a cell fails
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: {elapsed:.1f} s")
    assert sorted(POLICIES.iterdir()) == before, "a notebook changed policies/ in CI mode"
