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


@pytest.mark.parametrize(
    "text, field, said",
    [
        (MODEL + "defualt_policy: balanced\n", "defualt_policy", "did you mean 'default_policy'?"),
        (
            MODEL.replace("    tier: large", "    tier: large\n    output_pric: 3"),
            "models[1].output_pric",
            "did you mean 'output_price'?",
        ),
        (MODEL + "cache: {mdoe: exact}\n", "cache.mdoe", "did you mean 'mode'?"),
        (MODEL + "breaker: {zzz: 1}\n", "breaker.zzz", "(it takes: "),
    ],
)
def test_an_unknown_field_names_the_nearest_known_one(tmp_path, text, field, said):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "config.yaml", text))
    assert e.value.field == field, str(e.value)
    assert "unknown field" in str(e.value) and said in str(e.value)
    assert "Extra inputs" not in str(e.value)


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


def test_a_yml_policy_file_is_an_error_not_skipped(tmp_path):
    from router.core.config import load_policies

    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies", "balanced.yaml", "default: [a]\nlarge: [b]\n")
    write(tmp_path / "policies", "cheap.yml", "default: [a]\nlarge: [b]\n")
    with pytest.raises(ConfigError, match=r"cheap\.yml: .*rename it to cheap\.yaml"):
        load_policies(tmp_path / "policies", cfg, domain_names())


def test_a_policy_file_whose_name_cannot_be_a_policy_name_says_so(tmp_path):
    """The file name is the policy's name: a user who wrote no `name:` is told about the file
    name, not about a regular expression."""
    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    p = write(tmp_path, "my policy.yaml", "default: [a]\nlarge: [b]\n")
    with pytest.raises(ConfigError) as e:
        load_policy(p, cfg, domain_names())
    assert e.value.field == "name" and "the file name 'my policy'" in str(e.value)


@pytest.mark.parametrize(
    "where, edit, field, says",
    [
        # YAML 1.1 reads these words as booleans, and pydantic took them as 1 and 0.
        ("policy", "escalation: {max_difficulty: off}\n", "escalation.max_difficulty", "no/off"),
        ("policy", "escalation: {max_gain: yes}\n", "escalation.max_gain", "yes/on"),
        (
            "config",
            ("context_window: 1000\n  - name: b", "context_window: on\n  - name: b"),
            "models[0].context_window",
            "YAML boolean",
        ),
        (
            "config",
            (
                "output_price: 2\n    context_window: 1000\n  - name: b",
                "output_price: 2\n    context_window: 1000\n    timeout: yes\n  - name: b",
            ),
            "models[0].timeout",
            "YAML boolean",
        ),
        # .inf and .nan are YAML floats: an infinite price or timeout is a mistake.
        ("config", ("input_price: 1\n", "input_price: .inf\n"), "models[0].input_price", "finite"),
        ("config", ("input_price: 1\n", "input_price: .nan\n"), "models[0].input_price", "finite"),
        ("policy", "budget: {usd_per_hour: .inf}\n", "budget.usd_per_hour", "finite"),
    ],
)
def test_yaml_booleans_and_infinities_are_not_numbers(tmp_path, where, edit, field, says):
    text = MODEL.replace(*edit, 1) if where == "config" else MODEL
    cfg_file = write(tmp_path, "config.yaml", text)
    with pytest.raises(ConfigError) as e:
        cfg = load_config(cfg_file)
        load_policy(
            write(tmp_path, "pol.yaml", "default: [a]\nlarge: [b]\n" + edit), cfg, domain_names()
        )
    assert e.value.field == field and says in str(e.value), str(e.value)


def test_yaml_booleans_still_mean_booleans_and_off(tmp_path):
    text = MODEL.replace("tier: large", "tier: large\n    trusted: no") + "cache: {mode: off}\n"
    cfg = load_config(write(tmp_path, "config.yaml", text))
    assert cfg.model("b").trusted is False and cfg.cache.mode == "off"


@pytest.mark.parametrize(
    "text, where",
    [
        (MODEL.replace("tier: large", "capabilities: [tools, json"), "line 14, column"),
        (MODEL.replace("    tier: large", "\ttier: large"), "line 13, column 1"),
        (MODEL + "x: a\x07b\n", "line 14"),
    ],
)
def test_invalid_yaml_is_one_line_naming_the_file_and_the_line(tmp_path, text, where):
    p = write(tmp_path, "config.yaml", text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    message = str(e.value)
    assert message.startswith(f"{p}: {where}") and "invalid YAML" in message, message
    assert "\n" not in message and "<unicode string>" not in message, message


def test_a_file_not_in_utf8_names_the_line(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_bytes(MODEL.encode() + "# café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == f"{p}: line 14: not UTF-8 (byte 0xe9); save it as UTF-8"


def test_a_key_given_twice_is_an_error_not_the_last_one_winning(tmp_path):
    """A second `escalation:` (or `models:`) replaced the first without a word."""
    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    policy = "default: [a]\nlarge: [b]\nescalation: {max_gain: 0.2}\nescalation: {max_gain: 0.9}\n"
    with pytest.raises(ConfigError) as e:
        load_policy(write(tmp_path, "pol.yaml", policy), cfg, domain_names())
    assert "line 4, column 1: invalid YAML: 'escalation' is given twice (first at line 3)" in str(
        e.value
    )
    with pytest.raises(ConfigError, match="'timeout' is given twice"):
        load_config(
            write(tmp_path, "c.yaml", MODEL.replace("tier: large", "timeout: 5\n    timeout: 9"))
        )
    # A `<<:` merge is not a repeat: the keys written beside it replace the merged ones.
    merged = MODEL.replace("  - name: b", "  - &b\n    name: b") + (
        "  - <<: *b\n    name: c\n    input_price: 3\n"
    )
    assert load_config(write(tmp_path, "m.yaml", merged)).model("c").input_price == 3


@pytest.mark.parametrize(
    "value, hint",
    [
        ("${OPENAI_API_KEY}", "write OPENAI_API_KEY without '$'"),
        ("sk-proj-abcdef0123456789", "not its value"),
        ("gsk_4fT9abcdefXYZ0123456789abcdefQ", "not its value"),
    ],
)
def test_api_key_env_is_a_variable_name_and_a_key_there_is_not_echoed(tmp_path, value, hint):
    """A key pasted into api_key_env was accepted, and then shown in every "API key env ... is
    not set" (the receipt's reason, the logs, the start-up line)."""
    p = write(
        tmp_path,
        "config.yaml",
        MODEL.replace(
            "litellm_model: openai/a", "litellm_model: openai/a\n    api_key_env: " + value
        ),
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == "models[0].api_key_env" and hint in str(e.value), str(e.value)
    if not value.startswith("$"):
        assert value not in str(e.value)
