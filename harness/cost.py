"""The compute budget: FLOPs per node and per graph, the budget cap, repair, and latency.

Everything follows PAPER.md section 3. For a node of a model with parameters M, layers L and
hidden size D, in-degree d, and the task's prompt and output lengths A and B (tokens)::

    Np = A + d * B                      # the prompt grows with every input
    Nd = B
    prefill = 2*M*Np + 2*L*D*Np*(Np + 1)
    decode  = 2*M*Nd + 2*L*D*Nd*(2*Np + Nd + 1)

Costs are reported in *units*: one call of the reference 1B model (LLaMA-3.2-1B, the paper's
constants) with no inputs, on that task. The unit and the cap always use the paper's reference
models, whatever the pool, so budgets mean the same compute in every pool.

Example:
    >>> from harness.graph import Graph
    >>> from harness.pool import load_pool
    >>> pool = load_pool("llama3")
    >>> g = Graph.create([(0, "1B", "assistant")], [(0, "output")], "3B")
    >>> round(graph_cost(g, pool, (202, 275)).units, 3)
    5.757
    >>> round(budget_cap(12, (202, 275)), 2)
    79.15
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness.errors import BudgetError, GraphError
from harness.graph import ASSISTANT, FUSER, OUTPUT, Graph, Node
from harness.pool import ModelSpec, Pool

__all__ = [
    "REFERENCE_1B",
    "REFERENCE_3B",
    "Architecture",
    "GraphCost",
    "budget_cap",
    "graph_cost",
    "node_flops",
    "node_latency",
    "repair",
    "unit_flops",
]

Lengths = tuple[int, int]


@dataclass(frozen=True)
class Architecture:
    """The constants the FLOPs formula needs: parameters M, layers L, hidden size D."""

    params: float
    layers: int
    hidden: int

    @classmethod
    def of(cls, spec: ModelSpec) -> Architecture:
        """The architecture of a pool model."""
        return cls(spec.params, spec.layers, spec.hidden)


REFERENCE_1B = Architecture(1e9, 16, 2048)
"""LLaMA-3.2-1B as in PAPER.md section 3: the unit of cost."""
REFERENCE_3B = Architecture(3e9, 28, 3072)
"""LLaMA-3.2-3B as in PAPER.md section 3: the output node of the cap's reference graph."""


def node_tokens(lengths: Lengths, in_degree: int) -> tuple[int, int]:
    """Prompt and output tokens (Np, Nd) of a node with ``in_degree`` inputs."""
    prompt_len, output_len = lengths
    return prompt_len + in_degree * output_len, output_len


def node_flops(arch: Architecture, lengths: Lengths, in_degree: int) -> float:
    """FLOPs of one call (prefill plus decode), PAPER.md section 3.

    Example:
        >>> node_flops(REFERENCE_1B, (202, 275), 0) == unit_flops((202, 275))
        True
    """
    n_p, n_d = node_tokens(lengths, in_degree)
    m, layers_x_hidden = arch.params, arch.layers * arch.hidden
    prefill = 2 * m * n_p + 2 * layers_x_hidden * n_p * (n_p + 1)
    decode = 2 * m * n_d + 2 * layers_x_hidden * n_d * (2 * n_p + n_d + 1)
    return float(prefill + decode)


def unit_flops(lengths: Lengths) -> float:
    """FLOPs of the unit: one reference-1B call with no inputs on a task with these lengths."""
    return node_flops(REFERENCE_1B, lengths, 0)


def budget_cap(level: int, lengths: Lengths) -> float:
    """The budget cap for level ``k``, in units.

    The cost of a reference graph of ``k`` 1B nodes and one 3B output node in which every node
    reads every earlier node (a complete DAG): node ``i`` has in-degree ``i``, the output node
    ``k``.

    Raises:
        BudgetError: ``level`` is not a positive integer.
    """
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise BudgetError(f"budget level must be a positive integer, got {level!r}")
    total = sum(node_flops(REFERENCE_1B, lengths, i) for i in range(level))
    total += node_flops(REFERENCE_3B, lengths, level)
    return total / unit_flops(lengths)


def node_latency(spec: ModelSpec, lengths: Lengths, in_degree: int) -> float:
    """Estimated seconds for one call: overhead + prefill time + decode time."""
    n_p, n_d = node_tokens(lengths, in_degree)
    return spec.overhead_s + n_p / spec.prefill_tps + n_d / spec.decode_tps


