"""Model pools: the models a graph may use, loaded from YAML under ``tasks/pools/``.

Each model carries its architecture constants (for FLOPs), speed figures (for the latency
estimate), prices, and integer combination costs (for enumerating budget-filling model
combinations). A pool resolves a model by its full name (``llama-3.2-3b``) or its short alias
(``3B``).

A pool file may extend another with ``base: NAME`` (a shipped pool, or a path relative to the
file): it then takes the base's ``models`` and ``output_model`` unless it gives its own, so one
model list can be served several ways (``llama3-ollama``, ``llama3-vllm``). The sections that
say how the models are reached (``providers``, ``serve``, ``generation``) are kept raw in
:attr:`Pool.live` and checked only by :func:`harness.live.providers.live_routes`, so listing
and simulating pools never needs API keys.

Example:
    >>> pool = load_pool("llama3")
    >>> pool.model("3B").name
    'llama-3.2-3b'
    >>> [m.short for m in pool.models]
    ['1B', '3B', '8B', '70B']
    >>> pool.combo_cost("8B", "math"), pool.combo_cost("8B", "humaneval")
    (9, 7)
    >>> served = load_pool("llama3-ollama")
    >>> served.base, served.names == pool.names, sorted(served.live)
    ('llama3', True, ['generation', 'providers', 'serve'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._yaml import read_yaml
from harness.errors import ConfigError, GraphError
from harness.graph import Graph
from harness.paths import pools_dir

__all__ = ["DEFAULT_POOL", "ModelSpec", "Pool", "load_pool", "pool_names"]

DEFAULT_POOL = "llama3"

# Top-level fields of a pool file; the last three are the live backend's, checked by
# harness.live.providers (kept raw here so that `harness pools` works without API keys).
_LIVE_FIELDS = ("providers", "serve", "generation")
_FIELDS = ("name", "description", "output_model", "models", "base", *_LIVE_FIELDS)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a pool.

    Attributes:
        name: full name used in graphs and traces.
        short: short alias (``3B``), accepted wherever a name is.
        params: parameter count M.
        layers: transformer layers L.
        hidden: hidden size D.
        combo_cost: integer cost per task name, with ``default`` for the rest.
        prefill_tps: prompt tokens processed per second.
        decode_tps: output tokens generated per second.
        overhead_s: fixed time per call (scheduling, network).
        price_in: USD per million prompt tokens (None when unknown).
        price_out: USD per million output tokens (None when unknown).
        extra: any further fields of the YAML entry (``hf_id``, provider settings).
    """

    name: str
    short: str
    params: float
    layers: int
    hidden: int
    combo_cost: Mapping[str, int]
    prefill_tps: float
    decode_tps: float
    overhead_s: float
    price_in: float | None = None
    price_out: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pool:
    """An ordered set of models (smallest first) and the default output model.

    Attributes:
        name: the pool's name.
        description: one line for listings.
        models: the models, smallest (fewest parameters) first; ties keep file order.
        output_model: full name of the output node's default model.
        source: the YAML file it was read from (None when built in code).
        base: the name (or path, as written) of the pool it extends, if any.
        live: the raw ``providers``, ``serve`` and ``generation`` sections (only those given),
            validated by :func:`harness.live.providers.live_routes`.
    """

    name: str
    description: str
    models: tuple[ModelSpec, ...]
    output_model: str
    source: Path | None = None
    base: str | None = None
    live: Mapping[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        """The model with this name or short alias.

        Raises:
            ConfigError: unknown model; the message lists the pool's models.
        """
        for spec in self.models:
            if name in (spec.name, spec.short):
                return spec
        known = ", ".join(f"{m.name} ({m.short})" for m in self.models)
        raise ConfigError(f"unknown model {name!r} in pool {self.name!r} (expected one of {known})")

    def __contains__(self, name: object) -> bool:
        return any(name in (m.name, m.short) for m in self.models)

    @property
    def names(self) -> tuple[str, ...]:
        """Full model names, smallest model first."""
        return tuple(m.name for m in self.models)

    def combo_cost(self, name: str, task: str) -> int:
        """The integer cost of one call of ``name`` when enumerating combinations for ``task``."""
        costs = self.model(name).combo_cost
        return int(costs.get(task, costs["default"]))

    def resolve(self, graph: Graph) -> Graph:
        """The graph with every model given by its full name.

        Raises:
            GraphError: a node names a model outside the pool.
        """
        mapping: dict[str, str] = {}
        for node in graph.nodes:
            mapping[node.model] = self._resolve_node(node.model, f"node {node.id}")
        mapping[graph.output_model] = self._resolve_node(graph.output_model, "node output")
        return graph.replace_models(mapping)

    def _resolve_node(self, model: str, where: str) -> str:
        if model not in self:
            known = ", ".join(f"{m.name} ({m.short})" for m in self.models)
            raise GraphError(f"{where}: unknown model {model!r} (pool {self.name}: {known})")
        return self.model(model).name


def pool_names() -> list[str]:
    """Names of the pools shipped under ``tasks/pools/``."""
    return sorted(p.stem for p in pools_dir().glob("*.yaml"))


def load_pool(name_or_path: str | Path = DEFAULT_POOL) -> Pool:
    """Load a pool by name (``llama3``) or from a YAML file path.

    Raises:
        ConfigError: unknown pool, or a malformed file (naming the file and field), or a ``base``
            that is unknown or leads back to the file.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        path = candidate
        if not path.is_file():
            raise ConfigError(f"{path}: pool file not found")
    else:
        path = pools_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(pool_names())
            raise ConfigError(f"unknown pool {str(name_or_path)!r} (expected one of {known})")
    return _load(path, ())


def _load(path: Path, chain: tuple[Path, ...]) -> Pool:
    """Read one pool file; ``chain`` holds the files that extend it, to catch a cycle."""
    data = read_yaml(path)
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(
                f"{path}: unknown field {key!r} (expected one of {', '.join(_FIELDS)})"
            )
    base: Pool | None = None
    if "base" in data:
        base_name = data["base"]
        if not isinstance(base_name, str) or not base_name:
            raise ConfigError(f"{path}: field 'base' must name a pool, got {base_name!r}")
        base_path = _base_path(base_name, path)
        seen = (*chain, path)
        if base_path.resolve() in {p.resolve() for p in seen}:
            loop = " -> ".join(str(p) for p in (*seen, base_path))
            raise ConfigError(f"{path}: field 'base': pools extend each other in a cycle ({loop})")
        base = _load(base_path, seen)
    return _parse_pool(data, path, base)


def _base_path(base: str, path: Path) -> Path:
    # A bare name is a shipped pool; anything that looks like a path is relative to the file
    # that names it, so a pool and its base can live together outside tasks/pools/.
    if base.endswith((".yaml", ".yml")) or "/" in base:
        target = path.parent / base
        if not target.is_file():
            raise ConfigError(f"{path}: field 'base': pool file {str(target)!r} not found")
        return target
    target = pools_dir() / f"{base}.yaml"
    if not target.is_file():
        known = ", ".join(pool_names())
        raise ConfigError(f"{path}: field 'base': unknown pool {base!r} (expected one of {known})")
    return target


def _parse_pool(data: Mapping[str, Any], path: Path, base: Pool | None = None) -> Pool:
    name = _field(data, "name", str, path)
    if base is not None and "models" not in data:
        models = list(base.models)
    else:
        models = _parse_models(data, path)
    # The base's output model carries over when it is still a model of this pool.
    default_output = models[0].name
    if base is not None and any(m.name == base.output_model for m in models):
        default_output = base.output_model
    output = data.get("output_model", default_output)
    by_alias = {alias: m.name for m in models for alias in (m.name, m.short)}
    if not isinstance(output, str) or output not in by_alias:
        raise ConfigError(f"{path}: field 'output_model' must name a model of the pool")
    return Pool(
        name=name,
        description=str(data.get("description", "")),
        models=tuple(models),
        output_model=by_alias[output],
        source=path,
        base=str(data["base"]) if base is not None else None,
        live={key: data[key] for key in _LIVE_FIELDS if key in data},
    )


def _parse_models(data: Mapping[str, Any], path: Path) -> list[ModelSpec]:
    raw_models = _field(data, "models", list, path)
    if not raw_models:
        raise ConfigError(f"{path}: field 'models' must list at least one model")
    models = [_parse_model(entry, path, f"models[{pos}]") for pos, entry in enumerate(raw_models)]
    seen: set[str] = set()
    for spec in models:
        for alias in dict.fromkeys((spec.name, spec.short)):  # short defaults to the name
            if alias in seen:
                raise ConfigError(f"{path}: model name or alias {alias!r} used twice")
            seen.add(alias)
    # sort() is stable: models with equal parameter counts keep the file's order.
    models.sort(key=lambda m: m.params)
    return models


def _parse_model(entry: Any, path: Path, where: str) -> ModelSpec:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{path}: {where} must be a mapping")
    at = f"{where}."
    name = _field(entry, "name", str, path, at)
    speed = _field(entry, "speed", Mapping, path, at)
    price = entry.get("price") or {}
    if not isinstance(price, Mapping):
        raise ConfigError(f"{path}: field '{at}price' must be a mapping with input and output")
    costs = _field(entry, "combo_cost", Mapping, path, at)
    if "default" not in costs or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in costs.values()
    ):
        raise ConfigError(
            f"{path}: field '{at}combo_cost' must map task names and 'default' to positive integers"
        )
    known = {"name", "short", "params", "layers", "hidden", "combo_cost", "speed", "price"}
    return ModelSpec(
        name=name,
        short=str(entry.get("short", name)),
        params=_positive(entry, "params", path, at),
        layers=int(_positive(entry, "layers", path, at)),
        hidden=int(_positive(entry, "hidden", path, at)),
        combo_cost=dict(costs),
        prefill_tps=_positive(speed, "prefill_tps", path, f"{at}speed."),
        decode_tps=_positive(speed, "decode_tps", path, f"{at}speed."),
        overhead_s=_non_negative(speed, "overhead_s", path, f"{at}speed."),
        price_in=_optional_price(price, "input", path, at),
        price_out=_optional_price(price, "output", path, at),
        extra={k: v for k, v in entry.items() if k not in known},
    )


def _field(data: Mapping[str, Any], key: str, kind: type, path: Path, at: str = "") -> Any:
    if key not in data:
        raise ConfigError(f"{path}: missing field '{at}{key}'")
    value = data[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{path}: field '{at}{key}' must be a {kind.__name__}, got {value!r}")
    return value


def _number(data: Mapping[str, Any], key: str, path: Path, at: str) -> float:
    value = data.get(key)
    if isinstance(value, str):
        # YAML 1.1 reads 1.0e9 (no sign in the exponent) as a string; take it as the number meant.
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: field '{at}{key}' must be a number, got {value!r}")
    return float(value)


def _positive(data: Mapping[str, Any], key: str, path: Path, at: str) -> float:
    value = _number(data, key, path, at)
    if value <= 0:
        raise ConfigError(f"{path}: field '{at}{key}' must be positive, got {value:g}")
    return value


def _non_negative(data: Mapping[str, Any], key: str, path: Path, at: str) -> float:
    value = _number(data, key, path, at)
    if value < 0:
        raise ConfigError(f"{path}: field '{at}{key}' must be zero or more, got {value:g}")
    return value


def _optional_price(data: Mapping[str, Any], key: str, path: Path, at: str) -> float | None:
    if data.get(key) is None:
        return None
    return _non_negative(data, key, path, f"{at}price.")
