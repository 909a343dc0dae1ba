"""Provenance: what a study's manifest records (DESIGN.md section 5).

Method and its options, task (with the data source and split scheme), backend, pool, seed,
protocol and budget, package versions, the git revision of the harness, and when it started.

Example:
    >>> versions = package_versions()
    >>> sorted(versions)[:3]
    ['datasets', 'harness', 'math-verify']
"""

from __future__ import annotations

import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from harness.paths import repo_root

if TYPE_CHECKING:
    from harness.agents import Agent
    from harness.methods import Method
    from harness.study import Bench

__all__ = ["MANIFEST_SCHEMA", "git_revision", "package_versions", "study_manifest"]

MANIFEST_SCHEMA = 1
_PACKAGES = ("harness", "numpy", "scipy", "math-verify", "datasets", "optuna", "pyyaml")


def package_versions() -> dict[str, str | None]:
    """Versions of the harness and the packages that shape its results (None if absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> dict[str, Any] | None:
    """The harness checkout's commit and whether it had uncommitted changes (None if no git)."""
    root = repo_root()
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def study_manifest(
    bench: Bench, method: Method, seed: int, agent: Agent | None = None
) -> dict[str, Any]:
    """The manifest of one study, before it runs (``agent`` None: the method uses none)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "kind": "study",
        "method": method.describe(),
        "task": {
            "name": bench.task.name,
            "source": bench.data.source,
            "scheme": bench.data.scheme,
            "search_items": len(bench.data.search),
            "heldout_items": len(bench.heldout),
            "lengths": list(bench.task.lengths),
        },
        "backend": bench.backend.describe(),
        "agent": None if agent is None else {"spec": agent.spec, "is_llm": agent.is_llm},
        "pool": bench.pool.name,
        "seed": seed,
        "protocol": bench.protocol.to_json(),
        "cap_units": bench.space.cap,
        "versions": package_versions(),
        "git": git_revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
