"""The figures as HTML: the panel the dashboard refreshes (`GET /dashboard/panel`), the
dashboard and login pages, and the self-contained report of `router stats --html`.

One rendering for both: the panel is plain HTML with inline SVG charts (charts.py) and no
script; the dashboard page adds one small script of its own (static/dashboard.js) that fetches
the panel again every few seconds. Every value that comes from the log is escaped.
"""

from __future__ import annotations

import time
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote

from router.server import charts
from router.server.charts import usd

WINDOWS = ("15m", "1h", "6h", "24h", "7d")  # the dashboard's window menu
_STATE_CLASS = {"closed": "ok", "half_open": "warn", "open": "bad"}


def asset(name: str) -> bytes:
    """A file of router/server/static (package data)."""
    return resources.files("router.server").joinpath("static", name).read_bytes()


def pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}%}"


def ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _figure(name: str, value: Any, text: str) -> str:
    """A value the page shows, with its exact figure in `data-value` (tests read both)."""
    raw = "" if value is None else repr(value) if isinstance(value, float) else str(value)
    return f'<span data-figure="{escape(name)}" data-value="{escape(raw)}">{escape(text)}</span>'


def _tile(title: str, big: str, sub: str = "", cls: str = "") -> str:
    return (
        f'<div class="tile {cls}"><h3>{escape(title)}</h3><p class="big">{big}</p>'
        f'<p class="sub">{sub}</p></div>'
    )


def _interval(q: dict[str, Any], key: str) -> str:
    if not q["n"]:
        return "none yet"
    return f"95% CI {pct(q['low'], 0)}–{pct(q['high'], 0)}, n={q['n']}"


# ---- the panel --------------------------------------------------------------------------------


def panel(
    figures: dict[str, Any] | None, live: dict[str, Any] | None = None, unreadable: bool = False
) -> str:
    """The figures of a window as HTML (tiles, charts, tables); `live` adds circuits, budgets
    and shared state (the proxy's own, not in a report). `unreadable`: the log is configured
    but its database does not answer."""
    out = ['<div class="panel">']
    if figures is None and unreadable:
        out.append(
            '<p class="note bad">The decision log cannot be read just now: its database does '
            "not answer. The figures come back as soon as it does; the live state is below.</p>"
        )
    elif figures is None:
        out.append(
            '<p class="note">The decision log is off (<code>decision_log: null</code>): '
            "no history to show, only the live state below.</p>"
        )
    else:
        out.append(_tiles(figures))
        out.append(_charts(figures))
        out.append('<section class="tables">')
        out.append(_models(figures))
        out.append(_domains(figures))
        out.append(_drift(figures.get("drift")))
        out.append("</section>")
    if live is not None:
        out.append(_live(live))
    if figures is not None:
        out.append(_footnote(figures))
    out.append("</div>")
    return "".join(out)


def _tiles(f: dict[str, Any]) -> str:
    fb, sh, c = f["quality"]["feedback"], f["quality"]["shadow"], f["cascade"]
    lat, rt = f["latency_ms"], f["routing_ms"]
    tiles = [
        _tile(
            "Requests",
            _figure("requests", f["requests"], f"{f['requests']:,}"),
            _figure("errors", f["errors"], format(f["errors"], ","))
            + " errors · "
            + _figure("refused", f["refused"], format(f["refused"], ","))
            + " refused · "
            + _figure("client_left", f["client_left"], format(f["client_left"], ","))
            + f" left by their clients · fallback {escape(pct(f['fallback_rate']))}",
        ),
        _tile(
            "Spend",
            _figure("cost_usd", f["cost_usd"], usd(f["cost_usd"])),
            "all-large would be "
            + _figure("large_cost_usd", f["large_cost_usd"], usd(f["large_cost_usd"])),
        ),
        _tile(
            "Saved",
            _figure("saved_share", f["saved_share"], pct(f["saved_share"])),
            _figure("saved_usd", f["saved_usd"], usd(f["saved_usd"])) + " against all-large",
            "good" if (f["saved_share"] or 0) > 0 else "",
        ),
        _tile(
            "Escalation rate",
            _figure("escalation_rate", f["escalation_rate"], pct(f["escalation_rate"])),
            "kept on small models "
            + _figure("small_share", f["small_share"], pct(f["small_share"])),
        ),
        _tile(
            "Latency",
            "p50 " + _figure("latency_p50", lat.get("p50"), ms(lat.get("p50"))),
            f"p99 {_figure('latency_p99', lat.get('p99'), ms(lat.get('p99')))} · routing p50 "
            f"{escape(ms(rt.get('p50')))}",
        ),
        _tile(
            "Cascade",
            "escalated "
            + _figure("cascade_escalation_rate", c["escalation_rate"], pct(c["escalation_rate"])),
            f"of {c['judged']:,} judged · "
            + _figure("cascade_wasted_tokens", c["wasted_tokens"], f"{c['wasted_tokens']:,}")
            + f" cheap tokens wasted ({escape(usd(c['wasted_cost_usd']))})",
        ),
        _tile(
            "Quality",
            "feedback "
            + _figure(
                "feedback_mean", fb["mean"], "–" if fb["mean"] is None else f"{fb['mean']:.2f}"
            ),
            escape(_interval(fb, "mean"))
            + " · shadow agreement "
            + _figure("shadow_agreement", sh["agreement"], pct(sh["agreement"], 0))
            + f" ({escape(_interval(sh, 'agreement'))})",
        ),
    ]
    return '<section class="tiles">' + "".join(tiles) + "</section>"


