from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.protocol import load_protocol, protocol_names


def test_shipped_protocols():
    assert {"paper", "large"} <= set(protocol_names())
    paper = load_protocol("paper")
    assert (paper.budget.question_evals, paper.budget.batch_size, paper.budget.level) == (40, 3, 12)
    assert paper.checkpoints() == [6, 12, 18, 24, 30, 36, 40]
    assert load_protocol("large").budget.question_evals == 200


def test_with_budget_keeps_the_rest():
    small = load_protocol("paper").with_budget(7)
    assert small.budget.question_evals == 7 and small.budget.batch_size == 3
    assert small.checkpoints() == [6, 7]
    with pytest.raises(ConfigError, match="positive number"):
        load_protocol("paper").with_budget(0)


GOOD = """name: t
question_evals: 10
batch_size: 2
budget_level: 8
max_nodes: 8
checkpoint_every: 5
heldout_size: null
seeds: 2
pool: llama3
"""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            GOOD.replace("question_evals: 10", "question_evals: 0"),
            "'question_evals' must be a positive",
        ),
        (GOOD.replace("batch_size: 2", "batch_size: two"), "'batch_size' must be a positive"),
        (GOOD.replace("seeds: 2\n", ""), "'seeds' must be a positive integer, got None"),
        (GOOD.replace("heldout_size: null", "heldout_size: -3"), "'heldout_size'"),
        (GOOD + "colour: red\n", "unknown field 'colour'"),
        (GOOD.replace("pool: llama3", "pool: 7"), "'pool' must be a non-empty string"),
    ],
)
def test_malformed_protocols_name_the_field(tmp_path, text, needle):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_protocol_from_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    protocol = load_protocol(path)
    assert protocol.budget.question_evals == 10 and protocol.checkpoints() == [5, 10]
