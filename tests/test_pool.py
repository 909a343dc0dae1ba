from __future__ import annotations

import pytest

from harness.cost import Architecture, node_flops, unit_flops
from harness.errors import ConfigError, GraphError
from harness.graph import Graph
from harness.pool import load_pool, pool_names


def test_shipped_pools_load():
    assert {"llama3", "qwen2.5"} <= set(pool_names())
    for name in pool_names():
        pool = load_pool(name)
        assert pool.models == tuple(sorted(pool.models, key=lambda m: m.params))
        assert pool.output_model in pool.names


def test_llama_pool_has_the_papers_constants():
    pool = load_pool("llama3")
    got = {m.short: (m.params, m.layers, m.hidden) for m in pool.models}
    assert got == {
        "1B": (1e9, 16, 2048),
        "3B": (3e9, 28, 3072),
        "8B": (8e9, 32, 4096),
        "70B": (7e10, 80, 8192),
    }
    assert [pool.combo_cost(m, "math") for m in pool.names] == [1, 3, 9, 81]
    assert [pool.combo_cost(m, "mmlu") for m in pool.names] == [1, 3, 9, 81]
    assert [pool.combo_cost(m, "humaneval") for m in pool.names] == [1, 4, 7, 81]
    assert pool.output_model == "llama-3.2-3b"


def test_qwen_combination_costs_are_the_rounded_flops_ratio():
    pool = load_pool("qwen2.5")
    lengths = (202, 275)
    for spec in pool.models:
        ratio = node_flops(Architecture.of(spec), lengths, 0) / unit_flops(lengths)
        assert pool.combo_cost(spec.name, "math") == max(1, round(ratio)), spec.name


def test_resolve_maps_aliases_and_names_unknown_models():
    pool = load_pool("llama3")
    g = Graph.create([(0, "1B", "assistant")], [(0, "output")], "llama-3.2-3b")
    assert pool.resolve(g).to_json()["nodes"][0]["model"] == "llama-3.2-1b"
    with pytest.raises(ConfigError, match="unknown model 'x'"):
        pool.model("x")
    bad = Graph.create([(0, "1B", "assistant")], [(0, "output")], "huge")
    with pytest.raises(GraphError, match="node output: unknown model 'huge'"):
        pool.resolve(bad)


def test_unknown_pool_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown pool 'nope'.*llama3"):
        load_pool("nope")


VALID = """
name: tiny
models:
  - name: m1
    short: S
    params: 1.0e9
    layers: 2
    hidden: 8
    combo_cost: {default: 1}
    speed: {prefill_tps: 10, decode_tps: 1, overhead_s: 0}
"""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: [unclosed", "is not valid YAML"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("models: []\n", "missing field 'name'"),
        ("name: t\nmodels: []\n", "must list at least one model"),
        (
            VALID.replace("params: 1.0e9", "params: big"),
            "field 'models[0].params' must be a number",
        ),
        (VALID.replace("layers: 2", "layers: -2"), "field 'models[0].layers' must be positive"),
        (VALID.replace("{default: 1}", "{math: 1}"), "models[0].combo_cost"),
        (
            VALID.replace("    speed: {prefill_tps: 10, decode_tps: 1, overhead_s: 0}\n", ""),
            "missing field 'models[0].speed'",
        ),
        (VALID + "output_model: other\n", "field 'output_model'"),
    ],
)
def test_malformed_pool_files_name_the_field(tmp_path, text, needle):
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pool(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_pool_from_a_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(VALID)
    pool = load_pool(path)
    assert pool.names == ("m1",) and pool.model("S").name == "m1"
