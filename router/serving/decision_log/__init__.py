"""The decision log: one row per routed request, and the outcomes learned about it later.

One schema (SQLAlchemy Core, migrated by Alembic at start, or once a PostgreSQL that was down
then is reached) on SQLite (the default, a file) or PostgreSQL (`postgresql://...`, psycopg 3):

- `schema`: where the log lives, its two tables and their migrations;
- `rows`: a row built from a Decision (`decision_row`), embeddings as int8, feedback scores;
- `spool`: each process's write-ahead journal on local disk (every row is there before the
  answer's first byte leaves), replayed by another process if its owner dies;
- `writer`: `DecisionLog`, which spools (or queues) rows and writes them from a background
  thread; `upserts`: the idempotent statements it writes them with; `reaching`: whether a
  database error means down or refused, and reaching a PostgreSQL that was down at start;
- `opening`: `open_decision_log`, a log and its spool as a config section describes them;
- `reading`: `read_outcomes()` and `export_examples()` for retraining;
- `figures`: the figures of a time window (`LogReader`, `read_figures`; `stats`: `summarise`) for
  `router stats`, `GET /admin/stats` and the dashboard.

A row holds what retraining needs (request id, time, policy, decision, scores, the routing
embedding as int8) and, only with `store_text=True`, the routing text. Outcomes (user feedback,
shadow judgements) go to a second table; the last write per (request, source, model) wins.
"""

from router.serving.decision_log.collector import DecisionLogCollector
from router.serving.decision_log.figures import LogReader, parse_since, read_figures
from router.serving.decision_log.opening import open_decision_log, spool_dir
from router.serving.decision_log.reading import LoggedOutcome, export_examples, read_outcomes
from router.serving.decision_log.rows import decision_row, dequantize, feedback_score, quantize
from router.serving.decision_log.schema import (
    DecisionLogError,
    database_url,
    decisions,
    migrate,
    open_engine,
    outcomes,
    safe_url,
)
from router.serving.decision_log.spool import Spool
from router.serving.decision_log.stats import Stats, summarise
from router.serving.decision_log.writer import DecisionLog

__all__ = [
    "DecisionLog",
    "DecisionLogCollector",
    "DecisionLogError",
    "LogReader",
    "LoggedOutcome",
    "Stats",
    "database_url",
    "decision_row",
    "decisions",
    "dequantize",
    "export_examples",
    "feedback_score",
    "migrate",
    "open_decision_log",
    "open_engine",
    "outcomes",
    "parse_since",
    "quantize",
    "read_figures",
    "read_outcomes",
    "safe_url",
    "spool_dir",
    "Spool",
    "summarise",
]
