"""`DecisionLogCollector`: the decision log's counters on /metrics."""

from __future__ import annotations

from router.serving.decision_log.writer import DecisionLog


class DecisionLogCollector:
    """Prometheus view of a DecisionLog: queued, written, dropped, write errors."""

    def __init__(self, decision_log: DecisionLog) -> None:
        self.log = decision_log

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lg = self.log
        yield GaugeMetricFamily(
            "router_decision_log_queued", "Decision-log rows waiting to be written.", lg.queued
        )
        yield GaugeMetricFamily(
            "router_decision_log_up",
            "Decision-log database writable: 1 yes, 0 writes failing (rows are buffered).",
            0 if lg.failed is not None else 1,
        )
        yield CounterMetricFamily(
            "router_decision_log_written", "Decision-log rows written.", lg.written
        )
        yield CounterMetricFamily(
            "router_decision_log_dropped",
            "Decision-log rows and outcomes dropped (refused by the database; without a spool, "
            "also queue full during an outage).",
            lg.dropped,
        )
        yield CounterMetricFamily(
            "router_decision_log_write_errors",
            "Failed decision-log write attempts.",
            lg.write_errors,
        )
        yield CounterMetricFamily(
            "router_decision_log_expired", "Rows removed by retention.", lg.expired
        )
        yield CounterMetricFamily(
            "router_decision_log_spool_errors",
            "Spool appends or fsyncs that failed (a full or failing disk).",
            lg.spool_errors,
        )
        yield CounterMetricFamily(
            "router_decision_log_replayed",
            "Items taken over from the spools of processes that ended without writing them.",
            lg.replayed,
        )
