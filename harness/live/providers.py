"""How a pool's models are reached: providers, one route per model, generation settings.

A pool that can run on real LLMs says so in three sections next to (or instead of, with
``base:``) its models::

    providers:                  # endpoints, under names of the pool's choosing
      ollama:
        type: openai            # openai (OpenAI and every compatible server) or anthropic
        base_url: ${OLLAMA_BASE_URL:-http://localhost:11434/v1}
        concurrency: 2
    serve:                      # every pool model (full name or short alias), exactly once
      llama-3.2-1b: {provider: ollama, model_id: "llama3.2:1b"}
    generation: {temperature: 0.7, max_tokens: 1024}   # pool-wide; a serve entry may override

:func:`live_routes` checks all of it and returns one :class:`Route` per model. Pool loading does
not, so listing and simulating pools never needs API keys or servers. Every mistake is one
:class:`~harness.errors.ConfigError` line naming the pool file and the field.

Example:
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from harness.pool import load_pool
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "box.yaml").write_text('''
    ... name: box
    ... base: llama3
    ... providers:
    ...   box: {type: openai, base_url: "${HARNESS_DOCTEST_URL:-http://gpu-box:8000/v1}"}
    ... serve:
    ...   1B: {provider: box, model_id: meta-llama/Llama-3.2-1B-Instruct}
    ...   3B: {provider: box, model_id: meta-llama/Llama-3.2-3B-Instruct}
    ...   8B: {provider: box, model_id: meta-llama/Llama-3.1-8B-Instruct}
    ...   70B: {provider: box, model_id: meta-llama/Llama-3.1-70B-Instruct,
    ...         generation: {max_tokens: 512}}
    ... generation: {temperature: 0}
    ... ''')
    >>> routes = live_routes(load_pool(folder / "box.yaml"))
    >>> route = routes["llama-3.1-70b"]
    >>> route.provider.name, route.provider.base_url, api_key(route.provider)
    ('box', 'http://gpu-box:8000/v1', None)
    >>> dict(route.generation)
    {'temperature': 0.0, 'top_p': 1.0, 'max_tokens': 512, 'seed': True}
    >>> live_routes(load_pool("llama3"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    harness.errors.ConfigError: ...llama3.yaml: pool 'llama3' says nothing about how to reach ...
    >>> shutil.rmtree(folder)
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from harness.errors import ConfigError
from harness.pool import Pool

__all__ = [
    "GENERATION_DEFAULTS",
    "KEYLESS_API_KEY",
    "OPENAI_BASE_URL",
    "PROVIDER_TYPES",
    "Provider",
    "Route",
    "api_key",
    "live_routes",
]

PROVIDER_TYPES = ("openai", "anthropic")
OPENAI_BASE_URL = "https://api.openai.com/v1"
# The OpenAI SDK refuses to start without a key; key-less local servers ignore whatever is sent.
KEYLESS_API_KEY = "not-needed"
# seed is left out: its default depends on the provider type (see _generation_for).
GENERATION_DEFAULTS: Mapping[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 1024}

_PROVIDER_KEYS = (
    "type", "base_url", "api_key_env", "concurrency", "requests_per_minute",
    "tokens_per_minute", "timeout_s", "max_retries", "backoff_s", "max_backoff_s",
)  # fmt: skip
_SERVE_KEYS = ("provider", "model_id", "generation")
_GENERATION_KEYS = ("temperature", "top_p", "max_tokens", "stop", "seed")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Provider names go into call-cache keys and file names; keep them plain.
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Provider:
    """One endpoint and the limits the live backend keeps to when calling it.

    Attributes:
        name: the pool's name for it; part of the call-cache key (the URL is not, so a recorded
            run replays anywhere).
        type: ``openai`` (OpenAI and every compatible server: vLLM, Ollama, llama.cpp, SGLang)
            or ``anthropic``.
        base_url: the API root, ``${VAR}`` references expanded; None for the SDK default.
        api_key_env: the environment variable holding the key; None for key-less servers.
        concurrency: most calls in flight at once.
        requests_per_minute: request rate limit (None: unlimited).
        tokens_per_minute: prompt plus output token rate limit (None: unlimited).
        timeout_s: limit on one call.
        max_retries: retries after the first attempt on 429, 5xx, timeouts and connection errors.
        backoff_s: delay before the first retry, doubled on each retry, with full jitter.
        max_backoff_s: longest delay between retries.
    """

    name: str
    type: str
    base_url: str | None
    api_key_env: str | None
    concurrency: int = 8
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0


@dataclass(frozen=True)
class Route:
    """How one pool model is served.

    Attributes:
        model: the pool model's full name.
        provider: the endpoint that serves it.
        model_id: the provider's name for the model (``gpt-4o-mini``, ``llama3.2:1b``).
        generation: ``temperature``, ``top_p``, ``max_tokens`` and ``seed`` (send a per-sample
            seed), always present, and ``stop`` (a tuple of strings) when given.
    """

    model: str
    provider: Provider
    model_id: str
    generation: Mapping[str, Any]


def api_key(provider: Provider) -> str | None:
    """The provider's API key from the environment (None when it needs none).

    Raises:
        ConfigError: the key's environment variable is not set.
    """
    if provider.api_key_env is None:
        return None
    key = os.environ.get(provider.api_key_env)
    if not key:
        raise ConfigError(
            f"provider {provider.name!r}: environment variable {provider.api_key_env} is not set"
        )
    return key


def live_routes(pool: Pool, check_keys: bool = True) -> dict[str, Route]:
    """Validate ``pool.live`` and return one route per pool model, keyed by full name.

    Args:
        pool: a loaded pool.
        check_keys: also require every used provider's key variable to be set.

    Returns:
        The routes in the pool's model order (smallest model first).

    Raises:
        ConfigError: one line naming the pool file and the field: a missing or unknown section,
            key, provider or model; a wrong type or out-of-range number; a malformed URL or
            unset ``${VAR}``; a model without a serve entry; an unset key variable.
    """
    where = str(pool.source) if pool.source is not None else f"pool {pool.name!r}"
    live = pool.live
    if "providers" not in live and "serve" not in live:
        raise ConfigError(
            f"{where}: pool {pool.name!r} says nothing about how to reach its models "
            "(add providers and serve; see docs/live.md)"
        )
    raw_providers = _mapping(
        live.get("providers"), where, "providers", missing="the serve entries name providers"
    )
    providers = {
        name: _provider(name, raw, where) for name, raw in _named(raw_providers, where, "providers")
    }
    shared = _generation(live.get("generation"), where, "generation")
    routes: dict[str, Route] = {}
    raw_serve = _mapping(live.get("serve"), where, "serve", missing="every model needs an entry")
    for key, raw in _named(raw_serve, where, "serve"):
        at = f"serve.{key}"
        if key not in pool:
            _fail(where, at, "not a model of the pool")
        model = pool.model(key).name
        if model in routes:
            _fail(where, at, f"model {model!r} has a serve entry already")
        entry = _mapping(raw, where, at, missing="give provider and model_id")
        _known_keys(entry, _SERVE_KEYS, where, at)
        provider_name = entry.get("provider")
        if provider_name not in providers:
            _fail(
                where, f"{at}.provider",
                f"unknown provider {provider_name!r} (defined: {', '.join(providers)})",
            )  # fmt: skip
        provider = providers[provider_name]
        model_id = entry.get("model_id")
        if not isinstance(model_id, str) or not model_id.strip():
            _fail(where, f"{at}.model_id", f"must be the provider's model id, got {model_id!r}")
        own = _generation(entry.get("generation"), where, f"{at}.generation")
        generation = _generation_for(provider, shared, own, where, f"{at}.generation")
        routes[model] = Route(model, provider, model_id, generation)
    for model in pool.names:
        if model not in routes:
            _fail(where, "serve", f"model {model!r} of the pool has no serve entry")
    if check_keys:
        for provider in {route.provider.name: route.provider for route in routes.values()}.values():
            if provider.api_key_env is not None and not os.environ.get(provider.api_key_env):
                _fail(
                    where, f"providers.{provider.name}.api_key_env",
                    f"environment variable {provider.api_key_env} is not set",
                )  # fmt: skip
    return {model: routes[model] for model in pool.names}


def _provider(name: str, raw: Any, where: str) -> Provider:
    at = f"providers.{name}"
    if not _PROVIDER_NAME.fullmatch(name):
        _fail(where, at, "a provider name may hold letters, digits, '.', '_' and '-' only")
    entry = _mapping(raw, where, at, missing="give at least its type")
    _known_keys(entry, _PROVIDER_KEYS, where, at)
    kind = entry.get("type")
    if kind not in PROVIDER_TYPES:
        expected = " or ".join(PROVIDER_TYPES)
        _fail(where, f"{at}.type", f"unknown provider type {kind!r} (expected {expected})")
    base_url = entry.get("base_url")
    if base_url is None:
        # The Anthropic SDK knows its own endpoint; OpenAI's is spelled out so traces show it.
        base_url = OPENAI_BASE_URL if kind == "openai" else None
    else:
        base_url = _url(base_url, where, f"{at}.base_url")
    key_env = entry.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env)):
        # A pasted key lands here; never echo it back into a log.
        _fail(where, f"{at}.api_key_env", "must name an environment variable (not hold the key)")
    backoff_s = _number(entry, "backoff_s", 1.0, where, at, low=0.0)
    return Provider(
        name=name,
        type=kind,
        base_url=base_url,
        api_key_env=key_env,
        concurrency=int(_number(entry, "concurrency", 8, where, at, low=1, integer=True)),
        requests_per_minute=_optional(entry, "requests_per_minute", where, at),
        tokens_per_minute=_optional(entry, "tokens_per_minute", where, at),
        timeout_s=_number(entry, "timeout_s", 120.0, where, at, low=0.0, open_low=True),
        max_retries=int(_number(entry, "max_retries", 5, where, at, low=0, integer=True)),
        backoff_s=backoff_s,
        max_backoff_s=_number(
            entry, "max_backoff_s", max(60.0, backoff_s), where, at, low=backoff_s
        ),
    )


def _generation(raw: Any, where: str, at: str) -> dict[str, Any]:
    """Check one ``generation`` section; the result holds only the keys it gives."""
    entry = _mapping(raw, where, at)
    _known_keys(entry, _GENERATION_KEYS, where, at)
    out: dict[str, Any] = {}
    if "temperature" in entry:
        out["temperature"] = _number(entry, "temperature", 0.0, where, at, low=0.0, high=2.0)
    if "top_p" in entry:
        out["top_p"] = _number(entry, "top_p", 1.0, where, at, low=0.0, open_low=True, high=1.0)
    if "max_tokens" in entry:
        out["max_tokens"] = int(_number(entry, "max_tokens", 1, where, at, low=1, integer=True))
    if "stop" in entry:
        stop = entry["stop"]
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            _fail(where, f"{at}.stop", f"must be a string or a list of strings, got {stop!r}")
        out["stop"] = tuple(stops)
    if "seed" in entry:
        if not isinstance(entry["seed"], bool):
            _fail(where, f"{at}.seed", f"must be true or false, got {entry['seed']!r}")
        out["seed"] = entry["seed"]
    return out


def _generation_for(
    provider: Provider, shared: Mapping[str, Any], own: Mapping[str, Any], where: str, own_at: str
) -> dict[str, Any]:
    # Per-sample seeds make OpenAI-compatible servers reproducible; Anthropic takes no seed.
    merged = {**GENERATION_DEFAULTS, "seed": provider.type == "openai", **shared, **own}
    if not merged.get("stop"):
        merged.pop("stop", None)
    if provider.type == "anthropic":
        # Anthropic's API takes temperature 0..1 and no seed; refuse now rather than mid-run.
        for key, bad, why in (
            ("seed", merged["seed"], "anthropic takes no seed (set seed: false)"),
            ("temperature", merged["temperature"] > 1, "anthropic takes temperature 0..1"),
        ):
            if bad:
                section = own_at if key in own else "generation"
                _fail(where, f"{section}.{key}", f"{why}; provider {provider.name!r}")
    return merged


def _url(value: Any, where: str, at: str) -> str:
    if not isinstance(value, str):
        _fail(where, at, f"must be a URL, got {value!r}")

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        # As in the shell, ${VAR:-default} also falls back when VAR is set but empty.
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        _fail(where, at, f"environment variable {name} is not set (used in {match.group(0)!r})")

    url = _ENV_REF.sub(expand, value)
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if "${" in url or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        _fail(where, at, f"malformed URL {url!r} (expected http:// or https:// with a host)")
    return url


def _number(
    entry: Mapping[str, Any], key: str, default: float, where: str, at: str, *,
    low: float, high: float | None = None, open_low: bool = False, integer: bool = False,
) -> float:  # fmt: skip
    value = entry.get(key, default)
    if isinstance(value, str) and not integer:
        # YAML 1.1 reads 2e5 (no dot) as a string; take it as the number meant.
        with contextlib.suppress(ValueError):
            value = float(value)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        _fail(
            where,
            f"{at}.{key}",
            f"must be {'an integer' if integer else 'a number'}, got {value!r}",
        )
    too_low = value <= low if open_low else value < low
    if too_low or (high is not None and value > high):
        bounds = f"{'>' if open_low else '>='} {low:g}" + (
            f" and <= {high:g}" if high is not None else ""
        )
        _fail(where, f"{at}.{key}", f"must be {bounds}, got {value:g}")
    return float(value)


def _optional(entry: Mapping[str, Any], key: str, where: str, at: str) -> float | None:
    if entry.get(key) is None:
        return None
    return _number(entry, key, 0.0, where, at, low=0.0, open_low=True)


def _mapping(raw: Any, where: str, at: str, missing: str | None = None) -> Mapping[str, Any]:
    """``raw`` as a mapping; None is an empty one unless ``missing`` says why it is needed."""
    if raw is None and missing is None:
        return {}
    if raw is None:
        _fail(where, at, f"missing ({missing})")
    if not isinstance(raw, Mapping):
        _fail(where, at, f"must be a mapping, got {type(raw).__name__}")
    return raw


def _named(section: Mapping[Any, Any], where: str, at: str) -> list[tuple[str, Any]]:
    for key in section:
        if not isinstance(key, str):
            _fail(where, f"{at}.{key}", "names must be strings (quote them)")
    if not section:
        _fail(where, at, "must not be empty")
    return list(section.items())


def _known_keys(entry: Mapping[str, Any], known: tuple[str, ...], where: str, at: str) -> None:
    for key in entry:
        if key not in known:
            _fail(where, f"{at}.{key}", f"unknown field (expected one of {', '.join(known)})")


def _fail(where: str, at: str, message: str) -> NoReturn:
    raise ConfigError(f"{where}: {at}: {message}")
