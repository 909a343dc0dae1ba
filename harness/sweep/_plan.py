"""The plan: one folder per study, and whether a finished folder is this sweep's study."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.protocol import Protocol
from harness.sweep._config import PARTIAL, MethodEntry, SweepConfig

# ----- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySpec:
    """One study of a sweep: everything a worker needs to run it, and its folder."""

    label: str
    method: str
    options: Mapping[str, Any]
    task: str
    backend: str
    seed: int
    folder: Path
    protocol: Protocol
    pool: str
    agent: str | None = None

    @property
    def partial(self) -> Path:
        """The folder the study runs into; renamed to :attr:`folder` when it finishes."""
        return self.folder.with_name(self.folder.name + PARTIAL)

    @property
    def key(self) -> str:
        """``label/task/backend/seed-n``: the study's name in reports."""
        return f"{self.label}/{self.task}/{self.backend}/seed-{self.seed}"


def plan(config: SweepConfig, out: Path) -> list[StudySpec]:
    """Every study of the sweep, in order label, task, backend, seed; one stable folder each."""
    specs = []
    for entry in config.methods:
        agent = config.agent if entry.uses_agent else None
        for task in config.tasks:
            for backend in config.backends:
                for seed in config.seeds:
                    folder = out / "studies" / entry.label / task / backend / f"seed-{seed}"
                    specs.append(
                        StudySpec(entry.label, entry.name, entry.options, task, backend, seed,
                                  folder, config.protocol, config.pool, agent)
                    )  # fmt: skip
    return specs


def study_finished(folder: Path) -> bool:
    """Whether ``folder`` holds a trace whose last record is ``final``."""
    path = folder / "trace.jsonl"
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            chunk = 1 << 16
            while True:
                handle.seek(max(0, size - chunk))
                lines = handle.read().rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or chunk >= size:
                    break
                chunk *= 4
    except OSError:
        return False
    try:
        record = json.loads(lines[-1])
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("type") == "final"


def _check_same_study(spec: StudySpec, entry: MethodEntry, config: SweepConfig) -> dict[str, Any]:
    """Refuse a finished folder whose manifest describes another study; return the manifest."""
    try:
        manifest = json.loads((spec.folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{spec.folder}: finished trace but no readable manifest.json") from None
    agent = manifest.get("agent") or {}
    recorded = {
        "method": manifest.get("method"),
        "task": (manifest.get("task") or {}).get("name"),
        "backend": (manifest.get("backend") or {}).get("name"),
        "seed": manifest.get("seed"),
        "protocol": manifest.get("protocol"),
        "pool": manifest.get("pool"),
        "agent": agent.get("spec"),
    }
    expected = {
        "method": dict(entry.describe), "task": spec.task, "backend": spec.backend,
        "seed": spec.seed, "protocol": config.protocol.to_json(), "pool": config.pool_name,
        "agent": spec.agent,
    }  # fmt: skip
    for key, value in expected.items():
        if recorded[key] != value:
            raise UserError(
                f"{spec.folder}: finished with another {key} than {config.source} asks "
                f"({recorded[key]!r}, not {value!r}); use another --out or delete that folder"
            )
    return dict(manifest)


def _backend_identity(described: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs of a backend comparable: not where its files lie."""
    return {k: v for k, v in described.items() if k not in ("cache", "params")}
