"""Mistakes in a config that used to show only when a model was called or a request came in
(an unknown provider, an api_base without a scheme, an API key naming a policy or model that
does not exist), or that came as a crash or in pydantic's words: each is an error at load time
naming the file and the field."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from router.core.config import ConfigError, check_default_policy, load_config, load_policies
from router.core.data import domain_names
from tests.conftest import ROOT
from tests.test_config import MODEL as CONFIG
from tests.test_config import write


def config_error(path) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value), str(e.value)
    return e.value


# -- 1. the provider of each model and its api_base ------------------------------------------


@pytest.mark.parametrize(
    "litellm_model, api_base, says",
    [
        (
            "opneai/gpt-4o",
            None,
            "unknown provider 'opneai' in 'opneai/gpt-4o' (did you mean 'openai'?)",
        ),
        ("gropq/llama-3.1-8b-instant", None, "(did you mean 'groq'?)"),
        # No prefix, and a local server: litellm cannot tell whom to call.
        ("qwen2.5", "http://127.0.0.1:11434/v1", "e.g. 'openai/qwen2.5' for an OpenAI-compatible"),
        ("gpt4o", None, "no provider prefix and is not a model litellm knows by name"),
    ],
)
def test_an_unknown_provider_is_an_error_naming_the_models_field(
    tmp_path, litellm_model, api_base, says
):
    text = CONFIG.replace("litellm_model: openai/b", f"litellm_model: {litellm_model}")
    if api_base:
        text = text.replace("    tier: large", f"    tier: large\n    api_base: {api_base}")
    e = config_error(write(tmp_path, "config.yaml", text))
    assert e.field == "models[1].litellm_model", str(e)
    assert "model 'b'" in str(e) and says in str(e), str(e)


@pytest.mark.parametrize(
    "litellm_model, api_base",
    [
        ("groq/llama-3.1-8b-instant", None),
        ("hosted_vllm/qwen", "http://127.0.0.1:8001/v1"),
        ("nano-gpt/some-model", None),  # a provider of litellm's providers.json
        ("gpt-4o-mini", None),  # litellm knows the model by name
        ("ft:gpt-4o-mini:org::abc123", None),  # an OpenAI fine-tune
        ("llama-3.1-8b-instant", "https://api.groq.com/openai/v1"),  # by its endpoint
    ],
)
def test_a_provider_litellm_knows_loads(tmp_path, litellm_model, api_base):
    text = CONFIG.replace("litellm_model: openai/b", f"litellm_model: {litellm_model}")
    if api_base:
        text = text.replace("    tier: large", f"    tier: large\n    api_base: {api_base}")
    assert load_config(write(tmp_path, "config.yaml", text)).model("b").litellm_model


def test_the_provider_check_reads_litellms_own_lists(tmp_path):
    """The check reads litellm's provider list from its files (router/core may not import
    litellm, and the import takes seconds): the list read must be litellm's own, and the check
    must refuse only what litellm itself refuses."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.llms.openai_like.json_loader import JSONProviderRegistry

    from router.core.sections import litellm_provider_problem, litellm_providers_from_files

    JSONProviderRegistry.load()
    own = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    assert litellm_providers_from_files() == own | set(JSONProviderRegistry.list_providers())
    litellm.suppress_debug_info = True
    for model, api_base in [
        ("openai/gpt-4o", None),
        ("deepseek/deepseek-chat", None),
        ("ollama_chat/llama3", None),
        ("opneai/gpt-4o", None),
        ("meta-llama/Llama-3-8b", None),
        ("gpt-4o", None),
        ("gpt4o", None),
        ("qwen2.5", "http://127.0.0.1:11434/v1"),
        ("llama-3.1-8b-instant", "https://api.groq.com/openai/v1"),
    ]:
        try:
            litellm.get_llm_provider(model, api_base=api_base)
            litellm_takes = True
        except Exception:  # noqa: BLE001
            litellm_takes = False
        assert (litellm_provider_problem(model, api_base) is None) == litellm_takes, model


def test_checking_providers_does_not_import_litellm(tmp_path):
    """Loading a config stays milliseconds: litellm (seconds to import) is not imported."""
    text = CONFIG.replace("openai/b", "groq/llama-3.1-8b-instant") + (
        "  - {name: c, litellm_model: gpt-4o-mini, input_price: 1, output_price: 1,"
        " context_window: 9}\n"
    )
    p = write(tmp_path, "config.yaml", text)
    code = (
        "import sys; from router.core.config import load_config; "
        f"load_config({str(p)!r}); assert 'litellm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "api_base, says",
    [
        (
            "localhost:8000/v1",
            "'localhost:8000/v1' is not an http:// or https:// URL; write "
            "'http://localhost:8000/v1'",
        ),
        ("127.0.0.1:8000", "write 'http://127.0.0.1:8000'"),
        ("ftp://example.com/v1", "is not an http:// or https:// URL"),
    ],
)
def test_an_api_base_without_a_scheme_is_an_error_naming_the_field(tmp_path, api_base, says):
    text = CONFIG.replace("    tier: large", f"    tier: large\n    api_base: '{api_base}'")
    e = config_error(write(tmp_path, "config.yaml", text))
    assert e.field == "models[1].api_base" and says in str(e), str(e)


# -- 2. the API keys' policies and models ------------------------------------------------------


def _with_key(tmp_path, key: str):
    """config.yaml with one API key, and a policies/ folder with `balanced` and `cheap`."""
    (tmp_path / "policies").mkdir(exist_ok=True)
    for name in ("balanced", "cheap"):
        write(tmp_path / "policies", f"{name}.yaml", "default: [a]\nlarge: [b]\n")
    text = CONFIG + "policies_dir: policies\nserver:\n  keys:\n    - " + key + "\n"
    return write(tmp_path, "config.yaml", text)


