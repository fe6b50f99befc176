"""GET /dashboard and GET /admin/stats over HTTP: the admin key (Bearer or a session cookie from
the login form), the figures read from the decision log, the page's security headers, errors
that name the field. The browser test is tests/test_dashboard_browser.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from router.server.dashboard import COOKIE, session_token, valid_session
from tests.learning import ADMIN_KEY, USER_KEY, chat, router_for, serve, wait_for, write_config

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SERVER = {"keys": [{"name": "user", "key": USER_KEY}], "keys_env": None, "admin_key": ADMIN_KEY}
USER = {"authorization": f"Bearer {USER_KEY}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream, router):
    cfg = write_config(tmp_path_factory.mktemp("dash"), upstream.base_url, server=SERVER)
    proxy = serve(router_for(cfg, like=router))
    with httpx.Client(base_url=proxy.url, timeout=60, headers=USER) as c:
        for i in range(6):
            assert chat(c, f"What is {i} + 1?").status_code == 200
        assert chat(c, "Hello", model="large").status_code == 200
    yield proxy
    proxy.stop()


def stats(proxy, since: str = "1h") -> dict:
    r = httpx.get(f"{proxy.url}/admin/stats?since={since}", headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_stats_need_the_admin_key(served):
    url = served.url
    r = httpx.get(f"{url}/admin/stats", timeout=60)
    assert r.status_code == 401 and "admin key" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/admin/stats", headers=USER, timeout=60).status_code == 403
    bad = {"authorization": "Bearer not-the-key-at-all"}
    assert httpx.get(f"{url}/admin/stats", headers=bad, timeout=60).status_code == 401
    assert httpx.get(f"{url}/dashboard/panel", timeout=60).status_code == 401
    # A forged or expired cookie opens nothing.
    forged = {COOKIE: session_token("some-other-admin-key-123", int(time.time()) + 600)}
    assert httpx.get(f"{url}/admin/stats", cookies=forged, timeout=60).status_code == 401
    expired = {COOKIE: session_token(ADMIN_KEY, int(time.time()) - 1)}
    assert httpx.get(f"{url}/admin/stats", cookies=expired, timeout=60).status_code == 401


def test_stats_are_the_decision_logs_figures(served):
    s = wait_for(lambda: (s := stats(served)) and s["requests"] == 7 and s, what="7 logged rows")
    assert s["answered"] == 7 and s["errors"] == 0 and s["client_left"] == 0
    models = {m["model"]: m["requests"] for m in s["models"]}
    assert models == {"cheap": 6, "large": 1}
    # The test upstream reports 10 prompt and 5 completion tokens per answer.
    cheap, large = (10 * 0.1 + 5 * 0.2) / 1e6, (10 * 5 + 5 * 15) / 1e6
    assert s["cost_usd"] == pytest.approx(6 * cheap + large)
    assert s["large_cost_usd"] == pytest.approx(7 * large)
    assert s["saved_share"] == pytest.approx(1 - (6 * cheap + large) / (7 * large))
    assert s["window"]["bucket_s"] == 60 and len(s["series"]["requests"]) >= 60
    assert s["live"]["state"] == "memory" and "circuits" in s["live"]
    assert s["decision_log"].endswith("decisions.db")
    # The same numbers as the proxy's own counters (one process here).
    text = httpx.get(f"{served.url}/metrics", timeout=60).text
    counted = sum(float(v) for v in re.findall(r"^router_requests_total\{.*\} (\S+)$", text, re.M))
    spent = sum(float(v) for v in re.findall(r"^router_cost_usd_total\{.*\} (\S+)$", text, re.M))
    assert counted == s["requests"] and spent == pytest.approx(s["cost_usd"])


def test_since_is_checked_and_named(served):
    r = httpx.get(f"{served.url}/admin/stats?since=soon", headers=ADMIN, timeout=60)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "since" and "15m" in r.json()["error"]["message"]
    assert stats(served, "15m")["window"]["bucket_s"] == 30
    # The page answers a browser with a page: the same 400, naming `since`, never JSON.
    for since in ("soon", "-1h", "0s", "999999d", "<b>x</b>"):
        page = httpx.get(f"{served.url}/dashboard", params={"since": since}, headers=ADMIN)
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        assert "since: " in page.text and "<b>x" not in page.text, page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_login_form_sets_an_httponly_session_cookie(served):
    with httpx.Client(base_url=served.url, timeout=60) as c:
        page = c.get("/dashboard")
        assert page.status_code == 401 and 'name="key"' in page.text
        wrong = c.post("/dashboard/login", data={"key": "nope"})
        assert wrong.status_code == 401 and "not the admin key" in wrong.text
        assert COOKIE not in c.cookies
        ok = c.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
        assert valid_session(c.cookies[COOKIE], ADMIN_KEY)
        page = c.get("/dashboard")
        assert page.status_code == 200 and 'data-figure="requests"' in page.text
        assert c.get("/admin/stats").status_code == 200  # the page's reads take the cookie
        # ... and never the admin's writes: a reload still wants the key itself.
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/dashboard/logout", data={"csrf": logout_token(page)}).status_code == 303
        assert c.get("/dashboard").status_code == 401


def logout_token(page: httpx.Response) -> str:
    """The CSRF token of the page's log-out form ("" when it has none)."""
    found = re.search(r'<input type="hidden" name="csrf" value="([0-9a-f]+)">', page.text)
    return found.group(1) if found else ""


