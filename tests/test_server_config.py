"""The `server:` section of config.yaml and ModelSpec.retries."""

from __future__ import annotations

import pytest

from router.core.config import ConfigError, load_config

BASE = """
models:
  - name: m
    litellm_model: openai/m
    input_price: 1
    output_price: 1
    context_window: 1000
"""


def write(tmp_path, extra: str):
    p = tmp_path / "config.yaml"
    p.write_text(BASE + extra)
    return p


def test_defaults(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    s = cfg.server
    assert (s.host, s.port, s.log_prompts, s.keys) == ("127.0.0.1", 8000, False, ())
    assert s.decision_log == "decisions.db" and s.max_body_bytes > 0
    assert cfg.models[0].retries == 1


def test_full_server_section(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
server:
  port: 9001
  max_body_bytes: 1000
  log_prompts: true
  decision_log: null
  keys:
    - name: team-a
      key_env: ROUTER_KEY_1
      policy: balanced
      models: [router, m]
""",
        )
    )
    assert cfg.server.port == 9001 and cfg.server.decision_log is None
    assert cfg.server.keys[0].key_env == "ROUTER_KEY_1"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("server:\n  port: 0\n", "server.port"),
        ("server:\n  prot: 1\n", "server.prot"),
        ("server:\n  keys:\n    - name: a\n      key: short\n", "server.keys[0].key"),
        ("server:\n  keys:\n    - name: a\n", "server.keys[0]"),
    ],
)
def test_errors_name_the_field(tmp_path, extra, field):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, extra))
    assert e.value.field == field


def test_retries_bounds(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text(BASE + "    retries: -1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == "models[0].retries"


@pytest.mark.parametrize(
    "extra, field",
    [
        ("server:\n  keys: [{name: a, key_env: '${KEY_A}'}]\n", "server.keys[0].key_env"),
        ("server:\n  admin_key_env: 'sk-admin-0123456789abcdef'\n", "server.admin_key_env"),
        ("server:\n  port: yes\n", "server.port"),
        # One name, two keys: they would share rows, feedback, sessions and rate limits.
        (
            "server:\n  keys: [{name: a, key: 'key-one-12345'}, {name: a, key: 'key-two-12345'}]\n",
            "server.keys",
        ),
    ],
)
def test_env_var_names_and_numbers_are_checked(tmp_path, extra, field):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, extra))
    assert e.value.field == field, str(e.value)
    assert "sk-admin" not in str(e.value)