def _charts(f: dict[str, Any]) -> str:
    step = f["window"]["bucket_s"]
    parts = [
        ("Spend against all-large, and the saved share", charts.spend_chart(f["series"], step)),
        ("Model mix (answered requests)", charts.mix_chart(f["series"], step)),
        ("Latency", charts.latency_chart(f["latency_histogram"], f["latency_ms"])),
    ]
    return (
        '<section class="charts">'
        + "".join(f"<figure><figcaption>{escape(t)}</figcaption>{svg}</figure>" for t, svg in parts)
        + "</section>"
    )


def _models(f: dict[str, Any]) -> str:
    colours = charts.model_colours([m["model"] for m in f["models"]])
    rows = "".join(
        f'<tr><td>{escape(m["model"])}<span class="tier">{escape(m["tier"] or "")}</span></td>'
        f'<td class="num">{m["requests"]:,}</td>'
        f'<td class="num">{escape(pct(m["share"]))}</td>'
        f"<td>{charts.bar(m['share'], colours[m['model']])}</td>"
        f'<td class="num">{escape(usd(m.get("cost_usd")))}</td></tr>'
        for m in f["models"]
    )
    return (
        '<div class="card"><h3>Model mix</h3><table><thead><tr><th>model</th>'
        '<th class="num">answered</th><th class="num">share</th><th></th><th class="num">spend</th>'
        f"</tr></thead><tbody>{rows or _empty(5)}</tbody></table></div>"
    )


def _domains(f: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td>{escape(d["domain"])}</td><td class="num">{d["requests"]:,}</td>'
        f'<td class="num">{escape(pct(d["share"]))}</td><td>{charts.bar(d["share"])}</td></tr>'
        for d in f["domains"]
    )
    return (
        '<div class="card"><h3>Requests by domain</h3><table><thead><tr><th>domain</th>'
        '<th class="num">requests</th><th class="num">share</th><th></th></tr></thead>'
        f"<tbody>{rows or _empty(4)}</tbody></table></div>"
    )


def _drift(d: dict[str, Any] | None) -> str:
    if d is None:
        return (
            '<div class="card"><h3>Drift</h3><p class="note">No drift figures: the scorer has '
            "no training distributions to compare with.</p></div>"
        )
    rows = []
    for sig, value in d["psi"].items():
        n = d["samples"].get(sig, 0)
        shown = "–" if value is None else f"{value:.3f}"
        state = (
            f"needs {d['min_samples']} requests"
            if value is None
            else "alarm"
            if d["alarms"].get(sig)
            else "stable"
        )
        cls = "bad" if d["alarms"].get(sig) else ""
        rows.append(
            f'<tr class="{cls}"><td>{escape(sig)}</td><td class="num">'
            f"{_figure('drift_' + sig, value, shown)}</td>"
            f"<td>{charts.gauge(value, d['threshold'])}</td><td>{escape(state)}</td>"
            f'<td class="num">{n:,}</td></tr>'
        )
    return (
        f'<div class="card"><h3>Drift (PSI, alarm past {d["threshold"]:g})</h3><table><thead><tr>'
        '<th>signal</th><th class="num">PSI</th><th></th><th>state</th><th class="num">requests</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _live(live: dict[str, Any]) -> str:
    circuits = live.get("circuits") or {}
    rows = "".join(
        f'<tr class="{_STATE_CLASS.get(s["state"], "")}"><td>{escape(m)}</td>'
        f"<td>{_figure('circuit_' + m, s['state'], s['state'].replace('_', '-'))}</td>"
        f'<td class="num">{s.get("trips", 0)}</td></tr>'
        for m, s in circuits.items()
    )
    idle = "no calls yet" if live.get("breakers", True) else "off (breaker.failures: 0)"
    out = [
        '<section class="tables live">',
        '<div class="card"><h3>Circuit breakers</h3><table><thead><tr><th>model</th><th>state</th>'
        f'<th class="num">opened</th></tr></thead><tbody>{rows or _empty(3, idle)}'
        "</tbody></table></div>",
    ]
    budgets = live.get("budgets") or {}
    brows = []
    for name, b in budgets.items():
        target = b.get("target") or {}
        if "large_share" in target:
            want, holds = pct(target["large_share"]), pct(b.get("large_share"))
            kind = "large share"
        else:
            want = f"{usd(target.get('usd_per_hour'))}/h"
            holds = f"{usd(b.get('usd_per_hour'))}/h"
            kind = "spend"
        brows.append(
            f'<tr><td>{escape(name)}</td><td>{escape(kind)}</td><td class="num">{escape(want)}</td>'
            f'<td class="num">{_figure("budget_" + name, b.get("large_share"), holds)}</td>'
            f'<td class="num">{escape(str(b.get("threshold_field")))} '
            f"{b.get('threshold', 0):.3f}</td>"
            f'<td class="num">{b.get("window_requests", 0):,}</td></tr>'
        )
    out.append(
        '<div class="card"><h3>Budget controllers</h3><table><thead><tr><th>policy</th>'
        '<th>target</th><th class="num">wants</th><th class="num">holds</th>'
        '<th class="num">threshold</th><th class="num">window</th></tr></thead><tbody>'
        + ("".join(brows) or _empty(6, "no policy has a budget"))
        + "</tbody></table></div>"
    )
    state = live.get("state", "memory")
    note = {
        "memory": "in process: circuits and budgets are this worker's own",
        "redis": "shared in Redis by every worker and replica",
        "degraded": "Redis unreachable: this worker's own until it is back",
    }.get(state, state)
    out.append(
        f'<div class="card"><h3>Shared state</h3><p>{_figure("state", state, state)}: '
        f"{escape(note)}</p></div>"
    )
    out.append("</section>")
    return "".join(out)


def _footnote(f: dict[str, Any]) -> str:
    w = f["window"]
    since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(w["since"]))
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w["until"]))
    return (
        f'<p class="foot">From {escape(since)} to {escape(until)} UTC ({w["bucket_s"]} s '
        "buckets), read from the decision log: every worker and replica. Percentiles of the "
        f"window's newest {f['latency_ms']['of']:,} requests. Spend and the all-large "
        "counterfactual are estimates from catalogue prices.</p>"
    )


