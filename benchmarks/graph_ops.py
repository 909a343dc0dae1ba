"""Speed of the graph operations every search step uses: sample, id, cost, encode/decode.

Run: ``python benchmarks/graph_ops.py``. Prints operations per second for graphs drawn from the
level-12 MATH space of the LLaMA pool, and for the worst cases of the canonical id (many
identical parallel nodes; identical parallel chains, whose heads tie). Figures, not assertions.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from harness.graph import Graph
from harness.pool import load_pool
from harness.space import Space


def rate(label: str, work: Callable[[], object], repeat: int) -> None:
    start = time.perf_counter()
    for _ in range(repeat):
        work()
    elapsed = time.perf_counter() - start
    print(f"{label:<48} {repeat / elapsed:>12,.0f} /s   ({elapsed / repeat * 1e6:,.1f} us each)")


def main() -> None:
    space = Space(load_pool("llama3"), (202, 275), level=12, task="math")
    rng = random.Random(0)
    graphs = [space.sample(rng) for _ in range(200)]
    sizes = sorted(len(g.nodes) for g in graphs)
    print(f"space: {space}; sampled graphs have {sizes[0]}..{sizes[-1]} agent nodes")
    it = iter(range(10**9))

    def sample() -> object:
        return space.sample(random.Random(next(it)))

    def ident() -> object:
        # A fresh copy each time: Graph.id is cached per instance after the first computation.
        g = graphs[next(it) % len(graphs)]
        return Graph(g.nodes, g.edges, g.output_model).id

    def cost() -> object:
        return space.cost(graphs[next(it) % len(graphs)])

    def roundtrip() -> object:
        return space.decode(space.encode(graphs[next(it) % len(graphs)]))

    rate("Space.sample (with repair)", sample, 500)
    rate("Graph.id (canonical order + hash)", ident, 2000)
    rate("Space.cost (FLOPs, latency, tokens)", cost, 5000)
    rate("Space.encode + decode", roundtrip, 1000)

    parallel = Graph.create(
        [(i, "1B", "assistant") for i in range(12)], [(i, "output") for i in range(12)], "3B"
    )

    def fresh(g: Graph) -> Callable[[], object]:
        return lambda: Graph(g.nodes, g.edges, g.output_model).id

    rate("Graph.id, 12 identical parallel nodes (twins)", fresh(parallel), 200)
    chains = Graph.create(
        [(i, "1B", "assistant") for i in range(12)],
        [(2 * c, 2 * c + 1) for c in range(6)] + [(2 * c + 1, "output") for c in range(6)],
        "3B",
    )
    rate("Graph.id, 6 identical chains of 2 (720 orders)", fresh(chains), 5)


if __name__ == "__main__":
    main()
