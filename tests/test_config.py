import textwrap

import pytest

from router.core.config import ConfigError, load_config, load_policy
from router.core.data import domain_names
from tests.conftest import ROOT

MODEL = """
models:
  - name: a
    litellm_model: openai/a
    input_price: 1
    output_price: 2
    context_window: 1000
  - name: b
    litellm_model: openai/b
    input_price: 1
    output_price: 2
    context_window: 1000
    tier: large
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_shipped_config_and_policies_load():
    from router.core.config import load_policies

    cfg = load_config(ROOT / "config.yaml")
    pols = load_policies(ROOT / "policies", cfg, domain_names())
    assert {"balanced", "cost-saver", "quality-first"} <= set(pols)
    assert cfg.default_policy == "balanced"


@pytest.mark.parametrize(
    "text, field",
    [
        (
            MODEL.replace(
                "input_price: 1\n    output_price: 2\n    context_window: 1000\n    tier",
                "input_price: -1\n    output_price: 2\n    context_window: 1000\n    tier",
            ),
            "models[1].input_price",
        ),
        (
            MODEL.replace("context_window: 1000\n  - name: b", "context_window: lots\n  - name: b"),
            "models[0].context_window",
        ),
        (MODEL.replace("name: b", "name: a"), "models[1].name"),
        (MODEL + "colour: blue\n", "colour"),
        (MODEL.replace("tier: large", "tier: huge"), "models[1].tier"),
        (
            MODEL.replace("    tier: large", "    capabilities: [telepathy]"),
            "models[1].capabilities",
        ),
    ],
)
def test_config_errors_name_file_and_field(tmp_path, text, field):
    p = write(tmp_path, "config.yaml", text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field.startswith(field), str(e.value)
    assert str(p) in str(e.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "c.yaml", "models: [\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_missing_relative_config_names_where_it_was_looked_for(tmp_path, monkeypatch):
    # `router` run outside the project: the default config.yaml is looked for in the cwd.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("config.yaml")
    assert str(e.value) == f"config.yaml: file not found (looked in {tmp_path})"


@pytest.mark.parametrize(
    "policy, field",
    [
        ("default: [a]\nlarge: [zzz]\n", "large[0]"),
        ("default: [a]\nlarge: [b]\ndomains:\n  math: [a, ghost]\n", "domains.math[1]"),
        ("default: [a]\nlarge: [b]\ndomains:\n  astrology: [a]\n", "domains.astrology"),
        (
            "default: [a]\nlarge: [b]\nescalation:\n  max_difficulty: 2\n",
            "escalation.max_difficulty",
        ),
        ("default: []\nlarge: [b]\n", "default"),
        ("default: [a]\nlarge: [b]\nrules: [pin, pin]\n", "rules"),
        ("name: other\ndefault: [a]\nlarge: [b]\n", "name"),
    ],
)
def test_policy_errors_name_file_and_field(tmp_path, policy, field):
    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    p = write(tmp_path, "pol.yaml", policy)
    with pytest.raises(ConfigError) as e:
        load_policy(p, cfg, domain_names())
    assert e.value.field == field, str(e.value)
    assert "pol.yaml" in str(e.value)


def test_every_validation_error_is_named_with_its_field(tmp_path):
    """A file with several mistakes names each one, not just the first and a count."""
    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    p = write(tmp_path, "pol.yaml", "escalation:\n  max_difficulty: 2\n")
    with pytest.raises(ConfigError) as e:
        load_policy(p, cfg, domain_names())
    message = str(e.value)
    assert e.value.field == "default", message
    assert "large: Field required" in message and "escalation.max_difficulty:" in message
    many = "".join(f"bogus{i}: 1\n" for i in range(8))
    p = write(tmp_path, "many.yaml", "default: [a]\nlarge: [b]\n" + many)
    with pytest.raises(ConfigError) as e:
        load_policy(p, cfg, domain_names())
    assert str(e.value).endswith(" more)"), str(e.value)


def test_a_policy_file_whose_name_cannot_be_a_policy_name_says_so(tmp_path):
    """The file name is the policy's name: a user who wrote no `name:` is told about the file
    name, not about a regular expression."""
    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    p = write(tmp_path, "my policy.yaml", "default: [a]\nlarge: [b]\n")
    with pytest.raises(ConfigError) as e:
        load_policy(p, cfg, domain_names())
    assert e.value.field == "name" and "the file name 'my policy'" in str(e.value)
