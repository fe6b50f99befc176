"""The `decision_log:` config section, configs of the first version, and the log's start-up."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import textwrap

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from router.cli import app
from router.core.config import ConfigError, load_config
from router.serving.decision_log import DecisionLog, database_url

MODELS = """
models:
  - {name: a, litellm_model: openai/a, input_price: 0, output_price: 0, context_window: 100}
"""


def _load(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text) + MODELS)
    return load_config(path)


def test_defaults(tmp_path):
    cfg = _load(tmp_path, "")
    assert cfg.decision_log.url == "decisions.db" and not cfg.decision_log.store_text
    assert cfg.decision_log.max_rows and cfg.decision_log.max_days
    assert cfg.server.decision_log == "decisions.db"


def test_a_url_or_path_is_short_for_the_section(tmp_path):
    cfg = _load(tmp_path, "decision_log: postgresql://router:pw@127.0.0.1/router\n")
    assert cfg.decision_log.url == "postgresql://router:pw@127.0.0.1/router"
    assert cfg.server.decision_log == cfg.decision_log.url
    cfg = _load(tmp_path, "decision_log: {url: logs/d.db, store_text: true, max_rows: 10}\n")
    assert cfg.decision_log.store_text and cfg.decision_log.max_rows == 10
    assert cfg.server.decision_log == "logs/d.db"
    cfg = _load(tmp_path, "decision_log: null\n")
    assert cfg.decision_log is None and cfg.server.decision_log is None


def test_a_first_version_config_still_loads(tmp_path):
    cfg = _load(tmp_path, "server:\n  decision_log: old.db\n  log_prompts: true\n")
    assert cfg.decision_log.url == "old.db" and cfg.server.decision_log == "old.db"
    assert cfg.server.log_prompts and not cfg.decision_log.store_text
    cfg = _load(tmp_path, "server:\n  decision_log: null\n")
    assert cfg.decision_log is None and cfg.server.decision_log is None


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            "decision_log: new.db\nserver:\n  decision_log: old.db\n",
            "server.decision_log",
            "moved to the top-level 'decision_log'",
        ),
        ("decision_log: mysql://x/y\n", "decision_log.url", "unsupported database 'mysql'"),
        ("decision_log: {url: d.db, max_rows: 0}\n", "decision_log.max_rows", "greater than 0"),
        (
            "decision_log: {url: d.db, store_txt: true}\n",
            "decision_log.store_txt",
            "did you mean 'store_text'",
        ),
    ],
)
def test_errors_name_the_file_and_field(tmp_path, text, field, message):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    assert e.value.field == field and message in str(e.value)
    assert str(tmp_path / "config.yaml") in str(e.value)


def test_database_urls():
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("/tmp/x.db") == "sqlite:////tmp/x.db"


def test_a_password_in_the_query_is_hidden_too():
    from router.serving.decision_log import safe_url
    from router.serving.decision_log.opening import spool_dir

    url = "postgresql://router@db/router?password=hunter22&sslmode=require&sslpassword=k3y"
    shown = safe_url(database_url(url))
    assert "hunter22" not in shown and "k3y" not in shown and "sslmode=require" in shown
    assert "password=***" in shown
    assert "hunter22" not in safe_url("postgresql://router:hunter22@db/router")
    # The spool directory keeps the name earlier versions gave it (its rows are found again).
    before = sa.engine.make_url(database_url(url)).render_as_string(hide_password=True)
    digest = hashlib.sha256(before.encode()).hexdigest()[:12]
    assert spool_dir(url, None, "/srv").name == f"decisions-{digest}.spool"


def _open_and_write(path: str, i: int) -> None:
    log = DecisionLog(path)
    log.record({"request_id": f"p{i}", "ts": float(i)})
    log.close()


def test_workers_starting_together_migrate_one_at_a_time(tmp_path):
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_write, args=(path, i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM decisions").fetchone() == (4,)
    from tests.test_decision_log_db import _head

    assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(_head(),)]


def test_stats_reads_a_url_and_names_a_bad_one(tmp_path):
    log = DecisionLog(tmp_path / "d.db")
    log.record({"request_id": "r", "ts": 1.0, "model": "a", "status": 200})
    log.close()
    res = CliRunner().invoke(app, ["stats", "--db", f"sqlite:///{tmp_path / 'd.db'}", "--json"])
    assert res.exit_code == 0 and '"requests": 1' in res.output
    res = CliRunner().invoke(app, ["stats", "--db", "postgresql://u:secret@127.0.0.1:1/x"])
    assert res.exit_code == 2 and "decision log" in res.output and "secret" not in res.output


def test_rows_queued_by_a_caller_that_never_closes_are_written_at_exit(tmp_path):
    import subprocess
    import sys

    code = (
        "from router.serving.decision_log import DecisionLog\n"
        f"log = DecisionLog({str(tmp_path / 'x.db')!r})\n"
        "for i in range(500):\n"
        "    log.record({'request_id': f'x{i}', 'ts': 1.0})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    con = sqlite3.connect(tmp_path / "x.db")
    assert con.execute("SELECT count(*) FROM decisions").fetchone() == (500,)