@dataclass(frozen=True)
class GraphCost:
    """What running a graph once on one question costs.

    Attributes:
        units: FLOPs in units of the task's reference 1B call.
        per_node: units per node id (the output node is :data:`~harness.graph.OUTPUT`).
        latency_s: estimated wall time: the critical path of per-node latencies.
        prompt_tokens: prompt tokens over all nodes.
        output_tokens: output tokens over all nodes.
    """

    units: float
    per_node: Mapping[int, float]
    latency_s: float
    prompt_tokens: int
    output_tokens: int

    def fits(self, cap: float) -> bool:
        """Whether the graph is within a cap (a relative tolerance absorbs float rounding)."""
        return self.units <= cap * (1 + 1e-9)


def graph_cost(graph: Graph, pool: Pool, lengths: Lengths) -> GraphCost:
    """FLOPs, latency and tokens of one run of ``graph`` (every executed node, output included).

    Raises:
        ConfigError: a node's model is not in ``pool``.
    """
    unit = unit_flops(lengths)
    preds = graph.predecessors_map()
    per_node: dict[int, float] = {}
    finish: dict[int, float] = {}
    prompt_tokens = output_tokens = 0
    for node_id in (*graph.topological_order(), OUTPUT):
        spec = pool.model(graph.model_of(node_id))
        degree = len(preds[node_id])
        per_node[node_id] = node_flops(Architecture.of(spec), lengths, degree) / unit
        start = max((finish[p] for p in preds[node_id]), default=0.0)
        finish[node_id] = start + node_latency(spec, lengths, degree)
        n_p, n_d = node_tokens(lengths, degree)
        prompt_tokens += n_p
        output_tokens += n_d
    return GraphCost(
        units=sum(per_node.values()),
        per_node=per_node,
        latency_s=finish[OUTPUT],
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
    )


def repair(
    graph: Graph,
    pool: Pool,
    lengths: Lengths,
    cap: float,
    rng: random.Random | None = None,
    fits: Callable[[Graph], bool] | None = None,
) -> Graph:
    """Delete nodes until ``graph`` fits ``cap`` (PAPER.md section 3).

    While the graph is over the cap, one agent node of the smallest model (fewest parameters)
    is deleted, ties broken by ``rng`` (or the lowest id without one). Deleting a node can leave
    a fuser without an assistant parent; such a fuser becomes an assistant, which is what the
    paper's role sampler would allow there. Nodes left without a path to the output node are
    dropped as usual.

    Args:
        graph: the graph to repair.
        pool: its models' constants.
        lengths: the task's (A, B).
        cap: the FLOPs cap in units.
        rng: breaks ties between nodes of the smallest model.
        fits: a stricter test than the cap alone (the space also checks the integer
            combination budget and the node limit); the same rule runs until it passes.

    Raises:
        BudgetError: the graph cannot be brought under the cap (for example the output node
            alone is over it, or deleting the last input of the output node would be needed).
    """

    def ok(candidate: Graph) -> bool:
        within = graph_cost(candidate, pool, lengths).fits(cap)
        return within and (fits is None or fits(candidate))

    current = graph
    while not ok(current):
        if len(current.nodes) <= 1:
            raise BudgetError(
                f"graph {graph.id} cannot be repaired to the budget (cap {cap:.2f} units): "
                f"even one agent node and the output node are over it"
            )
        smallest = min(pool.model(n.model).params for n in current.nodes)
        candidates = sorted(n.id for n in current.nodes if pool.model(n.model).params == smallest)
        victim = rng.choice(candidates) if rng is not None else candidates[0]
        current = _delete_node(current, victim)
    return current


def _delete_node(graph: Graph, victim: int) -> Graph:
    edges = [(s, d) for s, d in graph.edges if victim not in (s, d)]
    remaining = [n for n in graph.nodes if n.id != victim]
    roles = {n.id: n.role for n in remaining}
    parents: dict[int, list[int]] = {n.id: [] for n in remaining}
    for src, dst in edges:
        if dst != OUTPUT:
            parents[dst].append(src)
    nodes = [
        Node(n.id, n.model, ASSISTANT)
        if n.role == FUSER and ASSISTANT not in {roles[p] for p in parents[n.id]}
        else n
        for n in remaining
    ]
    try:
        return Graph.create(nodes, edges, graph.output_model)
    except GraphError as exc:  # the output node lost its last input, or no assistant is left
        raise BudgetError(
            f"graph {graph.id} cannot be repaired: deleting node {victim}: {exc}"
        ) from None
