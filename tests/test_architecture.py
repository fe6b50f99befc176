"""The package's shape stays as docs/architecture.md says: every module of router/ is on that
page, the diagram shows the layers the import-linter contract enforces, and no module grows
past 700 lines. (The import contracts themselves run as `lint-imports` in `make test`.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
MAX_LINES = 700


def modules() -> list[Path]:
    return sorted(
        p.relative_to(ROOT)
        for p in (ROOT / "router").rglob("*.py")
        if "migrations" not in p.parts  # Alembic's environment and versions, named as a folder
    )


def test_no_module_in_router_is_over_700_lines():
    long = {
        str(p): n for p in modules() if (n := len((ROOT / p).read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_every_module_of_router_is_on_the_architecture_page():
    page = PAGE.read_text()
    missing = []
    for p in modules():
        if p.name == "__init__.py" and p.parent.name != "cli":
            continue  # a subpackage's docstring; the subpackage itself is a section of the page
        # Named by its path; a module of a folder inside a layer (`router/serving/decision_log/`)
        # may be named in its folder's row instead.
        folder = f"{p.parent.as_posix()}/"
        in_folder_row = len(p.parts) > 3 and any(
            folder in line and p.name in line for line in page.splitlines()
        )
        if p.as_posix() not in page and not in_folder_row:
            missing.append(p.as_posix())
    assert not missing, f"docs/architecture.md does not say what these modules do: {missing}"


def test_the_layer_diagram_shows_the_layers_the_contract_enforces():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in config["contracts"] if c["type"] == "layers")
    diagram = re.search(r"```mermaid\n(.*?)```", PAGE.read_text(), re.S).group(1)
    # The arrows, top to bottom, in the contract's order.
    chain = re.search(r"^\s*(\w+(?:\s*-->\s*\w+)+)\s*$", diagram, re.M).group(1)
    shown = [f"router.{name.strip()}" for name in chain.split("-->")]
    assert shown == layers
    for layer in layers:
        assert f"<b>{layer}</b>" in diagram
