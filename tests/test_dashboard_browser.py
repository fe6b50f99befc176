"""The dashboard in a real headless browser (Debian's chromium through Playwright): a proxy that
served 50 requests shows the same request and spend figures as /admin/stats and /metrics,
refreshes on its own, takes the admin key through its login form (401 without it), and the page
loads nothing from anywhere but the proxy. `router stats --html`'s report opens in it too."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from router.cli import app as cli
from router.serving.decision_log import read_figures
from tests import browser as chrome
from tests.learning import ADMIN_KEY, USER_KEY, chat, router_for, serve, wait_for, write_config
from tests.servers import REQUIRE_ENV, ServerUnavailable, servers_required

USER = {"authorization": f"Bearer {USER_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SERVER = {"keys": [{"name": "user", "key": USER_KEY}], "keys_env": None, "admin_key": ADMIN_KEY}


@pytest.fixture(scope="module")
def browser():
    try:
        manager = chrome.sync_playwright()
        playwright = manager.__enter__()
        try:
            b = chrome.launch(playwright)
        except ServerUnavailable:
            manager.__exit__(None, None, None)
            raise
    except ServerUnavailable as e:
        if servers_required():
            pytest.fail(f"{e} ({REQUIRE_ENV} is set, so this is a failure)")
        pytest.skip(str(e))
    yield b
    b.close()
    manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, upstream, router):
    cfg = write_config(tmp_path_factory.mktemp("browser"), upstream.base_url, server=SERVER)
    p = serve(router_for(cfg, like=router))
    yield p
    p.stop()


def send(proxy, n: int, first: int = 0) -> None:
    """n chat requests: most routed, every fifth pinned to the large model (a model mix)."""
    with httpx.Client(base_url=proxy.url, timeout=60, headers=USER) as c:
        for i in range(first, first + n):
            model = "large" if i % 5 == 4 else "router"
            r = chat(c, f"Question {i}: what is {i} * 3?", model=model)
            assert r.status_code == 200, r.text


def admin_stats(proxy) -> dict:
    r = httpx.get(f"{proxy.url}/admin/stats?since=1h", headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def metrics(proxy) -> tuple[float, float]:
    """(requests, spend) summed over every label set of /metrics."""
    text = httpx.get(f"{proxy.url}/metrics", timeout=60).text

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}\{{.*\}} (\S+)$", text, re.M))

    return total("router_requests_total"), total("router_cost_usd_total")


def log_in(context, proxy):
    """A new page of `context`, logged in to the dashboard through its own form."""
    page = context.new_page()
    page.goto(proxy.url + "/dashboard")
    page.fill('input[name="key"]', ADMIN_KEY)
    page.click('button[type="submit"]')
    page.wait_for_selector('[data-figure="requests"]', timeout=60_000)
    return page


def figure(page, name: str) -> tuple[str, str]:
    """(the text the page shows, its exact value) of one figure."""
    el = page.locator(f'[data-figure="{name}"]').first
    return el.inner_text(), el.get_attribute("data-value")


def test_the_dashboard_shows_what_stats_and_metrics_say(browser, proxy):
    from playwright.sync_api import expect

    send(proxy, 50)
    stats = wait_for(
        lambda: (s := admin_stats(proxy))["requests"] == 50 and s, what="50 rows in the log"
    )
    requests, spend = metrics(proxy)
    assert requests == 50 and spend == pytest.approx(stats["cost_usd"], rel=1e-9)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    seen: list[str] = []
    context.on("request", lambda r: seen.append(r.url))
    page = context.new_page()
    try:
        # Without the key: 401 and the login form.
        first = page.goto(proxy.url + "/dashboard")
        assert first.status == 401
        assert "default-src 'none'" in first.headers["content-security-policy"]
        page.fill('input[name="key"]', ADMIN_KEY)
        page.click('button[type="submit"]')
        page.wait_for_selector('[data-figure="requests"]', timeout=60_000)
        assert page.url == proxy.url + "/dashboard"

        text, value = figure(page, "requests")
        assert text == "50" and int(value) == stats["requests"] == requests
        text, value = figure(page, "cost_usd")
        assert float(value) == pytest.approx(stats["cost_usd"], rel=1e-9)
        assert float(value) == pytest.approx(spend, rel=1e-9)
        assert text.startswith("$") and float(text[1:]) == pytest.approx(spend, rel=1e-3)
        _, large = figure(page, "large_cost_usd")
        assert float(large) == pytest.approx(stats["large_cost_usd"], rel=1e-9)
        _, saved = figure(page, "saved_share")
        assert float(saved) == pytest.approx(stats["saved_share"], rel=1e-9)
        assert page.locator("svg.chart").count() == 3  # spend, model mix, latency

        # It refreshes on its own: five more requests appear without a reload.
        send(proxy, 5, first=50)
        expect(page.locator('[data-figure="requests"]')).to_have_text("55", timeout=90_000)
        requests, spend = metrics(proxy)
        _, value = figure(page, "cost_usd")
        assert requests == 55 and float(value) == pytest.approx(spend, rel=1e-9)
    finally:
        context.close()

    # Everything the page asked for came from the proxy itself.
    assert seen, "the page made no requests?"
    outside = [u for u in seen if not u.startswith(proxy.url + "/") and u != "data:,"]
    assert outside == []
    assert any("/dashboard/panel" in u for u in seen)  # the refreshes


def test_a_page_without_the_key_gets_401(browser, proxy):
    context = browser.new_context()
    try:
        page = context.new_page()
        assert page.goto(proxy.url + "/dashboard").status == 401
        assert page.locator('input[name="key"]').count() == 1
        r = context.request.get(proxy.url + "/admin/stats")
        assert r.status == 401
        page.fill('input[name="key"]', "not-the-admin-key-0000")
        page.click('button[type="submit"]')
        page.wait_for_selector(".message")
        assert "not the admin key" in page.inner_text(".message")
        assert context.request.get(proxy.url + "/admin/stats").status == 401
    finally:
        context.close()


def test_the_html_report_opens_in_the_browser(browser, proxy, tmp_path):
    send(proxy, 3, first=100)
    proxy.decision_log.flush()
    db = str(proxy.decision_log.path)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(cli, ["stats", "--db", db, "--since", "1h", "--html", str(out)])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    logged = read_figures(db, 3600)["requests"]  # what the report was made from
    stats = wait_for(
        lambda: (s := admin_stats(proxy))["requests"] == logged and s, what="the same rows"
    )
    context = browser.new_context()
    seen: list[str] = []
    context.on("request", lambda r: seen.append(r.url))
    try:
        page = context.new_page()
        page.goto(Path(out).as_uri())
        text, value = figure(page, "requests")
        assert int(value) == stats["requests"] and text == f"{stats['requests']:,}"
        _, cost = figure(page, "cost_usd")
        assert float(cost) == pytest.approx(stats["cost_usd"], rel=1e-9)
        assert page.locator("svg.chart").count() == 3
        assert page.locator("script").count() == 0  # a report to read, also in an e-mail
    finally:
        context.close()
    assert seen == [Path(out).as_uri()]  # the file itself, nothing else


def test_an_answer_for_a_window_left_behind_is_dropped(browser, proxy):
    """The menu moves to another window while a refresh is in flight: the old window's answer
    must not replace the panel, and the new window is asked for at once."""
    context = browser.new_context()
    held: list = []

    def hold(route):
        held.append(route)

    try:
        login = context.request.post(proxy.url + "/dashboard/login", form={"key": ADMIN_KEY})
        assert login.ok, login.status
        page = context.new_page()
        page.goto(proxy.url + "/dashboard?since=1h")
        page.route("**/dashboard/panel*", hold)

        def wait_for_held(n: int) -> None:
            for _ in range(600):  # the refresh comes within the page's period (a few seconds)
                if len(held) >= n:
                    return
                page.wait_for_timeout(100)
            raise AssertionError(f"{n} panel requests never came: {[r.request.url for r in held]}")

        wait_for_held(1)
        assert held[0].request.url.endswith("since=1h")
        page.select_option("#since", "15m")
        held[0].fulfill(status=200, body='<p id="stale">the 1h window</p>')
        wait_for_held(2)
        assert held[1].request.url.endswith("since=15m")
        assert page.locator("#stale").count() == 0, "the old window's answer was shown"
        held[1].fulfill(status=200, body='<p id="fresh">the 15m window</p>')
        page.wait_for_selector("#fresh", timeout=30_000)
        for route in held[2:]:
            route.abort()
    finally:
        context.close()


def test_the_log_out_button_ends_the_session_for_every_copy_of_its_cookie(browser, proxy):
    """The page's own form carries its token (and the browser's Fetch Metadata says the POST
    is same-origin): logging out works from the page, and the cookie it had is dead."""
    context = browser.new_context()
    try:
        page = log_in(context, proxy)
        cookie = next(c["value"] for c in context.cookies() if c["name"] == "router_dashboard")
        page.click('button:has-text("log out")')
        page.wait_for_selector('input[name="key"]', timeout=60_000)
        assert page.url == proxy.url + "/dashboard"
        assert not [c for c in context.cookies() if c["name"] == "router_dashboard"]
        copy = {"router_dashboard": cookie}
        assert httpx.get(proxy.url + "/admin/stats", cookies=copy, timeout=60).status_code == 401
    finally:
        context.close()


EVIL_PAGE = """<!doctype html><html><body>
<form id="out" method="post" action="{url}/dashboard/logout"><input name="csrf" value="x"></form>
<script>
// Wrong keys from the admin's own browser, then the log-out form: all of it cross-site.
var guesses = [];
for (var i = 0; i < 8; i++) {{
  guesses.push(fetch("{url}/dashboard/login", {{method: "POST", mode: "no-cors",
    body: new URLSearchParams({{key: "guess-" + i}})}}).catch(function () {{}}));
}}
Promise.all(guesses).then(function () {{ document.getElementById("out").submit(); }});
</script></body></html>"""


def test_another_sites_page_can_neither_log_the_admin_out_nor_lock_them_out(browser, proxy):
    """A page on another site (here `localhost`, the proxy being `127.0.0.1`) that the logged-in
    admin opens posts eight wrong keys to the login form and submits a log-out form: the
    admin's cookie survives (the answer to a POST that came without it must not clear it) and
    the admin's address is not locked out (those keys are refused unread, never counted)."""
    evil = proxy.url.replace("127.0.0.1", "localhost") + "/evil.html"
    context = browser.new_context()
    try:
        page = log_in(context, proxy)
        context.route(evil, lambda route: route.fulfill(body=EVIL_PAGE.format(url=proxy.url)))
        attack = context.new_page()
        attack.goto(evil)
        attack.wait_for_url(re.compile(re.escape(proxy.url) + "/dashboard.*"), timeout=60_000)
        cookies = [c for c in context.cookies() if c["name"] == "router_dashboard"]
        assert cookies, f"another site's page cleared the session cookie ({attack.url})"
        assert "still logged in" in attack.inner_text("body")
        assert context.request.get(proxy.url + "/admin/stats").status == 200
        page.reload()
        page.wait_for_selector('[data-figure="requests"]', timeout=60_000)
    finally:
        context.close()
    # The admin's address may still log in (from a browser of its own: a fresh context).
    fresh = browser.new_context()
    try:
        page = log_in(fresh, proxy)
    finally:
        fresh.close()
    assert httpx.get(proxy.url + "/admin/stats", headers=ADMIN, timeout=60).status_code == 200
