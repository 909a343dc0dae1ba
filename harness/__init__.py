"""harness: a benchmark harness and leaderboard for test-time-scaling graph search.

The public names for method authors and users are re-exported here; each lives in the module
that owns its concept (see docs/concepts.md).

Example:
    >>> from harness import Graph, load_pool, Space
    >>> space = Space(load_pool("llama3"), lengths=(202, 275), level=12)
    >>> round(space.cap, 2)
    79.15
"""

from __future__ import annotations

from harness.cost import GraphCost, budget_cap, graph_cost, node_flops, repair
from harness.errors import (
    BudgetError,
    ConfigError,
    DataError,
    GraphError,
    HarnessError,
    UserError,
)
from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node, from_json, parse_text
from harness.pool import ModelSpec, Pool, load_pool
from harness.space import Combo, Space

__version__ = "0.1.0"

__all__ = [
    "ASSISTANT",
    "FUSER",
    "OUTPUT",
    "BudgetError",
    "Combo",
    "ConfigError",
    "DataError",
    "Graph",
    "GraphCost",
    "GraphError",
    "HarnessError",
    "ModelSpec",
    "Node",
    "Pool",
    "Space",
    "UserError",
    "__version__",
    "budget_cap",
    "from_json",
    "graph_cost",
    "load_pool",
    "node_flops",
    "parse_text",
    "repair",
]
