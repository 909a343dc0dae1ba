"""Wall time of the official sweep on 1 and 2 local worker processes and on Ray, side by side.

Run: ``python benchmarks/sweep_speed.py [--methods random,parallel] [--seeds 2] [--tasks math]
[--executors 1,2,ray] [--data-dir ../shared/data]``.

Each setting runs the sweep (default ``leaderboard/sweeps/official.yaml``: every built-in method
on the four tasks, 10 seeds, ``sim``, the ``rules`` agent) into its own temporary folder, so
nothing is skipped. It prints the wall time of each, whether every setting wrote the same traces
(clock fields aside), the time per method (the studies' own loops, from their ``final``
records), and, when run on a subset, an extrapolation to the whole sweep. Target: the whole
official sim sweep under 5 minutes on 2 cores. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from harness.paths import repo_root
from harness.sweep import SweepConfig, load_sweep, run_sweep
from harness.trace import read_trace, without_times


def subset(config: SweepConfig, methods: str | None, seeds: int | None, tasks: str | None):
    """The config restricted to some methods (labels), the first seeds and some tasks."""
    changes: dict[str, object] = {}
    if methods:
        wanted = methods.split(",")
        unknown = set(wanted) - {m.label for m in config.methods}
        if unknown:
            raise SystemExit(f"--methods: not in {config.source}: {', '.join(sorted(unknown))}")
        changes["methods"] = tuple(m for m in config.methods if m.label in wanted)
    if seeds:
        changes["seeds"] = config.seeds[:seeds]
    if tasks:
        changes["tasks"] = tuple(t for t in config.tasks if t in tasks.split(","))
    return dataclasses.replace(config, **changes)


def traces(out: Path) -> dict[str, list[dict[str, object]]]:
    return {
        str(p.parent.relative_to(out)): without_times(read_trace(p))
        for p in sorted(out.glob("studies/*/*/*/seed-*/trace.jsonl"))
    }


def study_times(out: Path) -> dict[tuple[str, str], list[float]]:
    """Per (label, task): each study's own wall time (its final record)."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in out.glob("studies/*/*/*/seed-*/trace.jsonl"):
        label, task = path.parent.relative_to(out / "studies").parts[:2]
        times[label, task].append(float(read_trace(path)[-1]["wall_s"]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = repo_root() / "leaderboard" / "sweeps" / "official.yaml"
    parser.add_argument("--config", type=Path, default=default)
    parser.add_argument("--methods", default=None, help="comma-separated labels (default all)")
    parser.add_argument("--seeds", type=int, default=None, help="the first N seeds (default all)")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks (default all)")
    parser.add_argument("--executors", default="1,2,ray", help="worker counts and/or ray")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    full = load_sweep(args.config)
    config = subset(full, args.methods, args.seeds, args.tasks)
    n_studies = len(config.methods) * len(config.tasks) * len(config.backends) * len(config.seeds)
    print(
        f"sweep {config.name}: {n_studies} studies ({len(config.methods)} methods x "
        f"{len(config.tasks)} tasks x {len(config.seeds)} seeds), protocol {config.protocol.name}, "
        f"{os.cpu_count()} CPUs"
    )
    rows: list[tuple[str, float, int]] = []
    results: dict[str, dict[str, list[dict[str, object]]]] = {}
    times: dict[tuple[str, str], list[float]] = {}
    workers_of: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-speed-") as scratch:
        for setting in args.executors.split(","):
            executor, workers = ("ray", 2) if setting == "ray" else ("process", int(setting))
            name = "ray (2 CPUs)" if setting == "ray" else f"{workers} worker(s)"
            out = Path(scratch) / setting
            started = time.perf_counter()
            try:
                report = run_sweep(
                    config, out, executor=executor, workers=workers, data_dir=args.data_dir
                )
            except Exception as exc:  # e.g. ray missing: print it and go on with the others
                print(f"  {name}: not run ({exc})")
                continue
            wall = time.perf_counter() - started
            rows.append((name, wall, len(report.failed)))
            workers_of[name] = workers
            results[name] = traces(out)
            if not times:
                times = study_times(out)
            print(f"  {name:<14} {wall:7.1f} s  ({len(report.failed)} failed)", flush=True)

    print("\nsetting          wall s  studies/s  speed-up")
    base = rows[0][1] if rows else 1.0
    for name, wall, _ in rows:
        print(f"  {name:<14} {wall:7.1f}  {n_studies / wall:9.2f}  {base / wall:7.2f}x")
    first = next(iter(results.values()), None)
    same = all(r == first for r in results.values())
    print(f"identical traces across settings (clock fields aside): {'yes' if same else 'NO'}")

    by_method: dict[str, list[float]] = defaultdict(list)
    for (label, _), values in times.items():
        by_method[label] += values
    loops = sum(sum(v) for v in by_method.values())
    print("\nmethod               mean study s  share of study time")
    for label, values in sorted(by_method.items(), key=lambda kv: -sum(kv[1])):
        mean = sum(values) / len(values)
        print(f"  {label:<20} {mean:10.2f}  {100 * sum(values) / max(loops, 1e-9):6.1f}%")

    if rows and len(config.seeds) != len(full.seeds):
        # Study loops scale with the seeds and spread over the workers; the rest of each
        # setting's wall time (start-up, benches, pilot tables, bundles) is kept as measured.
        scale = len(full.seeds) / len(config.seeds)
        print(
            f"\nextrapolated to {len(full.seeds)} seeds ({n_studies * scale:.0f} studies of these "
            f"methods and tasks; study loops {loops * scale:.0f} s in all):"
        )
        for name, wall, _ in rows:
            workers = workers_of[name]
            fixed = max(wall - loops / workers, 0.0)
            estimate = fixed + loops * scale / workers
            print(f"  {name:<14} about {estimate:5.0f} s ({fixed:.0f} s fixed + loops / {workers})")


if __name__ == "__main__":
    main()
