"""Search quality: every method on ``sim``, every task, several seeds, the paper's protocol.

Run: ``python benchmarks/search_quality.py [--seeds 10] [--tasks math,mmlu] [--methods ...]
[--workers 2] [--markdown]``. For each task it prints, per method, the held-out accuracy of the
final recommendation (mean and 95% bootstrap CI over seeds), the FLOPs and latency of what it
found, and the question evaluations it needed to come within 2 points of the best graph any
method found on that task ("-" when its mean curve never got there within the budget). LLM-based
methods consult the offline ``rules`` agent and are labelled so. ``--markdown`` prints the
tables for docs/results.md. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from harness.methods import method_class, method_names
from harness.protocol import load_protocol
from harness.report import bootstrap_ci
from harness.study import Bench

WITHIN_POINTS = 2.0
_BENCHES: dict[str, Bench] = {}


def run_one(job: tuple[str, str, int, str | None]) -> dict[str, Any]:
    """One study in a worker process (benches are built once per worker and task)."""
    task, method, seed, data_dir = job
    if task not in _BENCHES:
        _BENCHES[task] = Bench(
            task, load_protocol("paper"), "sim", Path(data_dir) if data_dir else None
        )
    bench = _BENCHES[task]
    start = time.perf_counter()
    result = bench.run(method, {}, seed=seed)
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "accuracy": result.heldout_accuracy * 100,
        "flops": result.flops_units,
        "latency": result.latency_s,
        "graph": result.graph.to_text(),
        "graph_id": result.graph.id,
        "curve": {mark: acc * 100 for mark, acc in result.checkpoints},
        "agent": (result.agent or {}).get("spec"),
        "wall": time.perf_counter() - start,
    }


def table(task: str, rows: Sequence[dict[str, Any]], markdown: bool) -> str:
    best = max(rows, key=lambda r: r["accuracy"])
    lines = [
        f"### {task}: best graph found ({best['method']}, seed {best['seed']}): "
        f"{best['accuracy']:.1f}% held out, {best['flops']:.1f} FLOPs units",
        "",
    ]
    if markdown:
        lines += ["```", best["graph"], "```", ""]
        lines += [
            "| method | agent | held-out % (95% CI) | FLOPs units | latency s "
            "| evals to within 2 pts |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines += [best["graph"], ""]
        lines.append(
            f"{'method':<20} {'agent':<7} {'held-out % (95% CI)':<22} {'FLOPs':>6} "
            f"{'lat s':>6} {'evals to -2':>11}"
        )
    by_method: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    summary = []
    for method, runs in by_method.items():
        mean, low, high = bootstrap_ci([r["accuracy"] for r in runs])
        marks = sorted(runs[0]["curve"])
        reach = next(
            (
                mark
                for mark in marks
                if sum(r["curve"][mark] for r in runs) / len(runs)
                >= best["accuracy"] - WITHIN_POINTS
            ),
            None,
        )
        summary.append((mean, method, low, high, runs, reach))
    for mean, method, low, high, runs, reach in sorted(summary, reverse=True):
        flops = sum(r["flops"] for r in runs) / len(runs)
        latency = sum(r["latency"] for r in runs) / len(runs)
        agent = runs[0]["agent"] or "-"
        reached = str(reach) if reach is not None else "-"
        ci = f"{mean:.1f} ({low:.1f}-{high:.1f})"
        if markdown:
            lines.append(f"| {method} | {agent} | {ci} | {flops:.1f} | {latency:.2f} | {reached} |")
        else:
            lines.append(
                f"{method:<20} {agent:<7} {ci:<22} {flops:>6.1f} {latency:>6.2f} {reached:>11}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tasks", default="math,gsm8k,mmlu,humaneval")
    parser.add_argument("--methods", default=",".join(method_names()))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        method_class(method)  # fail fast on a typo
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    jobs = [(t, m, s, args.data_dir) for t in tasks for m in methods for s in range(args.seeds)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(run_one, jobs))
    wall = time.perf_counter() - start
    print(
        f"search quality on sim: {len(methods)} methods x {len(tasks)} tasks x {args.seeds} seeds, "
        f"paper protocol (40 question evaluations, batches of 3, level 12); {wall:.0f} s with "
        f"{args.workers} workers\n"
    )
    for task in tasks:
        print(table(task, [r for r in rows if r["task"] == task], args.markdown))
        print()


if __name__ == "__main__":
    main()
