"""Take docs/dashboard.png: a proxy serves real traffic for a while against the loopback test
upstream (models named as in configs/pool.yaml, the large one slower), with a cascade, shadow
judging and some feedback; then headless chromium (Debian's, through Playwright) logs in to
GET /dashboard and takes the screenshot that docs/dashboard.md shows.

    python scripts/dashboard_screenshot.py [--seconds 150] [--out docs/dashboard.png]

Everything runs on 127.0.0.1 and stops by itself; the figures are the traffic's own.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.sdk.demo import demo_prompts  # noqa: E402
from tests import browser as chrome  # noqa: E402
from tests.learning import ADMIN_KEY, model, router_for, serve  # noqa: E402
from tests.upstream import Upstream  # noqa: E402

POLICIES = {
    "balanced": {
        "default": ["llama-3.1-8b", "smollm2-135m"],
        "domains": {"math": ["deepseek-chat"], "code": ["deepseek-chat"]},
        "large": ["gpt-4o"],
        "escalation": {"min_domain_confidence": 0.2, "max_gain": 0.2},
    },
    "cost-saver": {
        "default": ["smollm2-135m"],
        "large": ["gpt-4o"],
        "escalation": {"max_gain": 0.3504},
    },
    "cascade": {
        "default": ["llama-3.1-8b"],
        "large": ["gpt-4o"],
        "cascade": {"threshold": 0.5},
    },
}


def write_config(directory: Path, api_base: str) -> Path:
    models = [
        model("smollm2-135m", "smollm2", api_base, input_price=0, output_price=0),
        model("llama-3.1-8b", "llama", api_base, input_price=0.05, output_price=0.08),
        model("deepseek-chat", "delay-0.05", api_base, input_price=0.27, output_price=1.10),
        model("gpt-4o", "delay-0.4", api_base, tier="large", input_price=2.5, output_price=10),
        model("judge", "judge", api_base, input_price=0.15, output_price=0.6),
    ]
    (directory / "policies").mkdir(parents=True)
    cfg = {
        "default_policy": "balanced",
        "breaker": {"failures": 0},
        "decision_log": str(directory / "decisions.db"),
        "server": {"keys_env": None, "admin_key": ADMIN_KEY},
        "shadow": {"judge": "judge", "rate": 0.2, "max_usd_per_day": 1.0},
        "models": models,
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for name, body in POLICIES.items():
        (directory / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return directory / "config.yaml"


def traffic(url: str, seconds: float) -> int:
    """Requests for `seconds`: demo and bench prompts, mostly routed, some feedback."""
    rng = random.Random(7)
    texts = [p.text for p in demo_prompts()]
    deadline, n = time.monotonic() + seconds, 0
    with httpx.Client(base_url=url, timeout=60) as c:
        while time.monotonic() < deadline:
            policy = rng.choices(["balanced", "cost-saver", "cascade"], [5, 3, 2])[0]
            text = f"{rng.choice(texts)} (request {n})"
            r = c.post(
                "/v1/chat/completions",
                json={"model": f"router/{policy}", "messages": [{"role": "user", "content": text}]},
            )
            n += 1
            if r.status_code == 200 and rng.random() < 0.2:
                score = "up" if rng.random() < 0.8 else "down"
                c.post(
                    "/v1/feedback", json={"request_id": r.headers["x-request-id"], "score": score}
                )
            time.sleep(rng.uniform(0.05, 0.4))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0, help="how long traffic runs")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = ap.parse_args()
    up = Upstream(keep_requests=False).start()
    proxy = None
    try:
        cfg = write_config(Path(tempfile.mkdtemp(prefix="dash-shot-")), up.base_url)
        proxy = serve(router_for(cfg))
        n = traffic(proxy.url, args.seconds)
        print(f"sent {n} requests", file=sys.stderr)
        time.sleep(3)  # the last rows and shadow verdicts reach the log
        with chrome.sync_playwright() as p:
            b = chrome.launch(p)
            page = b.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(proxy.url + "/dashboard?since=15m")
            page.fill('input[name="key"]', ADMIN_KEY)
            page.click('button[type="submit"]')
            page.wait_for_selector('[data-figure="requests"]')
            page.goto(proxy.url + "/dashboard?since=15m")
            page.wait_for_selector('[data-figure="requests"]')
            page.screenshot(path=str(args.out), full_page=True)
            b.close()
        print(f"wrote {args.out}", file=sys.stderr)
    finally:
        if proxy is not None:
            proxy.stop()
        up.stop()


if __name__ == "__main__":
    main()
