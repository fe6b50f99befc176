"""`router demo` (no key, no model called, seconds) and the start-up line on escalations."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from router.cli import app
from router.core.config import load_config, load_policies
from router.core.data import domain_names
from router.sdk.demo import demo_prompts, escalation_note, load_routers, tour
from tests.conftest import ROOT


@pytest.fixture
def no_calls(monkeypatch):
    """Every way to call a model fails the test: the demo must not call one."""

    def refuse(*a, **k):
        raise AssertionError("the demo called a model")

    import litellm

    from router.serving import upstream

    monkeypatch.setattr(upstream, "acompletion", refuse)
    for name in ("completion", "acompletion"):
        monkeypatch.setattr(litellm, name, refuse)
    for key in ("OPENAI_API_KEY", "GROQ_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.delenv(key, raising=False)


def test_demo_tours_every_shipped_config_without_keys(no_calls, monkeypatch):
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(app, ["demo"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "no model is called" in out
    for config in ("config.yaml", "configs/pool.yaml"):
        assert config in out
    # Every policy of both configs, each with its 20 decisions, reasons and a summary line.
    assert out.count("policy cost-saver") == 2 and out.count("policy balanced") == 2
    assert len(re.findall(r"^\s+\d+ .+ → \S+$", out, re.M)) == 6 * 20
    assert out.count("kept on small models:") == 6
    assert "escalation gain" in out and "all-large" in out


def test_the_printed_figures_are_the_routers(no_calls):
    paths = [ROOT / "config.yaml", ROOT / "configs" / "pool.yaml"]
    routers = load_routers(paths)
    assert routers[1].encoder is routers[0].encoder  # loaded once
    prompts = demo_prompts()
    assert len(prompts) == 20 and {p.kind for p in prompts} == {"everyday", "hard"}
    (t,) = tour(routers[0], prompts, ["cost-saver"])
    direct = [routers[0].route(p.text, policy="cost-saver") for p in prompts]
    assert [d.model for d in t.decisions] == [d.model for d in direct]
    assert t.kept_small == sum(d.tier == "small" for d in direct)
    assert t.cost == pytest.approx(sum(d.cost_estimate for d in direct))
    res = CliRunner().invoke(
        app, ["demo", "--config", str(paths[0]), "--policy", "cost-saver", "--no-reasons"]
    )
    assert res.exit_code == 0, res.output
    share = f"{t.kept_small}/20 ({t.kept_small / 20:.0%})"
    assert f"kept on small models: {share}" in res.output
    assert f"${t.cost:.4f} against ${t.large_cost:.4f}" in res.output
    assert "escalation gain" not in res.output


def test_demo_names_a_bad_policy_or_missing_configs(tmp_path, monkeypatch):
    res = CliRunner().invoke(
        app, ["demo", "--config", str(ROOT / "config.yaml"), "--policy", "nope"]
    )
    assert res.exit_code == 2 and "nope" in res.output
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["demo"])
    assert res.exit_code == 2 and "--config" in res.output


def _shipped():
    config = load_config(ROOT / "config.yaml")
    return config, load_policies(ROOT / config.policies_dir, config, domain_names())


def test_the_escalation_line_without_and_with_a_key(monkeypatch):
    config, policies = _shipped()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    line = escalation_note(config, policies)
    assert "OPENAI_API_KEY is not set" in line and "gpt-4o" in line
    assert "answered by smollm2-135m instead" in line and "\n" not in line
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert escalation_note(config, policies) == (
        "escalations: the balanced policy sends them to gpt-4o (OPENAI_API_KEY is set)."
    )


def test_serve_prints_the_escalation_line(test_config, monkeypatch):
    import uvicorn

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **k: apps.append(application))
    monkeypatch.setattr("router.server.logs.configure", lambda *a, **k: None)
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    res = CliRunner().invoke(
        app, ["serve", "--config", str(test_config), "--port", "8124", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "escalations:" in x)
    assert "the balanced policy sends them to large" in line
    apps[0].state.decision_log.close()