def _check_policies(path):
    cfg = load_config(path)
    policies = load_policies(path.parent / cfg.policies_dir, cfg, domain_names())
    check_default_policy(path, cfg, policies)


def test_a_keys_model_not_in_the_catalogue_is_an_error_naming_the_key(tmp_path):
    p = _with_key(tmp_path, "{name: alice, key: sk-alice-123456, models: [router, a, bb]}")
    e = config_error(p)
    assert e.field == "server.keys[0].models[2]", str(e)
    assert "key 'alice': unknown model 'bb' (did you mean 'b'?)" in str(e), str(e)


@pytest.mark.parametrize(
    "key, field, says",
    [
        (
            "{name: alice, key: sk-alice-123456, policy: balansed}",
            "server.keys[0].policy",
            "key 'alice': no policy 'balansed' in policies (did you mean 'balanced'?)",
        ),
        (
            "{name: bob, key: sk-bob-12345678, models: [a, router/chep]}",
            "server.keys[0].models[1]",
            "key 'bob': no policy 'chep' in policies (did you mean 'cheap'?)",
        ),
    ],
)
def test_a_keys_policy_that_does_not_exist_is_an_error_naming_the_key(tmp_path, key, field, says):
    p = _with_key(tmp_path, key)
    with pytest.raises(ConfigError) as e:
        _check_policies(p)
    assert e.value.field == field and says in str(e.value), str(e.value)
    assert str(e.value).startswith(str(p))


def test_a_key_naming_existing_policies_and_models_loads(tmp_path):
    p = _with_key(
        tmp_path,
        "{name: alice, key: sk-alice-123456, policy: cheap, models: [router, router/cheap, b]}",
    )
    _check_policies(p)


# -- 3. a section given a scalar -----------------------------------------------------------------


def test_cache_off_says_what_the_field_accepts(tmp_path):
    e = config_error(write(tmp_path, "config.yaml", CONFIG + "cache: off\n"))
    message = str(e)
    assert e.field == "cache" and "CacheSpec" not in message, message
    assert "expected a section, a mapping of its fields (mode, similarity" in message, message
    assert "To turn it off write `cache: {mode: off}`" in message, message


@pytest.mark.parametrize(
    "tail, field, says",
    [
        ("privacy: off\n", "privacy", "`privacy: {action: off}`"),
        ("decision_log: {spool: off}\n", "decision_log.spool", "`spool: null`"),
        ("encoder: minilm\n", "encoder", "got 'minilm'"),
    ],
)
def test_a_section_given_a_scalar_says_what_it_accepts(tmp_path, tail, field, says):
    e = config_error(write(tmp_path, "config.yaml", CONFIG + tail))
    assert e.field == field and says in str(e) and "Spec" not in str(e), str(e)


# -- 4. the cascade calibration's policy file ------------------------------------------------


@pytest.mark.parametrize(
    "policy, says",
    [
        (
            "default: [a]\nlarge: [b]\ncascade: {threshold: 0.4}\ncascade: {band: 0.1}\n",
            "line 4, column 1: invalid YAML: 'cascade' is given twice (first at line 3)",
        ),
        (
            "default: [a]\nlarge: [b]\nescalation: {max_gain: yes}\n",
            "escalation.max_gain: expected a number",
        ),
        ("default: [a]\nlarge: [b\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping at the top level"),
    ],
)
def test_writing_cascade_settings_reads_the_policy_as_the_router_does(tmp_path, policy, says):
    from router.evaluation.evaluate_cascade import write_cascade_settings

    p = write(tmp_path, "balanced.yaml", policy)
    with pytest.raises(ConfigError) as e:
        write_cascade_settings(p, 0.6, 0.1)
    message = str(e.value)
    assert message.startswith(f"{p}: ") and says in message and "\n" not in message, message
    assert p.read_text() == policy  # refused before anything is written


def test_writing_cascade_settings_keeps_a_valid_policy(tmp_path):
    from router.core.config import load_policy
    from router.evaluation.evaluate_cascade import write_cascade_settings

    p = write(tmp_path, "balanced.yaml", "default: [a]\nlarge: [b]\ncascade: {band: 0.2}\n")
    write_cascade_settings(p, 0.6, None)
    cfg = load_config(write(tmp_path, "config.yaml", CONFIG))
    cascade = load_policy(p, cfg, domain_names()).cascade
    assert cascade.threshold == 0.6 and cascade.band is None


# -- 5. errors found after loading name the file ---------------------------------------------


def test_a_stand_in_the_scorer_lacks_names_the_config_file(tmp_path):
    from router.core.config import RouterConfig
    from router.sdk.estimates import success_columns

    p = write(tmp_path, "my-config.yaml", CONFIG + "stand_ins: {small: gpt-4-1106-preveiw}\n")
    cfg = load_config(p)
    with pytest.raises(ConfigError) as e:
        success_columns(cfg, ["gpt-4-1106-preview", "llama-3.1-8b-instruct"])
    assert e.value.file == str(p) and e.value.field == "stand_ins.small", str(e.value)
    assert "(did you mean 'gpt-4-1106-preview'?)" in str(e.value)
    # A config built in code has no file: the error says so rather than naming one.
    in_code = RouterConfig(models=cfg.models, stand_ins=cfg.stand_ins)
    with pytest.raises(ConfigError, match="built in code"):
        success_columns(in_code, ["gpt-4-1106-preview"])