@contextmanager
def logged_in(url: str) -> Iterator[httpx.Client]:
    """A client holding a session of its own (the login form)."""
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.post("/dashboard/login", data={"key": ADMIN_KEY}).status_code == 303
        yield c


def test_logging_out_ends_that_session_on_the_server(served):
    """A copy of the cookie (a stolen one) is refused once its session logged out; another
    session of the same admin stays open."""
    with logged_in(served.url) as c, logged_in(served.url) as other:
        stolen = c.cookies[COOKIE]
        page = c.get("/dashboard")
        out = c.post("/dashboard/logout", data={"csrf": logout_token(page)})
        assert out.status_code == 303 and 'router_dashboard=""' in out.headers["set-cookie"]
        for path in ("/admin/stats", "/dashboard/panel", "/dashboard"):
            r = httpx.get(served.url + path, cookies={COOKIE: stolen}, timeout=60)
            assert r.status_code == 401, path
        assert valid_session(stolen, ADMIN_KEY)  # the HMAC is fine: the server said no
        assert other.get("/admin/stats").status_code == 200


def test_a_logout_from_another_page_is_refused(served):
    """Logging out takes the token only the dashboard's own page carries, and a browser that
    says the POST came from another site is refused even with it: the session stays open."""
    with logged_in(served.url) as c, logged_in(served.url) as other:
        token = logout_token(c.get("/dashboard"))
        others = logout_token(other.get("/dashboard"))
        for form, headers in (
            ({}, {}),
            ({"csrf": "0" * 64}, {}),
            ({"csrf": others}, {}),
            ({"csrf": token}, {"sec-fetch-site": "cross-site", "origin": "https://evil.example"}),
            ({"csrf": token}, {"sec-fetch-site": "same-site"}),
        ):
            r = c.post("/dashboard/logout", data=form, headers=headers)
            assert r.status_code == 403 and "still logged in" in r.text, (form, headers)
            assert "set-cookie" not in r.headers
            assert c.get("/admin/stats").status_code == 200
        assert token != others  # each session has a token of its own
        r = c.post(
            "/dashboard/logout", data={"csrf": token}, headers={"sec-fetch-site": "same-origin"}
        )
        assert r.status_code == 303 and c.get("/admin/stats").status_code == 401


