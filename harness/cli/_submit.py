"""``harness submit`` and ``harness validate``: make a leaderboard bundle, and check one.

``submit`` runs every task x seed of a protocol (default: the official one) for one method and
writes a result bundle (:mod:`harness.bundle`); ``validate`` checks a bundle as the leaderboard
does. See docs/submitting.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.agents import DEFAULT_AGENT, load_agent, parse_agent_spec
from harness.backends import BACKENDS
from harness.bundle import NAME_PATTERN, file_part, validate_bundle, write_bundle
from harness.cli._eval import MAX_SEEDS, check_out_dir, parse_options
from harness.errors import ConfigError, UserError
from harness.methods import load_method, method_class
from harness.protocol import OFFICIAL, load_protocol
from harness.study import Bench

EXIT_INVALID = 1


def register(commands: Any) -> None:
    """Add the ``submit`` and ``validate`` commands."""
    submit = commands.add_parser(
        "submit",
        help="run the official protocol for a method and write a result bundle",
        description=(
            "Run every task x seed of a protocol (default: the leaderboard's official one, "
            "leaderboard/protocol.yaml) for one method, on the protocol's backend, and write a "
            "result bundle for the leaderboard. Nothing is written at --out until the bundle "
            "is complete."
        ),
    )
    submit.add_argument(
        "--method",
        required=True,
        metavar="METHOD",
        help="FILE.py:Class, package.module:Class or a registered name (`harness methods`)",
    )
    submit.add_argument("--name", required=True, help="the bundle's name (letters, digits, ._-)")
    submit.add_argument(
        "--out", type=Path, default=None, help="bundle folder (default results/submissions/NAME)"
    )
    submit.add_argument(
        "--protocol", default=OFFICIAL, help="protocol name or YAML (default: official)"
    )
    submit.add_argument(
        "--tasks", nargs="+", default=None, metavar="TASK", help="tasks (default: the protocol's)"
    )
    submit.add_argument(
        "--seeds", type=int, default=None, help="seeds per task (default: protocol)"
    )
    submit.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option (repeatable; VALUE is read as YAML)",
    )
    submit.add_argument(
        "--agent", default=None, metavar="SPEC", help="the agent of an LLM-based method (rules)"
    )
    submit.add_argument(
        "--data-dir", type=Path, default=None, help="local data folder (default $HARNESS_DATA_DIR)"
    )
    submit.set_defaults(run=run_submit)

    validate = commands.add_parser(
        "validate",
        help="check a result bundle as the leaderboard does",
        description=(
            "Check a result bundle: its index, files and hashes, budget compliance read from "
            "the traces, and (sim backend) re-runs of some studies, which must reproduce their "
            "traces. Re-running executes the bundle's method code. Exit status 0: valid; "
            "1: invalid; 2: usage error."
        ),
    )
    validate.add_argument("bundle", type=Path, help="the bundle folder")
    validate.add_argument(
        "--rerun",
        type=int,
        default=2,
        metavar="N",
        help="studies to re-run on sim (default 2; 0: none; at least the count: all)",
    )
    validate.add_argument(
        "--data-dir", type=Path, default=None, help="task data for re-runs ($HARNESS_DATA_DIR)"
    )
    validate.add_argument("--json", action="store_true", help="print the verdict as JSON")
    validate.set_defaults(run=run_validate)


def run_submit(args: argparse.Namespace) -> int:
    """Check every input, run the studies in a staging folder, then move the bundle in place."""
    if not NAME_PATTERN.match(args.name):
        raise UserError(f"--name {args.name!r}: use 1-64 letters, digits, '.', '_', '-'")
    cls = method_class(args.method)
    options = parse_options(args.option)
    load_method(args.method, options)  # bad options fail here, before anything runs
    agent = None
    if cls.uses_agent:
        agent = load_agent(args.agent or DEFAULT_AGENT)
        agent.check()
    elif args.agent is not None:
        parse_agent_spec(args.agent)
        print(f"harness: note: method {cls.name!r} uses no agent; --agent ignored", file=sys.stderr)
    protocol = load_protocol(args.protocol)
    tasks = [t for arg in args.tasks or () for t in arg.split(",") if t] or list(protocol.tasks)
    if not tasks:
        raise UserError(f"protocol {protocol.name!r} names no tasks: give --tasks")
    if len(set(tasks)) != len(tasks):
        raise UserError(f"--tasks: a task is named twice ({' '.join(tasks)})")
    seeds = protocol.seeds if args.seeds is None else args.seeds
    if not 1 <= seeds <= MAX_SEEDS:
        raise UserError(f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    if protocol.backend not in BACKENDS:
        raise ConfigError(f"protocol {protocol.name!r}: unknown backend {protocol.backend!r}")
    out: Path = args.out or Path("results") / "submissions" / args.name
    check_out_dir(out)
    source = file_part(args.method)
    benches: dict[str, Bench] = {}
    staging: Path | None = None
    try:
        for task in tasks:  # unknown tasks and missing data fail here, before any study
            benches[task] = Bench(task, protocol, protocol.backend, args.data_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Studies run next to --out and the finished bundle is renamed into place: an
        # interrupted submission leaves nothing at --out.
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        dirs, scores = _run_studies(args.method, options, agent, benches, seeds, staging)
        bundle = write_bundle(
            staging / "bundle",
            args.name,
            dirs,
            method_source=Path(source) if source else None,
            entry_point=args.method,
        )
        os.replace(staging / "bundle", out)
    finally:
        for bench in benches.values():
            bench.backend.close()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    what = f"{len(bundle.studies)} studies of {cls.name}, protocol {protocol.name}"
    print(f"wrote bundle {out} ({what})")
    for task, values in scores.items():
        mean = sum(values) / len(values)
        print(f"  {task}: mean held-out accuracy {mean * 100:.1f}% over {len(values)} seeds")
    print(f"check it: harness validate {out}")
    return 0


def _run_studies(
    method: str,
    options: dict[str, Any],
    agent: Any,
    benches: dict[str, Bench],
    seeds: int,
    staging: Path,
) -> tuple[list[Path], dict[str, list[float]]]:
    dirs: list[Path] = []
    scores: dict[str, list[float]] = {}
    total = len(benches) * seeds
    for task, bench in benches.items():
        for seed in range(seeds):
            study_dir = staging / "studies" / task / f"seed-{seed}"
            result = bench.run(method, options, seed=seed, out_dir=study_dir, agent=agent)
            dirs.append(study_dir)
            scores.setdefault(task, []).append(result.heldout_accuracy)
            print(
                f"study {len(dirs)}/{total}: {task} seed {seed}: held-out accuracy "
                f"{result.heldout_accuracy * 100:.1f}%",
                file=sys.stderr,
                flush=True,
            )
    return dirs, scores


def run_validate(args: argparse.Namespace) -> int:
    """Print OK or every reason; exit 0 if valid, 1 if not."""
    if not args.bundle.exists():
        raise UserError(f"{args.bundle}: no such bundle folder")
    if args.rerun < 0:
        raise UserError(f"--rerun must be 0 or more, got {args.rerun}")
    verdict = validate_bundle(args.bundle, rerun=args.rerun, data_dir=args.data_dir)
    studies = len(verdict.bundle.studies) if verdict.bundle is not None else 0
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(verdict.path),
                    "ok": verdict.ok,
                    "reasons": verdict.reasons,
                    "notes": verdict.notes,
                    "studies": studies,
                },
                indent=2,
            )
        )
    elif verdict.ok and verdict.bundle is not None:
        method = verdict.bundle.meta["method"]
        print(f"OK {verdict.path}: {studies} studies of {method['name']} ({method['entry_point']})")
        for note in verdict.notes:
            print(f"  note: {note}")
    else:
        print(f"INVALID {verdict.path}: {len(verdict.reasons)} reason(s)")
        for reason in verdict.reasons:
            print(f"  - {reason}")
        for note in verdict.notes:
            print(f"  note: {note}")
    return 0 if verdict.ok else EXIT_INVALID
