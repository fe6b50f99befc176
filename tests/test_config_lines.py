"""A configuration error says on which line of its file the field is written."""

import textwrap

import pytest

from router.core.config import ConfigError, load_config, load_policy
from router.core.data import domain_names
from router.core.yaml_lines import line_of
from tests.test_config import MODEL, write


def _line(text: str, marker: str) -> int:
    """The 1-based line of `text` (as written by `write`) that holds `marker`."""
    lines = textwrap.dedent(text).splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


@pytest.mark.parametrize(
    "text, marker, field",
    [
        (MODEL.replace("tier: large", "tier: huge"), "tier: huge", "models[1].tier"),
        (
            MODEL.replace("context_window: 1000\n  - name: b", "context_window: lots\n  - name: b"),
            "context_window: lots",
            "models[0].context_window",
        ),
        (
            MODEL.replace("    tier: large", "    tier: large\n    output_pric: 3"),
            "output_pric: 3",
            "models[1].output_pric",
        ),
        (MODEL + "cache:\n  mode: exact\n  mdoe: exact\n", "mdoe", "cache.mdoe"),
        # A required field left out: the line of the list item it belongs in.
        (MODEL.replace("    litellm_model: openai/b\n", ""), "- name: b", "models[1]"),
    ],
)
def test_a_config_error_names_the_line_of_its_field(tmp_path, text, marker, field):
    p = write(tmp_path, "config.yaml", text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    line = _line(text, marker)
    assert e.value.line == line, str(e.value)
    assert str(e.value).startswith(f"{p}: line {line}: {field}"), str(e.value)


@pytest.mark.parametrize(
    "policy, marker",
    [
        ("default: [a]\nlarge: [zzz]\n", "large"),
        ("default: [a]\nlarge: [b]\ndomains:\n  code: [a]\n  math: [a, ghost]\n", "math"),
        ("default: [a]\nlarge: [b]\nescalation:\n  max_gain: 0.1\n  max_difficulty: 2\n", "diff"),
        ("default:\n  - a\n  - b\n  - nope\nlarge: [b]\n", "nope"),
    ],
)
def test_a_policy_error_names_the_line_of_its_field(tmp_path, policy, marker):
    cfg = load_config(write(tmp_path, "config.yaml", MODEL))
    p = write(tmp_path, "pol.yaml", policy)
    with pytest.raises(ConfigError) as e:
        load_policy(p, cfg, domain_names())
    assert e.value.line == _line(policy, marker), str(e.value)


def test_line_of_reads_list_items_by_name_and_merged_keys(tmp_path):
    p = write(
        tmp_path,
        "c.yaml",
        """\
        base: &base
          retries: 2
        models:
          - name: a
            tier: small
          - name: b
            stand_in: x
        server:
          <<: *base
          port: 1
        """,
    )
    assert line_of(p, "models[b].stand_in") == 7
    assert line_of(p, "models[1]") == 6
    assert line_of(p, "server.retries") == 2  # where the merged key is written
    assert line_of(p, "server.port") == 10
    assert line_of(p, "server.missing") == 8  # the section it belongs in
    assert line_of(p, "models[9]") == 3


@pytest.mark.parametrize("field", ["", "nowhere", "models[0]"])
def test_line_of_is_none_where_there_is_no_line(tmp_path, field):
    assert line_of(write(tmp_path, "c.yaml", "cache: {}\n"), field) is None
    assert line_of(write(tmp_path, "bad.yaml", "models: [\n"), "models") is None
    assert line_of(tmp_path / "missing.yaml", "models") is None
    assert line_of("$ROUTER_ADMIN_KEY", "server.admin_key_env") is None


def test_an_error_not_from_a_file_has_no_line():
    e = ConfigError("the config (built in code)", "stand_ins.small", "no such model")
    assert e.line is None
    assert str(e) == "the config (built in code): stand_ins.small: no such model"
