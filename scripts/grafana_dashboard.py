"""Write docs/grafana/router.json: a Grafana dashboard over the proxy's Prometheus metrics
(router/server/metrics.py, admin.py). Import it in Grafana (Dashboards → Import) and pick the
Prometheus data source; tests/test_grafana.py checks that every metric it names exists.

    python scripts/grafana_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "router.json"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
W = "$__rate_interval"


def target(expr: str, legend: str = "", ref: str = "A") -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(title, kind, targets, x, y, w=12, h=8, unit=None, stack=False, desc="", **extra):
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(*t, ref=chr(65 + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if stack:
        p["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal"}, "fillOpacity": 60}
    p.update(extra)
    return p


def row(title: str, y: int) -> dict:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def dashboard() -> dict:
    panels = [
        row("What it saves", 0),
        panel(
            "Saved share (1 h)",
            "stat",
            [
                (
                    "1 - sum(increase(router_cost_usd_total[1h])) / sum(increase(router_large_cost_usd_total[1h]))",
                    "saved",
                )
            ],
            0,
            1,
            6,
            5,
            "percentunit",
            desc="Spend against the same requests all on the policy's large model.",
        ),
        panel(
            "Spend (1 h)",
            "stat",
            [("sum(increase(router_cost_usd_total[1h]))", "spend")],
            6,
            1,
            6,
            5,
            "currencyUSD",
        ),
        panel(
            "All-large counterfactual (1 h)",
            "stat",
            [("sum(increase(router_large_cost_usd_total[1h]))", "all-large")],
            12,
            1,
            6,
            5,
            "currencyUSD",
        ),
        panel(
            "Escalation rate (1 h)",
            "stat",
            [
                (
                    'sum(increase(router_escalations_total[1h])) / sum(increase(router_requests_total{model!="none"}[1h]))',
                    "escalated",
                )
            ],
            18,
            1,
            6,
            5,
            "percentunit",
        ),
        panel(
            "Spend against all-large, USD per hour",
            "timeseries",
            [
                (f"sum(rate(router_cost_usd_total[{W}])) * 3600", "spend"),
                (f"sum(rate(router_large_cost_usd_total[{W}])) * 3600", "all-large"),
            ],
            0,
            6,
            12,
            8,
            "currencyUSD",
        ),
        panel(
            "Saved share",
            "timeseries",
            [
                (
                    f"1 - sum(rate(router_cost_usd_total[{W}])) / sum(rate(router_large_cost_usd_total[{W}]))",
                    "saved share",
                )
            ],
            12,
            6,
            12,
            8,
            "percentunit",
        ),
        row("Traffic", 14),
        panel(
            "Requests per second by answering model",
            "timeseries",
            [(f"sum by (model) (rate(router_requests_total[{W}]))", "{{model}}")],
            0,
            15,
            12,
            8,
            "reqps",
            stack=True,
        ),
        panel(
            "Requests per second by domain",
            "timeseries",
            [(f"sum by (domain) (rate(router_requests_total[{W}]))", "{{domain}}")],
            12,
            15,
            12,
            8,
            "reqps",
            stack=True,
        ),
        panel(
            "Errors per second by status",
            "timeseries",
            [
                (
                    f'sum by (status) (rate(router_requests_total{{status=~"4..|5.."}}[{W}]))',
                    "{{status}}",
                )
            ],
            0,
            23,
            12,
            8,
            "reqps",
        ),
        panel(
            "Fallbacks per second by model",
            "timeseries",
            [(f"sum by (model) (rate(router_fallbacks_total[{W}]))", "{{model}}")],
            12,
            23,
            12,
            8,
            "reqps",
        ),
        row("Latency", 31),
        panel(
            "Upstream latency",
            "timeseries",
            [
                (
                    f"histogram_quantile(0.5, sum by (le) (rate(router_upstream_seconds_bucket[{W}])))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) (rate(router_upstream_seconds_bucket[{W}])))",
                    "p99",
                ),
            ],
            0,
            32,
            12,
            8,
            "s",
        ),
        panel(
            "Routing latency",
            "timeseries",
            [
                (
                    f"histogram_quantile(0.5, sum by (le) (rate(router_routing_seconds_bucket[{W}])))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) (rate(router_routing_seconds_bucket[{W}])))",
                    "p99",
                ),
            ],
            12,
            32,
            12,
            8,
            "s",
        ),
        row("Cascades and quality", 40),
        panel(
            "Cascade outcomes per second",
            "timeseries",
            [(f"sum by (outcome) (rate(router_cascade_requests_total[{W}]))", "{{outcome}}")],
            0,
            41,
            8,
            8,
            "reqps",
            stack=True,
        ),
        panel(
            "Wasted cheap tokens per second",
            "timeseries",
            [(f"sum by (model) (rate(router_cascade_wasted_tokens_total[{W}]))", "{{model}}")],
            8,
            41,
            8,
            8,
            "short",
        ),
        panel(
            "Shadow agreement",
            "timeseries",
            [("router_shadow_agreement", "agreement")],
            16,
            41,
            8,
            8,
            "percentunit",
            desc="Share of judged shadow samples where the judge agrees with the routing decision.",
        ),
        row("Health", 49),
        panel(
            "Circuit breakers (0 closed, 1 half-open, 2 open)",
            "state-timeline",
            [("max by (model) (router_circuit_state)", "{{model}}")],
            0,
            50,
            12,
            8,
        ),
        panel(
            "Drift (PSI against the scorer's training data)",
            "timeseries",
            [
                ("router_drift_psi", "{{signal}}"),
                ("max(router_drift_threshold)", "alarm threshold"),
            ],
            12,
            50,
            12,
            8,
        ),
        panel(
            "Budget: large share held against its target",
            "timeseries",
            [
                ("router_budget_large_share", "{{policy}} holds"),
                ('router_budget_target{kind="large_share"}', "{{policy}} target"),
            ],
            0,
            58,
            12,
            8,
            "percentunit",
        ),
        panel(
            "Decision log",
            "timeseries",
            [
                ("sum(router_decision_log_queued)", "queued"),
                (f"sum(rate(router_decision_log_dropped_total[{W}]))", "dropped/s"),
                (f"sum(rate(router_decision_log_write_errors_total[{W}]))", "write errors/s"),
            ],
            12,
            58,
            12,
            8,
        ),
    ]
    for i, p in enumerate(panels, 1):
        p["id"] = i
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}
        ],
        "title": "smallfirst-router",
        "uid": "smallfirst-router",
        "description": "What the router saves, on which traffic, at what latency and quality (docs/dashboard.md).",
        "tags": ["llm", "router"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