def test_a_login_from_another_site_is_refused_and_never_counted(served):
    """Wrong keys from the admin's own address past 5 a minute lock that address out: another
    site's page must not be able to post them from the admin's browser. Its POSTs are refused
    unread (403) and the admin logs in after them."""
    cross = [{"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}]
    with httpx.Client(base_url=served.url, timeout=60) as c:
        for i in range(8):
            r = c.post("/dashboard/login", data={"key": f"guess-{i}"}, headers=cross[i % 2])
            assert r.status_code == 403 and "own page" in r.text, r.text
            assert COOKIE not in r.headers.get("set-cookie", "")
        # Not even the right key, from another site: a log-in comes from the login form.
        r = c.post("/dashboard/login", data={"key": ADMIN_KEY}, headers=cross[0])
        assert r.status_code == 403 and COOKIE not in c.cookies
        ok = c.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert ok.status_code == 303 and valid_session(c.cookies[COOKIE], ADMIN_KEY)
    assert httpx.get(f"{served.url}/admin/stats", headers=ADMIN, timeout=60).status_code == 200


def test_a_logout_that_carries_no_cookie_clears_none(served):
    """The SameSite=Strict cookie stays home from another site's POST: the answer to that
    POST must not clear it either (a browser applies its Set-Cookie), with Fetch Metadata
    (refused) or without (an older browser: nothing to end, nothing cleared)."""
    for headers in ({"sec-fetch-site": "cross-site"}, {}):
        r = httpx.post(f"{served.url}/dashboard/logout", data={"csrf": "x"}, headers=headers)
        assert r.status_code in (303, 403) and "set-cookie" not in r.headers, r.headers


def test_a_logout_on_one_replica_ends_the_session_on_every_other(
    tmp_path, upstream, router, redis_url
):
    """With `state: redis://...` the revocation is shared state: a replica that did not see
    the logout refuses the session too. The key is the same, so each honours the other's
    cookies."""
    cfg = write_config(tmp_path, upstream.base_url, server=SERVER, state=redis_url)
    first, second = serve(router_for(cfg, like=router)), serve(router_for(cfg, like=router))
    try:
        with logged_in(first.url) as c:
            cookie = {COOKIE: c.cookies[COOKIE]}
            assert httpx.get(second.url + "/admin/stats", cookies=cookie).status_code == 200
            token = logout_token(c.get("/dashboard"))
            assert c.post("/dashboard/logout", data={"csrf": token}).status_code == 303
        assert httpx.get(second.url + "/admin/stats", cookies=cookie).status_code == 401
        assert httpx.get(first.url + "/admin/stats", cookies=cookie).status_code == 401
    finally:
        first.stop()
        second.stop()


def test_a_bearer_key_opens_the_page_and_gives_it_a_session(served):
    r = httpx.get(f"{served.url}/dashboard?since=15m", headers=ADMIN, timeout=60)
    assert r.status_code == 200 and COOKIE in r.headers["set-cookie"]
    assert '<option value="15m" selected>' in r.text


def test_pages_allow_nothing_but_the_proxy(served):
    r = httpx.get(f"{served.url}/dashboard", headers=ADMIN, timeout=60)
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-options"] == "DENY"  # browsers that predate frame-ancestors
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    for page in (httpx.get(f"{served.url}/dashboard"), httpx.get(f"{served.url}/dashboard/panel")):
        assert page.status_code == 401 and page.headers["x-frame-options"] == "DENY"
    s = httpx.get(f"{served.url}/admin/stats", headers=ADMIN, timeout=60)
    assert s.headers["x-content-type-options"] == "nosniff"
    # Every URL the page names is this proxy's own (or the empty data: favicon).
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', r.text):
        assert url.startswith("/") or url == "data:,", url
    js = httpx.get(f"{served.url}/dashboard/static/dashboard.js", timeout=60)
    assert js.status_code == 200 and "fetch(" in js.text
    assert "http" not in js.text.replace("HTTP ", "")  # no absolute URL in the script
    css = httpx.get(f"{served.url}/dashboard/static/dashboard.css", timeout=60)
    assert css.status_code == 200 and "url(" not in css.text and "@import" not in css.text
    assert httpx.get(f"{served.url}/dashboard/static/../app.py", timeout=60).status_code == 404


def test_without_an_admin_key_the_dashboard_is_closed(tmp_path, upstream, router):
    cfg = write_config(tmp_path, upstream.base_url, server={"keys_env": None})
    proxy = serve(router_for(cfg, like=router), admin_key=None, admin_key_env=None)
    try:
        page = httpx.get(f"{proxy.url}/dashboard", timeout=60)
        assert page.status_code == 401 and "no admin key is configured" in page.text
        r = httpx.post(f"{proxy.url}/dashboard/login", data={"key": "anything"}, timeout=60)
        assert r.status_code == 401 and COOKIE not in r.headers.get("set-cookie", "")
        assert httpx.get(f"{proxy.url}/admin/stats", timeout=60).status_code == 401
    finally:
        proxy.stop()


def test_without_a_decision_log_only_live_state_is_shown(tmp_path, upstream, router):
    cfg = write_config(tmp_path, upstream.base_url, server=SERVER, decision_log=None)
    proxy = serve(router_for(cfg, like=router))
    try:
        s = stats(proxy)
        assert s["decision_log"] is None and "requests" not in s and s["live"]["state"]
        page = httpx.get(f"{proxy.url}/dashboard", headers=ADMIN, timeout=60)
        assert page.status_code == 200 and "decision log is off" in page.text
    finally:
        proxy.stop()


def test_sessions():
    token = session_token(ADMIN_KEY, int(time.time()) + 60)
    assert valid_session(token, ADMIN_KEY)
    assert not valid_session(token, ADMIN_KEY + "x")
    assert not valid_session(token.replace(".", ".0"), ADMIN_KEY)
    assert not valid_session("", ADMIN_KEY) and not valid_session(token, None)
    assert not valid_session("abc.def", ADMIN_KEY)
    # Each login is a session of its own, even within one second.
    expires = int(time.time()) + 60
    assert session_token(ADMIN_KEY, expires) != session_token(ADMIN_KEY, expires)
    expires_s, session_id, mac = token.split(".")
    assert not valid_session(f"{expires_s}.{'0' * 32}.{mac}", ADMIN_KEY)  # the id is signed


def test_a_malformed_session_cookie_is_a_login_never_a_500(served):
    # "²" is a digit to str.isdigit() and not to int(); 5,000 digits are past int()'s limit.
    for value in (b"\xb2.abc", b"1" + b"0" * 5000 + b".abc", b"-5.abc", b" 12.x"):
        cookie = [(b"cookie", COOKIE.encode() + b"=" + value)]
        page = httpx.get(f"{served.url}/dashboard", headers=cookie, timeout=60)
        assert page.status_code == 401 and "admin key" in page.text
        for path in ("/admin/stats", "/dashboard/panel"):
            assert httpx.get(served.url + path, headers=cookie, timeout=60).status_code == 401


def test_the_latency_chart_names_each_unit_once():
    from router.server.charts import latency_chart

    svg = latency_chart(
        {"edges_ms": [10, 1000, 2500], "counts": [1, 0, 2, 1]},
        {"p50": 8.9, "p90": 2400.0, "p99": 5010.9, "of": 4},
    )
    assert "p50 8.9 ms" in svg and "p99 5.01 s" in svg
    assert "<title>≤2.5 s: 2</title>" in svg and "<title>&gt;2.5 s: 1</title>" in svg
    assert "s ms" not in svg


def test_a_week_long_time_axis_names_the_days_and_its_labels_do_not_overlap():
    from router.server.charts import mix_chart, spend_chart

    step, n = 3 * 3600, 57  # "7d": 3-hour buckets
    first = 1_796_000_400 // step * step
    series = {
        "start": [first + i * step for i in range(n)],
        "cost_usd": [0.0] * n,
        "large_cost_usd": [0.0] * n,
        "saved_share": [None] * n,
        "models": {"small": [1] * n},
    }
    for svg in (spend_chart(series, step), mix_chart(series, step)):
        ticks = re.findall(
            r'<text x="([\d.]+)" y="202" text-anchor="middle" font-size="11" '
            r'fill="#555">([^<]+)</text>',
            svg,
        )
        labels = [t for _, t in ticks]
        assert len(labels) >= 4 and all(
            re.fullmatch(r"\d\d [A-Z][a-z][a-z] \d\d:\d\d", t) for t in labels
        ), labels
        assert len(set(labels)) == len(labels)
        xs = [float(x) for x, _ in ticks]
        gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
        assert min(gaps) > 80  # "05 Dec 21:00" is ~75 px wide
    # An hour's window keeps the clock alone.
    hour = {k: (v[:61] if isinstance(v, list) else {"small": [1] * 61}) for k, v in series.items()}
    hour["start"] = [first + i * 60 for i in range(61)]
    assert re.search(r'fill="#555">\d\d:\d\d</text>', spend_chart(hour, 60))


def test_a_legend_shows_what_fits_and_counts_the_rest():
    """Long model names, many of them: the legend stays inside the chart, cuts a long name
    short (whole in its tooltip) and says how many it left out."""
    from router.server.charts import W, mix_chart

    names = [f"provider/some-very-long-model-name-{i}-2025-01-01" for i in range(9)]
    series = {"start": [0, 60], "models": {m: [1, 2] for m in names}}
    svg = mix_chart(series, 60)
    legend = re.findall(r'<text x="([\d.]+)" y="17" font-size="11" fill="#[35]{3}">([^<]+)', svg)
    assert legend and legend[-1][1].startswith("+") and legend[-1][1].endswith(" more")
    shown = len(legend) - 1
    assert 1 <= shown < len(names) and legend[-1][1] == f"+{len(names) - shown} more"
    for x, text in legend:
        assert float(x) + 7 * len(text) <= W, (x, text)  # 7: a wide 11 px character
    assert "…" in legend[0][1] and f"<title>{names[0]}</title>" in svg
    # A few short names: all of them, whole, and nothing said about more.
    few = mix_chart({"start": [0], "models": {"a": [1], "b": [2]}}, 60)
    assert ">a</text>" in few and ">b</text>" in few and " more<" not in few


def test_logging_in_comes_back_to_the_window_asked_for(served):
    with httpx.Client(base_url=served.url, timeout=60) as c:
        page = c.get("/dashboard?since=6h")
        assert page.status_code == 401
        action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
        assert action == "/dashboard/login?since=6h"
        ok = c.post(action, data={"key": ADMIN_KEY})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard?since=6h"
        # Whatever is asked for stays inside the attribute (and the window is checked later).
    page = httpx.get(f"{served.url}/dashboard", params={"since": '"><script>x</script>'})
    assert page.status_code == 401 and "<script>x" not in page.text


def test_a_decision_log_outage_is_a_503_and_a_page_with_the_live_state(
    tmp_path, upstream, router, postgres_url, postgres_server
):
    cfg = write_config(tmp_path, upstream.base_url, server=SERVER, decision_log=postgres_url)
    proxy = serve(router_for(cfg, like=router))
    try:
        with httpx.Client(base_url=proxy.url, timeout=60, headers=USER) as c:
            assert chat(c, "What is 2 + 2?").status_code == 200
        assert stats(proxy)["requests"] >= 0
        # The fixture runs with synchronous_commit=off: make what was written durable first.
        postgres_server.query("CHECKPOINT", postgres_url.rsplit("/", 1)[1])
        postgres_server.kill()
        try:
            time.sleep(2.5)  # past the figures' 2 s cache
            r = httpx.get(f"{proxy.url}/admin/stats?since=15m", headers=ADMIN, timeout=60)
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "decision_log_unavailable" and r.headers["retry-after"]
            for path in ("/dashboard?since=15m", "/dashboard/panel?since=15m"):
                page = httpx.get(proxy.url + path, headers=ADMIN, timeout=60)
                assert page.status_code == 200, page.text
                assert "cannot be read" in page.text and "Circuit breakers" in page.text
                assert "decision log is off" not in page.text
        finally:
            postgres_server.start()
        assert wait_for(
            lambda: (
                httpx.get(
                    f"{proxy.url}/admin/stats?since=15m", headers=ADMIN, timeout=60
                ).status_code
                == 200
            )
        )
    finally:
        proxy.stop()
