"""Speed of the ``sim`` backend: graph evaluations per second on a whole split, and one study.

Run: ``python benchmarks/sim_speed.py [--task math] [--data-dir ../shared/data]``.

For graphs of 1, 5 and 12 agent nodes (2, 6 and 13 calls with the output node) it prints the
graph evaluations per second of the harness (``run_graph``: the executor, the sim backend and
scoring, exactly as a study runs them) beside a bare kernel doing the same arithmetic: the same
uniform draws and the same per-node numpy expressions, called directly with everything that does
not depend on the evaluation precomputed (no graph resolution, canonical order, call objects,
latency bookkeeping or records). The ratio is the harness's overhead; the target is within 5x.
Then the wall time of one study under the paper's protocol (target: under 0.5 s), and of a
``harness eval`` run's five studies. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.backends import Batch, EvalContext, get_backend
from harness.executor import run_graph
from harness.graph import OUTPUT, Graph
from harness.pool import load_pool
from harness.protocol import load_protocol
from harness.sim._model import DRAWS, LONE_DRAWS, NodeSpec, answer_node
from harness.sim._random import mix, name_key, uniforms
from harness.study import Bench
from harness.tasks import load_task


def layered(width: int, depth: int, model: str = "3B") -> Graph:
    """``depth`` layers of ``width`` nodes, each layer reading the previous one."""
    nodes, edges = [], []
    for layer in range(depth):
        for i in range(width):
            node = layer * width + i
            nodes.append((node, model, "assistant"))
            if layer:
                edges += [((layer - 1) * width + j, node) for j in range(width)]
    edges += [((depth - 1) * width + i, OUTPUT) for i in range(width)]
    return Graph.create(nodes, edges, "3B")


GRAPHS = {
    "1 agent (2 calls)": Graph.create([(0, "3B", "assistant")], [(0, OUTPUT)], "3B"),
    "5 agents (6 calls)": Graph.create(
        [
            (0, "1B", "assistant"),
            (1, "1B", "assistant"),
            (2, "3B", "assistant"),
            (3, "3B", "fuser"),
            (4, "8B", "assistant"),
        ],
        [(0, 3), (1, 3), (2, 4), (3, 4), (4, OUTPUT), (2, OUTPUT)],
        "3B",
    ),
    "12 agents (13 calls)": layered(4, 3),
}


def per_second(work: Callable[[], object], seconds: float = 1.0) -> float:
    work()  # warm caches (the batch's per-question facts), as a study's later calls find them
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        count += 1
    return count / (time.perf_counter() - start)


def bare_kernel(backend: object, graph: Graph, batch: Batch, seed: int) -> Callable[[], object]:
    """The same arithmetic as the sim's calls for ``graph``, with the harness taken away."""
    task, pool = backend.task, backend.pool  # type: ignore[attr-defined]
    graph = pool.resolve(graph)
    world = backend._world(batch)  # type: ignore[attr-defined]
    params = backend.params  # type: ignore[attr-defined]
    structure, spec_task = params.shared, params.tasks[task.name]
    reading, distractors = spec_task.reading, spec_task.distractors
    preds = graph.predecessors_map()
    levels = graph.levels()
    levels[OUTPUT] = graph.depth + 1
    order = [*graph.topological_order(), OUTPUT]
    a, b = task.lengths
    plan = []
    for pos, node_id in enumerate(order):
        spec = pool.model(graph.model_of(node_id))
        node = NodeSpec(
            model=world.row(spec.name),
            ability=backend.abilities[spec.name],  # type: ignore[attr-defined]
            role="output" if node_id == OUTPUT else graph.node(node_id).role,
            level=levels[node_id],
            prompt_tokens=a + len(preds[node_id]) * b,
            capacity=params.models[spec.name].capacity,
            no_answer=params.models[spec.name].no_answer,
        )
        key = mix(seed, 0, name_key(graph.id), pos)
        plan.append((node_id, node, key, preds[node_id]))
    keys = batch.keys

    def run() -> object:
        out: dict[int, np.ndarray] = {}
        for node_id, node, key, inputs in plan:
            u = uniforms(key, keys, DRAWS if inputs else LONE_DRAWS)
            out[node_id] = answer_node(
                world, node, structure, reading, distractors, [out[p] for p in inputs], u
            )
        return out[OUTPUT] == 0

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="math")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    task, pool = load_task(args.task), load_pool("llama3")
    backend = get_backend("sim")
    backend.bind(task, pool)
    data = task.load(args.data_dir)
    batch = Batch(data.heldout, "heldout")
    print(f"task {task.name}: held-out split of {len(batch)} questions ({data.source})")
    print(f"{'graph':<22} {'harness /s':>11} {'bare kernel /s':>15} {'ratio':>6}")
    for label, graph in GRAPHS.items():
        harness_rate = per_second(
            lambda g=graph: run_graph(g, batch, backend, task, pool, EvalContext(0))
        )
        bare_rate = per_second(bare_kernel(backend, graph, batch, 0))
        ratio = bare_rate / harness_rate
        print(f"{label:<22} {harness_rate:>11,.0f} {bare_rate:>15,.0f} {ratio:>5.1f}x")

    protocol = load_protocol("paper")
    bench = Bench(args.task, protocol, "sim", args.data_dir)
    bench.run("random", {}, seed=0)  # warm: imports, the held-out batch's facts
    for method in ("random", "parallel"):
        times = []
        for seed in range(1, 6):
            start = time.perf_counter()
            bench.run(method, {}, seed=seed)
            times.append(time.perf_counter() - start)
        print(
            f"one paper-protocol study ({method}, {protocol.budget.question_evals} question "
            f"evaluations, {len(protocol.checkpoints())} held-out checkpoints): "
            f"median {sorted(times)[2] * 1000:.0f} ms, five studies {sum(times):.2f} s"
        )


if __name__ == "__main__":
    main()
