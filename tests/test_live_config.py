"""Pool files that say how each model is reached: base pools, providers, serve, generation."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.live.providers import (
    KEYLESS_API_KEY,
    OPENAI_BASE_URL,
    Provider,
    api_key,
    live_routes,
)
from harness.pool import load_pool, pool_names

LIVE_POOLS = ("anthropic", "llama3-ollama", "llama3-vllm", "local", "openai")
# Every environment variable a shipped pool reads; each test starts with them unset.
POOL_ENV = (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_BASE_URL", "VLLM_BASE_URL", "VLLM_API_KEY",
    "HARNESS_LOCAL_URL", "HARNESS_TEST_URL", "HARNESS_TEST_KEY",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in POOL_ENV:
        monkeypatch.delenv(name, raising=False)


TINY = """\
name: tiny
models:
  - {name: small, short: S, params: 1.0e+9, layers: 2, hidden: 8, combo_cost: {default: 1},
     speed: {prefill_tps: 10, decode_tps: 1, overhead_s: 0}}
  - {name: big, short: B, params: 2.0e+9, layers: 2, hidden: 8, combo_cost: {default: 2},
     speed: {prefill_tps: 10, decode_tps: 1, overhead_s: 0}}
"""

LIVE = (
    TINY
    + """\
providers:
  local:
    type: openai
    base_url: http://127.0.0.1:8080/v1
  cloud:
    type: openai
    api_key_env: HARNESS_TEST_KEY
    requests_per_minute: 60
serve:
  small: {provider: local, model_id: small-id}
  B: {provider: cloud, model_id: big-id, generation: {max_tokens: 16, stop: "END"}}
