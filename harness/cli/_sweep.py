"""``harness sweep``: run a grid of studies from a YAML config (see :mod:`harness.sweep`)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from harness.cli._common import add_cache_argument
from harness.errors import UserError
from harness.sweep import (
    EXECUTORS,
    SweepConfig,
    SweepProgress,
    SweepReport,
    load_sweep,
    plan,
    run_sweep,
    sweep_status,
)

EXIT_FAILED = 1


def register(commands: Any) -> None:
    """Add the ``sweep`` command."""
    cmd = commands.add_parser(
        "sweep",
        help="run a grid of studies (methods x tasks x backends x seeds) from a YAML config",
        description=(
            "Run every study of a sweep config (e.g. leaderboard/sweeps/official.yaml) that is "
            "not finished in the output folder, on local processes or Ray, then write one result "
            "bundle per method label and backend. Resumable: rerunning skips finished studies "
            "and reruns interrupted ones from their start. Exit status 0 when every study "
            "finished, 1 when some failed, 2 for bad input."
        ),
    )
    cmd.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the sweep config")
    cmd.add_argument(
        "--out", type=Path, default=None, help="output folder (default results/sweeps/<name>)"
    )
    cmd.add_argument(
        "--executor", choices=EXECUTORS, default="process", help="process (default) or ray"
    )
    cmd.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: the CPU count; 1 runs in this process)",
    )
    cmd.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join this Ray cluster (default: start a local one; --executor ray only)",
    )
    cmd.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="local data folder (layout of shared/data); default $HARNESS_DATA_DIR",
    )
    add_cache_argument(cmd)
    cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (studies in all, already done, to run) and stop",
    )
    cmd.set_defaults(run=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    """Validate the config and flags, then run (or with ``--dry-run`` print) the sweep."""
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be a positive number, got {args.workers}")
    if args.ray_address is not None and args.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    config = load_sweep(args.config)
    out: Path = args.out or Path("results") / "sweeps" / config.name
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if args.dry_run:
        _print_plan(config, out, args.cache)
        return 0
    display = ProgressDisplay(sys.stderr)
    report = run_sweep(
        config,
        out,
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        on_progress=display,
        data_dir=args.data_dir,
        cache=args.cache,
    )
    display.close()
    _print_report(report)
    return 0 if report.ok else EXIT_FAILED


def _print_plan(config: SweepConfig, out: Path, cache: Path | None) -> None:
    if out.is_dir():
        finished, todo = sweep_status(config, out, cache)
    else:
        finished, todo = [], plan(config, out)
    specs = finished + todo
    grid = (
        f"{len(config.methods)} methods x {len(config.tasks)} tasks x "
        f"{len(config.backends)} backends x {len(config.seeds)} seeds"
    )
    print(f"sweep {config.name}: {len(specs)} studies ({grid}), protocol {config.protocol.name}")
    print(f"  already done: {len(finished)}, to run: {len(todo)}")
    interrupted = sum(1 for spec in todo if spec.partial.exists())
    if interrupted:
        print(f"  interrupted ({interrupted} .partial folders): rerun from their start")
    done_by = Counter(spec.label for spec in finished)
    total_by = Counter(spec.label for spec in specs)
    width = max(len(entry.label) for entry in config.methods)
    for entry in config.methods:
        label = entry.label
        print(f"  {label:<{width}}  {done_by[label]}/{total_by[label]} done")
    print(f"  out: {out}")


def _print_report(report: SweepReport) -> None:
    ran = len(report.done) + len(report.failed)
    print(
        f"sweep {report.name}: {len(report.done) + len(report.skipped)}/{report.total} studies "
        f"finished ({len(report.skipped)} already done, {ran} run in {report.wall_s:.1f} s), "
        f"{len(report.failed)} failed"
    )
    for outcome in report.failed:
        print(f"  failed {outcome.spec.key}: {outcome.error}")
    for note in report.notes + report.bundle_errors:
        print(f"  {note}")
    if report.bundles:
        print(f"  bundles: {', '.join(p.name for p in report.bundles)} in {report.out / 'bundles'}")
    print(f"wrote {report.out}")


class ProgressDisplay:
    """Studies done, running and failed out of the total, on standard error.

    On a terminal: one line, rewritten in place. Otherwise: a line per finished study (a log
    that a CI job or ``nohup`` keeps).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.drawn = False

    def __call__(self, progress: SweepProgress) -> None:
        counts = (
            f"{progress.done}/{progress.total} done, {progress.running} running, "
            f"{progress.failed} failed"
        )
        last = progress.last
        if self.tty:
            tail = f" (last: {last.spec.key})" if last is not None else ""
            self.stream.write(f"\r\x1b[Ksweep: {counts}{tail}")
            self.stream.flush()
            self.drawn = True
            return
        if last is None:
            if progress.done == progress.skipped and progress.running == 0:
                self.stream.write(f"sweep: {progress.total} studies, {progress.skipped} done\n")
                self.stream.flush()
            return
        if last.status == "done":
            accuracy = last.heldout_accuracy or 0.0
            what = f"{last.spec.key} done ({accuracy:.3f} held out, {last.wall_s:.1f} s)"
        else:
            what = f"{last.spec.key} FAILED: {last.error}"
        self.stream.write(f"[{counts}] {what}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
