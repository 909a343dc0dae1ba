"""``harness leaderboard build``: the static leaderboard site from the bundles under results/.

Exit status 0 when the site was built, rejected bundles or not (they are listed, with their
reasons, here and on the site); 2 for a usage error (a missing results folder, an unsafe
``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    """Add the ``leaderboard`` command group and its ``build`` sub-command."""
    group = commands.add_parser(
        "leaderboard",
        help="build the static leaderboard site from result bundles",
        description="The leaderboard: a static site built from the result bundles.",
    )
    actions = group.add_subparsers(dest="leaderboard_command", metavar="ACTION")
    actions.required = True
    build = actions.add_parser(
        "build",
        help="validate every bundle under --results and write the site to --out",
        description=(
            "Find every bundle (a folder with bundle.json) under --results, validate each, and "
            "write a static, self-contained site (open index.html from disk, or serve the "
            "folder from any static host) from the valid ones. Rejected bundles are listed "
            "with their reasons; they never stop the build. --out is replaced whole; it must "
            "be new, empty or made by an earlier build."
        ),
    )
    build.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="folder searched for bundles (default results)",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=Path("site"),
        metavar="DIR",
        help="site folder to write (default site)",
    )
    build.add_argument(
        "--rerun",
        type=int,
        default=0,
        metavar="N",
        help="studies per sim bundle to re-run and compare with their traces (default 0: "
        "every other check only; re-running executes the bundle's method)",
    )
    build.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build the site and report what was accepted and rejected."""
    from harness.site import build_site

    report = build_site(args.results, args.out, rerun=args.rerun)
    accepted, rejected = len(report.accepted), len(report.rejected)
    print(f"bundles: {len(report.found)} found, {accepted} accepted, {rejected} rejected")
    for bad in report.rejected:
        for reason in bad.reasons:
            print(f"rejected {bad.path}: {reason}")
    for warning in report.warnings:
        print(f"harness: warning: {warning}", file=sys.stderr)
    print(f"site: {report.index}")
    return 0