def _empty(cols: int, text: str = "nothing yet") -> str:
    return f'<tr><td colspan="{cols}" class="note">{escape(text)}</td></tr>'


# ---- whole documents ----------------------------------------------------------------------------


def dashboard_page(panel_html: str, since: str, refresh_s: float, logout_token: str) -> str:
    """The dashboard: the panel, a window menu, the script that keeps it fresh, and the
    log-out form with its session's CSRF token."""
    options = "".join(
        f'<option value="{w}"{" selected" if w == since else ""}>last {w}</option>' for w in WINDOWS
    )
    if since not in WINDOWS:
        options += f'<option value="{escape(since)}" selected>last {escape(since)}</option>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Router dashboard</title>"
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head><body>'
        "<header><h1>smallfirst-router</h1>"
        '<form method="get" action="/dashboard" class="window"><label>window '
        f'<select name="since" id="since">{options}</select></label>'
        '<noscript><button type="submit">show</button></noscript></form>'
        '<span id="status" class="status">live</span>'
        '<form method="post" action="/dashboard/logout">'
        f'<input type="hidden" name="csrf" value="{escape(logout_token)}">'
        '<button type="submit">log out</button></form></header>'
        f'<main id="panel" data-since="{escape(since)}" data-refresh="{refresh_s:g}">'
        f"{panel_html}</main>"
        '<script src="/dashboard/static/dashboard.js"></script></body></html>'
    )


def login_page(message: str, configured: bool = True, since: str = "") -> str:
    """The form that trades the admin key for a session cookie (and comes back to the
    window `since` that was asked for)."""
    action = "/dashboard/login" + (f"?since={quote(since, safe='')}" if since else "")
    if configured:
        form = (
            f'<form method="post" action="{escape(action)}"><label>admin key '
            '<input type="password" name="key" autocomplete="current-password" autofocus '
            'required></label><button type="submit">log in</button></form>'
        )
    else:
        form = (
            "<p>No admin key is configured: set <code>ROUTER_ADMIN_KEY</code> (or "
            "<code>server.admin_key_env</code>) and restart the proxy.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Router dashboard: log in</title><link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head><body class="login">'
        "<main><h1>smallfirst-router</h1>"
        f'<p class="message">{escape(message)}</p>{form}'
        '<p class="note">Or send <code>Authorization: Bearer &lt;admin key&gt;</code>.</p>'
        "</main></body></html>"
    )


def notice_page(message: str) -> str:
    """A page that only says something, with the way back to the dashboard."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Router dashboard</title><link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head><body class="login">'
        "<main><h1>smallfirst-router</h1>"
        f'<p class="message">{escape(message)}</p><p><a href="/dashboard">back to the '
        "dashboard</a></p></main></body></html>"
    )


def report(figures: dict[str, Any], source: str) -> str:
    """`router stats --html`: one file, its style inline, nothing loaded from anywhere."""
    css = asset("dashboard.css").decode()
    w = figures["window"]
    hours = w["seconds"] / 3600
    span = f"{hours:.0f} h" if hours >= 1 else f"{w['seconds'] / 60:.0f} min"
    made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Router report: {escape(span)}</title><style>{css}</style></head><body>"
        f'<header><h1>smallfirst-router: what it saved</h1><span class="status">'
        f"{escape(span)} of {escape(source)} · made {escape(made)}</span></header>"
        f"<main>{panel(figures)}</main></body></html>"
    )