generation: {temperature: 0.2}
"""
)


def write(tmp_path, text, name="pool.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_live_pool_yields_a_route_per_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert set(LIVE_POOLS) <= set(pool_names())
    for name in LIVE_POOLS:
        pool = load_pool(name)
        routes = live_routes(pool)
        assert tuple(routes) == pool.names, name
        for route in routes.values():
            assert route.model_id and route.provider.concurrency >= 1
            assert {"temperature", "top_p", "max_tokens", "seed"} <= set(route.generation)


def test_pools_without_live_sections_load_and_say_so():
    for name in ("llama3", "qwen2.5"):
        pool = load_pool(name)
        assert pool.live == {} and pool.base is None
        with pytest.raises(ConfigError, match=f"pool '{name}' says nothing .*docs/live.md"):
            live_routes(pool)


def test_shipped_pool_details():
    ollama = live_routes(load_pool("llama3-ollama"))["llama-3.1-8b"]
    assert (ollama.provider.name, ollama.model_id) == ("ollama", "llama3.1:8b")
    assert ollama.provider.base_url == "http://localhost:11434/v1"
    assert ollama.provider.api_key_env is None and api_key(ollama.provider) is None
    vllm = live_routes(load_pool("llama3-vllm"))
    llama3 = load_pool("llama3")
    assert [r.model_id for r in vllm.values()] == [m.extra["hf_id"] for m in llama3.models]
    local = load_pool("local")
    assert local.names == ("smollm2-a", "smollm2-b") and local.output_model == "smollm2-a"
    routes = live_routes(local)
    assert {r.model_id for r in routes.values()} == {"smollm2-a", "smollm2-b"}
    assert routes["smollm2-b"].generation["max_tokens"] == 64
    assert routes["smollm2-b"].provider.timeout_s == 600
    anthropic = live_routes(load_pool("anthropic"), check_keys=False)
    assert all(r.generation["seed"] is False for r in anthropic.values())
    assert all(r.provider.base_url is None for r in anthropic.values())


def test_base_pool_gives_models_and_output_model():
    for name in ("llama3-ollama", "llama3-vllm"):
        pool = load_pool(name)
        base = load_pool("llama3")
        assert pool.name == name and pool.base == "llama3"
        assert pool.models == base.models and pool.output_model == base.output_model
        assert pool.description != base.description
        assert set(pool.live) == {"providers", "serve", "generation"}


def test_base_chains_and_paths_relative_to_the_file(tmp_path):
    write(tmp_path, TINY, "a.yaml")
    write(tmp_path, "name: b\nbase: a.yaml\noutput_model: B\n", "b.yaml")
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "name: c\nbase: ../b.yaml\n", "c.yaml")
    pool = load_pool(sub / "c.yaml")
    assert pool.name == "c" and pool.names == ("small", "big") and pool.output_model == "big"
    assert pool.base == "../b.yaml"


def test_own_models_replace_the_bases(tmp_path):
    text = TINY.replace("name: tiny", "name: mine\nbase: llama3")
    pool = load_pool(write(tmp_path, text))
    assert pool.names == ("small", "big")
    assert pool.output_model == "small"  # llama3's output model is not in this pool


def test_equal_params_keep_file_order(tmp_path):
    text = TINY.replace("params: 2.0e+9", "params: 1.0e+9")
    assert load_pool(write(tmp_path, text)).names == ("small", "big")


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"pool.yaml": "name: x\nbase: nope\n"}, "field 'base': unknown pool 'nope'"),
        ({"pool.yaml": "name: x\nbase: other.yaml\n"}, "field 'base': pool file"),
        ({"pool.yaml": "name: x\nbase: [1]\n"}, "field 'base' must name a pool"),
        ({"pool.yaml": "name: x\nbase: pool.yaml\n"}, "field 'base': pools extend each other"),
        (
            {"pool.yaml": "name: x\nbase: b.yaml\n", "b.yaml": "name: b\nbase: pool.yaml\n"},
            "field 'base': pools extend each other",
        ),
        ({"pool.yaml": TINY + "colour: red\n"}, "unknown field 'colour'"),
    ],
)
def test_bad_base_and_unknown_fields_name_the_file(tmp_path, files, needle):
    for name, text in files.items():
        write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        load_pool(tmp_path / "pool.yaml")
    assert needle in str(info.value)
    assert str(tmp_path / "pool.yaml") in str(info.value)


def test_routes_merge_generation_and_expose_provider_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", "secret")
    routes = live_routes(load_pool(write(tmp_path, LIVE)))
    small, big = routes["small"], routes["big"]
    assert small.provider == Provider("local", "openai", "http://127.0.0.1:8080/v1", None)
    assert dict(small.generation) == {
        "temperature": 0.2, "top_p": 1.0, "max_tokens": 1024, "seed": True,
    }  # fmt: skip
    assert big.generation["max_tokens"] == 16 and big.generation["stop"] == ("END",)
    assert big.generation["temperature"] == 0.2
    assert big.provider.base_url == OPENAI_BASE_URL and big.provider.requests_per_minute == 60
    assert api_key(big.provider) == "secret" and api_key(small.provider) is None
    assert KEYLESS_API_KEY == "not-needed"


def test_missing_key_fails_only_when_checked(tmp_path):
    pool = load_pool(write(tmp_path, LIVE))
    with pytest.raises(ConfigError) as info:
        live_routes(pool)
    assert str(info.value) == (
        f"{tmp_path / 'pool.yaml'}: providers.cloud.api_key_env: "
        "environment variable HARNESS_TEST_KEY is not set"
    )
    routes = live_routes(pool, check_keys=False)
    with pytest.raises(
        ConfigError, match="provider 'cloud': environment variable HARNESS_TEST_KEY"
    ):
        api_key(routes["big"].provider)


def test_base_url_expands_environment_variables(tmp_path, monkeypatch):
    text = LIVE.replace("http://127.0.0.1:8080/v1", "${HARNESS_TEST_URL:-http://127.0.0.1:9/v1}")
    pool = load_pool(write(tmp_path, text))
    assert live_routes(pool, check_keys=False)["small"].provider.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("HARNESS_TEST_URL", "https://box.example:8443/v1")
    url = live_routes(pool, check_keys=False)["small"].provider.base_url
    assert url == "https://box.example:8443/v1"
    bare = load_pool(
        write(tmp_path, LIVE.replace("http://127.0.0.1:8080/v1", "${HARNESS_TEST_URL}"))
    )
    assert live_routes(bare, check_keys=False)["small"].provider.base_url == url
    monkeypatch.delenv("HARNESS_TEST_URL")
    with pytest.raises(ConfigError) as info:
        live_routes(bare, check_keys=False)
    assert "providers.local.base_url: environment variable HARNESS_TEST_URL is not set" in str(
        info.value
    )


BAD = [
    (("type: openai\n    base_url", "type: azure\n    base_url"),
     "providers.local.type: unknown provider type 'azure' (expected openai or anthropic)"),
    (("{provider: local,", "{provider: olama,"),
     "serve.small.provider: unknown provider 'olama' (defined: local, cloud)"),
    (("  small: {provider: local, model_id: small-id}\n", ""),
     "serve: model 'small' of the pool has no serve entry"),
    (("  small: {", "  gpt-5: {provider: local, model_id: x}\n  small: {"),
     "serve.gpt-5: not a model of the pool"),
    (("  small: {", "  S: {provider: local, model_id: x}\n  small: {"),
     "serve.small: model 'small' has a serve entry already"),
    (("http://127.0.0.1:8080/v1", "localhost:8080"),
     "providers.local.base_url: malformed URL 'localhost:8080' (expected http:// or https://"),
    (("http://127.0.0.1:8080/v1", "http://:8080/v1"), "providers.local.base_url: malformed URL"),
    (("http://127.0.0.1:8080/v1", "http://h:99999/v1"), "providers.local.base_url: malformed URL"),
    (("http://127.0.0.1:8080/v1", "ftp://h/v1"), "providers.local.base_url: malformed URL"),
    (("http://127.0.0.1:8080/v1", "${HARNESS_TEST_URL"), "providers.local.base_url: malformed"),
    (("requests_per_minute: 60", "requests_per_minute: 0"),
     "providers.cloud.requests_per_minute: must be > 0, got 0"),
    (("requests_per_minute: 60", "concurrency: 0"), "providers.cloud.concurrency: must be >= 1"),
    (("requests_per_minute: 60", "concurrency: 2.5"),
     "providers.cloud.concurrency: must be an integer"),
    (("requests_per_minute: 60", "max_retries: -1"), "providers.cloud.max_retries: must be >= 0"),
    (("requests_per_minute: 60", "timeout_s: fast"), "providers.cloud.timeout_s: must be a number"),
    (("requests_per_minute: 60", "backoff_s: 5\n    max_backoff_s: 1"),
     "providers.cloud.max_backoff_s: must be >= 5"),
    (("requests_per_minute: 60", "retry: 3"), "providers.cloud.retry: unknown field"),
    (("api_key_env: HARNESS_TEST_KEY", "api_key_env: sk-abc123"),
     "providers.cloud.api_key_env: must name an environment variable"),
    (("  cloud:\n", "  bad name:\n"), "providers.bad name: a provider name may hold"),
    (("model_id: small-id}", "model_id: small-id, temperature: 1}"),
     "serve.small.temperature: unknown field"),
    (("model_id: small-id}", "model_id: ''}"), "serve.small.model_id: must be the provider's"),
    (("{temperature: 0.2}", "{temperature: 2.5}"), "generation.temperature: must be >= 0 and <= 2"),
    (("{temperature: 0.2}", "{top_p: 0}"), "generation.top_p: must be > 0 and <= 1, got 0"),
    (("{temperature: 0.2}", "{max_tokens: 0}"), "generation.max_tokens: must be >= 1"),
    (("{temperature: 0.2}", "{seed: 1}"), "generation.seed: must be true or false"),
    (("{temperature: 0.2}", "{beam: 4}"), "generation.beam: unknown field"),
    (('stop: "END"', "stop: [1]"), "serve.B.generation.stop: must be a string or a list"),
    (("generation: {temperature: 0.2}", "generation: [1]"), "generation: must be a mapping"),
    (("serve:\n", "serve_me: 1\nserve:\n"), "unknown field 'serve_me'"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "needle"), BAD)
def test_bad_live_sections_name_the_file_and_field(tmp_path, change, needle):
    old, new = change
    assert old in LIVE
    path = write(tmp_path, LIVE.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        live_routes(load_pool(path), check_keys=False)
    message = str(info.value)
    assert needle in message
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ("serve:\n  small: {provider: a, model_id: x}\n", "providers: missing"),
        ("providers:\n  a: {type: openai}\n", "serve: missing"),
        ("providers: {}\nserve:\n  small: {provider: a, model_id: x}\n", "providers: must not be"),
        ("providers:\n  a: {type: openai}\nserve: [1]\n", "serve: must be a mapping"),
    ],
)
def test_missing_sections(tmp_path, sections, needle):
    path = write(tmp_path, TINY + sections)
    with pytest.raises(ConfigError, match=needle) as info:
        live_routes(load_pool(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("generation", "needle"),
    [
        ("generation: {seed: true}", "generation.seed: anthropic takes no seed"),
        ("generation: {temperature: 1.5}", "generation.temperature: anthropic takes temperature"),
        (
            "serve:\n  small: {provider: a, model_id: x, generation: {seed: true}}",
            "serve.small.generation.seed: anthropic takes no seed",
        ),
    ],
)
def test_anthropic_generation_limits(tmp_path, generation, needle):
    sections = "providers:\n  a: {type: anthropic}\n"
    serve = "serve:\n  small: {provider: a, model_id: x}\n  big: {provider: a, model_id: y}\n"
    if generation.startswith("serve:"):
        serve = generation + "\n  big: {provider: a, model_id: y}\n"
        generation = ""
    path = write(tmp_path, TINY + sections + serve + generation + "\n")
    with pytest.raises(ConfigError, match=needle):
        live_routes(load_pool(path))


def test_pool_built_in_code_names_itself_in_errors():
    pool = load_pool("llama3")
    bare = type(pool)(pool.name, pool.description, pool.models, pool.output_model)
    with pytest.raises(ConfigError, match="^pool 'llama3': pool 'llama3' says nothing"):
        live_routes(bare)
