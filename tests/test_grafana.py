"""docs/grafana/router.json: the Grafana dashboard is what scripts/grafana_dashboard.py writes,
and every metric it queries is one the proxy exposes on /metrics."""

from __future__ import annotations

import json
import re
import sys

from router.server import create_app
from tests.conftest import ROOT
from tests.learning import router_for, write_config

SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def test_the_json_is_the_scripts_output():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import grafana_dashboard
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    shipped = json.loads((ROOT / "docs" / "grafana" / "router.json").read_text())
    assert shipped == grafana_dashboard.dashboard()  # run the script after editing it
    assert shipped["panels"] and len({p["id"] for p in shipped["panels"]}) == len(shipped["panels"])


def test_every_queried_metric_exists(tmp_path, upstream, router):
    shipped = json.loads((ROOT / "docs" / "grafana" / "router.json").read_text())
    exprs = [t["expr"] for p in shipped["panels"] for t in p.get("targets", [])]
    queried = set()
    for e in exprs:
        for name in re.findall(r"\b(router_[a-z_]+)", e):
            for s in SUFFIXES:
                name = name.removesuffix(s)
            queried.add(name)
    # A proxy with every optional part that has metrics: shadow judging and a budget.
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        shadow={"judge": "judge", "rate": 0.1, "max_usd_per_day": 1.0},
        policies={
            "balanced": {"default": ["cheap"], "large": ["large"], "budget": {"large_share": 0.3}},
        },
    )
    app = create_app(router_for(cfg, like=router))
    try:
        text = app.state.metrics.render().decode()
    finally:
        app.state.decision_log.close()
    exposed = set(re.findall(r"^# HELP (router_[a-z_]+)", text, re.M))
    exposed = {n.removesuffix("_total") for n in exposed}
    missing = sorted(queried - exposed)
    assert missing == [], f"the dashboard queries metrics the proxy does not expose: {missing}"
    assert {"router_cost_usd", "router_large_cost_usd", "router_requests"} <= queried
