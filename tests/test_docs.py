"""The docs site builds strictly (broken links and anchors fail), and the repository refers to
no file outside itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_docs_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    mkdocs = [sys.executable, "-m", "mkdocs"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run(
        [*mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_docs_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        """mkdocs.yml names Python callables (`!!python/name:...`, the mermaid fence): kept
        as None here, never imported."""

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]

    def pages(items):
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                yield from pages(value)
            else:
                yield value

    listed = set(pages(nav))
    on_disk = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert on_disk == listed, f"only on disk: {on_disk - listed}; only in nav: {listed - on_disk}"


def test_readme_links_resolve():
    import re

    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README.md links to missing {target}"


def test_no_file_cites_the_design_briefing_that_is_not_in_the_repo():
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(
        [git, "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if name.startswith("docs/") or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if "DESIGN" + ".md" in text:
            hits.append(name)
    assert not hits, f"files that refer outside the repository: {hits}"


def test_the_readme_docs_table_lists_every_docs_page_once():
    import re
    from collections import Counter

    text = (ROOT / "README.md").read_text()
    table = text.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    linked = Counter(m.group(1) for r in rows if (m := re.match(r"\| \[[^\]]+\]\(([^)]+)\)", r)))
    assert sum(linked.values()) == len(rows), f"rows whose first cell is not a link: {rows}"
    twice = [page for page, n in linked.items() if n > 1]
    assert not twice, f"listed more than once in README.md's docs table: {twice}"
    missing = [page for page in linked if not (ROOT / page).is_file()]
    assert not missing, f"README.md's docs table links to missing pages: {missing}"
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert set(linked) == pages, (
        f"not in the table: {sorted(pages - set(linked))}; "
        f"not docs pages: {sorted(set(linked) - pages)}"
    )
